/* The request bodies of intake (people referred in by a GP practice or a
 * service) and of safeguarding checks, validated into what the ledger's
 * SQL takes (src/sql/intake.sql, safeguarding.sql). */
#include "req.h"

#include <stdio.h>
#include <string.h>

static const char *const intake_reasons[] = {"isolation", "low-mood",    "long-term-condition",
                                             "carer",     "bereavement", "recently-discharged",
                                             "other",     NULL};

struct text_limit {
	const char *name;
	size_t max;
	int multiline;
	int required;
};

/* As a member's fields are held (req_member), and the referrer's. */
static const struct text_limit intake_text[] = {
    {"name", 200, 0, 1},          {"phone", 40, 0, 0},
    {"email", 254, 0, 0},         {"address", 500, 1, 0},
    {"notes", 4000, 1, 0},        {"referrer_name", 200, 0, 0},
    {"referrer_role", 100, 0, 0}, {"referrer_contact", 254, 0, 0},
};

static int reason_index(const char *s, size_t len)
{
	for (int i = 0; intake_reasons[i] != NULL; i++)
		if (strlen(intake_reasons[i]) == len && strncmp(intake_reasons[i], s, len) == 0)
			return i;
	return -1;
}

/* One reason, marked in seen; -1 when it is not on the list or is twice. */
static int mark_reason(const char *s, size_t len, int *seen)
{
	int i = reason_index(s, len);

	if (i < 0 || seen[i])
		return -1;
	seen[i] = 1;
	return 0;
}

/* reasons: a list, or one text separated by commas; into out as a list. */
static int read_reasons(const json_t *v, json_t *out, struct req_error *err)
{
	int seen[sizeof(intake_reasons) / sizeof(intake_reasons[0])] = {0};
	const json_t *item;
	json_t *list;
	size_t i;
	int any = 0;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		while (*s != '\0') {
			size_t n = strcspn(s, ",");
			const char *at = s;
			while (n > 0 && *at == ' ')
				at++, n--;
			while (n > 0 && at[n - 1] == ' ')
				n--;
			if (mark_reason(at, n, seen) == -1)
				goto bad;
			any = 1;
			s += strcspn(s, ",");
			if (*s == ',')
				s++;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item)
		{
			if (!json_is_string(item) ||
			    mark_reason(json_string_value(item), json_string_length(item), seen) ==
			        -1)
				goto bad;
			any = 1;
		}
	}
	if (!any)
		goto bad;
	list = json_array();
	for (int r = 0; intake_reasons[r] != NULL; r++)
		if (seen[r])
			json_array_append_new(list, json_string(intake_reasons[r]));
	return json_object_set_new(out, "reasons", list);
bad:
	req_fail(err, "invalid_reason",
	         "reasons must be one or more of " REQ_INTAKE_REASONS ", each once");
	return -1;
}

static int read_consent(const json_t *body, const char *key, json_t *out, struct req_error *err)
{
	const json_t *v = json_object_get(body, key);

	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		req_fail(err, "invalid_consent", "%s must be true or false", key);
		return -1;
	}
	return json_object_set_new(out, key, json_boolean(json_is_true(v)));
}

