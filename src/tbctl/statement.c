/* tbctl statement, statements: a member's statement for a period, as a
 * printable page, CSV for a spreadsheet, or JSON. */
#include "tbctl.h"

#include "req.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static void text_line(FILE *out, const char *date, const char *with, const char *category,
                      const char *description, const char *in, const char *outs,
                      const char *balance)
{
	fprintf(out, "%-10s  %-28.28s  %-14.14s  %-26.26s  %7s  %7s  %8s\n", date, with, category,
	        description, in, outs, balance);
}

static void print_text(FILE *out, const json_t *st)
{
	const json_t *m = json_object_get(st, "member"), *bank = json_object_get(st, "bank"), *l;
	json_int_t minutes;
	size_t i;

	fprintf(out, "%s\n\n", tbctl_str(bank, "name"));
	fprintf(out, "Time statement for %s (%s %lld)\n", tbctl_str(m, "name"),
	        strcmp(tbctl_str(m, "kind"), "organisation") == 0 ? "organisation" : "member",
	        (long long)json_integer_value(json_object_get(m, "number")));
	if (tbctl_str(m, "address")[0] != '\0')
		fprintf(out, "%s\n", tbctl_str(m, "address"));
	fprintf(out, "\nPeriod: %s to %s\n\n", tbctl_str(st, "from"), tbctl_str(st, "to"));
	text_line(out, "Date", "With", "Category", "Description", "In", "Out", "Balance");
	text_line(out, "", "", "", "Opening balance", "", "",
	          tbctl_hours(json_integer_value(json_object_get(st, "opening_minutes"))));
	json_array_foreach(json_object_get(st, "lines"), i, l)
	{
		minutes = json_integer_value(json_object_get(l, "minutes"));
		text_line(out, tbctl_str(l, "date"), tbctl_str(l, "other_party"),
		          tbctl_str(l, "category"), tbctl_str(l, "description"),
		          minutes > 0 ? tbctl_hours(minutes) : "",
		          minutes < 0 ? tbctl_hours(-minutes) : "",
		          tbctl_hours(json_integer_value(json_object_get(l, "balance_minutes"))));
	}
	text_line(out, "", "", "", "Closing balance", "", "",
	          tbctl_hours(json_integer_value(json_object_get(st, "closing_minutes"))));
	fprintf(out, "\nTotal in: %s   Total out: %s\n",
	        tbctl_hours(json_integer_value(json_object_get(st, "in_minutes"))),
	        tbctl_hours(json_integer_value(json_object_get(st, "out_minutes"))));
	fprintf(out, "One hour given earns one time credit. Thank you for your time.\n");
}

static void print_csv(FILE *out, const json_t *st)
{
	const json_t *l;
	size_t i;

	fputs("date,other_party,category,description,hours_in,hours_out,balance_hours\r\n", out);
	fputs(",,,Opening balance,,,", out);
	tbctl_csv_hours(out, json_integer_value(json_object_get(st, "opening_minutes")), 1);
	json_array_foreach(json_object_get(st, "lines"), i, l)
	{
		json_int_t minutes = json_integer_value(json_object_get(l, "minutes"));
		tbctl_csv_text(out, tbctl_str(l, "date"), 0);
		tbctl_csv_text(out, tbctl_str(l, "other_party"), 0);
		tbctl_csv_text(out, tbctl_str(l, "category"), 0);
		tbctl_csv_text(out, tbctl_str(l, "description"), 0);
		if (minutes > 0)
			tbctl_csv_hours(out, minutes, 0);
		else
			fputc(',', out);
		if (minutes < 0)
			tbctl_csv_hours(out, -minutes, 0);
		else
			fputc(',', out);
		tbctl_csv_hours(out, json_integer_value(json_object_get(l, "balance_minutes")), 1);
	}
	fputs(",,,Closing balance,,,", out);
	tbctl_csv_hours(out, json_integer_value(json_object_get(st, "closing_minutes")), 1);
}

static void print_statement(FILE *out, const json_t *st, enum tbctl_format format)
{
	if (format == FORMAT_TEXT)
		print_text(out, st);
	else if (format == FORMAT_CSV)
		print_csv(out, st);
	else {
		json_dumpf(st, out, JSON_INDENT(2));
		fputc('\n', out);
	}
}

/* The period from --month, or from --from and --to; 0 or -1 printed. */
static int period_of(const json_t *opts, char *from, char *to)
{
	const char *month = tbctl_str(opts, "month");

	if (month[0] != '\0') {
		if (json_object_get(opts, "from") != NULL || json_object_get(opts, "to") != NULL ||
		    tbctl_month(month, from, to) == -1) {
			fprintf(stderr, "tbctl: give --month YYYY-MM, or --from and --to dates\n");
			return -1;
		}
		return 0;
	}
	if (!req_valid_date(tbctl_str(opts, "from")) || !req_valid_date(tbctl_str(opts, "to"))) {
		fprintf(stderr, "tbctl: give --from and --to as YYYY-MM-DD, or --month YYYY-MM\n");
		return -1;
	}
	snprintf(from, 11, "%s", tbctl_str(opts, "from"));
	snprintf(to, 11, "%s", tbctl_str(opts, "to"));
	return 0;
}

