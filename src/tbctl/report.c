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

	while (rep->name != NULL && strcmp(rep->name, name) != 0)
		rep++;
	if (rep->name == NULL) {
		fprintf(stderr,
		        "tbctl: report needs categories, active, new-members or referrals\n");
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
