#include "auth.h"

#include "crypto.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUTH_MAX_TOKENS 1000

struct auth {
	int n;
	struct auth_token tokens[];
};

/* A file's new name (made, or renamed into place) is durable only once its
 * directory is on disk too: without this a token answered as made, or as
 * revoked, could be gone, or back, after a crash of the machine. */
static int fsync_dir(const char *path)
{
	char copy[4096];
	int fd, rc;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static const char *const role_names[] = {NULL, "referrer", "viewer", "broker", "coordinator"};

const char *auth_role_name(enum auth_role role)
{
	return role >= ROLE_REFERRER && role <= ROLE_COORDINATOR ? role_names[role] : "none";
}

int auth_role_parse(const char *name, enum auth_role *role)
{
	for (int r = ROLE_REFERRER; r <= ROLE_COORDINATOR; r++) {
		if (strcmp(name, role_names[r]) == 0) {
			*role = (enum auth_role)r;
			return 0;
		}
	}
	return -1;
}

int auth_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= AUTH_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._@-", s[i]) == NULL)
			return 0;
	return 1;
}

int auth_unhex(const char *s, size_t slen, unsigned char *out, size_t n)
{
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned int v;
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* org=N: a member number, 1 to 999999999; 0 when malformed. */
static long long org_of(const char *s)
{
	char *end;
	long long v;

	if (strncmp(s, "org=", 4) != 0 || !isdigit((unsigned char)s[4]))
		return 0;
	v = strtoll(s + 4, &end, 10);
	return *end == '\0' && v >= 1 && v <= 999999999 ? v : 0;
}

/* One "NAME ROLE sha256:HEX [org=N] [created=TIME]" line into t; 0, 1 for
 * a blank or comment line, -1 when malformed. A referrer's line names its
 * organisation, and no other does. Changes line. */
static int parse_line(char *line, struct auth_token *t)
{
	char *name, *role, *hash, *created, *extra, *save = NULL;

	line[strcspn(line, "#\r\n")] = '\0';
	name = strtok_r(line, " \t", &save);
	if (name == NULL)
		return 1;
	role = strtok_r(NULL, " \t", &save);
	hash = strtok_r(NULL, " \t", &save);
	created = strtok_r(NULL, " \t", &save);
	t->org = 0;
	if (created != NULL && strncmp(created, "org=", 4) == 0) {
		if ((t->org = org_of(created)) == 0)
			return -1;
		created = strtok_r(NULL, " \t", &save);
	}
	extra = strtok_r(NULL, " \t", &save);
	if (role == NULL || hash == NULL || extra != NULL || !auth_valid_name(name) ||
	    auth_role_parse(role, &t->role) == -1 || strncmp(hash, "sha256:", 7) != 0 ||
	    auth_unhex(hash + 7, strlen(hash + 7), t->hash, 32) == -1 ||
	    (created != NULL && (strncmp(created, "created=", 8) != 0 || strlen(created) > 39)) ||
	    (t->role == ROLE_REFERRER) != (t->org != 0))
		return -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->created, sizeof(t->created), "%s", created != NULL ? created + 8 : "");
	return 0;
}

struct auth *auth_load(const char *path, char *err, size_t errlen)
{
	struct auth *auth;
	char line[512];
	int lineno = 0, rc;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	auth = xcalloc(1, sizeof(*auth) + AUTH_MAX_TOKENS * sizeof(struct auth_token));
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (auth->n == AUTH_MAX_TOKENS) {
			snprintf(err, errlen, "%s: more than %d tokens", path, AUTH_MAX_TOKENS);
			goto fail;
		}
		rc = parse_line(line, &auth->tokens[auth->n]);
		if (rc == -1) {
			snprintf(err, errlen, "%s:%d: expected NAME ROLE sha256:HEX [org=N]", path,
			         lineno);
			goto fail;
		}
		if (rc == 0)
			auth->n++;
	}
	fclose(f);
	return auth;
fail:
	fclose(f);
	OPENSSL_cleanse(auth->tokens, AUTH_MAX_TOKENS * sizeof(struct auth_token));
	free(auth);
	return NULL;
}

struct auth *auth_still_listed(const struct auth *running, const char *path)
{
	struct auth *kept = xcalloc(1, sizeof(*kept) + AUTH_MAX_TOKENS * sizeof(struct auth_token));
	struct auth_token t;
	char line[512];
	FILE *f = fopen(path, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (parse_line(line, &t) != 0)
			continue;
		for (int i = 0; i < running->n && kept->n < AUTH_MAX_TOKENS; i++) {
			const struct auth_token *r = &running->tokens[i];
			if (strcmp(r->name, t.name) == 0 && r->role == t.role && r->org == t.org &&
			    CRYPTO_memcmp(r->hash, t.hash, sizeof(t.hash)) == 0) {
				kept->tokens[kept->n++] = *r;
				break;
			}
		}
	}
	if (f != NULL)
		fclose(f);
	OPENSSL_cleanse(&t, sizeof(t));
	return kept;
}

