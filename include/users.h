/* users: the console's accounts, for people (tokens are for scripts). Kept
 * in the users file, one per line:
 *   NAME ROLE [org=N] scrypt:N:r:p:SALTHEX:KEYHEX [created=TIME]
 *   NAME ROLE [org=N] setup:SHA256HEX:EXPIRES [created=TIME]
 * A new or reset account holds the hash of a one-time setup code, good
 * until EXPIRES (Unix seconds), which sets its password; a password is
 * kept only as its scrypt key (memory-hard, through OpenSSL), never
 * logged. Names are unique, and apart from the token file's.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_USERS_H
#define TB_USERS_H

#include "auth.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define USERS_CODE_LEN 32     /* hex digits of a setup code */
#define USERS_PASSWORD_MIN 10 /* characters, NCSC's advice of length over rules */
#define USERS_PASSWORD_MAX 256
#define USERS_CODE_SECONDS (7 * 24 * 3600)

struct users_account {
	char name[AUTH_NAME_MAX];
	enum auth_role role;
	long long org;    /* a referrer's organisation, else 0 */
	int has_password; /* else it waits for its setup code */
	char secret[256]; /* the scrypt:... or setup:... field as written */
	char created[32];
};

/* What a change to the users file can come to. */
enum users_result {
	USERS_OK = 0,
	USERS_FAILED = -1,    /* the file could not be read or written */
	USERS_BAD_NAME = -2,  /* invalid_user_name */
	USERS_DUPLICATE = -3, /* duplicate_user_name (a user or a token has it) */
	USERS_NOT_FOUND = -4, /* user_not_found */
	USERS_BAD_CODE = -5,  /* invalid_setup_code: wrong, used or expired */
	USERS_WEAK = -6,      /* weak_password */
	USERS_BAD_ORG = -7,   /* invalid_org */
};

/* The account named name in path into *out: 1 found, 0 not, -1 the file
 * could not be read (a missing file has none). */
int users_find(const char *path, const char *name, struct users_account *out)
    __attribute__((warn_unused_result));
/* Every account of path, into a new array (*n of them; the caller frees
 * it). -1 when the file cannot be read. */
int users_list(const char *path, struct users_account **out, int *n)
    __attribute__((warn_unused_result));

/* Adds an account waiting for its password, or (reset) gives one that
 * exists a new setup code, which takes its password away. Writes the
 * code to code (USERS_CODE_LEN + 1 bytes). token_file: its names are
 * taken too. */
enum users_result users_add(const char *path, const char *token_file, const char *name,
                            enum auth_role role, long long org, int reset, time_t now, char *code,
                            char *err, size_t errlen) __attribute__((warn_unused_result));
/* Sets the password of name with its setup code (used once). */
enum users_result users_set_password(const char *path, const char *name, const char *code,
                                     const char *password, time_t now, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Removes the account named name. */
enum users_result users_remove(const char *path, const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* 1 if password is the account's. Takes tens of milliseconds by design;
 * the same time for a missing account (account NULL) as for a wrong
 * password. */
int users_check_password(const struct users_account *account, const char *password);

#endif
