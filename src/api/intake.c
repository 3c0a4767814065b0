/* The admin API's intake and safeguarding: people referred in by a GP
 * practice or a service, followed from receipt to what became of them;
 * the safeguarding checks brokers carry; and the coordinator's to-do.
 * Each handler is one SQL call (src/sql/intake.sql, safeguarding.sql). A
 * referrer's token passes its organisation as the scope, so that the
 * ledger answers it with that organisation's referrals, and their status
 * only. */
#include "internal.h"

#include "hours.h"
#include "req.h"

#include <stdlib.h>
#include <string.h>

/* The scope of a request as SQL parameter text: a referrer's
 * organisation, or NULL for the bank's own staff. */
static const char *scope_of(const struct api_req *r, char *buf, size_t len)
{
	if (r->role != ROLE_REFERRER)
		return NULL;
	snprintf(buf, len, "%lld", r->org);
	return buf;
}

void api_intake_add(struct api_req *r)
{
	struct req_error err;
	char scope[24];
	const char *extra[2] = {r->actor, scope_of(r, scope, sizeof(scope))};
	json_t *p = req_intake(r->body, &err);

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	api_sql_body(r, "SELECT tb_intake_add($1::jsonb, $2, $3::bigint)::text", p, &err, 2, extra);
}

void api_intake_list(struct api_req *r)
{
	static const char *const states[] = {"received",    "contacted", "joined", "declined",
	                                     "unreachable", "withdrawn", NULL};
	const char *state = evhttp_find_header(&r->query, "state");
	const char *overdue = evhttp_find_header(&r->query, "overdue");
	struct api_page page;
	char org_text[24], scope[24];
	int64_t org;
	int has_org, known = state == NULL;

	for (int i = 0; state != NULL && states[i] != NULL; i++)
		known |= strcmp(state, states[i]) == 0;
	if (!known) {
		api_reply_error(r, 400, "invalid_state",
		                "state must be received, contacted, joined, declined, unreachable "
		                "or withdrawn");
		return;
	}
	if (overdue != NULL && strcmp(overdue, "true") != 0 && strcmp(overdue, "false") != 0) {
		api_reply_error(r, 400, "invalid_request", "overdue must be true or false");
		return;
	}
	if (api_query_int(r, "org", &org, &has_org) == -1 || api_query_page(r, &page) == -1)
		return;
	const char *params[6] = {state,
	                         overdue != NULL && strcmp(overdue, "true") == 0 ? "t" : "f",
	                         has_org ? API_I64(org_text, org) : NULL,
	                         scope_of(r, scope, sizeof(scope)),
	                         page.cursor,
	                         page.limit};
	api_sql(r,
	        "SELECT tb_intake_list($1, $2::boolean, $3::bigint, $4::bigint, $5::bigint, "
	        "$6::int)::text",
	        6, params);
}

void api_intake_get(struct api_req *r)
{
	char id[24], scope[24];
	const char *params[2] = {API_I64(id, r->id), scope_of(r, scope, sizeof(scope))};

	api_sql(r, "SELECT tb_intake_get($1::bigint, $2::bigint)::text", 2, params);
}

static void intake_move(struct api_req *r, const char *state)
{
	struct req_error err;
	char id[24], scope[24], *text;
	json_t *p = req_intake_move(r->body, state, &err);

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	r->ok_status = 200;
	const char *params[5] = {API_I64(id, r->id), state, text, r->actor,
	                         scope_of(r, scope, sizeof(scope))};
	api_sql(r, "SELECT tb_intake_move($1::bigint, $2, $3::jsonb, $4, $5::bigint)::text", 5,
	        params);
	free(text);
	json_decref(p);
}

void api_intake_contacted(struct api_req *r)
{
	intake_move(r, "contacted");
}

void api_intake_joined(struct api_req *r)
{
	intake_move(r, "joined");
}

void api_intake_declined(struct api_req *r)
{
	intake_move(r, "declined");
}

void api_intake_unreachable(struct api_req *r)
{
	intake_move(r, "unreachable");
}

void api_intake_withdrawn(struct api_req *r)
{
	intake_move(r, "withdrawn");
}

void api_intake_letter(struct api_req *r)
{
	char id[24], scope[24];
	const char *params[3] = {API_I64(id, r->id), scope_of(r, scope, sizeof(scope)),
	                         api_bank_name(r->api)};

	api_sql(r, "SELECT tb_intake_letter($1::bigint, $2::bigint, $3)::text", 3, params);
}

