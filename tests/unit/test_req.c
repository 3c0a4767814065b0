#include "req.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	assert_non_null(j);
	return j;
}

/* Runs req_exchange and returns the error code, or NULL when accepted. */
static const char *exchange_error(const char *text, int64_t max)
{
	static struct req_error err;
	json_t *body = parse(text), *out = req_exchange(body, max, &err);

	json_decref(body);
	if (out != NULL) {
		json_decref(out);
		return NULL;
	}
	return err.code;
}

static void test_req_exchange_normalises_hours_and_category(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"payer\": 17, \"earner\": \"204\", \"hours\": \"1h30m\", "
	                     "\"category\": \"Lifts\", \"description\": \"to the surgery\", "
	                     "\"performed_on\": \"2026-11-20\", \"idempotency_key\": \"k-1\"}");
	json_t *out = req_exchange(body, 1440, &err);

	(void)state;
	assert_non_null(out);
	assert_int_equal(json_integer_value(json_object_get(out, "payer")), 17);
	assert_int_equal(json_integer_value(json_object_get(out, "earner")), 204);
	assert_int_equal(json_integer_value(json_object_get(out, "minutes")), 90);
	assert_string_equal(json_string_value(json_object_get(out, "category")), "lifts");
	assert_string_equal(json_string_value(json_object_get(out, "idempotency_key")), "k-1");
	json_decref(out);
	json_decref(body);
}

static void test_req_exchange_takes_numeric_hours_and_minutes(void **state)
{
	struct req_error err;
	json_t *a = parse("{\"payer\":1,\"earner\":2,\"hours\":1.5,\"category\":\"x\"}");
	json_t *b = parse("{\"payer\":1,\"earner\":2,\"minutes\":45,\"category\":\"x\"}");
	json_t *oa = req_exchange(a, 1440, &err), *ob = req_exchange(b, 1440, &err);

	(void)state;
	assert_int_equal(json_integer_value(json_object_get(oa, "minutes")), 90);
	assert_int_equal(json_integer_value(json_object_get(ob, "minutes")), 45);
	json_decref(oa);
	json_decref(ob);
	json_decref(a);
	json_decref(b);
}

static void test_req_numeric_hours_are_exact(void **state)
{
	static const struct {
		const char *hours;
		int64_t minutes; /* 0: refused */
	} cases[] = {{"0.1", 6},          {"0.25", 15},        {"1000", 0}, {"2", 120},
	             {"1.0000001", 0},    {"0.0166666667", 0}, {"0.05", 3}, {"1e-7", 0},
	             {"1.9999999999", 0}, {"23.5", 1410}};
	struct req_error err;
	char text[160];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		         "{\"payer\":1,\"earner\":2,\"hours\":%s,\"category\":\"x\"}",
		         cases[i].hours);
		json_t *in = parse(text), *out = req_exchange(in, 1440, &err);
		if (cases[i].minutes == 0) {
			assert_null(out);
			assert_string_equal(err.code, "invalid_hours");
		} else {
			assert_non_null(out);
			assert_int_equal(json_integer_value(json_object_get(out, "minutes")),
			                 cases[i].minutes);
		}
		json_decref(out);
		json_decref(in);
	}
}

