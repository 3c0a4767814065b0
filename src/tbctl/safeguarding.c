/* tbctl member checks|check-add, care ... and todo: the safeguarding checks
 * brokers carry for members, the exchanges of members who need extra care,
 * and everything waiting for a coordinator, in one place. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_row(const json_t *c)
{
	const json_t *days = json_object_get(c, "days_left");
	char left[32] = "";

	if (json_is_integer(days))
		snprintf(left, sizeof(left), json_integer_value(days) < 0 ? "expired" : "%lld days",
		         (long long)json_integer_value(days));
	printf("%8lld  %-20s  %-16s  %-10s  %-10s  %-8s  %s\n",
	       (long long)json_integer_value(json_object_get(c, "member")), tbctl_str(c, "kind"),
	       tbctl_str(c, "reference")[0] ? tbctl_str(c, "reference") : "-",
	       tbctl_str(c, "checked_on"),
	       tbctl_str(c, "expires_on")[0] ? tbctl_str(c, "expires_on") : "-",
	       json_is_true(json_object_get(c, "valid")) ? "valid" : "not valid", left);
}

static void check_header(void)
{
	printf("%8s  %-20s  %-16s  %-10s  %-10s  %-8s  %s\n", "MEMBER", "KIND", "REFERENCE",
	       "CHECKED", "EXPIRES", "STATE", "LEFT");
}

static void show_checks(const json_t *body)
{
	const json_t *c, *o;
	size_t i;

	if (json_is_integer(json_object_get(body, "days")))
		printf("checks running out within %lld days, or run out:\n",
		       (long long)json_integer_value(json_object_get(body, "days")));
	else
		printf("member %lld: %s%s\n",
		       (long long)json_integer_value(json_object_get(body, "member")),
		       json_is_true(json_object_get(body, "valid")) ? "holds a valid check"
		                                                    : "holds no valid check",
		       json_is_true(json_object_get(body, "needs_care")) ? "; needs extra care"
		                                                         : "");
	check_header();
	json_array_foreach(json_object_get(body, "items"), i, c) check_row(c);
	json_array_foreach(json_object_get(body, "overrides"), i, o)
	{
		printf("override of %s by %s at %s: %s\n", tbctl_str(o, "category"),
		       tbctl_str(o, "by"), tbctl_str(o, "at"), tbctl_str(o, "reason"));
	}
}

static void show_check(const json_t *c)
{
	printf("check %lld recorded for member %lld: %s, checked %s, %s\n",
	       (long long)json_integer_value(json_object_get(c, "id")),
	       (long long)json_integer_value(json_object_get(c, "member")), tbctl_str(c, "kind"),
	       tbctl_str(c, "checked_on"),
	       tbctl_str(c, "expires_on")[0] ? tbctl_str(c, "expires_on") : "no expiry");
}

/* --expiring 30d or 30: days. -1 when it is neither. */
static int days_of(const char *s, int64_t *days)
{
	char buf[16];
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n + 1);
	if (buf[n - 1] == 'd')
		buf[n - 1] = '\0';
	return req_parse_int(buf, 0, 3660, days);
}

/* member checks NUMBER | member checks --expiring 30d */
int tbctl_member_checks(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"expiring", "expiring"}, {NULL, NULL}};
	json_t *opts = json_object();
	char path[64];
	int64_t n;
	int first, rc = TBCTL_USAGE;
	const char *expiring;

	if (tbctl_fields(argc, argv, fields, opts, &first) == -1)
		goto done;
	expiring = json_string_value(json_object_get(opts, "expiring"));
	if (expiring != NULL && first == argc && days_of(expiring, &n) == 0) {
		snprintf(path, sizeof(path), "/v1/checks?days=%lld", (long long)n);
	} else if (expiring == NULL && first == argc - 1 &&
	           req_parse_int(argv[first], 1, 999999999, &n) == 0) {
		snprintf(path, sizeof(path), "/v1/members/%lld/checks", (long long)n);
	} else {
		fprintf(stderr, "tbctl: member checks needs a member NUMBER, or --expiring DAYS "
		                "(such as 30d)\n");
		goto done;
	}
	rc = tbctl_call(t, "GET", path, NULL, show_checks);
done:
	json_decref(opts);
	return rc;
}

