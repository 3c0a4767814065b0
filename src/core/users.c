#include "users.h"

#include "crypto.h"
#include "mem.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS_MAX 1000
#define SALT_LEN 16
#define KEY_LEN 32
/* scrypt with N = 2^14, r = 8: 16 MiB and some tens of milliseconds per
 * try, which is what makes a stolen file slow to guess from. */
#define SCRYPT_N 16384
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_MAXMEM (32 * 1024 * 1024)

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* "scrypt:N:r:p:SALT:KEY" into its parts; 0 or -1. */
static int scrypt_parts(const char *s, unsigned long long *nrp, unsigned char *salt,
                        unsigned char *key)
{
	const char *salt_at, *key_at;
	int used = 0;

	if (sscanf(s, "scrypt:%llu:%llu:%llu:%n", &nrp[0], &nrp[1], &nrp[2], &used) != 3 ||
	    used == 0 || nrp[0] < 2 || nrp[0] > (1u << 20) || nrp[1] == 0 || nrp[1] > 32 ||
	    nrp[2] == 0 || nrp[2] > 16)
		return -1;
	salt_at = s + used;
	key_at = strchr(salt_at, ':');
	if (key_at == NULL ||
	    auth_unhex(salt_at, (size_t)(key_at - salt_at), salt, SALT_LEN) == -1 ||
	    auth_unhex(key_at + 1, strlen(key_at + 1), key, KEY_LEN) == -1)
		return -1;
	return 0;
}

/* "setup:HEX64:EXPIRES" into the code's hash and expiry; 0 or -1. */
static int setup_parts(const char *s, unsigned char *hash, long long *expires)
{
	const char *colon;
	char *end;

	if (strncmp(s, "setup:", 6) != 0 || (colon = strchr(s + 6, ':')) == NULL ||
	    auth_unhex(s + 6, (size_t)(colon - s - 6), hash, 32) == -1)
		return -1;
	*expires = strtoll(colon + 1, &end, 10);
	return *end == '\0' && *expires > 0 ? 0 : -1;
}

