/* tbctl report ...: figures for funders, as a table, CSV or JSON. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

enum col_type { COL_TEXT, COL_COUNT, COL_MINUTES, COL_FLAG, COL_DAYS };

struct column {
	const char *key;
	const char *title;
	enum col_type type;
};

struct report {
	const char *name;
	const char *path;
	const struct column *cols;
};

static const struct column categories[] = {
    {"month", "month", COL_TEXT},
    {"category", "category", COL_TEXT},
    {"exchanges", "exchanges", COL_COUNT},
    {"minutes", "hours", COL_MINUTES},
    {NULL, NULL, 0},
};
static const struct column active[] = {
    {"active_members", "active_members", COL_COUNT},
    {"registered_members", "registered_members", COL_COUNT},
    {"active_organisations", "active_organisations", COL_COUNT},
    {NULL, NULL, 0},
};
static const struct column new_members[] = {
    {"month", "month", COL_TEXT},
    {"new_members", "new_members", COL_COUNT},
    {"new_organisations", "new_organisations", COL_COUNT},
    {NULL, NULL, 0},
};
static const struct column referrals[] = {
    {"source", "referral_source", COL_TEXT},
    {"members", "members", COL_COUNT},
    {"new_members", "new_members", COL_COUNT},
    {"minutes_given", "hours_given", COL_MINUTES},
    {"minutes_received", "hours_received", COL_MINUTES},
    {NULL, NULL, 0},
};

/* The commissioners' report on people referred in: a row per referring
 * organisation, per reason, and in all. */
static const struct column intake_cols[] = {
    {"by", "by", COL_TEXT},
    {"name", "name", COL_TEXT},
    {"received", "received", COL_COUNT},
    {"contacted_in_time", "contacted_in_time", COL_COUNT},
    {"joined", "joined", COL_COUNT},
    {"declined", "declined", COL_COUNT},
    {"unreachable", "unreachable", COL_COUNT},
    {"withdrawn", "withdrawn", COL_COUNT},
    {"median_days_to_contact", "days_to_contact", COL_DAYS},
    {"median_days_to_first_exchange", "days_to_exchange", COL_DAYS},
    {"active_3_months", "active_3m", COL_COUNT},
    {"active_6_months", "active_6m", COL_COUNT},
    {"given_minutes", "hours_given", COL_MINUTES},
    {"received_minutes", "hours_received", COL_MINUTES},
    {NULL, NULL, 0},
};

static const struct report reports[] = {
    {"categories", "/v1/reports/categories", categories},
    {"active", "/v1/reports/active", active},
    {"new-members", "/v1/reports/new-members", new_members},
    {"referrals", "/v1/reports/referrals", referrals},
    {"intake", "/v1/reports/intake", intake_cols},
    {NULL, NULL, NULL},
};

/* The intake report's sections as one table: organisations, reasons, and
 * the total, each row saying which it is. New reference. */
static json_t *intake_rows(const json_t *body)
{
	json_t *rows = json_array(), *row;
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(body, "organisations"), i, r)
	{
		row = json_deep_copy(r);
		json_object_set_new(row, "by", json_string("organisation"));
		json_array_append_new(rows, row);
	}
	json_array_foreach(json_object_get(body, "reasons"), i, r)
	{
		row = json_deep_copy(r);
		json_object_set_new(row, "by", json_string("reason"));
		json_object_set(row, "name", json_object_get(r, "reason"));
		json_array_append_new(rows, row);
	}
	row = json_deep_copy(json_object_get(body, "total"));
	json_object_set_new(row, "by", json_string("total"));
	json_object_set_new(row, "name", json_string("all referrals"));
	json_array_append_new(rows, row);
	return rows;
}

/* One value as a table cell: text, a count, hours, yes/no. A figure that
 * is null (suppressed by disclosure control, or a total with none to sum)
 * is "*" in a table and empty in CSV. */
