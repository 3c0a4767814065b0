#include "req.h"

#include "dir_text.h"
#include "hours.h"
#include "register.pb-c.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEMBER_NUMBER_MAX 999999999LL

json_t *req_fail(struct req_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return NULL;
}

int req_parse_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (text == NULL || !isdigit((unsigned char)text[text[0] == '-']))
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int req_member_number(const json_t *value, int64_t *number)
{
	if (json_is_integer(value)) {
		json_int_t v = json_integer_value(value);
		if (v < 1 || v > MEMBER_NUMBER_MAX)
			return -1;
		*number = v;
		return 0;
	}
	if (json_is_string(value))
		return req_parse_int(json_string_value(value), 1, MEMBER_NUMBER_MAX, number);
	return -1;
}

int req_valid_date(const char *s)
{
	static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d, leap;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
		return 0;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return !(m == 2 && d == 29 && !leap);
}

/* Hours given as a JSON number, written out as the decimal it is, so that
 * hours_parse holds it to whole minutes as it does the text form: the
 * fewest decimals (at most six) that give the number back exactly, or NULL
 * when none do (1.0000001 is not rounded to 1). */
static const char *number_text(const json_t *v, char *buf, size_t len)
{
	double d = json_number_value(v);

	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (!(d > -1e12 && d < 1e12))
		return NULL;
	for (int places = 0; places <= 6; places++) {
		snprintf(buf, len, "%.*f", places, d);
		if (strtod(buf, NULL) == d)
			return buf;
	}
	return NULL;
}

/* Text a person typed: at most max bytes, no control characters (C0, DEL,
 * and C1, U+0080 to U+009F, which is 0xC2 0x80-0x9F in UTF-8). */
int req_valid_text(const char *s, size_t max, int allow_newlines)
{
	size_t n = strlen(s);

	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && !(allow_newlines && (c == '\n' || c == '\t'))) || c == 0x7f)
			return 0;
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

struct text_field {
	const char *name;
	size_t max;
	int multiline;
};

static const struct text_field member_text[] = {
    {"name", 200, 0},    {"email", 254, 0},  {"phone", 40, 0},         {"address", 500, 1},
    {"skills", 2000, 1}, {"needs", 2000, 1}, {"availability", 500, 1}, {"notes", 4000, 1},
};

static const struct text_field *find_text(const struct text_field *t, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, key) == 0)
			return &t[i];
	return NULL;
}

/* One member field into out; returns 0 or -1 with err set. */
static int member_field(json_t *out, const char *key, const json_t *v, int for_update,
                        struct req_error *err)
{
	const struct text_field *tf =
	    find_text(member_text, sizeof(member_text) / sizeof(member_text[0]), key);
	int64_t n;