void auth_free(struct auth *auth)
{
	if (auth == NULL)
		return;
	OPENSSL_cleanse(auth->tokens, (size_t)auth->n * sizeof(struct auth_token));
	free(auth);
}

int auth_count(const struct auth *auth)
{
	return auth->n;
}

const struct auth_token *auth_get(const struct auth *auth, int i)
{
	return &auth->tokens[i];
}

/* 1 if the token file at path (missing counts as empty) names a token name. */
static int name_taken(const char *path, const char *name, char *err, size_t errlen)
{
	struct auth *auth;
	int taken = 0;

	if (access(path, F_OK) == -1)
		return 0;
	auth = auth_load(path, err, errlen);
	if (auth == NULL)
		return -1;
	for (int i = 0; i < auth->n; i++)
		if (strcmp(auth->tokens[i].name, name) == 0)
			taken = 1;
	auth_free(auth);
	return taken;
}

const struct auth_token *auth_check(const struct auth *auth, const char *bearer)
{
	const struct auth_token *found = NULL;
	unsigned char h[32];

	if (bearer == NULL || strlen(bearer) > 256)
		return NULL;
	crypto_sha256((const uint8_t *)bearer, strlen(bearer), h);
	for (int i = 0; i < auth->n; i++)
		if (CRYPTO_memcmp(h, auth->tokens[i].hash, 32) == 0)
			found = &auth->tokens[i];
	OPENSSL_cleanse(h, sizeof(h));
	return found;
}

enum auth_result auth_add_token(const char *path, const char *name, enum auth_role role,
                                long long org, char *out, char *err, size_t errlen)
{
	unsigned char raw[24], h[32];
	char line[256], created[32];
	time_t now = time(NULL);
	struct tm tm;
	int fd, n, taken;

	if (!auth_valid_name(name)) {
		snprintf(err, errlen, "token name must be 1-63 letters, digits or . _ @ -");
		return AUTH_BAD_NAME;
	}
	if ((role == ROLE_REFERRER) != (org != 0) || org < 0 || org > 999999999) {
		snprintf(err, errlen,
		         role == ROLE_REFERRER
		             ? "a referrer's token is for one organisation: give its member number"
		             : "only a referrer's token is for an organisation");
		return AUTH_BAD_ORG;
	}
	taken = name_taken(path, name, err, errlen);
	if (taken != 0) {
		if (taken == 1)
			snprintf(err, errlen, "there is already a token named %s", name);
		return taken == 1 ? AUTH_DUPLICATE : AUTH_FAILED;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "no randomness available");
		return AUTH_FAILED;
	}
	strcpy(out, "tb_");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 3 + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	crypto_sha256((const uint8_t *)out, strlen(out), h);
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "%s %s sha256:", name, auth_role_name(role));
	for (size_t i = 0; i < sizeof(h); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", h[i]);
	if (org != 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " org=%lld", org);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " created=%s\n", created);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd == -1 || write(fd, line, (size_t)n) != n || fsync(fd) == -1 ||
	    fsync_dir(path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return AUTH_FAILED;
	}
	close(fd);
	return AUTH_OK;
}

/* Writes lines to path through a temporary file renamed into place, so a
 * crash leaves either the old file or the new one. */
int auth_replace_file(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	char tmp[4096];
	int fd, ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok = fd != -1 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	if (fd != -1 && close(fd) == -1)
		ok = 0;
	if (!ok || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (fsync_dir(path) == -1) {
		snprintf(err, errlen, "%s: written, but not yet safe on disk: %s", path,
		         strerror(errno));
		return -1;
	}
	return 0;
}

enum auth_result auth_revoke(const char *path, const char *name, char *err, size_t errlen)
{
	char line[512], copy[512], *kept = NULL;
	size_t kept_len = 0;
	int found = 0, coordinators_left = 0, revoking_coordinator = 0;
	enum auth_result rc = AUTH_OK;
	struct auth_token t;
	FILE *in = fopen(path, "r"), *out;

	if (in == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return AUTH_FAILED;
	}
	out = open_memstream(&kept, &kept_len);
	while (fgets(line, sizeof(line), in) != NULL) {
		snprintf(copy, sizeof(copy), "%s", line);
		if (parse_line(copy, &t) == 0 && strcmp(t.name, name) == 0) {
			found = 1;
			revoking_coordinator |= t.role == ROLE_COORDINATOR;
			continue;
		}
		if (parse_line(copy, &t) == 0 && t.role == ROLE_COORDINATOR)
			coordinators_left++;
		fputs(line, out);
	}
	fclose(in);
	fclose(out);
	if (!found) {
		snprintf(err, errlen, "there is no token named %s", name);
		rc = AUTH_NOT_FOUND;
	} else if (revoking_coordinator && coordinators_left == 0) {
		snprintf(err, errlen, "%s is the last coordinator token; make another first", name);
		rc = AUTH_LAST_COORDINATOR;
	} else if (auth_replace_file(path, kept, kept_len, err, errlen) == -1) {
		rc = AUTH_FAILED;
	}
	free(kept);
	return rc;
}