static void test_req_exchange_refuses_bad_requests_with_stable_codes(void **state)
{
	(void)state;
	assert_string_equal(exchange_error("[]", 1440), "invalid_request");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":1,\"hours\":1,\"category\":\"x\"}", 1440),
	    "same_member");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":0,\"category\":\"x\"}", 1440),
	    "invalid_hours");
	assert_string_equal(exchange_error("{\"payer\":1,\"earner\":2,\"hours\":\"-1\","
	                                   "\"category\":\"x\"}",
	                                   1440),
	                    "invalid_hours");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":25,\"category\":\"x\"}", 1440),
	    "invalid_hours");
	assert_string_equal(exchange_error("{\"payer\":1,\"earner\":2,\"hours\":\"0.01\","
	                                   "\"category\":\"x\"}",
	                                   1440),
	                    "invalid_hours");
	assert_string_equal(exchange_error("{\"payer\":1,\"earner\":2,\"hours\":1,\"minutes\":60,"
	                                   "\"category\":\"x\"}",
	                                   1440),
	                    "invalid_hours");
	assert_string_equal(
	    exchange_error("{\"payer\":0,\"earner\":2,\"hours\":1,\"category\":\"x\"}", 1440),
	    "invalid_member_number");
	assert_string_equal(exchange_error("{\"payer\":\"x\",\"earner\":2,\"hours\":1,"
	                                   "\"category\":\"x\"}",
	                                   1440),
	                    "invalid_member_number");
	assert_string_equal(exchange_error("{\"payer\":1,\"earner\":2,\"hours\":1}", 1440),
	                    "invalid_category");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":1,\"category\":\"x\","
	                   "\"performed_on\":\"2026-02-30\"}",
	                   1440),
	    "invalid_date");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":1,\"category\":\"x\","
	                   "\"idempotency_key\":\"has space\"}",
	                   1440),
	    "invalid_idempotency_key");
	assert_string_equal(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":1,\"category\":\"x\","
	                   "\"colour\":\"red\"}",
	                   1440),
	    "unknown_field");
	assert_null(
	    exchange_error("{\"payer\":1,\"earner\":2,\"hours\":24,\"category\":\"x\"}", 1440));
}

static void test_req_member_add_needs_a_name(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"email\": \"a@b.org\"}");

	(void)state;
	assert_null(req_member(body, 0, &err));
	assert_string_equal(err.code, "invalid_field");
	json_decref(body);
}

static void test_req_member_turns_floor_hours_into_minutes(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"name\": \"Ann\", \"floor\": \"-2h30m\", \"number\": \"17\"}");
	json_t *out = req_member(body, 0, &err);

	(void)state;
	assert_non_null(out);
	assert_int_equal(json_integer_value(json_object_get(out, "floor_minutes")), -150);
	assert_int_equal(json_integer_value(json_object_get(out, "number")), 17);
	json_decref(out);
	json_decref(body);
}

static void test_req_member_refuses_bad_fields(void **state)
{
	static const char *const cases[][2] = {
	    {"{\"name\": \"\"}", "invalid_field"},
	    {"{\"name\": \"A\\u0001B\"}", "invalid_field"},
	    {"{\"name\": \"A\", \"floor\": \"2h\"}", "invalid_hours"},
	    {"{\"name\": \"A\", \"number\": -3}", "invalid_member_number"},
	    {"{\"name\": \"A\", \"joined_on\": \"yesterday\"}", "invalid_date"},
	    {"{\"name\": \"A\", \"status\": \"left\"}", "unknown_field"},
	    {"{\"name\": 5}", "invalid_field"},
	    {"{\"name\": \"A\", \"district\": \"CO2 7AB\"}", "invalid_field"},
	    {"{\"name\": \"A\", \"district\": 2}", "invalid_field"},
	    {"{\"name\": \"A\", \"org_kind\": \"surgery\"}", "invalid_field"},
	};
	struct req_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *body = parse(cases[i][0]);
		json_t *out = req_member(body, 0, &err);
		if (out != NULL)
			fail_msg("accepted %s", cases[i][0]);
		assert_string_equal(err.code, cases[i][1]);
		json_decref(body);
	}
}

static void test_req_member_district_is_a_postcode_district(void **state)
{
	json_t *body = parse("{\"name\": \"A\", \"district\": \"co2\", \"org_kind\": \"housing\"}");
	struct req_error err;
	json_t *out = req_member(body, 0, &err);

	(void)state;
	assert_non_null(out);
	assert_string_equal(json_string_value(json_object_get(out, "district")), "CO2");
	assert_string_equal(json_string_value(json_object_get(out, "org_kind")), "housing");
	json_decref(out);
	json_decref(body);
}

