/* The checks on what a shared directory item may say, and its area and
 * availability in normal form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dir_text.h"
#include "personal_corpus.h"
#include "req.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void expect_detail(const char *text, enum dir_detail kind, const char *found)
{
	char what[80];

	assert_int_equal(dir_personal_detail(text, what, sizeof(what)), kind);
	/* What was found is shown as the check read it: folded, in lower case. */
	assert_int_equal(strcasecmp(what, found), 0);
}

static void test_each_kind_of_personal_detail_is_found(void **state)
{
	(void)state;
	expect_detail("write to ann.smith@example.org for a lift", DIR_EMAIL,
	              "ann.smith@example.org");
	expect_detail("mail me: bob @ mail.co.uk", DIR_EMAIL, "bob @ mail.co.uk");
	expect_detail("ring 07700 900123 after six", DIR_PHONE, "07700 900123");
	expect_detail("call +44 (0)20 7946-0958", DIR_PHONE, "+44 (0)20 7946 0958");
	expect_detail("01206 123456", DIR_PHONE, "01206 123456");
	expect_detail("I live at CO1 1AB near the station", DIR_POSTCODE, "CO1 1AB");
	expect_detail("sw1a2aa", DIR_POSTCODE, "sw1a2aa");
	expect_detail("round the corner from W1A 0AX.", DIR_POSTCODE, "W1A 0AX");
}

static void test_ordinary_text_is_clean(void **state)
{
	static const char *const clean[] = {
	    "Lifts to the surgery on Tuesdays, 10-12",
	    "Help with forms; I did this for 20 years",
	    "Dates: 2026-11-23 to 2026-12-01",
	    "Gardening in CO1 and CO2",
	    "I can walk dogs at 9.30 or 14.00",
	    "Room 101, 2nd floor",
	    "",
	};
	char what[80];

	(void)state;
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++)
		assert_int_equal(dir_personal_detail(clean[i], what, sizeof(what)), DIR_CLEAN);
}

static void test_a_corpus_of_disguised_details_is_refused_and_ordinary_text_passes(void **state)
{
	char what[80];
	int missed = 0, wrongly = 0;

	(void)state;
	assert_true(sizeof(personal_details) / sizeof(personal_details[0]) >= 100);
	assert_true(sizeof(ordinary_texts) / sizeof(ordinary_texts[0]) >= 50);
	for (size_t i = 0; i < sizeof(personal_details) / sizeof(personal_details[0]); i++)
		if (dir_personal_detail(personal_details[i], what, sizeof(what)) == DIR_CLEAN) {
			fprintf(stderr, "passed, but gives a person away: %s\n",
			        personal_details[i]);
			missed++;
		}
	for (size_t i = 0; i < sizeof(ordinary_texts) / sizeof(ordinary_texts[0]); i++)
		if (dir_personal_detail(ordinary_texts[i], what, sizeof(what)) != DIR_CLEAN) {
			fprintf(stderr, "refused, but ordinary: %s (%s)\n", ordinary_texts[i],
			        what);
			wrongly++;
		}
	assert_int_equal(missed, 0);
	assert_int_equal(wrongly, 0);
}

static void test_every_text_that_crosses_banks_is_checked(void **state)
{
	struct req_error err;
	json_t *claim =
	    json_pack("{sssisiss}", "payer", "westminster:4", "earner", 2, "minutes", 60, "message",
	              "she is on oh seven seven oh oh nine oh oh one two three");
	json_t *contact = json_pack("{sssiss}", "handle", "abc123", "for", 3, "message",
	                            "mail me, ann at example dot org");
	json_t *answer = json_pack("{ss}", "message", "meet at the library, Tuesday 10am");
	json_t *decline = json_pack("{ss}", "reason", "she moved to CO2-7AB");
	json_t *out;

	(void)state;
	json_object_set_new(claim, "category", json_string("lifts"));
	assert_null(req_claim(claim, 1440, &err));
	assert_string_equal(err.code, "personal_details");
	assert_null(req_contact(contact, &err));
	assert_string_equal(err.code, "personal_details");
	out = req_contact_answer(answer, 1, &err);
	assert_non_null(out);
	json_decref(out);
	assert_null(req_decline(decline, &err));
	assert_string_equal(err.code, "personal_details");
	json_decref(claim);
	json_decref(contact);
	json_decref(answer);
	json_decref(decline);
}

