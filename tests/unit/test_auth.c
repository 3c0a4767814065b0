#include "auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define HASH "sha256:0000000000000000000000000000000000000000000000000000000000000000"

/* A token file with text, at a fresh path (freed by the caller). */
static char *token_file(const char *text)
{
	char *path = strdup("/tmp/tb-auth-XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static struct auth *load(const char *text, char *err, size_t len)
{
	char *path = token_file(text);
	struct auth *auth = auth_load(path, err, len);

	unlink(path);
	free(path);
	return auth;
}

static void test_auth_a_referrer_token_names_its_organisation(void **state)
{
	char err[256];
	struct auth *auth = load("alice coordinator " HASH " created=2026-12-01T10:00:00Z\n"
	                         "castle referrer " HASH " org=12 created=2026-12-03T09:00:00Z\n",
	                         err, sizeof(err));

	(void)state;
	assert_non_null(auth);
	assert_int_equal(auth_count(auth), 2);
	assert_int_equal(auth_get(auth, 0)->org, 0);
	assert_int_equal(auth_get(auth, 1)->role, ROLE_REFERRER);
	assert_int_equal(auth_get(auth, 1)->org, 12);
	assert_string_equal(auth_get(auth, 1)->created, "2026-12-03T09:00:00Z");
	assert_string_equal(auth_role_name(ROLE_REFERRER), "referrer");
	auth_free(auth);
}

static void test_auth_refuses_an_organisation_on_the_wrong_token(void **state)
{
	char err[256];

	(void)state;
	assert_null(load("castle referrer " HASH "\n", err, sizeof(err)));
	assert_non_null(strstr(err, ":1:"));
	assert_null(load("bob viewer " HASH " org=12\n", err, sizeof(err)));
	assert_null(load("castle referrer " HASH " org=0\n", err, sizeof(err)));
	assert_null(load("castle referrer " HASH " org=12x\n", err, sizeof(err)));
}

static void test_auth_adds_a_referrer_token_only_with_its_organisation(void **state)
{
	char *path = token_file("");
	char token[AUTH_TOKEN_LEN + 1], err[256];
	struct auth *auth;

	(void)state;
	assert_int_equal(auth_add_token(path, "castle", ROLE_REFERRER, 0, token, err, sizeof(err)),
	                 AUTH_BAD_ORG);
	assert_int_equal(auth_add_token(path, "bob", ROLE_BROKER, 3, token, err, sizeof(err)),
	                 AUTH_BAD_ORG);
	assert_int_equal(auth_add_token(path, "castle", ROLE_REFERRER, 7, token, err, sizeof(err)),
	                 AUTH_OK);
	auth = auth_load(path, err, sizeof(err));
	assert_non_null(auth);
	assert_int_equal(auth_count(auth), 1);
	assert_int_equal(auth_get(auth, 0)->org, 7);
	assert_ptr_equal(auth_check(auth, token), auth_get(auth, 0));
	auth_free(auth);
	unlink(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_auth_a_referrer_token_names_its_organisation),
	    cmocka_unit_test(test_auth_refuses_an_organisation_on_the_wrong_token),
	    cmocka_unit_test(test_auth_adds_a_referrer_token_only_with_its_organisation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