static const char *cell_text(const struct column *c, const json_t *v, int csv, char *buf,
                             size_t len)
{
	if (c->type == COL_TEXT)
		return json_is_string(v) ? json_string_value(v) : "";
	if (c->type == COL_FLAG)
		return json_is_true(v) ? "yes" : "no";
	if (c->type == COL_DAYS) {
		if (!json_is_number(v))
			return csv ? "" : "-";
		snprintf(buf, len, "%.1f", json_number_value(v));
		return buf;
	}
	if (!json_is_integer(v))
		return csv ? "" : "*";
	if (c->type == COL_MINUTES)
		return tbctl_hours(json_integer_value(v));
	snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	return buf;
}

/* A column's width in a table: text 24, figures as wide as their title
 * (at least 8). */
static int width(const struct column *c)
{
	int n = (int)strlen(c->title);

	return c->type == COL_TEXT ? 24 : n > 8 ? n : 8;
}

/* Rows of a report, as a table under a header line or as CSV. */
static void print_rows(enum tbctl_format format, const struct column *cols, const json_t *rows)
{
	const json_t *row;
	char buf[32];
	size_t i;
	int csv = format == FORMAT_CSV;

	for (const struct column *c = cols; c->key; c++)
		if (csv)
			tbctl_csv_text(stdout, c->title, c[1].key == NULL);
		else
			printf(c->type == COL_TEXT ? "%-*s  " : "%*s  ", width(c), c->title);
	if (!csv)
		putchar('\n');
	json_array_foreach(rows, i, row)
	{
		for (const struct column *c = cols; c->key; c++) {
			const char *v =
			    cell_text(c, json_object_get(row, c->key), csv, buf, sizeof(buf));
			if (csv)
				tbctl_csv_text(stdout, v, c[1].key == NULL);
			else if (c->type == COL_TEXT)
				printf("%-*.*s  ", width(c), width(c), v);
			else
				printf("%*s  ", width(c), v);
		}
		if (!csv)
			putchar('\n');
	}
}

/* ---- the national body's report ---------------------------------------- */

/* A count as it left the bank: suppressed counts are null. */
static const char *count_text(const json_t *v, char *buf, size_t len)
{
	if (!json_is_integer(v))
		return "*";
	snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	return buf;
}

static const char *minutes_text(const json_t *v)
{
	return json_is_integer(v) ? tbctl_hours(json_integer_value(v)) : "*";
}

/* One cell: a label, its people and its hours (blank where it has none). */
static void network_cell(enum tbctl_format format, const char *section, const char *label,
                         const json_t *cell)
{
	char buf[24];
	const json_t *members = json_object_get(cell, "members");
	const char *people = members != NULL ? count_text(members, buf, sizeof(buf)) : "";
	const json_t *minutes = json_object_get(cell, "minutes");
	const char *hours = minutes != NULL ? minutes_text(minutes) : "";

	if (format == FORMAT_CSV) {
		tbctl_csv_text(stdout, section, 0);
		tbctl_csv_text(stdout, label, 0);
		tbctl_csv_text(stdout, people, 0);
		tbctl_csv_text(stdout, hours, 1);
	} else {
		printf("  %-11s %-34.34s %8s %10s\n", section, label, people, hours);
	}
}

static void network_cells(enum tbctl_format format, const json_t *body, const char *section,
                          const char *key)
{
	const json_t *cell;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(body, "hours"), section), i, cell)
	    network_cell(format, section, tbctl_str(cell, key), cell);
}