/* member check-add NUMBER --kind K [--reference R] --checked D [--expires D] */
int tbctl_member_check_add(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"kind", "kind"},
	    {"reference", "reference"},
	    {"checked", "checked_on"},
	    {"expires", "expires_on"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	char path[64];
	int64_t n;
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    req_parse_int(argv[first], 1, 999999999, &n) == -1) {
		fprintf(stderr, "tbctl: member check-add needs a member NUMBER, --kind and "
		                "--checked YYYY-MM-DD\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/members/%lld/checks", (long long)n);
	rc = tbctl_call(t, "POST", path, body, show_check);
	json_decref(body);
	return rc;
}

static void show_review(const json_t *body)
{
	const json_t *x;
	size_t i;

	if (json_array_size(json_object_get(body, "items")) == 0) {
		printf("no exchanges of members who need extra care are waiting for review\n");
		return;
	}
	printf("%8s  %8s  %-10s  %-22s  %-22s  %7s  %s\n", "MEMBER", "EXCHANGE", "DATE", "PAYER",
	       "EARNER", "TIME", "CATEGORY");
	json_array_foreach(json_object_get(body, "items"), i, x)
	{
		printf("%8lld  %8lld  %-10s  %-22.22s  %-22.22s  %7s  %s\n",
		       (long long)json_integer_value(json_object_get(x, "care_member")),
		       (long long)json_integer_value(json_object_get(x, "id")),
		       tbctl_str(x, "performed_on"), tbctl_str(x, "payer_label"),
		       tbctl_str(x, "earner_label"),
		       tbctl_hours(json_integer_value(json_object_get(x, "minutes"))),
		       tbctl_str(x, "category"));
	}
}

static void show_reviewed(const json_t *body)
{
	printf("member %lld's exchanges reviewed by %s\n",
	       (long long)json_integer_value(json_object_get(body, "member")),
	       tbctl_str(body, "reviewed_by"));
}

/* care review | care reviewed NUMBER [--up-to EXCHANGE] */
int tbctl_care(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"up-to", "up_to"}, {NULL, NULL}};
	const char *sub = argc > 1 ? argv[1] : "";
	json_t *body = json_object();
	char path[64];
	int64_t n, last = 0;
	int first, rc = TBCTL_USAGE;

	if (strcmp(sub, "review") == 0 && argc == 2) {
		json_decref(body);
		return tbctl_call(t, "GET", "/v1/care-review", NULL, show_review);
	}
	if (strcmp(sub, "reviewed") == 0 &&
	    tbctl_fields(argc - 1, argv + 1, fields, body, &first) == 0 && first == argc - 2 &&
	    req_parse_int(argv[first + 1], 1, 999999999, &n) == 0 &&
	    (json_object_get(body, "up_to") == NULL ||
	     req_parse_int(tbctl_str(body, "up_to"), 1, INT64_MAX, &last) == 0)) {
		snprintf(path, sizeof(path), "/v1/members/%lld/care-reviewed", (long long)n);
		if (last != 0)
			json_object_set_new(body, "up_to", json_integer((json_int_t)last));
		rc = tbctl_call(t, "POST", path, json_object_size(body) ? body : NULL,
		                show_reviewed);
	} else {
		fprintf(stderr,
		        "tbctl: care needs review, or reviewed NUMBER [--up-to EXCHANGE]\n");
	}
	json_decref(body);
	return rc;
}

/* One section of the to-do: its title and count, then a line per item. */
static void todo_section(const char *title, const json_t *items, void (*line)(const json_t *item))
{
	const json_t *item;
	size_t i;

	printf("%s: %zu\n", title, json_array_size(items));
	json_array_foreach(items, i, item) line(item);
}

static void intake_line(const json_t *i)
{
	printf("  referral %lld from organisation %lld, %s, received %.10s\n",
	       (long long)json_integer_value(json_object_get(i, "id")),
	       (long long)json_integer_value(json_object_get(i, "org")),
	       tbctl_str(i, "state")[0] ? tbctl_str(i, "state") : "received",
	       tbctl_str(i, "received_at"));
}

static void claim_line(const json_t *c)
{
	printf("  claim %s from %s, %s\n", tbctl_str(c, "claim"), tbctl_str(c, "bank"),
	       tbctl_hours(json_integer_value(json_object_get(c, "minutes"))));
}

static void contact_line(const json_t *c)
{
	printf("  contact %s from %s for %s\n", tbctl_str(c, "contact"), tbctl_str(c, "bank"),
	       tbctl_str(c, "handle"));
}