void api_intake_erase(struct api_req *r)
{
	char id[24];
	const char *params[2] = {API_I64(id, r->id), r->actor};

	r->ok_status = 200;
	api_sql(r, "SELECT tb_intake_erase($1::bigint, $2)::text", 2, params);
}

/* The commissioners' report: disclosed (counts of people held to the
 * national body's rule) unless ?internal=true asks for the exact figures,
 * which are for the bank alone. */
void api_report_intake(struct api_req *r)
{
	const char *internal = evhttp_find_header(&r->query, "internal");
	char from[11], to[11], org_text[24];
	int64_t org;
	int has_org;

	if (internal != NULL && strcmp(internal, "true") != 0 && strcmp(internal, "false") != 0) {
		api_reply_error(r, 400, "invalid_request", "internal must be true or false");
		return;
	}
	if (api_query_period(r, ALL_FROM, ALL_TO, from, to) == -1 ||
	    api_query_int(r, "org", &org, &has_org) == -1)
		return;
	const char *params[4] = {from, to, has_org ? API_I64(org_text, org) : NULL,
	                         internal != NULL && strcmp(internal, "true") == 0 ? "f" : "t"};
	api_sql(r, "SELECT tb_report_intake($1::date, $2::date, $3::bigint, $4::boolean)::text", 4,
	        params);
}

void api_check_add(struct api_req *r)
{
	struct req_error err;
	char num[24], *text;
	json_t *p = req_check(r->body, &err);

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	const char *params[3] = {API_I64(num, r->id), text, r->actor};
	api_sql(r, "SELECT tb_check_add($1::bigint, $2::jsonb, $3)::text", 3, params);
	free(text);
	json_decref(p);
}

void api_check_list(struct api_req *r)
{
	char num[24];
	const char *params[1] = {API_I64(num, r->id)};

	api_sql(r, "SELECT tb_check_list($1::bigint)::text", 1, params);
}

void api_checks_expiring(struct api_req *r)
{
	char days_text[24];
	int64_t days;
	int has_days;

	if (api_query_int(r, "days", &days, &has_days) == -1)
		return;
	if (has_days && days > 3660) {
		api_reply_error(r, 400, "invalid_request", "days must be at most 3660");
		return;
	}
	const char *params[1] = {API_I64(days_text, has_days ? days : 30)};
	api_sql(r, "SELECT tb_checks_expiring($1::int)::text", 1, params);
}

void api_care_review(struct api_req *r)
{
	api_sql(r, "SELECT tb_care_review()::text", 0, NULL);
}

/* up_to (optional): the last exchange the broker saw, so that one posted
 * since is not marked as reviewed. */
void api_care_reviewed(struct api_req *r)
{
	const json_t *up_to = r->body != NULL ? json_object_get(r->body, "up_to") : NULL;
	char num[24], last[24];
	int64_t n = 0;

	if (r->body != NULL &&
	    (json_object_size(r->body) != (up_to != NULL ? 1u : 0u) ||
	     (up_to != NULL && (!json_is_integer(up_to) || (n = json_integer_value(up_to)) < 1)))) {
		api_reply_error(r, 400, "invalid_request",
		                "give up_to, the id of the last exchange reviewed, or nothing");
		return;
	}
	const char *params[3] = {API_I64(num, r->id), up_to != NULL ? API_I64(last, n) : NULL,
	                         r->actor};
	r->ok_status = 200;
	api_sql(r, "SELECT tb_care_reviewed($1::bigint, $2::bigint, $3)::text", 3, params);
}

/* ?near=2h: how far above their floor a member counts as near it. */
void api_todo(struct api_req *r)
{
	const char *near = evhttp_find_header(&r->query, "near");
	char floor[24], near_text[24];
	int64_t near_minutes = 120;

	if (near != NULL && (hours_parse(near, &near_minutes) == -1 || near_minutes < 0)) {
		api_reply_error(r, 400, "invalid_hours", "near must be hours, such as 2h");
		return;
	}
	const char *params[3] = {API_I64(floor, api_limits(r->api)->default_floor),
	                         API_I64(near_text, near_minutes),
	                         api_limits(r->api)->dir_review ? "t" : "f"};
	api_sql(r, "SELECT tb_todo($1::bigint, $2::bigint, $3::boolean)::text", 3, params);
}