static void print_network(enum tbctl_format format, const char *bank, const json_t *body)
{
	const json_t *hours = json_object_get(body, "hours"), *row,
	             *rule = json_object_get(body, "rule");
	static const char *const kinds[] = {"person", "organisation"};
	static const char *const counts[] = {"total", "active", "new", "left"};
	char buf[24], label[64];
	size_t i;

	if (format == FORMAT_CSV) {
		tbctl_csv_text(stdout, "section", 0);
		tbctl_csv_text(stdout, "name", 0);
		tbctl_csv_text(stdout, "people", 0);
		tbctl_csv_text(stdout, "hours", 1);
	} else {
		printf("activity report of %s for %s (%s)\n", bank, tbctl_str(body, "month"),
		       json_is_true(json_object_get(body, "final")) ? "the month closed"
		                                                    : "the month to date");
		printf("  counts of 1 to %lld people are suppressed (*), others rounded to %lld\n",
		       (long long)json_integer_value(json_object_get(rule, "suppress_below")) - 1,
		       (long long)json_integer_value(json_object_get(rule, "round_to")));
		printf("  %-11s %-34s %8s %10s\n", "SECTION", "NAME", "PEOPLE", "HOURS");
	}
	for (size_t k = 0; k < 2; k++)
		for (size_t c = 0; c < 4; c++) {
			json_t *cell = json_object();
			json_object_set(
			    cell, "members",
			    json_object_get(
			        json_object_get(json_object_get(body, "members"), kinds[k]),
			        counts[c]));
			snprintf(label, sizeof(label), "%s %s", kinds[k], counts[c]);
			network_cell(format, "members", label, cell);
			json_decref(cell);
		}
	network_cell(format, "hours", "within the bank", json_object_get(hours, "within"));
	network_cell(format, "hours", "grants", json_object_get(hours, "grants"));
	json_array_foreach(json_object_get(hours, "peers"), i, row)
	{
		snprintf(label, sizeof(label), "given to %s", tbctl_str(row, "bank"));
		network_cell(format, "peers", label, json_object_get(row, "given"));
		snprintf(label, sizeof(label), "received from %s", tbctl_str(row, "bank"));
		network_cell(format, "peers", label, json_object_get(row, "received"));
	}
	network_cells(format, body, "categories", "category");
	network_cells(format, body, "areas", "district");
	/* Moves between banks, apart from hours: their minutes are the balances
	 * in credit carried (the debts carried, owed_minutes, are in --json). */
	if (json_is_object(json_object_get(body, "moves"))) {
		const json_t *moves = json_object_get(body, "moves");
		network_cell(format, "moves", "moved in", json_object_get(moves, "moved_in"));
		network_cell(format, "moves", "moved out", json_object_get(moves, "moved_out"));
		network_cell(format, "moves", "visiting memberships begun",
		             json_object_get(moves, "visiting"));
	}
	/* People referred in by GP practices and services, by what happened
	 * to their referral in the month. */
	if (json_is_object(json_object_get(body, "intake"))) {
		static const char *const steps[] = {
		    "received",         "contacted",      "joined",           "declined",
		    "unreachable",      "withdrawn",      "reached_3_months", "active_3_months",
		    "reached_6_months", "active_6_months"};
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			json_t *cell =
			    json_pack("{s:O?}", "members",
			              json_object_get(json_object_get(body, "intake"), steps[k]));
			network_cell(format, "intake", steps[k], cell);
			json_decref(cell);
		}
	}
	json_array_foreach(json_object_get(body, "referrals"), i, row)
	{
		snprintf(label, sizeof(label), "%s (received %s)", tbctl_str(row, "kind"),
		         count_text(json_object_get(row, "received"), buf, sizeof(buf)));
		network_cell(format, "referrals", label, row);
	}
	json_array_foreach(json_object_get(body, "clearing"), i, row)
	{
		json_t *cell =
		    json_pack("{s:O}", "minutes", json_object_get(row, "position_minutes"));
		snprintf(label, sizeof(label), "position with %s (%lld in flight)",
		         tbctl_str(row, "bank"),
		         (long long)json_integer_value(json_object_get(row, "in_flight")));
		network_cell(format, "clearing", label, cell);
		json_decref(cell);
	}
}