static void test_req_member_update_checks_status_and_emptiness(void **state)
{
	struct req_error err;
	json_t *empty = parse("{}"), *bad = parse("{\"status\": \"gone\"}");
	json_t *good = parse("{\"status\": \"left\", \"email\": null}");
	json_t *out;

	(void)state;
	assert_null(req_member(empty, 1, &err));
	assert_string_equal(err.code, "invalid_request");
	assert_null(req_member(bad, 1, &err));
	assert_string_equal(err.code, "invalid_status");
	out = req_member(good, 1, &err);
	assert_non_null(out);
	assert_true(json_is_null(json_object_get(out, "email")));
	json_decref(out);
	json_decref(empty);
	json_decref(bad);
	json_decref(good);
}

static void test_req_valid_date_knows_the_calendar(void **state)
{
	(void)state;
	assert_true(req_valid_date("2024-02-29"));
	assert_false(req_valid_date("2023-02-29"));
	assert_false(req_valid_date("1900-02-29"));
	assert_true(req_valid_date("2000-02-29"));
	assert_false(req_valid_date("2026-13-01"));
	assert_false(req_valid_date("2026-1-01"));
	assert_false(req_valid_date("26-01-01xx"));
}

static const char *error_of(json_t *(*fn)(const json_t *, int64_t, struct req_error *),
                            const char *text)
{
	static struct req_error err;
	json_t *body = parse(text), *out = fn(body, 1440, &err);

	json_decref(body);
	if (out != NULL) {
		json_decref(out);
		return NULL;
	}
	return err.code;
}

static void test_req_group_gives_each_earner_minutes(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"payer\": 1, \"earners\": [2, \"3\", {\"earner\": 4, "
	                     "\"hours\": \"1h\"}], \"hours\": 3, \"category\": \"Gardening\"}");
	json_t *out = req_group(body, 1440, &err), *e;

	(void)state;
	assert_non_null(out);
	e = json_object_get(out, "earners");
	assert_int_equal(json_array_size(e), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(e, 1), "earner")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(e, 1), "minutes")), 180);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(e, 2), "minutes")), 60);
	assert_string_equal(json_string_value(json_object_get(out, "category")), "gardening");
	json_decref(out);
	json_decref(body);
}

static void test_req_group_refuses_repeats_and_the_payer(void **state)
{
	(void)state;
	assert_string_equal(error_of(req_group, "{\"payer\":1,\"earners\":[2,2],\"hours\":1,"
	                                        "\"category\":\"x\"}"),
	                    "duplicate_earner");
	assert_string_equal(error_of(req_group, "{\"payer\":1,\"earners\":[2,1],\"hours\":1,"
	                                        "\"category\":\"x\"}"),
	                    "same_member");
	assert_string_equal(error_of(req_group, "{\"payer\":1,\"earners\":[],\"hours\":1,"
	                                        "\"category\":\"x\"}"),
	                    "invalid_request");
	assert_string_equal(error_of(req_group, "{\"payer\":1,\"earners\":[2],"
	                                        "\"category\":\"x\"}"),
	                    "invalid_hours");
	assert_string_equal(error_of(req_group, "{\"payer\":1,\"earners\":[{\"earner\":2,"
	                                        "\"colour\":1}],\"hours\":1,\"category\":\"x\"}"),
	                    "unknown_field");
}

static void test_req_grant_defaults_its_category(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"member\": 5, \"hours\": \"2\", \"reason\": \"welcome\"}");
	json_t *out = req_grant(body, 1440, &err);

	(void)state;
	assert_non_null(out);
	assert_string_equal(json_string_value(json_object_get(out, "category")), "grant");
	assert_int_equal(json_integer_value(json_object_get(out, "minutes")), 120);
	assert_string_equal(json_string_value(json_object_get(out, "reason")), "welcome");
	json_decref(out);
	json_decref(body);
	assert_string_equal(error_of(req_grant, "{\"member\": 5}"), "invalid_hours");
	assert_string_equal(error_of(req_grant, "{\"hours\": 1}"), "invalid_member_number");
}

