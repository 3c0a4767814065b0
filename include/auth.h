/* auth: bearer tokens with roles, kept hashed (SHA-256) in the token file,
 * one per line: NAME ROLE sha256:HEX [org=N] [created=TIME], org for a
 * referrer's token and for no other. Names are unique. The
 * token itself is shown once, when made, and never stored or logged.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_AUTH_H
#define TB_AUTH_H

#include <stddef.h>

/* Ordered: each role can do what the ones below it can, but a referrer
 * (a GP practice's or service's own system), which may refer people for
 * its organisation and read what became of them, and nothing else: only
 * the routes that name it let it in. */
enum auth_role { ROLE_REFERRER = 1, ROLE_VIEWER = 2, ROLE_BROKER = 3, ROLE_COORDINATOR = 4 };

#define AUTH_NAME_MAX 64
#define AUTH_TOKEN_LEN 51 /* "tb_" + 48 hex digits */

struct auth_token {
	char name[AUTH_NAME_MAX];
	enum auth_role role;
	long long org; /* a referrer's organisation (a member number); else 0 */
	unsigned char hash[32];
	char created[32]; /* "" when the line has none */
};

/* What a token-file change can come to; each maps to one API error code. */
enum auth_result {
	AUTH_OK = 0,
	AUTH_FAILED = -1,           /* the file could not be read or written */
	AUTH_BAD_NAME = -2,         /* invalid_token_name */
	AUTH_DUPLICATE = -3,        /* duplicate_token_name */
	AUTH_NOT_FOUND = -4,        /* token_not_found */
	AUTH_LAST_COORDINATOR = -5, /* last_coordinator */
	AUTH_BAD_ORG = -6,          /* invalid_org: org is a referrer's, and its only */
};

struct auth;

/* Loads a token file. NULL with a message naming the line in err on error. */
struct auth *auth_load(const char *path, char *err, size_t errlen);
void auth_free(struct auth *auth); /* accepts NULL */
/* For a token file that no longer loads: of the running tokens, those its
 * well-formed lines still list, same name, role and hash. A reload that
 * fails can so take tokens away, never bring one back. An unreadable file
 * lists none. */
struct auth *auth_still_listed(const struct auth *running, const char *path);
int auth_count(const struct auth *auth);
/* The i-th token, 0 <= i < auth_count(). */
const struct auth_token *auth_get(const struct auth *auth, int i);

/* The token matching a presented bearer token, or NULL. Constant time in the
 * token's content. */
const struct auth_token *auth_check(const struct auth *auth, const char *bearer);

/* Makes a new random token named name (unique in the file), appends its hash
 * to path (created mode 0600) and writes the token itself to out
 * (AUTH_TOKEN_LEN + 1 bytes). org is the organisation of a referrer's
 * token (needed for one, 0 for any other role). AUTH_OK, or an error with
 * a message in err. */
enum auth_result auth_add_token(const char *path, const char *name, enum auth_role role,
                                long long org, char *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Removes the token named name from path (rewritten whole, then renamed into
 * place). Refuses to remove the last coordinator token, which would leave
 * nobody able to manage the bank. */
enum auth_result auth_revoke(const char *path, const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* slen hex digits of s, exactly 2 * n, into out[0..n); 0 or -1. */
int auth_unhex(const char *s, size_t slen, unsigned char *out, size_t n)
    __attribute__((warn_unused_result));
/* 1 if s is a token or account name: 1-63 of letters, digits, . _ @ -. */
int auth_valid_name(const char *s);
/* Writes text to path through a temporary file renamed into place (mode
 * 0600), so a crash leaves the old file or the new one; 0, or -1 with err. */
int auth_replace_file(const char *path, const char *text, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

const char *auth_role_name(enum auth_role role);
int auth_role_parse(const char *name, enum auth_role *role) __attribute__((warn_unused_result));

#endif