/* What was sent of the month, and what the figures are now when they differ. */
static void print_sent(enum tbctl_format format, const json_t *body)
{
	const json_t *report = json_object_get(body, "report"), *changed, *sent, *row;
	const char *bank = tbctl_str(body, "bank");
	size_t i;

	changed = json_object_get(body, "changed_since");
	sent = json_object_get(body, "sent");
	if (format == FORMAT_CSV) {
		print_network(format, bank, json_is_object(report) ? report : changed);
		return;
	}
	json_array_foreach(sent, i, row)
	{
		const json_t *answer = json_object_get(row, "answer");
		printf("sent to %s: revision %lld%s at %s, %s\n", tbctl_str(row, "peer"),
		       (long long)json_integer_value(json_object_get(row, "revision")),
		       json_is_true(json_object_get(row, "final")) ? " (final)" : "",
		       tbctl_str(row, "made_at"),
		       json_is_string(answer) ? (strcmp(json_string_value(answer), "accepted") == 0
		                                     ? "accepted"
		                                     : json_string_value(answer))
		                              : "not answered yet");
	}
	if (json_is_object(report)) {
		printf("as it was sent:\n");
		print_network(format, bank, report);
	}
	if (json_is_object(changed)) {
		if (json_is_object(report))
			printf(
			    "\nthe figures have changed since; the next report (within the hour, "
			    "or --send) will be:\n");
		else if (json_array_size(json_object_get(body, "national")) == 0)
			printf("no national body is linked to this bank; the report it would be "
			       "sent:\n");
		else
			printf("not sent yet; the report will be:\n");
		print_network(format, bank, changed);
	}
}

/* tbctl report network [--month M] [--send]: the month's report for the
 * national body, as this bank sent it; --send sends it now. */
static int report_network(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"month", "month"},
	    {"format", "format"},
	    {NULL, NULL},
	};
	json_t *query = json_object();
	struct tbctl_reply reply;
	enum tbctl_format format;
	int first, rc = TBCTL_USAGE, send = tbctl_flag(&argc, argv, "--send");

	/* argv[0] is "network". */
	if (tbctl_fields(argc, argv, fields, query, &first) == -1 || first != argc ||
	    tbctl_format(t->json ? "json" : json_string_value(json_object_get(query, "format")),
	                 &format) == -1)
		goto done;
	json_object_del(query, "format");
	if (send) {
		const json_t *month = json_object_get(query, "month");
		char path[64];
		if (month != NULL && strlen(json_string_value(month)) > 7) {
			fprintf(stderr, "tbctl: --month must be YYYY-MM\n");
			goto done;
		}
		snprintf(path, sizeof(path), "/v1/reports/network/send%s%s",
		         month != NULL ? "?month=" : "",
		         month != NULL ? json_string_value(month) : "");
		if (tbctl_http(t, "POST", path, NULL, &reply) == -1 || reply.status >= 300) {
			rc = tbctl_fail(&reply);
			goto done;
		}
		json_decref(reply.body);
	}
	if (tbctl_get(t, "/v1/reports/network", query, NULL, &reply) == -1 || reply.status >= 300) {
		rc = tbctl_fail(&reply);
		goto done;
	}
	if (format == FORMAT_JSON) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_sent(format, reply.body);
	}
	json_decref(reply.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}

/* ---- tbctl network ...: the national body's view ------------------------ */