static void test_req_reverse_and_erase_need_reasons(void **state)
{
	struct req_error err;
	json_t *none = parse("{}"), *forced = parse("{\"force\": true}");
	json_t *ok = parse("{\"force\": true, \"reason\": \"moved\"}"), *out;

	(void)state;
	assert_null(req_reverse(none, &err));
	assert_string_equal(err.code, "invalid_reason");
	assert_null(req_erase(forced, &err));
	assert_string_equal(err.code, "invalid_reason");
	out = req_erase(none, &err);
	assert_non_null(out);
	assert_true(json_is_false(json_object_get(out, "force")));
	json_decref(out);
	out = req_erase(ok, &err);
	assert_true(json_is_true(json_object_get(out, "force")));
	json_decref(out);
	json_decref(none);
	json_decref(forced);
	json_decref(ok);
}

/* Runs req_referral and returns the error code, or NULL when accepted. */
static const char *referral_error(const char *text)
{
	static struct req_error err;
	json_t *body = parse(text), *out = req_referral(body, &err);

	json_decref(body);
	json_decref(out);
	return out != NULL ? NULL : err.code;
}

#define REFERRAL(more) "{\"member\": 17, \"bank\": \"westminster\", \"kind\": \"move\", " more "}"

static void test_req_referral_shares_only_what_is_named(void **state)
{
	struct req_error err;
	json_t *body =
	    parse(REFERRAL("\"share\": \"name, contact,record\", \"consent\": \"by phone\""));
	json_t *out = req_referral(body, &err);
	char *share;

	(void)state;
	assert_non_null(out);
	share = json_dumps(json_object_get(out, "share"), JSON_COMPACT);
	assert_string_equal(share, "[\"name\",\"email\",\"phone\",\"address\",\"record\"]");
	assert_true(json_is_false(json_object_get(out, "consent_notes")));
	free(share);
	json_decref(out);
	json_decref(body);
	assert_null(referral_error(REFERRAL("\"share\": [\"name\", \"notes\"], \"consent\": "
	                                    "\"in writing\", \"consent_notes\": true")));
}

static void test_req_referral_refuses_what_the_member_did_not_agree_to(void **state)
{
	(void)state;
	assert_string_equal(
	    referral_error(REFERRAL("\"share\": \"name,notes\", \"consent\": \"in person\"")),
	    "notes_not_consented");
	assert_string_equal(
	    referral_error(REFERRAL("\"share\": \"name,shoe\", \"consent\": \"in person\"")),
	    "invalid_share");
	assert_string_equal(
	    referral_error(REFERRAL("\"share\": \"phone\", \"consent\": \"in person\"")),
	    "invalid_share");
	assert_string_equal(referral_error(REFERRAL("\"share\": [], \"consent\": \"in person\"")),
	                    "invalid_share");
	assert_string_equal(referral_error(REFERRAL("\"share\": \"name\", \"consent\": \"yes\"")),
	                    "invalid_consent");
	assert_string_equal(referral_error(REFERRAL("\"share\": \"name\"")), "invalid_consent");
	assert_string_equal(
	    referral_error("{\"member\": 17, \"bank\": \"westminster\", \"kind\": \"stay\", "
	                   "\"share\": \"name\", \"consent\": \"in person\"}"),
	    "invalid_kind");
	assert_string_equal(
	    referral_error("{\"member\": 0, \"bank\": \"westminster\", \"kind\": \"move\", "
	                   "\"share\": \"name\", \"consent\": \"in person\"}"),
	    "invalid_member_number");
	assert_string_equal(
	    referral_error(REFERRAL("\"share\": \"name\", \"consent\": \"in person\", \"x\": 1")),
	    "unknown_field");
}

static const char *approve_error(const char *text)
{
	static struct req_error err;
	json_t *body = parse(text), *out = req_dir_approve(body, &err);

	json_decref(body);
	json_decref(out);
	return out != NULL ? NULL : err.code;
}

