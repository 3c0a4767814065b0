/* tbctl referral ...: a member referred to another bank (a move, or an
 * introduction) with their consent, and the referrals other banks made to
 * this one, which a coordinator accepts or declines. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

static const char *member_text(const json_t *r, char *buf, size_t len)
{
	const json_t *ours = json_object_get(r, "member");
	const json_t *theirs = json_object_get(r, "remote_member");
	int referring = strcmp(tbctl_str(r, "side"), "referring") == 0;

	if (referring)
		snprintf(buf, len, "member %lld", (long long)json_integer_value(ours));
	else
		snprintf(buf, len, "%s member %lld", tbctl_str(r, "peer"),
		         (long long)json_integer_value(theirs));
	return buf;
}

static void show_referral(const json_t *r)
{
	const json_t *consent = json_object_get(r, "consent");
	const json_t *details = json_object_get(r, "details");
	const json_t *record = json_object_get(r, "record");
	const json_t *v;
	const char *key, *state = tbctl_str(r, "state");
	int referring = strcmp(tbctl_str(r, "side"), "referring") == 0;
	char who[96];
	size_t i;

	printf("referral %s %s: %s %s %s %s\n", tbctl_str(r, "id"), state,
	       strcmp(tbctl_str(r, "kind"), "move") == 0 ? "move of" : "introduction of",
	       member_text(r, who, sizeof(who)), referring ? "to" : "from", tbctl_str(r, "peer"));
	if (tbctl_str(r, "reason")[0] != '\0')
		printf("  %-13s %s\n", "reason", tbctl_str(r, "reason"));
	if (strcmp(tbctl_str(r, "kind"), "move") == 0)
		printf("  %-13s %s\n", "balance",
		       tbctl_hours(json_integer_value(json_object_get(r, "balance_minutes"))));
	printf("  %-13s", "shared");
	json_array_foreach(json_object_get(r, "shared"), i, v)
	    printf("%s%s", i ? ", " : " ", json_string_value(v));
	printf("\n  %-13s %s, recorded by %s at %s%s\n", "consent", tbctl_str(consent, "how"),
	       tbctl_str(consent, "recorded_by"), tbctl_str(consent, "at"),
	       json_is_true(json_object_get(consent, "notes")) ? " (notes too)" : "");
	json_object_foreach((json_t *)details, key, v)
	    printf("  %-13s %s\n", key, json_string_value(v));
	if (json_is_object(record))
		printf(
		    "  %-13s joined %s; gave %lld exchanges (%s), received %lld (%s)\n", "record",
		    tbctl_str(record, "joined_on"),
		    (long long)json_integer_value(json_object_get(record, "exchanges_given")),
		    tbctl_hours(json_integer_value(json_object_get(record, "minutes_given"))),
		    (long long)json_integer_value(json_object_get(record, "exchanges_received")),
		    tbctl_hours(json_integer_value(json_object_get(record, "minutes_received"))));
	if (strcmp(state, "open") == 0 && !referring)
		printf("  %-13s %s\n", "expires", tbctl_str(r, "expires_at"));
	if (strcmp(state, "open") == 0 && referring && tbctl_str(r, "withdraw_asked_at")[0] != '\0')
		printf("  withdrawal sent to %s at %s\n", tbctl_str(r, "peer"),
		       tbctl_str(r, "withdraw_asked_at"));
	if (strcmp(state, "accepted") == 0 &&
	    json_is_integer(json_object_get(r, "remote_member")) && referring)
		printf("  accepted: member %lld at %s\n",
		       (long long)json_integer_value(json_object_get(r, "remote_member")),
		       tbctl_str(r, "peer"));
	if (strcmp(state, "accepted") == 0 && !referring)
		printf("  accepted as member %lld here\n",
		       (long long)json_integer_value(json_object_get(r, "member")));
	if (strcmp(state, "refused") == 0)
		printf("  refused on arrival (%s)\n", tbctl_str(r, "refusal"));
	if (tbctl_str(r, "answer")[0] != '\0')
		printf("  %-13s %s\n", "answer", tbctl_str(r, "answer"));
	if (tbctl_str(r, "decided_at")[0] != '\0')
		printf("  %-13s %s by %s\n", "decided", tbctl_str(r, "decided_at"),
		       tbctl_str(r, "decided_by"));
	if (tbctl_str(r, "erased_at")[0] != '\0') {
		if (referring)
			printf("  erased at %s: confirmed in its signed message %lld\n",
			       tbctl_str(r, "peer"),
			       (long long)json_integer_value(
			           json_object_get(r, "erased_confirmed_in")));
		else
			printf("  erased here at %s\n", tbctl_str(r, "erased_at"));
	}
}

static void list_header(void)
{
	printf("%-20s  %-9s  %-9s  %-24s  %-12s  %s\n", "REFERRAL", "KIND", "STATE", "MEMBER",
	       "BANK", "SENT");
}

static void list_row(const json_t *r)
{
	char who[96];

	printf("%-20s  %-9s  %-9s  %-24.24s  %-12s  %.10s\n", tbctl_str(r, "id"),
	       tbctl_str(r, "kind"), tbctl_str(r, "state"), member_text(r, who, sizeof(who)),
	       tbctl_str(r, "peer"), tbctl_str(r, "created_at"));
}

static int referral_send(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"member", "member"},       {"to", "bank"},     {"kind", "kind"},
	    {"reason", "reason"},       {"share", "share"}, {"consent", "consent"},
	    {"key", "idempotency_key"}, {NULL, NULL},
	};
	int notes = tbctl_flag(&argc, argv, "--consent-notes");
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (notes)
		json_object_set_new(body, "consent_notes", json_true());
	rc = tbctl_send_once(t, "/v1/referrals", body, show_referral);
	json_decref(body);
	return rc;
}

static int referral_list(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"state", "state"},
	    {"limit", "limit"},
	    {"cursor", "cursor"},
	    {NULL, NULL},
	};
	json_t *preset = json_pack("{ss}", "direction",
	                           tbctl_flag(&argc, argv, "--outgoing") ? "outgoing" : "incoming");
	int rc = tbctl_list_command(t, argc, argv, fields, "/v1/referrals", preset, list_header,
	                            list_row);

	json_decref(preset);
	return rc;
}

/* referral show|withdraw ID, accept ID [--number N] [--message M],
 * decline ID --reason R */
