/* The admin API's statements and reports for funders: read-only views of
 * the ledger, one SQL call each. Reports carry counts and hours only, never
 * a member's details. */
#include "internal.h"

#include "req.h"

#include <string.h>
#include <time.h>

#define ALL_FROM "1900-01-01"
#define ALL_TO "9999-12-31"

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

/* The month's activity report for the national body, as it leaves the
 * bank: ?month=YYYY-MM (default this month). */
void api_report_network(struct api_req *r)
{
	const char *month = evhttp_find_header(&r->query, "month");
	const struct api_limits *l = api_limits(r->api);
	char first[11], below[12], step[12];

	if (month == NULL) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(first, sizeof(first), "%Y-%m-01", &tm);
	} else if (strlen(month) != 7 || snprintf(first, sizeof(first), "%s-01", month) != 10 ||
	           !req_valid_date(first)) {
		api_reply_error(r, 400, "invalid_period", "month must be written YYYY-MM");
		return;
	}
	snprintf(below, sizeof(below), "%d", l->suppress_below);
	snprintf(step, sizeof(step), "%d", l->round_to);
	const char *params[4] = {first, below, step, api_bank_id(r->api)};
	api_sql(r, "SELECT tb_network_report($1::date, $2::int, $3::int, $4)::text", 4, params);
}