static void test_req_dir_approve_takes_the_version_read(void **state)
{
	json_t *as_text = parse("{\"version\": \"12\"}"), *out;
	struct req_error err;

	(void)state;
	out = req_dir_approve(as_text, &err);
	assert_int_equal(json_integer_value(json_object_get(out, "version")), 12);
	json_decref(out);
	json_decref(as_text);
	assert_null(approve_error("{}"));
	assert_string_equal(approve_error("{\"version\": 0}"), "invalid_field");
	assert_string_equal(approve_error("{\"version\": \"12a\"}"), "invalid_field");
	assert_string_equal(approve_error("{\"version\": 1.5}"), "invalid_field");
	assert_string_equal(approve_error("{\"text\": \"x\"}"), "unknown_field");
}

/* The code a register change is refused with, or NULL when it passes. */
static const char *register_error(const char *text, int rotate)
{
	static char code[40];
	json_t *body = parse(text), *out;
	struct req_error err;

	out = rotate ? req_register_rotate(body, &err) : req_register_bank(body, &err);
	json_decref(body);
	if (out != NULL) {
		json_decref(out);
		return NULL;
	}
	snprintf(code, sizeof(code), "%s", err.code);
	return code;
}

static void test_req_register_checks_a_bank_and_a_rotation(void **state)
{
	const char *key =
	    "\"signing_pub\": \"0101010101010101010101010101010101010101010101010101010101010101\"";
	char text[512];

	(void)state;
	snprintf(text, sizeof(text), "{\"id\": \"dorset\", \"address\": \"198.51.100.7:9405\", %s}",
	         key);
	assert_null(register_error(text, 0));
	/* Banks dial the address as it is: an IP address and a plain port. */
	assert_true(req_valid_address("[2001:db8::7]:9405"));
	assert_false(req_valid_address("dorset.example.org:9405"));
	assert_false(req_valid_address("...:9405"));
	assert_false(req_valid_address("198.51.100.7:080"));
	assert_false(req_valid_address("198.51.100.7:0"));
	assert_false(req_valid_address("2001:db8::7:9405"));
	assert_false(req_valid_address("[]:9405"));
	assert_false(req_valid_address("198.51.100.7:"));
	snprintf(text, sizeof(text), "{\"id\": \"Dorset\", \"address\": \"d:1\", %s}", key);
	assert_string_equal(register_error(text, 0), "invalid_field");
	snprintf(text, sizeof(text), "{\"id\": \"dorset\", \"address\": \"d\", %s}", key);
	assert_string_equal(register_error(text, 0), "invalid_field");
	snprintf(text, sizeof(text), "{\"id\": \"dorset\", \"address\": \"d:70000\", %s}", key);
	assert_string_equal(register_error(text, 0), "invalid_field");
	snprintf(text, sizeof(text), "{\"id\": \"dorset\", \"address\": \"d e:1\", %s}", key);
	assert_string_equal(register_error(text, 0), "invalid_field");
	snprintf(text, sizeof(text),
	         "{\"id\": \"dorset\", \"address\": \"d:1\", \"kind\": \"x\", %s}", key);
	assert_string_equal(register_error(text, 0), "invalid_field");
	assert_string_equal(
	    register_error("{\"id\": \"dorset\", \"address\": \"d:1\", \"signing_pub\": \"01\"}",
	                   0),
	    "invalid_field");
	snprintf(text, sizeof(text), "{\"id\": \"dorset\", \"address\": \"d:1\", \"extra\": 1, %s}",
	         key);
	assert_string_equal(register_error(text, 0), "unknown_field");
	snprintf(text, sizeof(text), "{%s, \"grace_days\": 400}", key);
	assert_string_equal(register_error(text, 1), "invalid_field");
	snprintf(text, sizeof(text), "{%s, \"grace_days\": \"7\"}", key);
	assert_null(register_error(text, 1));
}