static int referral_one(const struct tbctl *t, const char *sub, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"reason", "reason"}, {"number", "number"}, {"message", "message"}, {NULL, NULL}};
	json_t *body = json_object();
	int accept = strcmp(sub, "accept") == 0, decline = strcmp(sub, "decline") == 0;
	char path[160];
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    !tbctl_exchange_id(argv[first]) ||
	    decline != (json_object_get(body, "reason") != NULL) ||
	    (!accept && (json_object_get(body, "number") || json_object_get(body, "message")))) {
		fprintf(stderr, "tbctl: referral %s needs one referral ID%s\n", sub,
		        decline  ? " and --reason"
		        : accept ? " (and --number N, --message M if wanted)"
		                 : " (and no options)");
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/referrals/%s", argv[first]);
		rc = tbctl_call(t, "GET", path, NULL, show_referral);
	} else {
		snprintf(path, sizeof(path), "/v1/referrals/%s/%s", argv[first], sub);
		rc = tbctl_call(t, "POST", path, json_object_size(body) ? body : NULL,
		                show_referral);
	}
	json_decref(body);
	return rc;
}

int tbctl_referral(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "send") == 0)
		return referral_send(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return referral_list(t, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0 || strcmp(sub, "accept") == 0 || strcmp(sub, "decline") == 0 ||
	    strcmp(sub, "withdraw") == 0)
		return referral_one(t, sub, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: referral needs send, list, show, accept, decline or withdraw\n");
	return TBCTL_USAGE;
}
