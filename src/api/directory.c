/* The admin API's directory: members' offers and requests, search over
 * this bank's and every peer's shared items, matching, and contact through
 * the brokers. Each handler is one SQL call (src/sql/directory.sql). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- offers and requests ---------------------------------------------- */

/* Whether a shared item waits for a broker's approval ([directory] review). */
static const char *review(const struct api_req *r)
{
	return api_limits(r->api)->dir_review ? "t" : "f";
}

static void item_add(struct api_req *r, const char *kind)
{
	struct req_error err;
	const char *extra[3] = {kind, r->actor, review(r)};

	r->dir_changes = 1;
	/* $1 is the body; the kind comes first in the function. */
	api_sql_body(r, "SELECT tb_dir_add($2, $1::jsonb, $3, $4::boolean)::text",
	             req_dir_item(r->body, 0, &err), &err, 3, extra);
}

static void item_update(struct api_req *r, const char *kind)
{
	struct req_error err;
	char id[24];
	const char *extra[4] = {kind, API_I64(id, r->id), r->actor, review(r)};

	r->ok_status = 200;
	r->dir_changes = 1;
	api_sql_body(r, "SELECT tb_dir_update($2, $3::bigint, $1::jsonb, $4, $5::boolean)::text",
	             req_dir_item(r->body, 1, &err), &err, 4, extra);
}

/* A broker acts on one item: sql takes its kind, its id and the actor. */
static void item_act(struct api_req *r, const char *kind, const char *sql)
{
	char id[24];
	const char *params[3] = {kind, API_I64(id, r->id), r->actor};

	r->ok_status = 200;
	r->dir_changes = 1;
	api_sql(r, sql, 3, params);
}

/* A broker lets a shared item leave the bank: the version they read, when
 * given, must still be the item's. */
static void item_approve(struct api_req *r, const char *kind)
{
	struct req_error err;
	json_t *empty = json_object();
	json_t *p = req_dir_approve(r->body != NULL ? r->body : empty, &err);
	char id[24];
	const char *extra[3] = {kind, API_I64(id, r->id), r->actor};

	r->ok_status = 200;
	r->dir_changes = 1;
	api_sql_body(
	    r, "SELECT tb_dir_approve($2, $3::bigint, $4, ($1::jsonb->>'version')::bigint)::text",
	    p, &err, 3, extra);
	json_decref(empty);
}

static void item_withdraw(struct api_req *r, const char *kind)
{
	item_act(r, kind, "SELECT tb_dir_withdraw($1, $2::bigint, $3)::text");
}

static void item_get(struct api_req *r, const char *kind)
{
	char id[24];
	const char *params[2] = {kind, API_I64(id, r->id)};

	api_sql(r, "SELECT tb_dir_show($1, $2::bigint)::text", 2, params);
}

static void item_list(struct api_req *r, const char *kind)
{
	struct api_page page;
	const char *state = evhttp_find_header(&r->query, "state");
	char num[24];
	int64_t member;
	int has_member;

	if (state == NULL)
		state = "active";
	if (strcmp(state, "active") != 0 && strcmp(state, "all") != 0 &&
	    strcmp(state, "waiting") != 0) {
		api_reply_error(r, 400, "invalid_request",
		                "state must be active, waiting (for a broker's approval) or all");
		return;
	}
	if (api_query_int(r, "member", &member, &has_member) == -1 ||
	    api_query_page(r, &page) == -1)
		return;
	const char *params[5] = {kind, has_member ? API_I64(num, member) : NULL, state, page.cursor,
	                         page.limit};
	api_sql(r, "SELECT tb_dir_list($1, $2::bigint, $3, $4::bigint, $5::int)::text", 5, params);
}

void api_offer_add(struct api_req *r)
{
	item_add(r, "offer");
}
void api_offer_update(struct api_req *r)
{
	item_update(r, "offer");
}
void api_offer_withdraw(struct api_req *r)
{
	item_withdraw(r, "offer");
}
void api_offer_approve(struct api_req *r)
{
	item_approve(r, "offer");
}
void api_offer_get(struct api_req *r)
{
	item_get(r, "offer");
}
void api_offer_list(struct api_req *r)
{
	item_list(r, "offer");
}
void api_request_add(struct api_req *r)
{
	item_add(r, "request");
}
void api_request_update(struct api_req *r)
{
	item_update(r, "request");
}
void api_request_withdraw(struct api_req *r)
{
	item_withdraw(r, "request");
}
void api_request_approve(struct api_req *r)
{
	item_approve(r, "request");
}
void api_request_get(struct api_req *r)
{
	item_get(r, "request");
}
void api_request_list(struct api_req *r)
{
	item_list(r, "request");
}

