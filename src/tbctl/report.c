/* tbctl report ...: figures for funders, as a table, CSV or JSON. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

enum col_type { COL_TEXT, COL_COUNT, COL_MINUTES };

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

static const struct report reports[] = {
    {"categories", "/v1/reports/categories", categories},
    {"active", "/v1/reports/active", active},
    {"new-members", "/v1/reports/new-members", new_members},
    {"referrals", "/v1/reports/referrals", referrals},
    {NULL, NULL, NULL},
};

static void print_table(const struct report *rep, const json_t *body)
{
	const json_t *row;
	size_t i;

	if (strcmp(rep->name, "active") == 0)
		printf("active in the %lld days to %s\n",
		       (long long)json_integer_value(json_object_get(body, "days")),
		       tbctl_str(body, "as_of"));
	else
		printf("%s, %s to %s\n", rep->name, tbctl_str(body, "from"), tbctl_str(body, "to"));
	for (const struct column *c = rep->cols; c->key; c++)
		printf(c->type == COL_TEXT ? "%-24s  " : "%22s  ", c->title);
	putchar('\n');
	json_array_foreach(json_object_get(body, "rows"), i, row)
	{
		for (const struct column *c = rep->cols; c->key; c++) {
			json_int_t v = json_integer_value(json_object_get(row, c->key));
			if (c->type == COL_TEXT)
				printf("%-24.24s  ", tbctl_str(row, c->key));
			else if (c->type == COL_COUNT)
				printf("%22lld  ", (long long)v);
			else
				printf("%22s  ", tbctl_hours(v));
		}
		putchar('\n');
	}
}

static void print_csv(const struct report *rep, const json_t *body)
{
	const json_t *row;
	size_t i;

	for (const struct column *c = rep->cols; c->key; c++)
		tbctl_csv_text(stdout, c->title, c[1].key == NULL);
	json_array_foreach(json_object_get(body, "rows"), i, row)
	{
		for (const struct column *c = rep->cols; c->key; c++) {
			int last = c[1].key == NULL;
			json_int_t v = json_integer_value(json_object_get(row, c->key));
			if (c->type == COL_TEXT)
				tbctl_csv_text(stdout, tbctl_str(row, c->key), last);
			else if (c->type == COL_COUNT)
				printf("%lld%s", (long long)v, last ? "\r\n" : ",");
			else
				tbctl_csv_hours(stdout, v, last);
		}
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

static void print_network(enum tbctl_format format, const json_t *body)
{
	const json_t *hours = json_object_get(body, "hours"), *row, *rule = json_object_get(body, "rule");
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
		printf("activity report of %s for %s (%s), as it leaves the bank\n",
		       tbctl_str(body, "bank"), tbctl_str(body, "month"),
		       json_is_true(json_object_get(body, "complete")) ? "the month closed"
		                                                       : "the month to date");
		printf("  counts of 1 to %lld people are suppressed (*), others rounded to %lld\n",
		       (long long)json_integer_value(json_object_get(rule, "suppress_below")) - 1,
		       (long long)json_integer_value(json_object_get(rule, "round_to")));
		printf("  %-11s %-34s %8s %10s\n", "SECTION", "NAME", "PEOPLE", "HOURS");
	}
	for (size_t k = 0; k < 2; k++)
		for (size_t c = 0; c < 4; c++) {
			json_t *cell = json_object();
			json_object_set(cell, "members",
			                json_object_get(json_object_get(json_object_get(body, "members"),
			                                                kinds[k]),
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
	json_array_foreach(json_object_get(body, "referrals"), i, row)
	{
		snprintf(label, sizeof(label), "%s (received %s)", tbctl_str(row, "kind"),
		         count_text(json_object_get(row, "received"), buf, sizeof(buf)));
		network_cell(format, "referrals", label, row);
	}
	json_array_foreach(json_object_get(body, "clearing"), i, row)
	{
		json_t *cell = json_pack("{s:O}", "minutes", json_object_get(row, "position_minutes"));
		snprintf(label, sizeof(label), "position with %s (%lld in flight)",
		         tbctl_str(row, "bank"),
		         (long long)json_integer_value(json_object_get(row, "in_flight")));
		network_cell(format, "clearing", label, cell);
		json_decref(cell);
	}
}

/* tbctl report network [--month M]: the month's report for the national
 * body, as this bank sends it. */
static int report_network(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"month", "month"}, {"format", "format"}, {NULL, NULL},
	};
	json_t *query = json_object();
	struct tbctl_reply reply;
	enum tbctl_format format;
	int first, rc = TBCTL_USAGE;

	/* argv[0] is "network". */
	if (tbctl_fields(argc, argv, fields, query, &first) == -1 || first != argc ||
	    tbctl_format(t->json ? "json" : json_string_value(json_object_get(query, "format")),
	                 &format) == -1)
		goto done;
	json_object_del(query, "format");
	if (tbctl_get(t, "/v1/reports/network", query, NULL, &reply) == -1 ||
	    reply.status >= 300) {
		rc = tbctl_fail(&reply);
		goto done;
	}
	if (format == FORMAT_JSON) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_network(format, reply.body);
	}
	json_decref(reply.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}

int tbctl_report(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"from", "from"},   {"to", "to"},         {"month", "month"}, {"days", "days"},
	    {"as-of", "as_of"}, {"format", "format"}, {NULL, NULL},
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
		fprintf(stderr, "tbctl: report needs categories, active, new-members, referrals "
		                "or network\n");
		goto done;
	}
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
	} else if (format == FORMAT_CSV) {
		print_csv(rep, reply.body);
	} else {
		print_table(rep, reply.body);
	}
	json_decref(reply.body);
	rc = TBCTL_OK;
done:
	json_decref(query);
	return rc;
}
