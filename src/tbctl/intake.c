/* tbctl intake ...: people referred in by a GP practice or a service, from
 * receipt to joined, declined, unreachable or withdrawn; what became of
 * them, read from the ledger; and the letter back to the referrer. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <string.h>

static void print_outcomes(const json_t *o)
{
	const json_t *p, *a3 = json_object_get(o, "active_3_months"),
	                 *a6 = json_object_get(o, "active_6_months");
	size_t i;

	printf("  %-15s %s\n", "first exchange",
	       tbctl_str(o, "first_exchange")[0] ? tbctl_str(o, "first_exchange") : "none yet");
	printf("  %-15s %s at 3 months, %s at 6 months\n", "active",
	       json_is_boolean(a3) ? (json_is_true(a3) ? "yes" : "no") : "not yet known",
	       json_is_boolean(a6) ? (json_is_true(a6) ? "yes" : "no") : "not yet known");
	json_array_foreach(json_object_get(o, "periods"), i, p)
	{
		printf("  first %2lld months gave %s, received %s%s\n",
		       (long long)json_integer_value(json_object_get(p, "months")),
		       tbctl_hours(json_integer_value(json_object_get(p, "given_minutes"))),
		       tbctl_hours(json_integer_value(json_object_get(p, "received_minutes"))),
		       json_is_true(json_object_get(p, "complete")) ? "" : " (so far)");
	}
}

/* A timestamp to the minute, "2026-12-03 17:24", into buf[24]. */
static const char *when(const char *ts, char *buf)
{
	snprintf(buf, 24, "%.16s", ts);
	if (strlen(buf) > 10 && buf[10] == 'T')
		buf[10] = ' ';
	return buf;
}

static void show_intake(const json_t *r)
{
	const json_t *referrer = json_object_get(r, "referrer"), *h, *v;
	const json_t *snomed = json_object_get(r, "snomed");
	static const char *const personal[] = {"name", "phone", "email", "address", "notes"};
	size_t i;
	char at[24];

	printf("referral %lld %s%s: from %s (organisation %lld), received %s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), tbctl_str(r, "state"),
	       json_is_true(json_object_get(r, "overdue")) ? " (overdue for contact)" : "",
	       tbctl_str(r, "org_name"), (long long)json_integer_value(json_object_get(r, "org")),
	       when(tbctl_str(r, "received_at"), at));
	for (i = 0; i < sizeof(personal) / sizeof(personal[0]); i++)
		if (tbctl_str(r, personal[i])[0] != '\0')
			printf("  %-15s %s\n", personal[i], tbctl_str(r, personal[i]));
	if (tbctl_str(referrer, "name")[0] != '\0')
		printf("  %-15s %s%s%s%s%s\n", "referrer", tbctl_str(referrer, "name"),
		       tbctl_str(referrer, "role")[0] ? ", " : "", tbctl_str(referrer, "role"),
		       tbctl_str(referrer, "contact")[0] ? ", " : "",
		       tbctl_str(referrer, "contact"));
	printf("  %-15s", "reasons");
	json_array_foreach(json_object_get(r, "reasons"), i, v)
	    printf("%s%s", i ? ", " : " ", json_string_value(v));
	printf("\n  %-15s contact %s, outcomes shared %s\n", "consent",
	       json_is_true(json_object_get(r, "consent_contact")) ? "yes" : "no",
	       json_is_true(json_object_get(r, "consent_outcomes")) ? "yes" : "no");
	if (json_is_integer(json_object_get(r, "member")))
		printf("  %-15s member %lld, joined %s\n", "member",
		       (long long)json_integer_value(json_object_get(r, "member")),
		       tbctl_str(r, "joined_on"));
	if (tbctl_str(r, "declined_reason")[0] != '\0')
		printf("  %-15s %s\n", "declined", tbctl_str(r, "declined_reason"));
	if (json_is_object(snomed))
		printf("  %-15s %s |%s|\n", "SNOMED CT", tbctl_str(snomed, "code"),
		       tbctl_str(snomed, "display"));
	json_array_foreach(json_object_get(r, "history"), i, h)
	{
		printf("  %-15s %s  %-11s", i == 0 ? "history" : "", when(tbctl_str(h, "at"), at),
		       tbctl_str(h, "state"));
		if (tbctl_str(h, "by")[0] != '\0')
			printf(" by %s", tbctl_str(h, "by"));
		if (tbctl_str(h, "detail")[0] != '\0')
			printf(" (%s)", tbctl_str(h, "detail"));
		putchar('\n');
	}
	if (json_is_object(json_object_get(r, "outcomes")))
		print_outcomes(json_object_get(r, "outcomes"));
	if (json_is_true(json_object_get(r, "erased")))
		printf("  the person's details were erased\n");
}

