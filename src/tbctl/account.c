/* tbctl balance, history, audit: what the books say. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <string.h>

static int one_number(const char *cmd, const char *text, int64_t *n)
{
	if (text == NULL || req_parse_int(text, 1, 999999999, n) == -1) {
		fprintf(stderr, "tbctl: %s needs a member NUMBER\n", cmd);
		return -1;
	}
	return 0;
}

static void show_balance(const json_t *b)
{
	printf("member %lld (%s): balance %s, pending %s, floor %s, available %s\n",
	       (long long)json_integer_value(json_object_get(b, "number")), tbctl_str(b, "name"),
	       tbctl_hours(json_integer_value(json_object_get(b, "balance_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(b, "pending_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(b, "floor_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(b, "available_minutes"))));
}

int tbctl_balance(const struct tbctl *t, int argc, char **argv)
{
	char path[64];
	int64_t n;

	if (one_number(argv[0], argc == 2 ? argv[1] : NULL, &n) == -1)
		return TBCTL_USAGE;
	snprintf(path, sizeof(path), "/v1/members/%lld/balance", (long long)n);
	return tbctl_call(t, "GET", path, NULL, show_balance);
}

static void history_header(void)
{
	printf("%-10s  %8s  %-28s  %-14s  %7s  %7s  %8s\n", "DATE", "EXCHANGE", "WITH", "CATEGORY",
	       "IN", "OUT", "BALANCE");
}

static void history_row(const json_t *l)
{
	json_int_t m = json_integer_value(json_object_get(l, "minutes"));

	char with[64];

	if (tbctl_str(l, "other_name")[0] != '\0')
		snprintf(with, sizeof(with), "%s (%s)", tbctl_str(l, "other_party"),
		         tbctl_str(l, "other_name"));
	else
		snprintf(with, sizeof(with), "%s", tbctl_str(l, "other_party"));
	printf("%-10s  %8lld  %-28.28s  %-14.14s  %7s  %7s  %8s\n", tbctl_str(l, "performed_on"),
	       (long long)json_integer_value(json_object_get(l, "exchange")), with,
	       tbctl_str(l, "category"), m > 0 ? tbctl_hours(m) : "", m < 0 ? tbctl_hours(-m) : "",
	       tbctl_hours(json_integer_value(json_object_get(l, "balance_after"))));
}

int tbctl_history(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"limit", "limit"},
	    {"cursor", "cursor"},
	    {NULL, NULL},
	};
	int all = tbctl_flag(&argc, argv, "--all"), first, rc;
	json_t *query = json_object();
	char path[64];
	int64_t n;

	if (tbctl_fields(argc, argv, fields, query, &first) == -1 ||
	    one_number(argv[0], first == argc - 1 ? argv[first] : NULL, &n) == -1) {
		json_decref(query);
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/members/%lld/history", (long long)n);
	rc = tbctl_list(t, path, query, all, history_header, history_row);
	json_decref(query);
	return rc;
}

/* tbctl audit --federation: our clearing position with each peer against
 * the peer's signed checkpoint of its own. */
static int audit_federation(const struct tbctl *t)
{
	struct tbctl_reply reply;
	const json_t *p;
	int diverged = 0;
	size_t i;

	if (tbctl_http(t, "GET", "/v1/audit/federation", NULL, &reply) == -1 || reply.status >= 300)
		return tbctl_fail(&reply);
	json_array_foreach(json_object_get(reply.body, "peers"), i, p)
	{
		json_int_t position = json_integer_value(json_object_get(p, "position"));
		json_int_t in_flight = json_integer_value(json_object_get(p, "in_flight"));
		const json_t *theirs = json_object_get(p, "peer_clearing");
		json_int_t diff = position + json_integer_value(theirs);
		const char *verdict;

		if (json_is_true(json_object_get(p, "diverged")))
			verdict = "diverged";
		else if (!json_is_integer(theirs))
			verdict = "no checkpoint yet";
		else if (diff == 0)
			verdict = "agree";
		else if ((diff <= in_flight && -diff <= in_flight) ||
		         json_is_true(json_object_get(p, "checkpoint_stale")))
			verdict = "in flight";
		else
			verdict = "diverged";
		diverged |= strcmp(verdict, "diverged") == 0;
		json_object_set_new((json_t *)p, "verdict", json_string(verdict));
		json_object_set_new((json_t *)p, "difference", json_integer(diff));
		if (t->json)
			continue;
		if (strcmp(verdict, "in flight") == 0)
			printf("%s: differ by in-flight %lld minutes (ours %s, theirs %s)\n",
			       tbctl_str(p, "peer"), (long long)(diff < 0 ? -diff : diff),
			       tbctl_hours(position), tbctl_hours(json_integer_value(theirs)));
		else
			printf("%s: %s (ours %s, theirs %s)\n", tbctl_str(p, "peer"), verdict,
			       tbctl_hours(position),
			       json_is_integer(theirs) ? tbctl_hours(json_integer_value(theirs))
			                               : "?");
	}
	json_object_set_new(reply.body, "ok", json_boolean(!diverged));
	if (t->json) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("federation audit: %s\n", diverged ? "DIVERGED" : "ok");
	}
	json_decref(reply.body);
	return diverged ? TBCTL_REFUSED : TBCTL_OK;
}

int tbctl_audit(const struct tbctl *t, int argc, char **argv)
{
	struct tbctl_reply reply;
	const json_t *check, *f;
	size_t i, j;
	int ok;

	if (argc == 2 && strcmp(argv[1], "--federation") == 0)
		return audit_federation(t);
	if (argc != 1) {
		fprintf(stderr, "tbctl: audit takes no arguments, or --federation\n");
		return TBCTL_USAGE;
	}
	if (tbctl_http(t, "GET", "/v1/audit", NULL, &reply) == -1 || reply.status >= 300)
		return tbctl_fail(&reply);
	ok = json_is_true(json_object_get(reply.body, "ok"));
	if (t->json) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		json_array_foreach(json_object_get(reply.body, "checks"), i, check)
		{
			printf("invariant %lld %s: %s\n  %s\n",
			       (long long)json_integer_value(json_object_get(check, "invariant")),
			       json_is_true(json_object_get(check, "ok")) ? "ok" : "FAILED",
			       tbctl_str(check, "name"), tbctl_str(check, "detail"));
			json_array_foreach(json_object_get(check, "failing"), j, f)
			    printf("  failing: %s\n", json_string_value(f));
		}
		printf("audit: %s\n", ok ? "ok" : "FAILED");
	}
	json_decref(reply.body);
	return ok ? TBCTL_OK : TBCTL_REFUSED;
}
