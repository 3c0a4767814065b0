#include "users.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

struct files {
	char users[32];
	char tokens[32];
};

static int setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));
	int fd;

	snprintf(f->users, sizeof(f->users), "/tmp/tb-users-XXXXXX");
	snprintf(f->tokens, sizeof(f->tokens), "/tmp/tb-tokens-XXXXXX");
	fd = mkstemp(f->users);
	close(fd);
	unlink(f->users); /* a bank starts with no accounts */
	fd = mkstemp(f->tokens);
	assert_int_equal(
	    write(fd,
	          "alice coordinator "
	          "sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
	          90),
	    90);
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct files *f = *state;

	unlink(f->users);
	unlink(f->tokens);
	free(f);
	return 0;
}

static void test_users_an_account_sets_its_password_once_with_its_code(void **state)
{
	struct files *f = *state;
	char code[USERS_CODE_LEN + 1], err[256];
	struct users_account a;

	assert_int_equal(users_add(f->users, f->tokens, "brenda", ROLE_BROKER, 0, 0, 1000, code,
	                           err, sizeof(err)),
	                 USERS_OK);
	assert_int_equal(strlen(code), USERS_CODE_LEN);
	assert_int_equal(users_find(f->users, "brenda", &a), 1);
	assert_false(a.has_password);
	assert_false(users_check_password(&a, "anything at all"));
	assert_int_equal(users_set_password(f->users, "brenda", "0123", "correct horse battery",
	                                    1001, err, sizeof(err)),
	                 USERS_BAD_CODE);
	assert_int_equal(
	    users_set_password(f->users, "brenda", code, "short", 1001, err, sizeof(err)),
	    USERS_WEAK);
	assert_int_equal(users_set_password(f->users, "brenda", code, "correct horse battery", 1001,
	                                    err, sizeof(err)),
	                 USERS_OK);
	assert_int_equal(users_set_password(f->users, "brenda", code, "another password here", 1002,
	                                    err, sizeof(err)),
	                 USERS_BAD_CODE); /* used once */
	assert_int_equal(users_find(f->users, "brenda", &a), 1);
	assert_true(a.has_password);
	assert_non_null(strstr(a.secret, "scrypt:16384:8:1:"));
	assert_null(strstr(a.secret, "horse"));
	assert_true(users_check_password(&a, "correct horse battery"));
	assert_false(users_check_password(&a, "correct horse batterY"));
	assert_false(users_check_password(NULL, "correct horse battery"));
}

static void test_users_a_code_expires_and_a_reset_takes_the_password_away(void **state)
{
	struct files *f = *state;
	char code[USERS_CODE_LEN + 1], again[USERS_CODE_LEN + 1], err[256];
	struct users_account a;

	assert_int_equal(users_add(f->users, f->tokens, "carol", ROLE_VIEWER, 0, 0, 1000, code, err,
	                           sizeof(err)),
	                 USERS_OK);
	assert_int_equal(users_set_password(f->users, "carol", code, "a long pass phrase",
	                                    1000 + USERS_CODE_SECONDS + 1, err, sizeof(err)),
	                 USERS_BAD_CODE);
	assert_int_equal(users_add(f->users, f->tokens, "carol", ROLE_VIEWER, 0, 1, 2000, again,
	                           err, sizeof(err)),
	                 USERS_OK);
	assert_string_not_equal(code, again);
	assert_int_equal(users_set_password(f->users, "carol", again, "a long pass phrase", 2001,
	                                    err, sizeof(err)),
	                 USERS_OK);
	assert_int_equal(users_add(f->users, f->tokens, "carol", ROLE_VIEWER, 0, 1, 3000, code, err,
	                           sizeof(err)),
	                 USERS_OK);
	assert_int_equal(users_find(f->users, "carol", &a), 1);
	assert_false(a.has_password);
	assert_false(users_check_password(&a, "a long pass phrase"));
	assert_int_equal(users_remove(f->users, "carol", err, sizeof(err)), USERS_OK);
	assert_int_equal(users_find(f->users, "carol", &a), 0);
	assert_int_equal(users_remove(f->users, "carol", err, sizeof(err)), USERS_NOT_FOUND);
}

static void test_users_names_are_apart_from_tokens_and_each_other(void **state)
{
	struct files *f = *state;
	char code[USERS_CODE_LEN + 1], err[256];

	assert_int_equal(users_add(f->users, f->tokens, "alice", ROLE_BROKER, 0, 0, 1000, code, err,
	                           sizeof(err)),
	                 USERS_DUPLICATE);
	assert_int_equal(
	    users_add(f->users, f->tokens, "dee", ROLE_BROKER, 0, 0, 1000, code, err, sizeof(err)),
	    USERS_OK);
	assert_int_equal(
	    users_add(f->users, f->tokens, "dee", ROLE_VIEWER, 0, 0, 1000, code, err, sizeof(err)),
	    USERS_DUPLICATE);
	assert_int_equal(users_add(f->users, f->tokens, "bad name", ROLE_VIEWER, 0, 0, 1000, code,
	                           err, sizeof(err)),
	                 USERS_BAD_NAME);
	assert_int_equal(
	    users_add(f->users, f->tokens, "gp", ROLE_REFERRER, 0, 0, 1000, code, err, sizeof(err)),
	    USERS_BAD_ORG);
	assert_int_equal(users_add(f->users, f->tokens, "nobody", ROLE_VIEWER, 0, 1, 1000, code,
	                           err, sizeof(err)),
	                 USERS_NOT_FOUND);
}

/* A line mistyped by hand is not dropped when the file is written again:
 * the change is refused, naming the line, and the file stays as it was. */
static void test_users_a_file_with_a_line_it_cannot_read_is_not_rewritten(void **state)
{
	struct files *f = *state;
	char code[USERS_CODE_LEN + 1], err[256], before[1024] = "", after[1024] = "";
	struct users_account a;
	FILE *file;

	assert_int_equal(
	    users_add(f->users, f->tokens, "dee", ROLE_BROKER, 0, 0, 1000, code, err, sizeof(err)),
	    USERS_OK);
	file = fopen(f->users, "a");
	fputs("# a comment is fine\nerin broker scrypt:mistyped\n", file);
	fclose(file);
	file = fopen(f->users, "r");
	assert_true(fread(before, 1, sizeof(before) - 1, file) > 0);
	fclose(file);
	assert_int_equal(
	    users_add(f->users, f->tokens, "fay", ROLE_BROKER, 0, 0, 1000, code, err, sizeof(err)),
	    USERS_FAILED);
	assert_non_null(strstr(err, "line 3 of"));
	assert_int_equal(users_remove(f->users, "dee", err, sizeof(err)), USERS_FAILED);
	file = fopen(f->users, "r");
	assert_true(fread(after, 1, sizeof(after) - 1, file) > 0);
	fclose(file);
	assert_string_equal(before, after);
	/* Reading goes on around it: dee still signs in. */
	assert_int_equal(users_find(f->users, "dee", &a), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_users_an_account_sets_its_password_once_with_its_code, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_users_a_code_expires_and_a_reset_takes_the_password_away, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_users_names_are_apart_from_tokens_and_each_other,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_users_a_file_with_a_line_it_cannot_read_is_not_rewritten, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