static void test_areas_are_postcode_districts(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(dir_area("co1", out, sizeof(out)), 0);
	assert_string_equal(out, "CO1");
	assert_int_equal(dir_area("SW1A", out, sizeof(out)), 0);
	assert_string_equal(out, "SW1A");
	assert_int_equal(dir_area("M1", out, sizeof(out)), 0);
	assert_int_equal(dir_area("CO1 1AB", out, sizeof(out)), -1); /* a full postcode */
	assert_int_equal(dir_area("1CO", out, sizeof(out)), -1);
	assert_int_equal(dir_area("ABC1", out, sizeof(out)), -1);
	assert_int_equal(dir_area("C", out, sizeof(out)), -1);
	assert_int_equal(dir_area("", out, sizeof(out)), -1);
}

static void test_availability_is_normalised(void **state)
{
	char out[240], bad[40];

	(void)state;
	assert_int_equal(
	    dir_availability("Tue am, thursdays PM; weekends", out, sizeof(out), bad, sizeof(bad)),
	    0);
	assert_string_equal(out, "tuesday morning, thursday afternoon, weekends");
	assert_int_equal(dir_availability("evenings", out, sizeof(out), bad, sizeof(bad)), 0);
	assert_string_equal(out, "any day evening");
	assert_int_equal(dir_availability("", out, sizeof(out), bad, sizeof(bad)), 0);
	assert_string_equal(out, "");
	assert_int_equal(dir_availability("tue soonish", out, sizeof(out), bad, sizeof(bad)), -1);
	assert_string_equal(bad, "soonish");
	assert_int_equal(dir_availability("monday friday", out, sizeof(out), bad, sizeof(bad)), -1);
}

static void test_an_item_with_personal_details_is_refused_with_what_to_remove(void **state)
{
	struct req_error err;
	json_t *body =
	    json_pack("{sissssssss}", "member", 7, "category", "lifts", "text",
	              "Lifts, ring 07700 900123", "area", "co1", "visibility", "federation");
	json_t *ok;

	(void)state;
	assert_null(req_dir_item(body, 0, &err));
	assert_string_equal(err.code, "personal_details");
	assert_non_null(strstr(err.message, "a phone number (07700 900123)"));
	json_object_set_new(body, "text", json_string("Lifts to the surgery"));
	json_object_set_new(body, "availability", json_string("tue am"));
	ok = req_dir_item(body, 0, &err);
	assert_non_null(ok);
	assert_string_equal(json_string_value(json_object_get(ok, "area")), "CO1");
	assert_string_equal(json_string_value(json_object_get(ok, "availability")),
	                    "tuesday morning");
	json_decref(ok);
	json_object_set_new(body, "area", json_string("CO1 1AB"));
	assert_null(req_dir_item(body, 0, &err));
	assert_string_equal(err.code, "invalid_area");
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_kind_of_personal_detail_is_found),
	    cmocka_unit_test(test_ordinary_text_is_clean),
	    cmocka_unit_test(
	        test_a_corpus_of_disguised_details_is_refused_and_ordinary_text_passes),
	    cmocka_unit_test(test_every_text_that_crosses_banks_is_checked),
	    cmocka_unit_test(test_areas_are_postcode_districts),
	    cmocka_unit_test(test_availability_is_normalised),
	    cmocka_unit_test(test_an_item_with_personal_details_is_refused_with_what_to_remove),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
