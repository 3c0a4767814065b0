/* tbctl exchange claim and tbctl claim ...: hours claimed by a member of
 * this bank from a member of another, and the claims other banks made of
 * this bank's members, which a broker approves or declines. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

static void show_claim(const json_t *c)
{
	const json_t *x = json_object_get(c, "exchange");
	const char *state = tbctl_str(c, "state");

	printf("claim %s %s: %s claims %s from %s for %s on %s\n", tbctl_str(c, "id"), state,
	       tbctl_str(c, "earner_label"),
	       tbctl_hours(json_integer_value(json_object_get(c, "minutes"))),
	       tbctl_str(c, "payer_label"), tbctl_str(c, "category"), tbctl_str(c, "performed_on"));
	if (tbctl_str(c, "message")[0] != '\0')
		printf("  message: %s\n", tbctl_str(c, "message"));
	if (tbctl_str(c, "description")[0] != '\0')
		printf("  %s\n", tbctl_str(c, "description"));
	if (strcmp(state, "open") == 0 && !json_is_true(json_object_get(c, "sent")))
		printf("  not yet sent to %s\n", tbctl_str(c, "peer"));
	if (strcmp(state, "declined") == 0) {
		printf("  declined (%s)", tbctl_str(c, "reason"));
		if (tbctl_str(c, "answer")[0] != '\0')
			printf(": %s", tbctl_str(c, "answer"));
		putchar('\n');
	}
	if (json_is_object(x)) {
		printf("  exchange %s %s", tbctl_str(x, "id"), tbctl_str(x, "state"));
		if (tbctl_str(x, "reason")[0] != '\0')
			printf(" (%s)", tbctl_str(x, "reason"));
		putchar('\n');
	}
}

static void list_header(void)
{
	printf("%-20s  %-8s  %-10s  %-22s  %-22s  %7s  %s\n", "CLAIM", "STATE", "DATE", "EARNER",
	       "PAYER", "TIME", "CATEGORY");
}

static void list_row(const json_t *c)
{
	printf("%-20s  %-8s  %-10s  %-22.22s  %-22.22s  %7s  %s\n", tbctl_str(c, "id"),
	       tbctl_str(c, "state"), tbctl_str(c, "performed_on"), tbctl_str(c, "earner_label"),
	       tbctl_str(c, "payer_label"),
	       tbctl_hours(json_integer_value(json_object_get(c, "minutes"))),
	       tbctl_str(c, "category"));
}

int tbctl_exchange_claim(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"earner", "earner"},
	    {"payer", "payer"},
	    {"hours", "hours"},
	    {"category", "category"},
	    {"description", "description"},
	    {"message", "message"},
	    {"date", "performed_on"},
	    {"key", "idempotency_key"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	rc = tbctl_send_once(t, "/v1/claims", body, show_claim);
	json_decref(body);
	return rc;
}

static int claim_list(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"state", "state"},
	    {"limit", "limit"},
	    {"cursor", "cursor"},
	    {NULL, NULL},
	};
	json_t *preset = json_pack("{ss}", "direction",
	                           tbctl_flag(&argc, argv, "--outgoing") ? "outgoing" : "incoming");
	int rc =
	    tbctl_list_command(t, argc, argv, fields, "/v1/claims", preset, list_header, list_row);

	json_decref(preset);
	return rc;
}

/* claim show|approve ID, claim decline ID --reason R */
static int claim_one(const struct tbctl *t, const char *sub, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"reason", "reason"}, {NULL, NULL}};
	json_t *body = json_object();
	char path[128];
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    !tbctl_exchange_id(argv[first]) ||
	    (strcmp(sub, "decline") == 0) != (json_object_get(body, "reason") != NULL)) {
		fprintf(stderr, "tbctl: claim %s needs one claim ID%s\n", sub,
		        strcmp(sub, "decline") == 0 ? " and --reason" : " (and no options)");
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/claims/%s", argv[first]);
		rc = tbctl_call(t, "GET", path, NULL, show_claim);
	} else {
		snprintf(path, sizeof(path), "/v1/claims/%s/%s", argv[first], sub);
		rc = tbctl_call(t, "POST", path, body, show_claim);
	}
	json_decref(body);
	return rc;
}

int tbctl_claim(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "list") == 0)
		return claim_list(t, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0 || strcmp(sub, "approve") == 0 || strcmp(sub, "decline") == 0)
		return claim_one(t, sub, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: claim needs list, show, approve or decline\n");
	return TBCTL_USAGE;
}
