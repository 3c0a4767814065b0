#include "hours.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static int64_t parsed(const char *s)
{
	int64_t m = -999999;

	assert_int_equal(hours_parse(s, &m), 0);
	return m;
}

static void test_hours_parse_accepts_every_written_form(void **state)
{
	(void)state;
	assert_int_equal(parsed("2"), 120);
	assert_int_equal(parsed("1.5"), 90);
	assert_int_equal(parsed("1.5h"), 90);
	assert_int_equal(parsed("1h30m"), 90);
	assert_int_equal(parsed("1h30"), 90);
	assert_int_equal(parsed("1h 30m"), 90);
	assert_int_equal(parsed("90m"), 90);
	assert_int_equal(parsed("1:30"), 90);
	assert_int_equal(parsed("2h"), 120);
	assert_int_equal(parsed(" 2H "), 120);
	assert_int_equal(parsed("0.25"), 15);
	assert_int_equal(parsed("0.1"), 6);
	assert_int_equal(parsed("45m"), 45);
	assert_int_equal(parsed("-10h"), -600);
	assert_int_equal(parsed("+3"), 180);
	assert_int_equal(parsed("0"), 0);
}

static void test_hours_parse_refuses_junk_and_part_minutes(void **state)
{
	static const char *const bad[] = {
	    "",   "h",     "abc",  "1.",  ".5",  "0.01",        "1h60m",     "1:5", "1:60",
	    "2x", "1h30x", "1.5m", "--1", "1 2", "99999999999", "1.1234567", "m"};
	int64_t m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (hours_parse(bad[i], &m) != -1)
			fail_msg("'%s' was accepted as %lld minutes", bad[i], (long long)m);
	}
	assert_int_equal(hours_parse(NULL, &m), -1);
}

static void test_hours_parse_caps_at_the_limit(void **state)
{
	int64_t m;

	(void)state;
	assert_int_equal(hours_parse("1000000", &m), 0);
	assert_int_equal(m, HOURS_LIMIT_MINUTES);
	assert_int_equal(hours_parse("1000001", &m), -1);
	assert_int_equal(hours_parse("60000001m", &m), -1);
}

static void test_hours_format_reads_as_hours(void **state)
{
	char buf[32];

	(void)state;
	hours_format(90, buf, sizeof(buf));
	assert_string_equal(buf, "1h30m");
	hours_format(120, buf, sizeof(buf));
	assert_string_equal(buf, "2h");
	hours_format(45, buf, sizeof(buf));
	assert_string_equal(buf, "45m");
	hours_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "0h");
	hours_format(-75, buf, sizeof(buf));
	assert_string_equal(buf, "-1h15m");
	hours_format(65, buf, sizeof(buf));
	assert_string_equal(buf, "1h05m");
	hours_format(INT64_MIN, buf, sizeof(buf));
	assert_string_equal(buf, "-153722867280912930h08m");
}

static void test_hours_format_then_parse_round_trips(void **state)
{
	char buf[32];
	int64_t back;

	(void)state;
	for (int64_t m = -3000; m <= 3000; m += 7) {
		hours_format(m, buf, sizeof(buf));
		assert_int_equal(hours_parse(buf, &back), 0);
		assert_int_equal(back, m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hours_parse_accepts_every_written_form),
	    cmocka_unit_test(test_hours_parse_refuses_junk_and_part_minutes),
	    cmocka_unit_test(test_hours_parse_caps_at_the_limit),
	    cmocka_unit_test(test_hours_format_reads_as_hours),
	    cmocka_unit_test(test_hours_format_then_parse_round_trips),
	};
	return cmocka_run_group_tests_name("hours", tests, NULL, NULL);
}
