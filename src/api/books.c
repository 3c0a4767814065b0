/* The admin API's statements and reports for funders: read-only views of
 * the ledger, one SQL call each. Reports carry counts and hours only, never
 * a member's details. */
#include "internal.h"

#include "req.h"

#include <string.h>
#include <time.h>

void api_statement(struct api_req *r)
{
	char num[24], from[11], to[11];

	if (api_query_period(r, NULL, NULL, from, to) == -1)
		return;
	const char *params[5] = {API_I64(num, r->id), from, to, api_bank_id(r->api),
	                         api_bank_name(r->api)};
	api_sql(r, "SELECT tb_statement($1::bigint, $2::date, $3::date, $4, $5)::text", 5, params);
}

/* A report over a period that defaults to all time. */
static void period_report(struct api_req *r, const char *sql)
{
	char from[11], to[11];

	if (api_query_period(r, ALL_FROM, ALL_TO, from, to) == -1)
		return;
	const char *params[2] = {from, to};
	api_sql(r, sql, 2, params);
}

void api_report_categories(struct api_req *r)
{
	period_report(r, "SELECT tb_report_categories($1::date, $2::date)::text");
}

void api_report_new_members(struct api_req *r)
{
	period_report(r, "SELECT tb_report_new_members($1::date, $2::date)::text");
}

void api_report_referrals(struct api_req *r)
{
	period_report(r, "SELECT tb_report_referrals($1::date, $2::date)::text");
}

void api_report_active(struct api_req *r)
{
	const char *as_of = evhttp_find_header(&r->query, "as_of");
	char days_text[24];
	int64_t days;
	int has_days;

	if (api_query_int(r, "days", &days, &has_days) == -1)
		return;
	if (!has_days)
		days = api_limits(r->api)->active_days;
	if (days > 3660) {
		api_reply_error(r, 400, "invalid_request", "days must be at most 3660");
		return;
	}
	if (as_of != NULL && !req_valid_date(as_of)) {
		api_reply_error(r, 400, "invalid_date", "as_of must be a date written YYYY-MM-DD");
		return;
	}
	const char *params[2] = {API_I64(days_text, days), as_of != NULL ? as_of : "today"};
	api_sql(r, "SELECT tb_report_active($1::int, $2::date)::text", 2, params);
}

/* A month in the query (name=YYYY-MM) as its first day, into first[11]; this
 * month when absent. 0, or -1 after answering 400. */
static int query_month(struct api_req *r, const char *name, char *first)
{
	const char *month = evhttp_find_header(&r->query, name);

	if (month == NULL) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(first, 11, "%Y-%m-01", &tm);
		return 0;
	}
	if (strlen(month) != 7 || snprintf(first, 11, "%s-01", month) != 10 ||
	    !req_valid_date(first)) {
		api_reply_error(r, 400, "invalid_period", "%s must be a month written YYYY-MM",
		                name);
		return -1;
	}
	return 0;
}

/* The month's activity report for the national body (?month=YYYY-MM,
 * default this month): as it was last sent, each revision with the
 * observer's answer, and the figures as they stand when they differ. */
void api_report_network(struct api_req *r)
{
	const struct api_limits *l = api_limits(r->api);
	char first[11], below[12], step[12];

	if (query_month(r, "month", first) == -1)
		return;
	snprintf(below, sizeof(below), "%d", l->suppress_below);
	snprintf(step, sizeof(step), "%d", l->round_to);
	const char *params[4] = {first, below, step, api_bank_id(r->api)};
	api_sql(r, "SELECT tb_network_report_sent($1::date, $2::int, $3::int, $4)::text", 4,
	        params);
}

/* POST /v1/reports/network/send?month=YYYY-MM: the month's report goes to
 * the national body now, as its next revision, with any others due. */
void api_report_network_send(struct api_req *r)
{
	char first[11];

	if (query_month(r, "month", first) == -1)
		return;
	const char *params[1] = {first};
	r->queues_messages = 1;
	api_sql(r, "SELECT jsonb_build_object('queued', tb_reports_send($1::date))::text", 1,
	        params);
}

/* ---- at the national body: the network ---------------------------------- */

/* ?from=&to= as months (or ?month= for one), each defaulting to this month. */
static int query_months(struct api_req *r, char *from, char *to)
{
	if (evhttp_find_header(&r->query, "month") != NULL) {
		if (query_month(r, "month", from) == -1)
			return -1;
		memcpy(to, from, 11);
		return 0;
	}
	if (query_month(r, "from", from) == -1 || query_month(r, "to", to) == -1)
		return -1;
	if (strcmp(from, to) > 0) {
		api_reply_error(r, 400, "invalid_period", "the period ends before it starts");
		return -1;
	}
	return 0;
}

static void network_period(struct api_req *r, const char *sql)
{
	char from[11], to[11];

	if (query_months(r, from, to) == -1)
		return;
	const char *params[2] = {from, to};
	api_sql(r, sql, 2, params);
}

void api_network_summary(struct api_req *r)
{
	network_period(r, "SELECT tb_network_summary($1::date, $2::date)::text");
}

void api_network_categories(struct api_req *r)
{
	network_period(r, "SELECT tb_network_breakdown('categories', $1::date, $2::date)::text");
}

void api_network_areas(struct api_req *r)
{
	network_period(r, "SELECT tb_network_breakdown('areas', $1::date, $2::date)::text");
}

void api_network_books(struct api_req *r)
{
	char first[11];

	if (query_month(r, "month", first) == -1)
		return;
	const char *params[1] = {first};
	api_sql(r, "SELECT tb_network_books($1::date)::text", 1, params);
}

void api_network_banks(struct api_req *r)
{
	api_sql(r, "SELECT tb_network_banks()::text", 0, NULL);
}

/* GET /v1/network/banks/BANK/report?month=: one bank's report as received. */
void api_network_bank_report(struct api_req *r)
{
	char first[11];

	if (query_month(r, "month", first) == -1)
		return;
	const char *params[2] = {r->name, first};
	api_sql(r, "SELECT tb_network_bank_report($1, $2::date)::text", 2, params);
}