static const struct column summary_cols[] = {
    {"month", "month", COL_TEXT},
    {"banks", "banks", COL_COUNT},
    {"members", "members", COL_COUNT},
    {"active", "active", COL_COUNT},
    {"new", "new", COL_COUNT},
    {"left", "left", COL_COUNT},
    {"within_minutes", "hours_within", COL_MINUTES},
    {"between_minutes", "hours_between", COL_MINUTES},
    {"grant_minutes", "hours_granted", COL_MINUTES},
    {"referrals", "referrals", COL_COUNT},
    {"moved_in", "moved_in", COL_COUNT},
    {"moved_out", "moved_out", COL_COUNT},
    {"partial", "partial", COL_FLAG},
    {NULL, NULL, 0},
};
static const struct column summary_bank_cols[] = {
    {"bank", "bank", COL_TEXT},
    {"revision", "revision", COL_COUNT},
    {"final", "final", COL_FLAG},
    {"members", "members", COL_COUNT},
    {"active", "active", COL_COUNT},
    {"new", "new", COL_COUNT},
    {"left", "left", COL_COUNT},
    {"within_minutes", "hours_within", COL_MINUTES},
    {"between_minutes", "hours_between", COL_MINUTES},
    {"grant_minutes", "hours_granted", COL_MINUTES},
    {"referrals", "referrals", COL_COUNT},
    {"moved_in", "moved_in", COL_COUNT},
    {"moved_out", "moved_out", COL_COUNT},
    {NULL, NULL, 0},
};
static const struct column bank_cols[] = {
    {"bank", "bank", COL_TEXT},
    {"state", "link", COL_TEXT},
    {"last_report_at", "last_report", COL_TEXT},
    {"report_age_seconds", "age_seconds", COL_COUNT},
    {"month", "month", COL_TEXT},
    {"revision", "revision", COL_COUNT},
    {"members", "members", COL_COUNT},
    {"active", "active", COL_COUNT},
    {"minutes", "hours_this_month", COL_MINUTES},
    {NULL, NULL, 0},
};
static const struct column category_cols[] = {
    {"category", "category", COL_TEXT},
    {"minutes", "hours", COL_MINUTES},
    {"banks", "banks", COL_COUNT},
    {"partial", "partial", COL_FLAG},
    {NULL, NULL, 0},
};
static const struct column area_cols[] = {
    {"district", "district", COL_TEXT},
    {"minutes", "hours", COL_MINUTES},
    {"banks", "banks", COL_COUNT},
    {"partial", "partial", COL_FLAG},
    {NULL, NULL, 0},
};
static const struct column book_cols[] = {
    {"a", "bank", COL_TEXT},
    {"b", "with", COL_TEXT},
    {"state", "state", COL_TEXT},
    {"a_position_minutes", "position", COL_MINUTES},
    {"b_position_minutes", "its_position", COL_MINUTES},
    {"in_flight", "in_flight", COL_COUNT},
    {NULL, NULL, 0},
};

/* Each bank with its link (from /v1/peers) and this month's figures. */
static json_t *bank_rows(const json_t *banks, const json_t *peers)
{
	json_t *rows = json_array();
	const json_t *b, *p;
	size_t i, k;

	json_array_foreach(banks, i, b)
	{
		json_t *row = json_deep_copy(b), *f = json_object_get(b, "this_month");
		json_int_t within = json_integer_value(json_object_get(f, "within_minutes"));
		const json_t *between = json_object_get(f, "between_minutes");
		json_object_set(row, "members", json_object_get(f, "members"));
		json_object_set(row, "active", json_object_get(f, "active"));
		if (json_is_integer(json_object_get(f, "within_minutes")))
			json_object_set_new(row, "minutes",
			                    json_integer(within + json_integer_value(between)));
		json_array_foreach(json_object_get(peers, "peers"), k,
		                   p) if (strcmp(tbctl_str(p, "peer"), tbctl_str(b, "bank")) == 0)
		    json_object_set(row, "state", json_object_get(p, "state"));
		json_array_append_new(rows, row);
	}
	return rows;
}

/* tbctl network report BANK [--month M]: one bank's report as received,
 * with every revision. */