/* Runs a validator on text; its error code, or NULL when it accepts. */
static const char *intake_error(json_t *(*check)(const json_t *, struct req_error *),
                                const char *text)
{
	static struct req_error err;
	json_t *body = parse(text), *out = check(body, &err);

	json_decref(body);
	if (out != NULL) {
		json_decref(out);
		return NULL;
	}
	return err.code;
}

static void test_req_intake_reads_reasons_and_consents(void **state)
{
	struct req_error err;
	json_t *body = parse("{\"org\": \"1\", \"name\": \"Edna Clarke\", "
	                     "\"reasons\": \"bereavement, isolation\", \"consent_contact\": true}");
	json_t *out = req_intake(body, &err);

	(void)state;
	assert_non_null(out);
	assert_int_equal(json_integer_value(json_object_get(out, "org")), 1);
	/* In the list's order, whatever order they came in. */
	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "reasons"), 0)),
	                    "isolation");
	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "reasons"), 1)),
	                    "bereavement");
	assert_true(json_is_true(json_object_get(out, "consent_contact")));
	assert_true(json_is_false(json_object_get(out, "consent_outcomes")));
	json_decref(out);
	json_decref(body);
}

static void test_req_intake_refuses_what_is_not_a_referral(void **state)
{
	(void)state;
	assert_string_equal(intake_error(req_intake, "{\"name\": \"A\", \"reasons\": [\"sad\"]}"),
	                    "invalid_reason");
	assert_string_equal(
	    intake_error(req_intake, "{\"name\": \"A\", \"reasons\": [\"carer\", \"carer\"]}"),
	    "invalid_reason");
	assert_string_equal(intake_error(req_intake, "{\"name\": \"A\", \"reasons\": []}"),
	                    "invalid_reason");
	assert_string_equal(intake_error(req_intake, "{\"name\": \"A\"}"), "invalid_reason");
	assert_string_equal(intake_error(req_intake, "{\"reasons\": \"carer\"}"), "invalid_field");
	assert_string_equal(intake_error(req_intake, "{\"name\": \"\", \"reasons\": \"carer\"}"),
	                    "invalid_field");
	assert_string_equal(
	    intake_error(req_intake, "{\"name\": \"A\", \"reasons\": \"carer\", \"org\": 0}"),
	    "invalid_member_number");
	assert_string_equal(intake_error(req_intake, "{\"name\": \"A\", \"reasons\": \"carer\", "
	                                             "\"consent_outcomes\": \"yes\"}"),
	                    "invalid_consent");
	assert_string_equal(intake_error(req_intake, "{\"name\": \"A\", \"reasons\": \"carer\", "
	                                             "\"nhs_number\": \"485 777 3456\"}"),
	                    "unknown_field");
	assert_string_equal(
	    intake_error(req_intake, "{\"name\": \"A\\u001b[2J\", \"reasons\": \"carer\"}"),
	    "invalid_field");
}

static void test_req_intake_move_needs_a_declined_reason(void **state)
{
	struct req_error err;
	json_t *none = req_intake_move(NULL, "declined", &err);
	json_t *body = parse("{\"member\": 12}");
	json_t *joined = req_intake_move(body, "joined", &err);
	json_t *contacted = req_intake_move(body, "contacted", &err);

	(void)state;
	assert_null(none);
	assert_non_null(joined);
	assert_int_equal(json_integer_value(json_object_get(joined, "member")), 12);
	assert_null(contacted);
	assert_string_equal(err.code, "unknown_field");
	json_decref(joined);
	json_decref(body);
}

static json_t *check_of(const json_t *body, struct req_error *err)
{
	return req_check(body, err);
}