static int fetch(const struct tbctl *t, long long number, const char *from, const char *to,
                 struct tbctl_reply *reply)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/members/%lld/statement?from=%s&to=%s", number, from, to);
	if (tbctl_http(t, "GET", path, NULL, reply) == -1 || reply->status >= 300)
		return tbctl_fail(reply);
	return TBCTL_OK;
}

static const struct tbctl_field statement_fields[] = {
    {"from", "from"},     {"to", "to"},   {"month", "month"},
    {"format", "format"}, {"out", "out"}, {NULL, NULL},
};

int tbctl_statement(const struct tbctl *t, int argc, char **argv)
{
	json_t *opts = json_object();
	struct tbctl_reply reply;
	enum tbctl_format format;
	char from[11], to[11];
	int64_t number;
	int first, rc = TBCTL_USAGE;

	if (tbctl_fields(argc, argv, statement_fields, opts, &first) == -1)
		goto done;
	if (first != argc - 1 || req_parse_int(argv[first], 1, 999999999, &number) == -1) {
		fprintf(stderr, "tbctl: statement needs one member NUMBER\n");
		goto done;
	}
	if (period_of(opts, from, to) == -1 ||
	    tbctl_format(t->json ? "json" : json_string_value(json_object_get(opts, "format")),
	                 &format) == -1)
		goto done;
	rc = fetch(t, (long long)number, from, to, &reply);
	if (rc == TBCTL_OK) {
		print_statement(stdout, reply.body, format);
		json_decref(reply.body);
	}
done:
	json_decref(opts);
	return rc;
}

/* Writes one member's statement into dir; 0 or an exit code. */
static int write_one(const struct tbctl *t, const char *dir, const char *month, long long number,
                     const char *from, const char *to, enum tbctl_format format)
{
	static const char *const ext[] = {"txt", "csv", "json"};
	struct tbctl_reply reply;
	char path[4096];
	FILE *out;
	int fd, rc = fetch(t, number, from, to, &reply);

	if (rc != TBCTL_OK)
		return rc;
	snprintf(path, sizeof(path), "%s/statement-%s-%lld.%s", dir, month, number, ext[format]);
	/* A statement holds a member's name and dealings: a new file only the
	 * user can read, never one a link points at. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	out = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (out == NULL) {
		fprintf(stderr, "tbctl: cannot write %s: %s%s\n", path, strerror(errno),
		        errno == EEXIST ? " (remove it, or give another --out)" : "");
		if (fd >= 0)
			close(fd);
		json_decref(reply.body);
		return TBCTL_REFUSED;
	}
	print_statement(out, reply.body, format);
	json_decref(reply.body);
	return fclose(out) == 0 ? TBCTL_OK : TBCTL_REFUSED;
}

/* mkdir -p: statements hold members' addresses, so only the user may read. */
static int make_dirs(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

int tbctl_statements(const struct tbctl *t, int argc, char **argv)
{
	json_t *opts = json_object(), *m;
	struct tbctl_reply reply;
	enum tbctl_format format;
	char from[11], to[11], cursor[32] = "", path[128];
	const char *dir, *month;
	int first, rc = TBCTL_USAGE, written = 0;
	size_t i;

	if (tbctl_fields(argc, argv, statement_fields, opts, &first) == -1 || first != argc)
		goto done;
	month = tbctl_str(opts, "month");
	dir = tbctl_str(opts, "out");
	if (month[0] == '\0' || dir[0] == '\0' || tbctl_month(month, from, to) == -1) {
		fprintf(stderr, "tbctl: statements needs --month YYYY-MM and --out DIR\n");
		goto done;
	}
	if (tbctl_format(json_string_value(json_object_get(opts, "format")), &format) == -1)
		goto done;
	if (make_dirs(dir) == -1) {
		fprintf(stderr, "tbctl: cannot make %s: %s\n", dir, strerror(errno));
		rc = TBCTL_REFUSED;
		goto done;
	}
	/* Every active member, page by page. */
	for (;;) {
		snprintf(path, sizeof(path), "/v1/members?status=active&limit=500%s%s",
		         cursor[0] ? "&cursor=" : "", cursor);
		if (tbctl_http(t, "GET", path, NULL, &reply) == -1 || reply.status >= 300) {
			rc = tbctl_fail(&reply);
			goto done;
		}
		json_array_foreach(json_object_get(reply.body, "items"), i, m)
		{
			rc = write_one(t, dir, month,
			               (long long)json_integer_value(json_object_get(m, "number")),
			               from, to, format);
			if (rc != TBCTL_OK) {
				json_decref(reply.body);
				goto done;
			}
			written++;
		}
		snprintf(cursor, sizeof(cursor), "%s", tbctl_str(reply.body, "next_cursor"));
		json_decref(reply.body);
		if (cursor[0] == '\0')
			break;
	}
	printf("wrote %d statements for %s to %s\n", written, month, dir);
	rc = TBCTL_OK;
done:
	json_decref(opts);
	return rc;
}
