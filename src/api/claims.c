/* The admin API's claims: a member of this bank claims hours from a member
 * of another bank, and that bank's broker approves or declines. Each
 * handler is one SQL call (src/sql/broker_requests.sql); whatever must travel is
 * queued in the same transaction and sent by the federation link. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void api_claim_record(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->actor, api_bank_id(r->api)};
	json_t *p = req_claim(r->body, api_limits(r->api)->max_exchange, &err);

	if (p != NULL &&
	    strcmp(json_string_value(json_object_get(p, "bank")), api_bank_id(r->api)) == 0) {
		json_decref(p);
		api_reply_error(r, 422, "same_bank",
		                "a claim is made of another bank's member; record an exchange "
		                "between members of this bank instead");
		return;
	}
	r->queues_messages = 1;
	api_sql_body(r, "SELECT tb_claim_record($1::jsonb, $2, $3)::text", p, &err, 2, extra);
}

void api_claim_list(struct api_req *r)
{
	api_list_between_banks(r,
	                       "SELECT tb_claim_list($1, $2::boolean, $3::bigint, $4::int)::text",
	                       "incoming (claims made of this bank's members) or outgoing (claims "
	                       "this bank made)");
}

void api_claim_get(struct api_req *r)
{
	const char *params[1] = {r->name};

	api_sql(r, "SELECT tb_claim_get($1)::text", 1, params);
}

void api_claim_approve(struct api_req *r)
{
	char floor[24], max[24];
	const char *params[6] = {r->name,
	                         "{}",
	                         r->actor,
	                         API_I64(floor, api_limits(r->api)->default_floor),
	                         api_bank_id(r->api),
	                         API_I64(max, api_limits(r->api)->max_exchange)};

	r->ok_status = 200;
	r->queues_messages = 1;
	api_sql(r, "SELECT tb_claim_approve($1, $2::jsonb, $3, $4::bigint, $5, $6::bigint)::text",
	        6, params);
}

void api_claim_decline(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->name, r->actor};
	json_t *p = req_decline(r->body, &err);

	r->ok_status = 200;
	r->queues_messages = 1;
	/* $1 is the body: the claim id and actor follow. */
	api_sql_body(r, "SELECT tb_claim_decline($2, $1::jsonb, $3)::text", p, &err, 2, extra);
}