/* One line into a; 0, 1 for a blank or comment line, -1 when malformed. */
static int parse_line(char *line, struct users_account *a)
{
	char *f[5], *save = NULL;
	int n = 0, i = 2;
	unsigned long long nrp[3];
	unsigned char salt[SALT_LEN], key[KEY_LEN], hash[32];
	long long expires;

	line[strcspn(line, "#\r\n")] = '\0';
	for (char *t = strtok_r(line, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
		if (n == 5)
			return -1;
		f[n++] = t;
	}
	if (n == 0)
		return 1;
	memset(a, 0, sizeof(*a));
	if (n < 3 || !auth_valid_name(f[0]) || auth_role_parse(f[1], &a->role) == -1)
		return -1;
	if (strncmp(f[i], "org=", 4) == 0) {
		char *end;
		a->org = strtoll(f[i] + 4, &end, 10);
		if (*end != '\0' || a->org < 1 || a->org > 999999999 || ++i >= n)
			return -1;
	}
	if ((a->role == ROLE_REFERRER) != (a->org != 0) || strlen(f[i]) >= sizeof(a->secret))
		return -1;
	if (scrypt_parts(f[i], nrp, salt, key) == 0)
		a->has_password = 1;
	else if (setup_parts(f[i], hash, &expires) == -1)
		return -1;
	snprintf(a->name, sizeof(a->name), "%s", f[0]);
	snprintf(a->secret, sizeof(a->secret), "%s", f[i]);
	if (++i < n) {
		if (strncmp(f[i], "created=", 8) != 0 || strlen(f[i]) > 39 || i + 1 != n)
			return -1;
		snprintf(a->created, sizeof(a->created), "%s", f[i] + 8);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int users_list(const char *path, struct users_account **out, int *n)
{
	FILE *f = fopen(path, "r");
	char line[512];
	struct users_account a;

	*out = NULL;
	*n = 0;
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL && *n < USERS_MAX) {
		if (parse_line(line, &a) != 0)
			continue;
		*out = xrealloc(*out, (size_t)(*n + 1) * sizeof(a));
		(*out)[(*n)++] = a;
	}
	fclose(f);
	OPENSSL_cleanse(&a, sizeof(a));
	return 0;
}

int users_find(const char *path, const char *name, struct users_account *out)
{
	struct users_account *all;
	int n, found = 0;

	if (users_list(path, &all, &n) == -1)
		return -1;
	for (int i = 0; i < n && !found; i++)
		if (strcmp(all[i].name, name) == 0) {
			*out = all[i];
			found = 1;
		}
	if (all != NULL)
		OPENSSL_cleanse(all, (size_t)n * sizeof(*all));
	free(all);
	return found;
}

/* The accounts, read to be written back: refused, naming the line, when
 * the file holds a line that is not an account (mistyped by hand), which
 * writing back would drop. */
static enum users_result read_for_change(const char *path, struct users_account **all, int *n,
                                         char *err, size_t errlen)
{
	struct users_account a;
	char line[512];
	int number = 0, bad = 0;
	FILE *f;

	if (users_list(path, all, n) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return USERS_FAILED;
	}
	if ((f = fopen(path, "r")) != NULL) {
		while (!bad && fgets(line, sizeof(line), f) != NULL) {
			number++;
			bad = parse_line(line, &a) == -1;
		}
		fclose(f);
		OPENSSL_cleanse(&a, sizeof(a));
	}
	if (!bad)
		return USERS_OK;
	if (*all != NULL)
		OPENSSL_cleanse(*all, (size_t)*n * sizeof(**all));
	free(*all);
	*all = NULL;
	snprintf(err, errlen,
	         "line %d of %s is not an account; mend or remove it by hand first, so that "
	         "nothing in the file is lost when it is written again",
	         number, path);
	return USERS_FAILED;
}

static void line_of(const struct users_account *a, FILE *out)
{
	fprintf(out, "%s %s ", a->name, auth_role_name(a->role));
	if (a->org != 0)
		fprintf(out, "org=%lld ", a->org);
	fprintf(out, "%s", a->secret);
	if (a->created[0] != '\0')
		fprintf(out, " created=%s", a->created);
	fputc('\n', out);
}

/* Writes the accounts, with a in place of the one of its name (or added;
 * or, when drop, without it), to path. */
static enum users_result write_all(const char *path, const struct users_account *all, int n,
                                   const struct users_account *a, int drop, char *err,
                                   size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int placed = 0;
	FILE *out = open_memstream(&text, &len);
	enum users_result rc = USERS_OK;

	for (int i = 0; i < n; i++) {
		if (strcmp(all[i].name, a->name) == 0) {
			placed = 1;
			if (!drop)
				line_of(a, out);
			continue;
		}
		line_of(&all[i], out);
	}
	if (!placed && !drop)
		line_of(a, out);
	fclose(out);
	if (auth_replace_file(path, text, len, err, errlen) == -1)
		rc = USERS_FAILED;
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

static int token_name_taken(const char *token_file, const char *name, char *err, size_t errlen)
{
	struct auth *auth = auth_load(token_file, err, errlen);
	int taken = 0;

	if (auth == NULL)
		return -1;
	for (int i = 0; i < auth_count(auth); i++)
		taken |= strcmp(auth_get(auth, i)->name, name) == 0;
	auth_free(auth);
	return taken;
}

enum users_result users_add(const char *path, const char *token_file, const char *name,
                            enum auth_role role, long long org, int reset, time_t now, char *code,
                            char *err, size_t errlen)
{
	struct users_account *all, a = {0}, *found = NULL;
	unsigned char raw[USERS_CODE_LEN / 2], h[32];
	char hh[65];
	struct tm tm;
	int n, taken;
	enum users_result rc;

	if (!auth_valid_name(name)) {
		snprintf(err, errlen, "a user name is 1-63 letters, digits or . _ @ -");
		return USERS_BAD_NAME;
	}
	if (!reset && (role == ROLE_REFERRER) != (org != 0)) {
		snprintf(err, errlen,
		         role == ROLE_REFERRER
		             ? "a referrer's account is for one organisation: give its number"
		             : "only a referrer's account is for an organisation");
		return USERS_BAD_ORG;
	}
	if (read_for_change(path, &all, &n, err, errlen) != USERS_OK)
		return USERS_FAILED;
	for (int i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0)
			found = &all[i];
	if (!reset && n >= USERS_MAX) {
		snprintf(err, errlen, "a bank has at most %d accounts", USERS_MAX);
		rc = USERS_FAILED;
		goto done;
	}
	taken = reset ? 0 : token_name_taken(token_file, name, err, errlen);
	if (taken == -1 || (!reset && found != NULL) || taken == 1 || (reset && found == NULL)) {
		rc = taken == -1 ? USERS_FAILED : reset ? USERS_NOT_FOUND : USERS_DUPLICATE;
		if (rc == USERS_DUPLICATE)
			snprintf(err, errlen, "%s is already the name of a %s", name,
			         taken == 1 ? "token" : "user");
		else if (rc == USERS_NOT_FOUND)
			snprintf(err, errlen, "there is no user named %s", name);
		goto done;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "no randomness available");
		rc = USERS_FAILED;
		goto done;
	}
	hex(raw, sizeof(raw), code);
	OPENSSL_cleanse(raw, sizeof(raw));
	crypto_sha256((const uint8_t *)code, strlen(code), h);
	hex(h, sizeof(h), hh);
	if (found != NULL) {
		a = *found;
	} else {
		snprintf(a.name, sizeof(a.name), "%s", name);
		a.role = role;
		a.org = org;
		gmtime_r(&now, &tm);
		strftime(a.created, sizeof(a.created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	a.has_password = 0;
	snprintf(a.secret, sizeof(a.secret), "setup:%s:%lld", hh,
	         (long long)now + USERS_CODE_SECONDS);
	rc = write_all(path, all, n, &a, 0, err, errlen);
done:
	if (all != NULL)
		OPENSSL_cleanse(all, (size_t)n * sizeof(*all));
	free(all);
	OPENSSL_cleanse(&a, sizeof(a));
	return rc;
}

static int derive(const char *password, const unsigned char *salt, unsigned long long nn,
                  unsigned long long r, unsigned long long p, unsigned char *key)
{
	return EVP_PBE_scrypt(password, strlen(password), salt, SALT_LEN, nn, r, p, SCRYPT_MAXMEM,
	                      key, KEY_LEN) == 1
	           ? 0
	           : -1;
}

/* A password people can remember and others cannot guess: long enough,
 * and printable (no control characters). */
static int password_ok(const char *password)
{
	size_t n = strlen(password), chars = 0;

	if (n > USERS_PASSWORD_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)password[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
		chars += (c & 0xc0) != 0x80; /* count characters, not bytes */
	}
	return chars >= USERS_PASSWORD_MIN;
}

enum users_result users_set_password(const char *path, const char *name, const char *code,
                                     const char *password, time_t now, char *err, size_t errlen)
{
	struct users_account *all, *a = NULL, next;
	unsigned char want[32], got[32], salt[SALT_LEN], key[KEY_LEN];
	char salt_hex[2 * SALT_LEN + 1], key_hex[2 * KEY_LEN + 1];
	long long expires = 0;
	int n;
	enum users_result rc = USERS_BAD_CODE;

	if (read_for_change(path, &all, &n, err, errlen) != USERS_OK)
		return USERS_FAILED;
	for (int i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0)
			a = &all[i];
	crypto_sha256((const uint8_t *)code, strlen(code), got);
	if (a == NULL || a->has_password || setup_parts(a->secret, want, &expires) == -1 ||
	    CRYPTO_memcmp(want, got, sizeof(want)) != 0 || expires < (long long)now) {
		snprintf(err, errlen,
		         "the setup code is wrong, used already or expired; ask a "
		         "coordinator for a new one");
		goto done;
	}
	if (!password_ok(password)) {
		snprintf(err, errlen,
		         "a password is %d to %d characters, with no control characters",
		         USERS_PASSWORD_MIN, USERS_PASSWORD_MAX);
		rc = USERS_WEAK;
		goto done;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, key) == -1) {
		snprintf(err, errlen, "the password could not be hashed");
		rc = USERS_FAILED;
		goto done;
	}
	hex(salt, sizeof(salt), salt_hex);
	hex(key, sizeof(key), key_hex);
	next = *a;
	next.has_password = 1;
	snprintf(next.secret, sizeof(next.secret), "scrypt:%d:%d:%d:%s:%s", SCRYPT_N, SCRYPT_R,
	         SCRYPT_P, salt_hex, key_hex);
	rc = write_all(path, all, n, &next, 0, err, errlen);
	OPENSSL_cleanse(&next, sizeof(next));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
done:
	if (all != NULL)
		OPENSSL_cleanse(all, (size_t)n * sizeof(*all));
	free(all);
	return rc;
}

enum users_result users_remove(const char *path, const char *name, char *err, size_t errlen)
{
	struct users_account *all, a = {0};
	int n, found = 0;
	enum users_result rc;

	if (read_for_change(path, &all, &n, err, errlen) != USERS_OK)
		return USERS_FAILED;
	for (int i = 0; i < n; i++)
		found |= strcmp(all[i].name, name) == 0;
	snprintf(a.name, sizeof(a.name), "%s", name);
	if (!found) {
		snprintf(err, errlen, "there is no user named %s", name);
		rc = USERS_NOT_FOUND;
	} else {
		rc = write_all(path, all, n, &a, 1, err, errlen);
	}
	if (all != NULL)
		OPENSSL_cleanse(all, (size_t)n * sizeof(*all));
	free(all);
	return rc;
}

int users_check_password(const struct users_account *account, const char *password)
{
	static const unsigned char dummy_salt[SALT_LEN] = {0};
	unsigned long long nrp[3] = {SCRYPT_N, SCRYPT_R, SCRYPT_P};
	unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
	int real = account != NULL && account->has_password &&
	           scrypt_parts(account->secret, nrp, salt, want) == 0;
	int ok;

	if (!real) {
		nrp[0] = SCRYPT_N;
		nrp[1] = SCRYPT_R;
		nrp[2] = SCRYPT_P;
	}
	/* The same work whether or not there is a password to check. */
	if (derive(password, real ? salt : dummy_salt, nrp[0], nrp[1], nrp[2], got) == -1)
		return 0;
	ok = real && CRYPTO_memcmp(want, got, KEY_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}