	if (tf != NULL) {
		if (json_is_null(v) && strcmp(key, "name") != 0)
			return json_object_set(out, key, json_null());
		if (!json_is_string(v) ||
		    !req_valid_text(json_string_value(v), tf->max, tf->multiline)) {
			req_fail(err, "invalid_field", "%s must be text of at most %zu characters",
			         key, tf->max);
			return -1;
		}
		if (strcmp(key, "name") == 0 && json_string_length(v) == 0) {
			req_fail(err, "invalid_field", "name must not be empty");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	if (strcmp(key, "number") == 0 && !for_update) {
		if (req_member_number(v, &n) == -1) {
			req_fail(err, "invalid_member_number",
			         "number must be a whole number from 1 to 999999999");
			return -1;
		}
		return json_object_set_new(out, key, json_integer(n));
	}
	if (strcmp(key, "floor") == 0) {
		const char *text = json_is_string(v) ? json_string_value(v) : NULL;
		char buf[32];
		if (json_is_null(v))
			return json_object_set(out, "floor_minutes", json_null());
		if (json_is_integer(v) || json_is_real(v))
			text = number_text(v, buf, sizeof(buf));
		if (text == NULL || hours_parse(text, &n) == -1 || n > 0) {
			req_fail(err, "invalid_hours",
			         "floor must be zero or negative hours, like -10h");
			return -1;
		}
		return json_object_set_new(out, "floor_minutes", json_integer(n));
	}
	if (strcmp(key, "status") == 0 && for_update) {
		const char *s = json_string_value(v);
		if (s == NULL || (strcmp(s, "active") != 0 && strcmp(s, "suspended") != 0 &&
		                  strcmp(s, "left") != 0)) {
			req_fail(err, "invalid_status", "status must be active, suspended or left");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	if (strcmp(key, "kind") == 0 && !for_update) {
		const char *k = json_string_value(v);
		if (k == NULL || (strcmp(k, "person") != 0 && strcmp(k, "organisation") != 0)) {
			req_fail(err, "invalid_kind", "kind must be person or organisation");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	if (strcmp(key, "referred_by") == 0) {
		if (json_is_null(v))
			return json_object_set(out, key, json_null());
		if (req_member_number(v, &n) == -1) {
			req_fail(err, "invalid_member_number",
			         "referred_by must be the number of an organisation");
			return -1;
		}
		return json_object_set_new(out, key, json_integer(n));
	}
	if (strcmp(key, "district") == 0) {
		char district[8];
		if (json_is_null(v))
			return json_object_set(out, key, json_null());
		if (!json_is_string(v) ||
		    dir_area(json_string_value(v), district, sizeof(district)) == -1) {
			req_fail(err, "invalid_field",
			         "district must be a postcode district, such as CO2 (not a full "
			         "postcode)");
			return -1;
		}
		return json_object_set_new(out, key, json_string(district));
	}
	if (strcmp(key, "org_kind") == 0) {
		static const char *const kinds[] = {
		    "gp_practice", "social_services", "mental_health", "housing", "other", NULL};
		const char *k = json_string_value(v);
		const char *const *known = kinds;
		if (json_is_null(v))
			return json_object_set(out, key, json_null());
		while (k != NULL && *known != NULL && strcmp(*known, k) != 0)
			known++;
		if (k == NULL || *known == NULL) {
			req_fail(err, "invalid_field",
			         "org_kind must be gp_practice, social_services, "
			         "mental_health, housing or other");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	if (strcmp(key, "needs_care") == 0) {
		if (!json_is_boolean(v)) {
			req_fail(err, "invalid_field", "needs_care must be true or false");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	if (strcmp(key, "joined_on") == 0) {
		if (!json_is_string(v) || !req_valid_date(json_string_value(v))) {
			req_fail(err, "invalid_date",
			         "joined_on must be a date written YYYY-MM-DD");
			return -1;
		}
		return json_object_set(out, key, (json_t *)v);
	}
	req_fail(err, "unknown_field", "unknown field '%s'", key);
	return -1;
}

json_t *req_member(const json_t *body, int for_update, struct req_error *err)
{
	const char *key;
	json_t *v, *out;

	if (!json_is_object(body))
		return req_fail(err, "invalid_request", "the request body must be a JSON object");
	out = json_object();
	json_object_foreach((json_t *)body, key, v)
	{
		if (member_field(out, key, v, for_update, err) == -1) {
			json_decref(out);
			return NULL;
		}
	}
	if (!for_update && json_object_get(out, "name") == NULL) {
		json_decref(out);
		return req_fail(err, "invalid_field", "name is required");
	}
	if (for_update && json_object_size(out) == 0) {
		json_decref(out);
		return req_fail(err, "invalid_request", "nothing to update");
	}
	return out;
}

/* The minutes of an exchange from "minutes" (integer) or "hours" (text or
 * number); returns 0 or -1 with err set. */
static int exchange_minutes(const json_t *body, int64_t max, int64_t *minutes,
                            struct req_error *err)
{
	const json_t *h = json_object_get(body, "hours"), *m = json_object_get(body, "minutes");
	char buf[32], shown[32];
	const char *text;

	if ((h == NULL) == (m == NULL)) {
		req_fail(err, "invalid_hours", "give either hours or minutes");
		return -1;
	}
	if (m != NULL) {
		if (!json_is_integer(m)) {
			req_fail(err, "invalid_hours", "minutes must be a whole number");
			return -1;
		}
		*minutes = json_integer_value(m);
	} else {
		text = json_string_value(h);
		if (json_is_integer(h) || json_is_real(h))
			text = number_text(h, buf, sizeof(buf));
		if (text == NULL || hours_parse(text, minutes) == -1) {
			req_fail(err, "invalid_hours",
			         "hours must be like 2, 1.5, 1h30m or 90m, in whole minutes");
			return -1;
		}
	}
	if (*minutes <= 0 || *minutes > max) {
		hours_format(max, shown, sizeof(shown));
		req_fail(err, "invalid_hours", "time must be more than zero and at most %s", shown);
		return -1;
	}
	return 0;
}

static int valid_key(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 100)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._:-", s[i]) == NULL)
			return 0;
	return 1;
}

/* The body's idempotency_key, when it has one, into out; 0, or -1 with err. */
int req_key_of(const json_t *body, json_t *out, struct req_error *err)
{
	const json_t *key = json_object_get(body, "idempotency_key");

	if (key == NULL || json_is_null(key))
		return 0;
	if (!json_is_string(key) || !valid_key(json_string_value(key))) {
		req_fail(err, "invalid_idempotency_key",
		         "idempotency_key must be 1 to 100 letters, digits or . _ : -");
		return -1;
	}
	return json_object_set(out, "idempotency_key", (json_t *)key);
}

/* A coordinator's reason to let help go ahead that needs a safeguarding
 * check the helper does not hold, when the body has one, into out; 0, or
 * -1 with err. Only the routes that allow the field reach here with it. */
static int override_of(const json_t *body, json_t *out, struct req_error *err)
{
	const json_t *v = json_object_get(body, "safeguarding_override");

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    !req_valid_text(json_string_value(v), 500, 1)) {
		req_fail(err, "invalid_field",
		         "safeguarding_override must be the reason, of 1 to 500 characters");
		return -1;
	}
	return json_object_set(out, "safeguarding_override", (json_t *)v);
}

static json_t *exchange_fields(const json_t *body, json_t *out, struct req_error *err)
{
	const json_t *cat = json_object_get(body, "category");
	const json_t *desc = json_object_get(body, "description");
	const json_t *date = json_object_get(body, "performed_on");
	char lower[41];
	size_t n;

	/* An exchange from a contact may leave the category to the item's. */
	if (cat == NULL && json_object_get(out, "contact") != NULL) {
		/* nothing to check */
	} else if (!json_is_string(cat) || (n = json_string_length(cat)) == 0 || n > 40 ||
	           !req_valid_text(json_string_value(cat), 40, 0)) {
		return req_fail(err, "invalid_category",
		                "category must be text of 1 to 40 characters");
	} else {
		for (size_t i = 0; i <= n; i++)
			lower[i] = (char)tolower((unsigned char)json_string_value(cat)[i]);
		json_object_set_new(out, "category", json_string(lower));
	}
	if (desc != NULL && !json_is_null(desc)) {
		if (!json_is_string(desc) || !req_valid_text(json_string_value(desc), 500, 1))
			return req_fail(err, "invalid_field",
			                "description must be text of at most 500 characters");
		json_object_set(out, "description", (json_t *)desc);
	}
	if (date != NULL && !json_is_null(date)) {
		if (!json_is_string(date) || !req_valid_date(json_string_value(date)))
			return req_fail(err, "invalid_date",
			                "performed_on must be a date written YYYY-MM-DD");
		json_object_set(out, "performed_on", (json_t *)date);
	}
	if (override_of(body, out, err) == -1)
		return NULL;
	if (req_key_of(body, out, err) == -1)
		return NULL;
	return out;
}

/* Refuses a body that is not an object or has a field not in allowed (a
 * NULL-terminated list). Returns 0, or -1 with err set. */
int req_only_fields(const json_t *body, const char *const *allowed, struct req_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(body)) {
		req_fail(err, "invalid_request", "the request body must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)body, key, v)
	{
		const char *const *a = allowed;
		while (*a != NULL && strcmp(*a, key) != 0)
			a++;
		if (*a == NULL) {
			req_fail(err, "unknown_field", "unknown field '%s'", key);
			return -1;
		}
	}
	return 0;
}

/* Adds "payer" and the shared exchange fields to out; takes out. */
static json_t *with_fields(const json_t *body, json_t *out, struct req_error *err)
{
	if (exchange_fields(body, out, err) == NULL) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* "westminster:204": a member of another bank. 1 with bank and number set,
 * 0 when text is not of that form. */
static int remote_member(const json_t *v, char *bank, size_t len, int64_t *number)
{
	const char *text = json_string_value(v), *colon;
	size_t n;

	if (text == NULL || (colon = strchr(text, ':')) == NULL)
		return 0;
	n = (size_t)(colon - text);
	if (n < 2 || n >= len || n > 32 || !islower((unsigned char)text[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)text[i]) && !isdigit((unsigned char)text[i]) &&
		    text[i] != '-')
			return 0;
	if (req_parse_int(colon + 1, 1, 999999999, number) == -1)
		return 0;
	memcpy(bank, text, n);
	bank[n] = '\0';
	return 1;
}

json_t *req_exchange(const json_t *body, int64_t max_minutes, struct req_error *err)
{
	static const char *const allowed[] = {"payer",
	                                      "earner",
	                                      "hours",
	                                      "minutes",
	                                      "category",
	                                      "description",
	                                      "performed_on",
	                                      "idempotency_key",
	                                      "safeguarding_override",
	                                      NULL};
	int64_t payer, earner, minutes;
	char bank[40] = "";
	json_t *out;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (req_member_number(json_object_get(body, "payer"), &payer) == -1)
		return req_fail(err, "invalid_member_number", "payer must be a member number");
	if (!remote_member(json_object_get(body, "earner"), bank, sizeof(bank), &earner) &&
	    req_member_number(json_object_get(body, "earner"), &earner) == -1)
		return req_fail(
		    err, "invalid_member_number",
		    "earner must be a member number, or BANK:NUMBER for another bank's");
	if (payer == earner && bank[0] == '\0')
		return req_fail(err, "same_member", "payer and earner are the same member");
	if (exchange_minutes(body, max_minutes, &minutes, err) == -1)
		return NULL;
	out = json_pack("{sI sI sI}", "payer", (json_int_t)payer, "earner", (json_int_t)earner,
	                "minutes", (json_int_t)minutes);
	if (bank[0] != '\0' && json_object_get(body, "safeguarding_override") != NULL) {
		json_decref(out);
		return req_fail(
		    err, "invalid_field",
		    "safeguarding_override is for help given by this bank's own member; "
		    "the earner's bank checks its own");
	}
	if (bank[0] != '\0')
		json_object_set_new(out, "bank", json_string(bank));
	return with_fields(body, out, err);
}

/* Text that goes to another bank holds no way to reach a person (see
 * dir_personal_detail): 0, or -1 with err saying what to remove. */
static int no_personal_details(const json_t *v, const char *field, struct req_error *err)
{
	char what[80];
	enum dir_detail d = dir_personal_detail(json_string_value(v), what, sizeof(what));

	if (d == DIR_CLEAN)
		return 0;
	req_fail(err, "personal_details",
	         "%s contains %s (%s); remove it: members are reached through their brokers", field,
	         dir_detail_name(d), what);
	return -1;
}

json_t *req_claim(const json_t *body, int64_t max_minutes, struct req_error *err)
{
	static const char *const allowed[] = {
	    "payer",       "earner",  "hours",        "minutes",         "category",
	    "description", "message", "performed_on", "idempotency_key", NULL};
	const json_t *message = json_object_get(body, "message");
	int64_t payer, earner, minutes;
	char bank[40] = "";
	json_t *out;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (req_member_number(json_object_get(body, "earner"), &earner) == -1)
		return req_fail(err, "invalid_member_number",
		                "earner must be the number of a member of this bank");
	if (!remote_member(json_object_get(body, "payer"), bank, sizeof(bank), &payer))
		return req_fail(err, "invalid_member_number",
		                "payer must be BANK:NUMBER, a member of another bank");
	if (exchange_minutes(body, max_minutes, &minutes, err) == -1)
		return NULL;
	if (message != NULL && !json_is_null(message) &&
	    (!json_is_string(message) || !req_valid_text(json_string_value(message), 500, 1)))
		return req_fail(err, "invalid_field",
		                "message must be text of at most 500 characters");
	/* The message goes to the payer's bank. */
	if (message != NULL && !json_is_null(message) &&
	    no_personal_details(message, "message", err) == -1)
		return NULL;
	out = json_pack("{sI sI sI ss}", "payer", (json_int_t)payer, "earner", (json_int_t)earner,
	                "minutes", (json_int_t)minutes, "bank", bank);
	if (message != NULL && !json_is_null(message))
		json_object_set(out, "message", (json_t *)message);
	return with_fields(body, out, err);
}

#define GROUP_MAX_EARNERS 100

/* One earner of a group: a number, or an object with its own hours. */
static int group_earner(const json_t *body, const json_t *item, int64_t max, int64_t *earner,
                        int64_t *minutes, struct req_error *err)
{
	static const char *const allowed[] = {"earner", "hours", "minutes", NULL};
	const json_t *has_own;

	if (json_is_object(item)) {
		if (req_only_fields(item, allowed, err) == -1)
			return -1;
		has_own = json_object_get(item, "hours") != NULL     ? item
		          : json_object_get(item, "minutes") != NULL ? item
		                                                     : NULL;
		item = json_object_get(item, "earner");
		if (has_own != NULL)
			body = has_own;
	}
	if (req_member_number(item, earner) == -1) {
		req_fail(err, "invalid_member_number", "each earner must be a member number");
		return -1;
	}
	return exchange_minutes(body, max, minutes, err);
}

json_t *req_group(const json_t *body, int64_t max_minutes, struct req_error *err)
{
	static const char *const allowed[] = {"payer",
	                                      "earners",
	                                      "hours",
	                                      "minutes",
	                                      "category",
	                                      "description",
	                                      "performed_on",
	                                      "idempotency_key",
	                                      "safeguarding_override",
	                                      NULL};
	const json_t *earners = json_object_get(body, "earners"), *item;
	int64_t payer, earner, minutes;
	json_t *out, *list;
	size_t i, j;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (req_member_number(json_object_get(body, "payer"), &payer) == -1)
		return req_fail(err, "invalid_member_number", "payer must be a member number");
	if (!json_is_array(earners) || json_array_size(earners) == 0 ||
	    json_array_size(earners) > GROUP_MAX_EARNERS)
		return req_fail(err, "invalid_request", "earners must be a list of 1 to %d members",
		                GROUP_MAX_EARNERS);
	list = json_array();
	json_array_foreach(earners, i, item)
	{
		if (group_earner(body, item, max_minutes, &earner, &minutes, err) == -1)
			goto bad;
		if (earner == payer) {
			req_fail(err, "same_member", "the payer %lld is also an earner",
			         (long long)payer);
			goto bad;
		}
		for (j = 0; j < i; j++) {
			if (json_integer_value(
			        json_object_get(json_array_get(list, j), "earner")) == earner) {
				req_fail(err, "duplicate_earner", "member %lld is listed twice",
				         (long long)earner);
				goto bad;
			}
		}
		json_array_append_new(list, json_pack("{sI sI}", "earner", (json_int_t)earner,
		                                      "minutes", (json_int_t)minutes));
	}
	out = json_pack("{sI so}", "payer", (json_int_t)payer, "earners", list);
	return with_fields(body, out, err);
bad:
	json_decref(list);
	return NULL;
}

json_t *req_grant(const json_t *body, int64_t max_minutes, struct req_error *err)
{
	static const char *const allowed[] = {"member",       "hours",           "minutes",
	                                      "category",     "description",     "reason",
	                                      "performed_on", "idempotency_key", NULL};
	const json_t *reason = json_object_get(body, "reason");
	int64_t member, minutes;
	json_t *out, *with_category;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (req_member_number(json_object_get(body, "member"), &member) == -1)
		return req_fail(err, "invalid_member_number", "member must be a member number");
	if (exchange_minutes(body, max_minutes, &minutes, err) == -1)
		return NULL;
	if (reason != NULL && !json_is_null(reason) &&
	    (!json_is_string(reason) || !req_valid_text(json_string_value(reason), 500, 1)))
		return req_fail(err, "invalid_field",
		                "reason must be text of at most 500 characters");
	/* A grant's category is "grant" unless the coordinator names one. */
	with_category = json_deep_copy(body);
	if (json_object_get(with_category, "category") == NULL)
		json_object_set_new(with_category, "category", json_string("grant"));
	out = json_pack("{sI sI}", "member", (json_int_t)member, "minutes", (json_int_t)minutes);
	if (reason != NULL && !json_is_null(reason))
		json_object_set(out, "reason", (json_t *)reason);
	out = with_fields(with_category, out, err);
	json_decref(with_category);
	return out;
}

int req_optional_member(const json_t *body, const char *key, json_t *out, const char *what,
                        struct req_error *err)
{
	const json_t *v = body != NULL ? json_object_get(body, key) : NULL;
	int64_t n;

	if (v == NULL || json_is_null(v))
		return 0;
	if (req_member_number(v, &n) == -1) {
		req_fail(err, "invalid_member_number", "%s", what);
		return -1;
	}
	return json_object_set_new(out, key, json_integer((json_int_t)n));
}

/* A required reason, for reversals and forced erasures. */
int req_reason_of(const json_t *body, json_t *out, int required, struct req_error *err)
{
	const json_t *reason = json_object_get(body, "reason");

	if ((reason == NULL || json_is_null(reason)) && !required)
		return 0;
	if (!json_is_string(reason) || json_string_length(reason) == 0 ||
	    !req_valid_text(json_string_value(reason), 500, 1)) {
		req_fail(err, "invalid_reason", "a reason of 1 to 500 characters is needed");
		return -1;
	}
	return json_object_set(out, "reason", (json_t *)reason);
}

json_t *req_reverse(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"reason", "idempotency_key", NULL};
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1 || req_reason_of(body, out, 1, err) == -1 ||
	    req_key_of(body, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_decline(const json_t *body, struct req_error *err)
{
	json_t *out = req_reverse(body, err);

	/* The reason goes back to the bank that claimed. */
	if (out != NULL &&
	    no_personal_details(json_object_get(out, "reason"), "reason", err) == -1) {
		json_decref(out);
		return NULL;
	}
	return out;
}

json_t *req_erase(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"force", "reason", NULL};
	const json_t *force = json_object_get(body, "force");
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (force != NULL && !json_is_boolean(force)) {
		req_fail(err, "invalid_request", "force must be true or false");
		goto bad;
	}
	if (req_reason_of(body, out, json_is_true(force), err) == -1)
		goto bad;
	json_object_set_new(out, "force", json_boolean(json_is_true(force)));
	return out;
bad:
	json_decref(out);
	return NULL;
}

/* Text that leaves the bank: 1 to max characters on one line (a broker's
 * message: multiline), and for an item's text nothing that identifies or
 * reaches the member (a broker may choose to write such things). 0, or -1
 * with err set. */
/* A shared item's text (one line), or a message between brokers. */
static int dir_text_ok(const json_t *v, const char *field, int max, int is_item, json_t *out,
                       struct req_error *err)
{
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    !req_valid_text(json_string_value(v), (size_t)max, !is_item)) {
		req_fail(err, "invalid_field", "%s must be text of 1 to %d characters%s", field,
		         max, is_item ? " on one line" : "");
		return -1;
	}
	if (no_personal_details(v, field, err) == -1)
		return -1;
	return json_object_set(out, field, (json_t *)v);
}

json_t *req_dir_item(const json_t *body, int for_update, struct req_error *err)
{
	static const char *const allowed[] = {"member",       "category",   "text",       "area",
	                                      "availability", "visibility", "expires_on", NULL};
	const json_t *v;
	json_t *out = json_object();
	int64_t member;
	char norm[DIR_AVAILABILITY_MAX * 2], bad[40];

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (for_update && json_object_size(body) == 0) {
		req_fail(err, "invalid_request", "give at least one field to change");
		goto bad;
	}
	if ((v = json_object_get(body, "member")) != NULL || !for_update) {
		if (for_update) {
			req_fail(err, "invalid_field", "an item stays with its member");
			goto bad;
		}
		if (req_member_number(v, &member) == -1) {
			req_fail(err, "invalid_member_number", "member must be a member number");
			goto bad;
		}
		json_object_set_new(out, "member", json_integer((json_int_t)member));
	}
	if ((v = json_object_get(body, "category")) != NULL || !for_update) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    !req_valid_text(json_string_value(v), 40, 0)) {
			req_fail(err, "invalid_category",
			         "category must be one of the directory's "
			         "categories (tbctl directory categories)");
			goto bad;
		}
		json_object_set(out, "category", (json_t *)v);
	}
	if (((v = json_object_get(body, "text")) != NULL || !for_update) &&
	    dir_text_ok(v, "text", DIR_TEXT_MAX, 1, out, err) == -1)
		goto bad;
	if ((v = json_object_get(body, "area")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) ||
		    dir_area(json_string_value(v), norm, sizeof(norm)) == -1) {
			req_fail(
			    err, "invalid_area",
			    "area must be a postcode district such as CO1 or SW1A, never a full "
			    "postcode");
			goto bad;
		}
		json_object_set_new(out, "area", json_string(norm));
	}
	if ((v = json_object_get(body, "availability")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || dir_availability(json_string_value(v), norm, sizeof(norm),
		                                           bad, sizeof(bad)) == -1) {
			req_fail(
			    err, "invalid_availability",
			    "availability is days and parts of the day, such as \"tue am, thu pm, "
			    "weekends\"; '%s' is not one",
			    json_is_string(v) ? bad : "?");
			goto bad;
		}
		json_object_set_new(out, "availability", json_string(norm));
	}
	if ((v = json_object_get(body, "visibility")) != NULL) {
		if (!json_is_string(v) || (strcmp(json_string_value(v), "bank") != 0 &&
		                           strcmp(json_string_value(v), "federation") != 0)) {
			req_fail(err, "invalid_visibility",
			         "visibility must be bank (this bank only) or federation");
			goto bad;
		}
		json_object_set(out, "visibility", (json_t *)v);
	}
	if ((v = json_object_get(body, "expires_on")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || !req_valid_date(json_string_value(v))) {
			req_fail(err, "invalid_date",
			         "expires_on must be a date written YYYY-MM-DD");
			goto bad;
		}
		json_object_set(out, "expires_on", (json_t *)v);
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_dir_approve(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"version", NULL};
	const json_t *version = json_object_get(body, "version");
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (version != NULL && !json_is_null(version)) {
		int64_t v;
		if (!(json_is_integer(version) && (v = json_integer_value(version)) >= 1) &&
		    !(json_is_string(version) &&
		      req_parse_int(json_string_value(version), 1, INT64_MAX, &v) == 0)) {
			req_fail(err, "invalid_field",
			         "version must be the item's version as read (a whole number)");
			goto bad;
		}
		json_object_set_new(out, "version", json_integer(v));
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_contact(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {
	    "handle", "bank", "for", "message", "safeguarding_override", NULL};
	const json_t *handle = json_object_get(body, "handle"),
	             *bank = json_object_get(body, "bank");
	json_t *out = json_object();
	int64_t member;

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (!json_is_string(handle) || !valid_key(json_string_value(handle)) ||
	    json_string_length(handle) > 40) {
		req_fail(err, "invalid_handle", "handle must be a directory item's handle");
		goto bad;
	}
	json_object_set(out, "handle", (json_t *)handle);
	if (bank != NULL && !json_is_null(bank)) {
		if (!json_is_string(bank) || !valid_key(json_string_value(bank))) {
			req_fail(err, "invalid_field", "bank must be a bank id");
			goto bad;
		}
		json_object_set(out, "bank", (json_t *)bank);
	}
	if (req_member_number(json_object_get(body, "for"), &member) == -1) {
		req_fail(err, "invalid_member_number",
		         "for must be the number of the member asking");
		goto bad;
	}
	json_object_set_new(out, "for", json_integer((json_int_t)member));
	if (dir_text_ok(json_object_get(body, "message"), "message", 500, 0, out, err) == -1 ||
	    override_of(body, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_contact_answer(const json_t *body, int required, struct req_error *err)
{
	static const char *const allowed[] = {"message", "safeguarding_override", NULL};
	const json_t *message = json_object_get(body, "message");
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1 || override_of(body, out, err) == -1)
		goto bad;
	if (((message != NULL && !json_is_null(message)) || required) &&
	    dir_text_ok(message, "message", 500, 0, out, err) == -1) {
		if (required)
			req_fail(
			    err, "invalid_field",
			    "message (1 to 500 characters) must say how the members will meet");
		goto bad;
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_exchange_contact(const json_t *body, int64_t max_minutes, struct req_error *err)
{
	static const char *const allowed[] = {"contact",         "hours",       "minutes",
	                                      "category",        "description", "performed_on",
	                                      "idempotency_key", NULL};
	const json_t *contact = json_object_get(body, "contact");
	int64_t minutes;
	json_t *out;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (!json_is_string(contact) || !valid_key(json_string_value(contact)))
		return req_fail(err, "invalid_field",
		                "contact must be a contact id such as cheshire:k3");
	if (exchange_minutes(body, max_minutes, &minutes, err) == -1)
		return NULL;
	out = json_pack("{sOsI}", "contact", contact, "minutes", (json_int_t)minutes);
	return with_fields(body, out, err);
}

/* ---- the national body's register ------------------------------------- */

int req_valid_bank_id(const char *s)
{
	size_t n = strlen(s);

	return n >= 2 && n <= 32 && s[0] >= 'a' && s[0] <= 'z' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* 2 * len lower-case hex digits. */
static int valid_hex(const json_t *v, size_t len)
{
	const char *s = json_string_value(v);

	return s != NULL && strlen(s) == 2 * len && strspn(s, "0123456789abcdef") == 2 * len;
}

int req_valid_address(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2];
	unsigned char addr[sizeof(struct in6_addr)];
	size_t n = colon != NULL ? (size_t)(colon - s) : 0;
	int64_t port;

	/* An IP address (IPv6 in brackets) and a port of 1 to 65535 written
	 * plainly: the daemon dials what it is given, and looks no name up. */
	if (colon == NULL || n == 0 || n >= sizeof(host) || colon[1] == '0' ||
	    req_parse_int(colon + 1, 1, 65535, &port) == -1)
		return 0;
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return 0;
		snprintf(host, sizeof(host), "%.*s", (int)n - 2, s + 1);
		return inet_pton(AF_INET6, host, addr) == 1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)n, s);
	return inet_pton(AF_INET, host, addr) == 1;
}

int req_register_bad(const struct Timebank__V1__Register *reg, char *why, size_t len)
{
	if (reg->n_banks > REQ_REGISTER_MAX_BANKS) {
		snprintf(why, len, "more banks than a register may hold (%d)",
		         REQ_REGISTER_MAX_BANKS);
		return -1;
	}
	if (reg->crl.len == 0 || reg->crl.len > REQ_REGISTER_MAX_CRL) {
		snprintf(why, len, "no CRL, or an oversized one");
		return -1;
	}
	for (size_t i = 0; i < reg->n_banks; i++) {
		const Timebank__V1__RegisterBank *b = reg->banks[i];
		const char *bad = NULL;
		if (!req_valid_bank_id(b->id)) {
			snprintf(why, len, "a bank with a bad id");
			return -1;
		}
		if (!req_valid_address(b->address))
			bad = "a bad address (it must be IP:PORT)";
		else if (strcmp(b->kind, "bank") != 0 && strcmp(b->kind, "observer") != 0)
			bad = "no known kind";
		else if (b->n_keys == 0)
			bad = "no signing key";
		else if (b->n_keys > REQ_REGISTER_MAX_KEYS)
			bad = "more signing keys in force than a bank keeps (4)";
		else if (b->cert_sha256[0] != '\0' &&
		         (strlen(b->cert_sha256) != 64 ||
		          strspn(b->cert_sha256, "0123456789abcdef") != 64))
			bad = "a certificate hash that is not 64 hex digits";
		for (size_t k = 0; bad == NULL && k < b->n_keys; k++)
			if (b->keys[k]->public_key.len != 32)
				bad = "a signing key that is not 32 bytes";
		for (size_t j = 0; bad == NULL && j < i; j++)
			if (strcmp(reg->banks[j]->id, b->id) == 0)
				bad = "a second entry: a bank listed twice";
		if (bad != NULL) {
			snprintf(why, len, "bank %s has %s", b->id, bad);
			return -1;
		}
	}
	return 0;
}

json_t *req_register_bank(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"id",          "name",        "address", "kind",
	                                      "signing_pub", "cert_sha256", NULL};
	const json_t *id = json_object_get(body, "id"), *name = json_object_get(body, "name"),
	             *address = json_object_get(body, "address"),
	             *kind = json_object_get(body, "kind"),
	             *pub = json_object_get(body, "signing_pub"),
	             *cert = json_object_get(body, "cert_sha256");
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (!json_is_string(id) || !req_valid_bank_id(json_string_value(id))) {
		req_fail(err, "invalid_field",
		         "id must be 2 to 32 of a-z, 0-9 and '-', from a letter");
		goto bad;
	}
	if (name != NULL && (!json_is_string(name) || json_string_length(name) == 0 ||
	                     !req_valid_text(json_string_value(name), 100, 0))) {
		req_fail(err, "invalid_field", "name must be text of 1 to 100 characters");
		goto bad;
	}
	if (!json_is_string(address) || !req_valid_address(json_string_value(address))) {
		req_fail(err, "invalid_field",
		         "address must be IP:PORT of its federation listener (an IP address, "
		         "[IPv6] in brackets: banks dial it as it is)");
		goto bad;
	}
	if (kind != NULL &&
	    (!json_is_string(kind) || (strcmp(json_string_value(kind), "bank") != 0 &&
	                               strcmp(json_string_value(kind), "observer") != 0))) {
		req_fail(err, "invalid_field", "kind must be bank or observer");
		goto bad;
	}
	if (!valid_hex(pub, 32)) {
		req_fail(err, "invalid_field",
		         "signing_pub must be its Ed25519 public key, 64 hex digits");
		goto bad;
	}
	if (cert != NULL && !valid_hex(cert, 32)) {
		req_fail(err, "invalid_field", "cert_sha256 must be 64 hex digits");
		goto bad;
	}
	json_object_set(out, "id", (json_t *)id);
	json_object_set_new(out, "name",
	                    name != NULL ? json_incref((json_t *)name) : json_incref((json_t *)id));
	json_object_set(out, "address", (json_t *)address);
	json_object_set_new(out, "kind",
	                    kind != NULL ? json_incref((json_t *)kind) : json_string("bank"));
	json_object_set(out, "signing_pub", (json_t *)pub);
	if (cert != NULL)
		json_object_set(out, "cert_sha256", (json_t *)cert);
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_register_rotate(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"signing_pub", "grace_days", NULL};
	const json_t *pub = json_object_get(body, "signing_pub"),
	             *grace = json_object_get(body, "grace_days");
	json_t *out = json_object();
	int64_t days = 30;

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	if (!valid_hex(pub, 32)) {
		req_fail(err, "invalid_field",
		         "signing_pub must be its Ed25519 public key, 64 hex digits");
		goto bad;
	}
	if (grace != NULL &&
	    !(json_is_integer(grace) && (days = json_integer_value(grace)) >= 0 && days <= 365) &&
	    !(json_is_string(grace) &&
	      req_parse_int(json_string_value(grace), 0, 365, &days) == 0)) {
		req_fail(err, "invalid_field", "grace_days must be 0 to 365");
		goto bad;
	}
	json_object_set(out, "signing_pub", (json_t *)pub);
	json_object_set_new(out, "grace_days", json_integer(days));
	return out;
bad:
	json_decref(out);
	return NULL;
}

/* ---- referrals between banks ------------------------------------------ */

/* What a referral may share, as --share names it: each member field, the
 * record, and contact for e-mail, phone and address together. */
static const char *const referral_fields[] = {
    "name",         "email",    "phone", "address", "skills", "needs",
    "availability", "district", "notes", "record",  NULL};

static int referral_field(const char *s)
{
	for (int i = 0; referral_fields[i] != NULL; i++)
		if (strcmp(referral_fields[i], s) == 0)
			return i;
	return -1;
}

/* Marks one name of share (or the three of contact) in seen; -1 when unknown. */
static int share_one(const char *s, size_t len, int *seen)
{
	char name[32];
	int i;

	if (len == 0 || len >= sizeof(name))
		return -1;
	memcpy(name, s, len);
	name[len] = '\0';
	if (strcmp(name, "contact") == 0) {
		seen[referral_field("email")] = seen[referral_field("phone")] =
		    seen[referral_field("address")] = 1;
		return 0;
	}
	if ((i = referral_field(name)) < 0)
		return -1;
	seen[i] = 1;
	return 0;
}

/* share: a list of names, or one text of them separated by commas. */
static int read_share(const json_t *v, int *seen, struct req_error *err)
{
	const json_t *item;
	size_t i;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		while (*s != '\0') {
			size_t n = strcspn(s, ",");
			while (n > 0 && *s == ' ')
				s++, n--;
			while (n > 0 && s[n - 1] == ' ')
				n--;
			if (share_one(s, n, seen) == -1)
				goto unknown;
			s += strcspn(s, ",");
			if (*s == ',')
				s++;
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		goto unknown;
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item) ||
		    share_one(json_string_value(item), json_string_length(item), seen) == -1)
			goto unknown;
	}
	return 0;
unknown:
	req_fail(err, "invalid_share",
	         "share names what the member agreed to share: name, email, phone, address (or "
	         "contact for all three), skills, needs, availability, district, notes, record");
	return -1;
}

json_t *req_referral(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {
	    "member",          "bank", "kind", "reason", "share", "consent", "consent_notes",
	    "idempotency_key", NULL};
	static const char *const consents[] = {"in person", "by phone", "in writing", NULL};
	const json_t *bank = json_object_get(body, "bank");
	const json_t *kind = json_object_get(body, "kind");
	const json_t *consent = json_object_get(body, "consent");
	const json_t *notes = json_object_get(body, "consent_notes");
	int seen[sizeof(referral_fields) / sizeof(referral_fields[0])] = {0};
	int64_t member;
	json_t *out, *share;
	int i;

	if (req_only_fields(body, allowed, err) == -1)
		return NULL;
	if (req_member_number(json_object_get(body, "member"), &member) == -1)
		return req_fail(err, "invalid_member_number",
		                "member must be the number of a member of this bank");
	if (!json_is_string(bank) || !req_valid_bank_id(json_string_value(bank)))
		return req_fail(err, "unknown_bank",
		                "bank must be the id of a bank, such as westminster");
	if (!json_is_string(kind) || (strcmp(json_string_value(kind), "move") != 0 &&
	                              strcmp(json_string_value(kind), "introduce") != 0))
		return req_fail(err, "invalid_kind",
		                "kind must be move (the member relocates, with their balance) or "
		                "introduce (a visiting membership beside this one)");
	if (read_share(json_object_get(body, "share"), seen, err) == -1)
		return NULL;
	if (!seen[referral_field("name")])
		return req_fail(err, "invalid_share",
		                "share must include name: the other bank makes a membership of it");
	for (i = 0; consents[i] != NULL; i++)
		if (json_is_string(consent) && strcmp(json_string_value(consent), consents[i]) == 0)
			break;
	if (consents[i] == NULL)
		return req_fail(err, "invalid_consent",
		                "consent must say how the member agreed: in person, by phone or in "
		                "writing");
	if (notes != NULL && !json_is_null(notes) && !json_is_boolean(notes))
		return req_fail(err, "invalid_consent", "consent_notes must be true or false");
	if (seen[referral_field("notes")] && !json_is_true(notes))
		return req_fail(
		    err, "notes_not_consented",
		    "notes (special needs, health) are shared only with the member's own, "
		    "explicit consent to that: consent_notes");
	out = json_pack("{sI sO sO sO sb}", "member", (json_int_t)member, "bank", bank, "kind",
	                kind, "consent", consent, "consent_notes", json_is_true(notes));
	share = json_array();
	for (i = 0; referral_fields[i] != NULL; i++)
		if (seen[i])
			json_array_append_new(share, json_string(referral_fields[i]));
	json_object_set_new(out, "share", share);
	if (req_reason_of(body, out, 0, err) == -1 || req_key_of(body, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_referral_accept(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"number", "message", NULL};
	const json_t *message = json_object_get(body, "message");
	json_t *out = json_object();

	if (body == NULL)
		return out;
	if (req_only_fields(body, allowed, err) == -1 ||
	    req_optional_member(body, "number", out, "number must be a member number, from 1",
	                        err) == -1)
		goto bad;
	if (message != NULL && !json_is_null(message) &&
	    dir_text_ok(message, "message", 500, 0, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_time_json(time_t t)
{
	char text[32];
	struct tm tm;

	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(text);
}