static void test_req_check_knows_its_kinds_and_dates(void **state)
{
	(void)state;
	assert_null(intake_error(check_of, "{\"kind\": \"dbs-enhanced\", \"reference\": \"0012\", "
	                                   "\"checked_on\": \"2026-01-10\", "
	                                   "\"expires_on\": \"2029-01-10\"}"));
	assert_string_equal(intake_error(check_of, "{\"kind\": \"dbs\", \"reference\": \"1\", "
	                                           "\"checked_on\": \"2026-01-10\", "
	                                           "\"expires_on\": \"2029-01-10\"}"),
	                    "invalid_kind");
	/* A check is recorded from its certificate, and has a day to renew it. */
	assert_string_equal(intake_error(check_of,
	                                 "{\"kind\": \"other\", \"checked_on\": "
	                                 "\"2026-01-10\", \"expires_on\": \"2029-01-10\"}"),
	                    "invalid_field");
	assert_string_equal(intake_error(check_of, "{\"kind\": \"pvg\", \"reference\": \"1\", "
	                                           "\"checked_on\": \"2026-01-10\"}"),
	                    "invalid_date");
	assert_string_equal(intake_error(check_of, "{\"kind\": \"pvg\", \"reference\": \"1\", "
	                                           "\"checked_on\": \"2026-02-30\", "
	                                           "\"expires_on\": \"2029-01-10\"}"),
	                    "invalid_date");
}

static void test_req_exchange_takes_an_override_for_its_own_member_only(void **state)
{
	(void)state;
	assert_null(exchange_error("{\"payer\": 1, \"earner\": 2, \"hours\": 1, \"category\": "
	                           "\"personal-care\", \"safeguarding_override\": \"renewing\"}",
	                           1440));
	assert_string_equal(exchange_error("{\"payer\": 1, \"earner\": 2, \"hours\": 1, "
	                                   "\"category\": \"childcare\", "
	                                   "\"safeguarding_override\": \"\"}",
	                                   1440),
	                    "invalid_field");
	assert_string_equal(exchange_error("{\"payer\": 1, \"earner\": \"westminster:2\", "
	                                   "\"hours\": 1, \"category\": \"childcare\", "
	                                   "\"safeguarding_override\": \"known to us\"}",
	                                   1440),
	                    "invalid_field");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_register_checks_a_bank_and_a_rotation),
	    cmocka_unit_test(test_req_exchange_normalises_hours_and_category),
	    cmocka_unit_test(test_req_exchange_takes_numeric_hours_and_minutes),
	    cmocka_unit_test(test_req_numeric_hours_are_exact),
	    cmocka_unit_test(test_req_exchange_refuses_bad_requests_with_stable_codes),
	    cmocka_unit_test(test_req_member_add_needs_a_name),
	    cmocka_unit_test(test_req_member_turns_floor_hours_into_minutes),
	    cmocka_unit_test(test_req_member_refuses_bad_fields),
	    cmocka_unit_test(test_req_member_district_is_a_postcode_district),
	    cmocka_unit_test(test_req_member_update_checks_status_and_emptiness),
	    cmocka_unit_test(test_req_valid_date_knows_the_calendar),
	    cmocka_unit_test(test_req_group_gives_each_earner_minutes),
	    cmocka_unit_test(test_req_group_refuses_repeats_and_the_payer),
	    cmocka_unit_test(test_req_grant_defaults_its_category),
	    cmocka_unit_test(test_req_reverse_and_erase_need_reasons),
	    cmocka_unit_test(test_req_dir_approve_takes_the_version_read),
	    cmocka_unit_test(test_req_referral_shares_only_what_is_named),
	    cmocka_unit_test(test_req_referral_refuses_what_the_member_did_not_agree_to),
	    cmocka_unit_test(test_req_intake_reads_reasons_and_consents),
	    cmocka_unit_test(test_req_intake_refuses_what_is_not_a_referral),
	    cmocka_unit_test(test_req_intake_move_needs_a_declined_reason),
	    cmocka_unit_test(test_req_check_knows_its_kinds_and_dates),
	    cmocka_unit_test(test_req_exchange_takes_an_override_for_its_own_member_only),
	};
	return cmocka_run_group_tests_name("req", tests, NULL, NULL);
}