json_t *req_intake(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"org",
	                                      "name",
	                                      "phone",
	                                      "email",
	                                      "address",
	                                      "reasons",
	                                      "referrer_name",
	                                      "referrer_role",
	                                      "referrer_contact",
	                                      "notes",
	                                      "consent_contact",
	                                      "consent_outcomes",
	                                      "idempotency_key",
	                                      NULL};
	json_t *out = json_object();

	if (req_only_fields(body, allowed, err) == -1 ||
	    req_optional_member(body, "org", out,
	                        "org must be the number of the referring organisation", err) == -1)
		goto bad;
	for (size_t i = 0; i < sizeof(intake_text) / sizeof(intake_text[0]); i++) {
		const struct text_limit *t = &intake_text[i];
		const json_t *v = json_object_get(body, t->name);
		if ((v == NULL || json_is_null(v)) && !t->required)
			continue;
		if (!json_is_string(v) || (t->required && json_string_length(v) == 0) ||
		    !req_valid_text(json_string_value(v), t->max, t->multiline)) {
			req_fail(err, "invalid_field", "%s must be text of %s%zu characters",
			         t->name, t->required ? "1 to " : "at most ", t->max);
			goto bad;
		}
		json_object_set(out, t->name, (json_t *)v);
	}
	if (read_reasons(json_object_get(body, "reasons"), out, err) == -1 ||
	    read_consent(body, "consent_contact", out, err) == -1 ||
	    read_consent(body, "consent_outcomes", out, err) == -1 ||
	    req_key_of(body, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *req_intake_move(const json_t *body, const char *state, struct req_error *err)
{
	static const char *const joined[] = {"member", NULL};
	static const char *const declined[] = {"reason", NULL};
	static const char *const none[] = {NULL};
	int is_joined = strcmp(state, "joined") == 0, is_declined = strcmp(state, "declined") == 0;
	json_t *out = json_object();

	if (body != NULL && req_only_fields(body,
	                                    is_joined     ? joined
	                                    : is_declined ? declined
	                                                  : none,
	                                    err) == -1)
		goto bad;
	if (req_optional_member(body, "member", out,
	                        "member must be the number of the member the person joined as",
	                        err) == -1)
		goto bad;
	if (is_declined) {
		json_t *empty = json_object();
		int rc = req_reason_of(body != NULL ? body : empty, out, 1, err);
		json_decref(empty);
		if (rc == -1) {
			req_fail(err, "invalid_reason",
			         "a declined referral needs the person's reason, of 1 to 500 "
			         "characters");
			goto bad;
		}
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

static int check_date(const json_t *body, const char *key, int required, json_t *out,
                      struct req_error *err)
{
	const json_t *v = json_object_get(body, key);

	if ((v == NULL || json_is_null(v)) && !required)
		return 0;
	if (!json_is_string(v) || !req_valid_date(json_string_value(v))) {
		req_fail(err, "invalid_date", "%s must be a date written YYYY-MM-DD", key);
		return -1;
	}
	return json_object_set(out, key, (json_t *)v);
}

json_t *req_check(const json_t *body, struct req_error *err)
{
	static const char *const allowed[] = {"kind", "reference", "checked_on", "expires_on",
	                                      NULL};
	static const char *const kinds[] = {
	    "dbs-basic", "dbs-standard", "dbs-enhanced", "dbs-enhanced-barred", "pvg", "other",
	    NULL};
	const json_t *kind = json_object_get(body, "kind");
	const json_t *ref = json_object_get(body, "reference");
	json_t *out = json_object();
	int i;

	if (req_only_fields(body, allowed, err) == -1)
		goto bad;
	for (i = 0; kinds[i] != NULL; i++)
		if (json_is_string(kind) && strcmp(json_string_value(kind), kinds[i]) == 0)
			break;
	if (kinds[i] == NULL) {
		req_fail(err, "invalid_kind",
		         "kind must be dbs-basic, dbs-standard, dbs-enhanced, dbs-enhanced-barred, "
		         "pvg or other");
		goto bad;
	}
	json_object_set(out, "kind", (json_t *)kind);
	/* A check is recorded from its certificate, and is renewed: the
	 * reference and the day it runs out are not optional. */
	if (!json_is_string(ref) || json_string_length(ref) == 0 ||
	    !req_valid_text(json_string_value(ref), 100, 0)) {
		req_fail(err, "invalid_field",
		         "reference (the certificate's number, 1 to 100 characters) is needed");
		goto bad;
	}
	json_object_set(out, "reference", (json_t *)ref);
	if (check_date(body, "checked_on", 1, out, err) == -1 ||
	    check_date(body, "expires_on", 1, out, err) == -1)
		goto bad;
	return out;
bad:
	json_decref(out);
	return NULL;
}