/* ---- search and matching ---------------------------------------------- */

/* A query parameter of at most max characters (NULL when absent); -1 after
 * answering 400. */
static int query_text(struct api_req *r, const char *name, size_t max, const char **out)
{
	*out = evhttp_find_header(&r->query, name);
	if (*out != NULL && (strlen(*out) > max || (*out)[0] == '\0')) {
		api_reply_error(r, 400, "invalid_request", "%s must be 1 to %zu characters", name,
		                max);
		return -1;
	}
	return 0;
}

void api_directory_search(struct api_req *r)
{
	struct api_page page;
	const char *q, *category, *area, *bank, *kind;

	if (query_text(r, "q", 200, &q) == -1 || query_text(r, "category", 40, &category) == -1 ||
	    query_text(r, "area", 4, &area) == -1 || query_text(r, "bank", 40, &bank) == -1 ||
	    query_text(r, "kind", 10, &kind) == -1)
		return;
	if (kind != NULL && strcmp(kind, "offer") != 0 && strcmp(kind, "request") != 0) {
		api_reply_error(r, 400, "invalid_kind", "kind must be offer or request");
		return;
	}
	if (api_query_page(r, &page) == -1)
		return;
	const char *params[8] = {q,
	                         category,
	                         area,
	                         bank,
	                         kind,
	                         api_bank_id(r->api),
	                         page.cursor != NULL ? page.cursor : "0",
	                         page.limit};
	api_sql(r, "SELECT tb_dir_search($1, $2, $3, $4, $5, $6, $7::int, $8::int)::text", 8,
	        params);
}

void api_directory_categories(struct api_req *r)
{
	api_sql(r, "SELECT tb_dir_categories()::text", 0, NULL);
}

void api_request_matches(struct api_req *r)
{
	struct api_page page;
	char id[24];

	if (api_query_page(r, &page) == -1)
		return;
	const char *params[4] = {API_I64(id, r->id), api_bank_id(r->api),
	                         page.cursor != NULL ? page.cursor : "0", page.limit};
	api_sql(r, "SELECT tb_dir_match($1::bigint, $2, $3::int, $4::int)::text", 4, params);
}

/* ---- contact through brokers ------------------------------------------ */

void api_contact_request(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->actor, api_bank_id(r->api)};

	if (api_override_allowed(r) == -1)
		return;
	r->queues_messages = 1;
	api_sql_body(r, "SELECT tb_contact_request($1::jsonb, $2, $3)::text",
	             req_contact(r->body, &err), &err, 2, extra);
}

void api_contact_list(struct api_req *r)
{
	api_list_between_banks(r,
	                       "SELECT tb_contact_list($1, $2::boolean, $3::bigint, $4::int)::text",
	                       "incoming (asked of this bank) or outgoing");
}

void api_contact_get(struct api_req *r)
{
	const char *params[1] = {r->name};

	api_sql(r, "SELECT tb_contact_get($1)::text", 1, params);
}

static void contact_answer(struct api_req *r, int accept)
{
	struct req_error err;
	json_t *empty = json_object();
	json_t *p = req_contact_answer(r->body != NULL ? r->body : empty, accept, &err);
	const char *extra[3] = {r->name, accept ? "t" : "f", r->actor};

	if (api_override_allowed(r) == -1) {
		json_decref(p);
		json_decref(empty);
		return;
	}
	r->ok_status = 200;
	r->queues_messages = 1;
	/* $1 is the body: the answer's words, and an override. */
	api_sql_body(r, "SELECT tb_contact_answer($2, $3::boolean, $1::jsonb, $4)::text", p, &err,
	             3, extra);
	json_decref(empty);
}

void api_contact_accept(struct api_req *r)
{
	contact_answer(r, 1);
}
void api_contact_decline(struct api_req *r)
{
	contact_answer(r, 0);
}