static void referral_line(const json_t *r)
{
	printf("  referral %s from %s (%s)\n", tbctl_str(r, "referral"), tbctl_str(r, "bank"),
	       tbctl_str(r, "kind"));
}

static void item_line(const json_t *d)
{
	printf("  %s %lld (%s)\n", tbctl_str(d, "kind"),
	       (long long)json_integer_value(json_object_get(d, "id")), tbctl_str(d, "handle"));
}

static void floor_line(const json_t *m)
{
	printf("  member %lld: balance %s, pending %s, floor %s\n",
	       (long long)json_integer_value(json_object_get(m, "member")),
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(m, "pending_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(m, "floor_minutes"))));
}

static void check_line(const json_t *c)
{
	printf("  member %lld: %s %s %s\n",
	       (long long)json_integer_value(json_object_get(c, "member")), tbctl_str(c, "kind"),
	       json_is_true(json_object_get(c, "expired")) ? "ran out on" : "runs out on",
	       tbctl_str(c, "expires_on"));
}

static void care_line(const json_t *m)
{
	printf("  member %lld: last exchange %s\n",
	       (long long)json_integer_value(json_object_get(m, "member")),
	       tbctl_str(m, "last_exchange")[0] ? tbctl_str(m, "last_exchange") : "never");
}

static void peer_line(const json_t *p)
{
	printf("  %s: %s\n", tbctl_str(p, "peer"), tbctl_str(p, "why"));
}

/* The peers to look at, from GET /v1/peers: down (no link) or diverged. */
static json_t *peers_to_see(const json_t *peers)
{
	json_t *out = json_array();
	const json_t *p;
	size_t i;

	json_array_foreach(json_object_get(peers, "peers"), i, p)
	{
		const char *why = NULL;
		const char *state = tbctl_str(p, "state");
		if (json_is_true(json_object_get(p, "diverged")))
			why = "books diverged";
		else if (strcmp(state, "established") != 0 && strcmp(state, "removed") != 0)
			why = "link down";
		if (why != NULL)
			json_array_append_new(
			    out, json_pack("{ssss}", "peer", tbctl_str(p, "peer"), "why", why));
	}
	return out;
}

int tbctl_todo(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"near", "near"}, {NULL, NULL}};
	struct tbctl_reply reply, peers;
	json_t *query = json_object(), *see;
	const json_t *b, *waiting;
	int first, rc;

	if (tbctl_fields(argc, argv, fields, query, &first) == -1 || first != argc) {
		fprintf(stderr, "tbctl: todo takes only --near HOURS\n");
		json_decref(query);
		return TBCTL_USAGE;
	}
	rc = tbctl_get(t, "/v1/todo", query, NULL, &reply);
	json_decref(query);
	if (rc == -1 || reply.status >= 300 || !json_is_object(reply.body))
		return tbctl_fail(&reply);
	if (tbctl_http(t, "GET", "/v1/peers", NULL, &peers) == -1 || peers.status >= 300) {
		json_decref(reply.body);
		return tbctl_fail(&peers);
	}
	b = reply.body;
	see = peers_to_see(peers.body);
	json_object_set_new(reply.body, "peers", see);
	if (t->json) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		todo_section("referrals overdue for contact", json_object_get(b, "intake_overdue"),
		             intake_line);
		todo_section("referrals waiting", json_object_get(b, "intake_waiting"),
		             intake_line);
		todo_section("claims to approve", json_object_get(b, "claims"), claim_line);
		todo_section("contact requests to answer", json_object_get(b, "contacts"),
		             contact_line);
		todo_section("members referred by other banks", json_object_get(b, "referrals"),
		             referral_line);
		waiting = json_object_get(b, "items_waiting");
		if (json_is_array(waiting))
			todo_section("shared items waiting for review", waiting, item_line);
		todo_section("members at or near their floor", json_object_get(b, "near_floor"),
		             floor_line);
		todo_section("safeguarding checks running out",
		             json_object_get(b, "checks_expiring"), check_line);
		todo_section("members needing care with no exchange in 30 days",
		             json_object_get(b, "care_quiet"), care_line);
		printf("exchanges of members needing care to review: %lld\n",
		       (long long)json_integer_value(json_object_get(b, "care_review")));
		todo_section("peers down or diverged", see, peer_line);
	}
	json_decref(reply.body);
	json_decref(peers.body);
	return TBCTL_OK;
}