static int network_report(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"month", "month"},
	    {"format", "format"},
	    {NULL, NULL},
	};
	json_t *query = json_object();
	struct tbctl_reply reply;
	enum tbctl_format format;
	const json_t *row, *report;
	char path[128];
	size_t i;
	int first = 0, rc = TBCTL_USAGE;

	/* argv[0] is "report". */
	if (tbctl_fields(argc, argv, fields, query, &first) == -1 ||
	    tbctl_format(t->json ? "json" : json_string_value(json_object_get(query, "format")),
	                 &format) == -1)
		goto done;
	if (first != argc - 1) {
		fprintf(stderr, "tbctl: network report needs one bank\n");
		goto done;
	}
	json_object_del(query, "format");
	if (strlen(argv[first]) == 0 || strlen(argv[first]) > 32 ||
	    strspn(argv[first], "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(argv[first])) {
		fprintf(stderr, "tbctl: a bank id is lower-case letters, digits and '-'\n");
		goto done;
	}
	snprintf(path, sizeof(path), "/v1/network/banks/%s/report", argv[first]);
	if (tbctl_get(t, path, query, NULL, &reply) == -1 || reply.status >= 300) {
		rc = tbctl_fail(&reply);
		goto done;
	}
	report = json_object_get(reply.body, "report");
	if (format == FORMAT_JSON) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else if (!json_is_object(report)) {
		if (format == FORMAT_TEXT)
			printf("no report from %s for %s\n", tbctl_str(reply.body, "bank"),
			       tbctl_str(reply.body, "month"));
	} else {
		if (format == FORMAT_TEXT)
			json_array_foreach(json_object_get(reply.body, "revisions"), i, row)
			    printf("revision %lld%s received at %s\n",
			           (long long)json_integer_value(json_object_get(row, "revision")),
			           json_is_true(json_object_get(row, "final")) ? " (final)" : "",
			           tbctl_str(row, "received_at"));
		print_network(format, tbctl_str(reply.body, "bank"), report);
	}
	json_decref(reply.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}

/* tbctl network summary|banks|categories|areas|books: the network as its
 * banks' reports show it, at the national body; network report BANK: one
 * bank's. */
int tbctl_network(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"month", "month"}, {"from", "from"}, {"to", "to"}, {"format", "format"}, {NULL, NULL},
	};
	static const struct {
		const char *name, *path, *rows;
		const struct column *cols;
	} views[] = {
	    {"summary", "/v1/network/summary", "months", summary_cols},
	    {"banks", "/v1/network/banks", NULL, bank_cols},
	    {"categories", "/v1/network/categories", "rows", category_cols},
	    {"areas", "/v1/network/areas", "rows", area_cols},
	    {"books", "/v1/network/books", "pairs", book_cols},
	};
	const char *name = argc > 1 ? argv[1] : "";
	json_t *query = json_object(), *rows = NULL;
	struct tbctl_reply reply, peers = {0};
	enum tbctl_format format;
	size_t v = 0;
	int first, rc = TBCTL_USAGE;

	if (strcmp(name, "report") == 0) {
		json_decref(query);
		return network_report(t, argc - 1, argv + 1);
	}
	while (v < sizeof(views) / sizeof(views[0]) && strcmp(views[v].name, name) != 0)
		v++;
	if (v == sizeof(views) / sizeof(views[0])) {
		fprintf(
		    stderr,
		    "tbctl: network needs summary, banks, categories, areas, books or report\n");
		goto done;
	}
	if (tbctl_fields(argc - 1, argv + 1, fields, query, &first) == -1 || first != argc - 1 ||
	    tbctl_format(t->json ? "json" : json_string_value(json_object_get(query, "format")),
	                 &format) == -1)
		goto done;
	json_object_del(query, "format");
	if (tbctl_get(t, views[v].path, query, NULL, &reply) == -1 || reply.status >= 300) {
		rc = tbctl_fail(&reply);
		goto done;
	}
	if (views[v].rows == NULL) {
		if (tbctl_get(t, "/v1/peers", NULL, NULL, &peers) == -1 || peers.status >= 300) {
			json_decref(reply.body);
			rc = tbctl_fail(&peers);
			goto done;
		}
		rows = bank_rows(reply.body, peers.body);
	} else {
		rows = json_incref(json_object_get(reply.body, views[v].rows));
	}
	if (format == FORMAT_JSON) {
		json_dumpf(views[v].rows == NULL ? rows : reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		if (format == FORMAT_TEXT && views[v].rows != NULL)
			printf("%s of the network, %s%s%s\n", name,
			       json_is_string(json_object_get(reply.body, "month"))
			           ? tbctl_str(reply.body, "month")
			           : tbctl_str(reply.body, "from"),
			       json_is_string(json_object_get(reply.body, "to")) ? " to " : "",
			       tbctl_str(reply.body, "to"));
		const json_t *by_bank = json_object_get(reply.body, "banks");
		if (strcmp(name, "summary") == 0 && json_is_array(by_bank) &&
		    format == FORMAT_CSV) {
			/* One table: a row for each bank, and the network's. */
			json_t *all = json_deep_copy(by_bank),
			       *total = json_deep_copy(json_array_get(rows, 0));
			json_object_set_new(total, "bank", json_string("network"));
			json_array_append_new(all, total);
			print_rows(format, summary_bank_cols, all);
			json_decref(all);
		} else {
			print_rows(format, views[v].cols, rows);
		}
		if (strcmp(name, "summary") == 0 && json_is_array(by_bank) &&
		    format == FORMAT_TEXT) {
			printf("\nby bank:\n");
			print_rows(format, summary_bank_cols, by_bank);
		}
		if (format == FORMAT_TEXT && strcmp(name, "books") == 0)
			printf(
			    "\n%lld pairs diverged; the network's positions sum to %s\n",
			    (long long)json_integer_value(json_object_get(reply.body, "diverged")),
			    tbctl_hours(json_integer_value(
			        json_object_get(reply.body, "network_minutes"))));
	}
	json_decref(rows);
	json_decref(reply.body);
	json_decref(peers.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}

int tbctl_report(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"from", "from"},   {"to", "to"},   {"month", "month"},   {"days", "days"},
	    {"as-of", "as_of"}, {"org", "org"}, {"format", "format"}, {NULL, NULL},
	};
	const char *name = argc > 1 ? argv[1] : "";
	const struct report *rep = reports;
	json_t *query = json_object(), *month;
	struct tbctl_reply reply;
	enum tbctl_format format;
	char from[11], to[11];
	int first, rc = TBCTL_USAGE;

	if (strcmp(name, "network") == 0) {
		json_decref(query);
		return report_network(t, argc - 1, argv + 1);
	}
	while (rep->name != NULL && strcmp(rep->name, name) != 0)
		rep++;
	if (rep->name == NULL) {
		fprintf(stderr, "tbctl: report needs categories, active, new-members, referrals, "
		                "intake or network\n");
		goto done;
	}
	if (tbctl_flag(&argc, argv, "--internal"))
		json_object_set_new(query, "internal", json_string("true"));
	if (tbctl_fields(argc - 1, argv + 1, fields, query, &first) == -1 || first != argc - 1)
		goto done;
	if (tbctl_format(t->json ? "json" : json_string_value(json_object_get(query, "format")),
	                 &format) == -1)
		goto done;
	json_object_del(query, "format");
	month = json_object_get(query, "month");
	if (month != NULL) {
		if (tbctl_month(json_string_value(month), from, to) == -1) {
			fprintf(stderr, "tbctl: --month must be YYYY-MM\n");
			goto done;
		}
		json_object_set_new(query, "from", json_string(from));
		json_object_set_new(query, "to", json_string(to));
		json_object_del(query, "month");
	}
	if (tbctl_get(t, rep->path, query, NULL, &reply) == -1 || reply.status >= 300) {
		rc = tbctl_fail(&reply);
		goto done;
	}
	if (format == FORMAT_JSON) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		if (format == FORMAT_TEXT && strcmp(rep->name, "active") == 0)
			printf("active in the %lld days to %s\n",
			       (long long)json_integer_value(json_object_get(reply.body, "days")),
			       tbctl_str(reply.body, "as_of"));
		else if (format == FORMAT_TEXT &&
		         strcmp(tbctl_str(reply.body, "from"), "1900-01-01") == 0 &&
		         strcmp(tbctl_str(reply.body, "to"), "9999-12-31") == 0)
			printf("%s, all time\n", rep->name);
		else if (format == FORMAT_TEXT)
			printf("%s, %s to %s\n", rep->name, tbctl_str(reply.body, "from"),
			       tbctl_str(reply.body, "to"));
		if (strcmp(rep->name, "intake") == 0) {
			json_t *rows = intake_rows(reply.body);
			if (format == FORMAT_TEXT)
				printf("%s\n",
				       json_is_true(json_object_get(reply.body, "disclosed"))
				           ? "counts of 1 to 7 people are suppressed (*), others "
				             "rounded to 5, as for the national body"
				           : "internal: exact counts, for this bank only");
			print_rows(format, rep->cols, rows);
			json_decref(rows);
		} else {
			print_rows(format, rep->cols, json_object_get(reply.body, "rows"));
		}
	}
	json_decref(reply.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}
