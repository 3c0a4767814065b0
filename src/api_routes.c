/* The admin API's endpoints: each validates its request, then asks the
 * ledger with one SQL call (see src/sql/). */
#include "api_internal.h"

#include "req.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define I64(buf, v) (snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(v)), (buf))

/* Sends a validated body to a ledger function taking (jsonb, actor, ...). */
static void sql_with_json(struct api_req *r, const char *sql, json_t *p, const char *extra)
{
	char *text = json_dumps(p, JSON_COMPACT);
	const char *params[3] = {text, r->actor, extra};

	api_sql(r, sql, extra != NULL ? 3 : 2, params);
	free(text);
}

static void member_add(struct api_req *r)
{
	struct req_error err;
	json_t *p = req_member(r->body, 0, &err);

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	sql_with_json(r, "SELECT tb_member_add($1::jsonb, $2)::text", p, NULL);
	json_decref(p);
}

static void member_get(struct api_req *r)
{
	char num[24];
	const char *params[1] = {I64(num, r->id)};

	api_sql(r, "SELECT tb_member_get($1::bigint)::text", 1, params);
}

static void member_list(struct api_req *r)
{
	const char *status = evhttp_find_header(&r->query, "status");
	const char *search = evhttp_find_header(&r->query, "q");
	struct api_page page;

	if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
	    strcmp(status, "left") != 0) {
		api_reply_error(r, 400, "invalid_status",
		                "status must be active, suspended or left");
		return;
	}
	if (search != NULL && strlen(search) > 200) {
		api_reply_error(r, 400, "invalid_request", "q is over 200 characters");
		return;
	}
	if (api_query_page(r, &page) == -1)
		return;
	const char *params[4] = {status, search, page.cursor, page.limit};
	api_sql(r, "SELECT tb_member_list($1, $2, $3::bigint, $4::int)::text", 4, params);
}

static void member_update_with(struct api_req *r, json_t *p)
{
	char num[24], floor[24];
	char *text = json_dumps(p, JSON_COMPACT);
	const char *params[4] = {I64(num, r->id), text, r->actor,
	                         I64(floor, api_limits(r->api)->default_floor)};

	api_sql(r, "SELECT tb_member_update($1::bigint, $2::jsonb, $3, $4::bigint)::text", 4,
	        params);
	free(text);
}

static void member_update(struct api_req *r)
{
	struct req_error err;
	json_t *p = req_member(r->body, 1, &err);

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	member_update_with(r, p);
	json_decref(p);
}

static void member_set_status(struct api_req *r, const char *status)
{
	json_t *p = json_pack("{ss}", "status", status);

	r->ok_status = 200;
	member_update_with(r, p);
	json_decref(p);
}

static void member_suspend(struct api_req *r)
{
	member_set_status(r, "suspended");
}

static void member_activate(struct api_req *r)
{
	member_set_status(r, "active");
}

static void member_balance(struct api_req *r)
{
	char num[24], floor[24];
	const char *params[2] = {I64(num, r->id), I64(floor, api_limits(r->api)->default_floor)};

	api_sql(r, "SELECT tb_balance($1::bigint, $2::bigint)::text", 2, params);
}

static void member_history(struct api_req *r)
{
	struct api_page page;
	char num[24];

	if (api_query_page(r, &page) == -1)
		return;
	const char *params[3] = {I64(num, r->id), page.cursor, page.limit};
	api_sql(r, "SELECT tb_history($1::bigint, $2::bigint, $3::int)::text", 3, params);
}

static void exchange_record(struct api_req *r)
{
	struct req_error err;
	char floor[24];
	json_t *p = req_exchange(r->body, api_limits(r->api)->max_exchange, &err);

	if (p == NULL) {
		api_reply_error(r, strcmp(err.code, "same_member") == 0 ? 422 : 400, err.code, "%s",
		                err.message);
		return;
	}
	sql_with_json(r, "SELECT tb_exchange_record($1::jsonb, $2, $3::bigint)::text", p,
	              I64(floor, api_limits(r->api)->default_floor));
	json_decref(p);
}

static void exchange_get(struct api_req *r)
{
	char id[24];
	const char *params[1] = {I64(id, r->id)};

	api_sql(r, "SELECT tb_exchange_get($1::bigint)::text", 1, params);
}

static void exchange_list(struct api_req *r)
{
	struct api_page page;
	char num[24];
	int64_t member;
	int has_member;

	if (api_query_int(r, "member", &member, &has_member) == -1 ||
	    api_query_page(r, &page) == -1)
		return;
	const char *params[3] = {has_member ? I64(num, member) : NULL, page.cursor, page.limit};
	api_sql(r, "SELECT tb_exchange_list($1::bigint, $2::bigint, $3::int)::text", 3, params);
}

static void audit(struct api_req *r)
{
	char floor[24];
	const char *params[1] = {I64(floor, api_limits(r->api)->default_floor)};

	api_sql(r, "SELECT tb_audit($1::bigint)::text", 1, params);
}

const struct api_route api_routes[] = {
    {"POST", "/v1/members", ROLE_COORDINATOR, 1, member_add},
    {"GET", "/v1/members", ROLE_BROKER, 0, member_list},
    {"GET", "/v1/members/#", ROLE_BROKER, 0, member_get},
    {"PATCH", "/v1/members/#", ROLE_COORDINATOR, 1, member_update},
    {"POST", "/v1/members/#/suspend", ROLE_COORDINATOR, 0, member_suspend},
    {"POST", "/v1/members/#/activate", ROLE_COORDINATOR, 0, member_activate},
    {"GET", "/v1/members/#/balance", ROLE_BROKER, 0, member_balance},
    {"GET", "/v1/members/#/history", ROLE_BROKER, 0, member_history},
    {"POST", "/v1/exchanges", ROLE_BROKER, 1, exchange_record},
    {"GET", "/v1/exchanges", ROLE_BROKER, 0, exchange_list},
    {"GET", "/v1/exchanges/#", ROLE_BROKER, 0, exchange_get},
    {"GET", "/v1/audit", ROLE_VIEWER, 0, audit},
    {NULL, NULL, 0, 0, NULL},
};
