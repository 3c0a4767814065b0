/* The admin API's referrals: a coordinator refers a member to another bank
 * (a move or an introduction) with the member's consent, and the other
 * bank's coordinator accepts or declines. Each handler is one SQL call
 * (src/sql/referrals.sql); what must travel is queued in the same
 * transaction and sent by the federation link. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void api_referral_send(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->actor, api_bank_id(r->api)};
	json_t *p = req_referral(r->body, &err);

	if (p != NULL &&
	    strcmp(json_string_value(json_object_get(p, "bank")), api_bank_id(r->api)) == 0) {
		json_decref(p);
		api_reply_error(r, 422, "same_bank",
		                "a member is referred to another bank, not to this one");
		return;
	}
	r->queues_messages = 1;
	r->dir_changes = 1; /* a move holds the member: their shared items go */
	r->failpoint_after = "referral_sent";
	api_sql_body(r, "SELECT tb_referral_send($1::jsonb, $2, $3)::text", p, &err, 2, extra);
}

void api_referral_list(struct api_req *r)
{
	api_list_between_banks(
	    r, "SELECT tb_referral_list($1, $2::boolean, $3::bigint, $4::int)::text",
	    "incoming (referrals made to this bank) or outgoing (referrals this "
	    "bank made)");
}

void api_referral_get(struct api_req *r)
{
	const char *params[1] = {r->name};

	api_sql(r, "SELECT tb_referral_get($1)::text", 1, params);
}

void api_referral_accept(struct api_req *r)
{
	struct req_error err;
	char floor[24];
	json_t *p = req_referral_accept(r->body, &err);
	char *text;

	if (p == NULL) {
		api_reply_error(r, 400, err.code, "%s", err.message);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	r->ok_status = 200;
	r->queues_messages = 1;
	r->failpoint_after = "referral_accepted";
	const char *params[4] = {r->name, text, r->actor,
	                         API_I64(floor, api_limits(r->api)->default_floor)};
	api_sql(r, "SELECT tb_referral_accept($1, $2::jsonb, $3, $4::bigint)::text", 4, params);
	free(text);
	json_decref(p);
}

void api_referral_decline(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->name, r->actor};
	json_t *p = req_decline(r->body, &err);

	r->ok_status = 200;
	r->queues_messages = 1;
	/* $1 is the body: the referral id and actor follow. */
	api_sql_body(r, "SELECT tb_referral_decline($2, $1::jsonb, $3)::text", p, &err, 2, extra);
}

void api_referral_withdraw(struct api_req *r)
{
	const char *params[2] = {r->name, r->actor};

	r->ok_status = 200;
	r->queues_messages = 1;
	api_sql(r, "SELECT tb_referral_withdraw($1, $2)::text", 2, params);
}
