#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_MAX_TOKENS 1000

struct auth {
	int n;
	struct auth_token tokens[];
};

static const char *const role_names[] = {NULL, "viewer", "broker", "coordinator"};

const char *auth_role_name(enum auth_role role)
{
	return role >= ROLE_VIEWER && role <= ROLE_COORDINATOR ? role_names[role] : "none";
}

int auth_role_parse(const char *name, enum auth_role *role)
{
	for (int r = ROLE_VIEWER; r <= ROLE_COORDINATOR; r++) {
		if (strcmp(name, role_names[r]) == 0) {
			*role = (enum auth_role)r;
			return 0;
		}
	}
	return -1;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= AUTH_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._@-", s[i]) == NULL)
			return 0;
	return 1;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int v;
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return s[2 * n] == '\0' ? 0 : -1;
}

static void sha256(const char *s, unsigned char out[32])
{
	unsigned int len = 32;

	EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL);
}

/* One "NAME ROLE sha256:HEX" line into t; 0, 1 for blank/comment, -1. */
static int parse_line(char *line, struct auth_token *t)
{
	char *name, *role, *hash, *extra, *save = NULL;

	line[strcspn(line, "#\r\n")] = '\0';
	name = strtok_r(line, " \t", &save);
	if (name == NULL)
		return 1;
	role = strtok_r(NULL, " \t", &save);
	hash = strtok_r(NULL, " \t", &save);
	extra = strtok_r(NULL, " \t", &save);
	if (role == NULL || hash == NULL || extra != NULL || !valid_name(name) ||
	    auth_role_parse(role, &t->role) == -1 || strncmp(hash, "sha256:", 7) != 0 ||
	    unhex(hash + 7, t->hash, 32) == -1)
		return -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
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
	auth = calloc(1, sizeof(*auth) + AUTH_MAX_TOKENS * sizeof(struct auth_token));
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (auth->n == AUTH_MAX_TOKENS) {
			snprintf(err, errlen, "%s: more than %d tokens", path, AUTH_MAX_TOKENS);
			goto fail;
		}
		rc = parse_line(line, &auth->tokens[auth->n]);
		if (rc == -1) {
			snprintf(err, errlen, "%s:%d: expected NAME ROLE sha256:HEX", path, lineno);
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

const struct auth_token *auth_check(const struct auth *auth, const char *bearer)
{
	const struct auth_token *found = NULL;
	unsigned char h[32];

	if (bearer == NULL || strlen(bearer) > 256)
		return NULL;
	sha256(bearer, h);
	for (int i = 0; i < auth->n; i++)
		if (CRYPTO_memcmp(h, auth->tokens[i].hash, 32) == 0)
			found = &auth->tokens[i];
	OPENSSL_cleanse(h, sizeof(h));
	return found;
}

int auth_add_token(const char *path, const char *name, enum auth_role role, char *out, char *err,
                   size_t errlen)
{
	unsigned char raw[24], h[32];
	char line[256];
	int fd, n;

	if (!valid_name(name)) {
		snprintf(err, errlen, "token name must be letters, digits or . _ @ -");
		return -1;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "no randomness available");
		return -1;
	}
	strcpy(out, "tb_");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 3 + 2 * i, 3, "%02x", raw[i]);
	sha256(out, h);
	n = snprintf(line, sizeof(line), "%s %s sha256:", name, auth_role_name(role));
	for (size_t i = 0; i < sizeof(h); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", h[i]);
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd == -1 || write(fd, line, (size_t)n) != n) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		OPENSSL_cleanse(raw, sizeof(raw));
		return -1;
	}
	close(fd);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}