static void show_added(const json_t *r)
{
	printf("referral %lld received from %s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), tbctl_str(r, "org_name"));
}

static void list_header(void)
{
	printf("%8s  %-11s  %-24s  %-24s  %s\n", "REFERRAL", "STATE", "PERSON", "FROM", "RECEIVED");
}

static void list_row(const json_t *r)
{
	char state[24];

	snprintf(state, sizeof(state), "%s%s", tbctl_str(r, "state"),
	         json_is_true(json_object_get(r, "overdue")) ? "!" : "");
	printf("%8lld  %-11s  %-24.24s  %-24.24s  %.10s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), state,
	       tbctl_str(r, "name")[0] ? tbctl_str(r, "name") : "-", tbctl_str(r, "org_name"),
	       tbctl_str(r, "received_at"));
}

static int intake_add(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"org", "org"},
	    {"name", "name"},
	    {"phone", "phone"},
	    {"email", "email"},
	    {"address", "address"},
	    {"reason", "reasons"},
	    {"referrer", "referrer_name"},
	    {"referrer-role", "referrer_role"},
	    {"referrer-contact", "referrer_contact"},
	    {"notes", "notes"},
	    {"key", "idempotency_key"},
	    {NULL, NULL},
	};
	int contact = tbctl_flag(&argc, argv, "--consent-contact");
	int outcomes = tbctl_flag(&argc, argv, "--consent-outcomes");
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		if (first != argc)
			fprintf(stderr,
			        "tbctl: intake add takes options only (--org N --name ...)\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	json_object_set_new(body, "consent_contact", json_boolean(contact));
	json_object_set_new(body, "consent_outcomes", json_boolean(outcomes));
	rc = tbctl_send_once(t, "/v1/intake", body, show_added);
	json_decref(body);
	return rc;
}

static int intake_list(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"state", "state"},   {"org", "org"}, {"limit", "limit"},
	    {"cursor", "cursor"}, {NULL, NULL},
	};
	json_t *preset =
	    json_pack("{ss}", "overdue", tbctl_flag(&argc, argv, "--overdue") ? "true" : "false");
	int rc =
	    tbctl_list_command(t, argc, argv, fields, "/v1/intake", preset, list_header, list_row);

	json_decref(preset);
	return rc;
}

static void show_letter(const json_t *l)
{
	fputs(tbctl_str(l, "text"), stdout);
}

/* intake show|letter|contacted|unreachable|withdrawn|erase ID,
 * joined ID [--member N], declined ID --reason R */
static int intake_one(const struct tbctl *t, const char *sub, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"member", "member"}, {"reason", "reason"}, {NULL, NULL}};
	int joined = strcmp(sub, "joined") == 0, declined = strcmp(sub, "declined") == 0;
	json_t *body = json_object();
	char path[96];
	int64_t id;
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    req_parse_int(argv[first], 1, INT64_MAX, &id) == -1 ||
	    declined != (json_object_get(body, "reason") != NULL) ||
	    (!joined && json_object_get(body, "member") != NULL)) {
		fprintf(stderr, "tbctl: intake %s needs one referral ID%s\n", sub,
		        declined ? " and --reason R (the person's own reason)"
		        : joined ? " (and --member N to match an existing member)"
		                 : " and no options");
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/intake/%lld", (long long)id);
		rc = tbctl_call(t, "GET", path, NULL, show_intake);
	} else if (strcmp(sub, "letter") == 0) {
		snprintf(path, sizeof(path), "/v1/intake/%lld/letter", (long long)id);
		rc = tbctl_call(t, "GET", path, NULL, show_letter);
	} else {
		snprintf(path, sizeof(path), "/v1/intake/%lld/%s", (long long)id, sub);
		rc = tbctl_call(t, "POST", path, json_object_size(body) ? body : NULL, show_intake);
	}
	json_decref(body);
	return rc;
}

int tbctl_intake(const struct tbctl *t, int argc, char **argv)
{
	static const char *const one[] = {"show",      "letter",   "contacted",
	                                  "joined",    "declined", "unreachable",
	                                  "withdrawn", "erase",    NULL};
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return intake_add(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return intake_list(t, argc - 1, argv + 1);
	for (int i = 0; one[i] != NULL; i++)
		if (strcmp(sub, one[i]) == 0)
			return intake_one(t, sub, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: intake needs add, list, show, contacted, joined, declined, "
	                "unreachable, withdrawn, letter or erase\n");
	return TBCTL_USAGE;
}
