/* The admin API's endpoints for members, exchanges, grants and the audit:
 * each validates its request, then asks the ledger with one SQL call (see
 * src/sql/). The route table for every endpoint is at the end. */
#include "internal.h"

#include "failpoint.h"
#include "req.h"

#include <stdlib.h>
#include <string.h>

/* Answers a validation failure: 422 when the request is well formed but
 * names one member twice, would share personal details or names no bank,
 * else 400. */
static void reply_invalid(struct api_req *r, const struct req_error *err)
{
	int status = strcmp(err->code, "same_member") == 0 ||
	                     strcmp(err->code, "duplicate_earner") == 0 ||
	                     strcmp(err->code, "personal_details") == 0 ||
	                     strcmp(err->code, "unknown_bank") == 0
	                 ? 422
	                 : 400;

	api_reply_error(r, status, err->code, "%s", err->message);
}

void api_sql_body(struct api_req *r, const char *sql, json_t *p, const struct req_error *err,
                  int nextra, const char *const *extra)
{
	const char *params[6];
	char *text;

	if (p == NULL) {
		reply_invalid(r, err);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	params[0] = text;
	for (int i = 0; i < nextra; i++)
		params[i + 1] = extra[i];
	api_sql(r, sql, nextra + 1, params);
	free(text);
	json_decref(p);
}

static void member_add(struct api_req *r)
{
	struct req_error err;
	const char *extra[1] = {r->actor};

	api_sql_body(r, "SELECT tb_member_add($1::jsonb, $2)::text", req_member(r->body, 0, &err),
	             &err, 1, extra);
}

static void member_get(struct api_req *r)
{
	char num[24];
	const char *params[1] = {API_I64(num, r->id)};

	api_sql(r, "SELECT tb_member_get($1::bigint)::text", 1, params);
}

static int one_of(const char *v, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(v, *allowed) == 0)
			return 1;
	return 0;
}

static void member_list(struct api_req *r)
{
	static const char *const statuses[] = {"active", "suspended", "left", NULL};
	static const char *const kinds[] = {"person", "organisation", NULL};
	const char *status = evhttp_find_header(&r->query, "status");
	const char *kind = evhttp_find_header(&r->query, "kind");
	const char *search = evhttp_find_header(&r->query, "q");
	struct api_page page;

	if (status != NULL && !one_of(status, statuses)) {
		api_reply_error(r, 400, "invalid_status",
		                "status must be active, suspended or left");
		return;
	}
	if (kind != NULL && !one_of(kind, kinds)) {
		api_reply_error(r, 400, "invalid_kind", "kind must be person or organisation");
		return;
	}
	if (search != NULL && strlen(search) > 200) {
		api_reply_error(r, 400, "invalid_request", "q is over 200 characters");
		return;
	}
	if (api_query_page(r, &page) == -1)
		return;
	const char *params[5] = {status, kind, search, page.cursor, page.limit};
	api_sql(r, "SELECT tb_member_list($1, $2, $3, $4::bigint, $5::int)::text", 5, params);
}

static void member_update_with(struct api_req *r, json_t *p, const struct req_error *err)
{
	char num[24], floor[24];
	const char *extra[3] = {API_I64(num, r->id), r->actor,
	                        API_I64(floor, api_limits(r->api)->default_floor)};

	/* tb_member_update takes the number first. */
	if (p == NULL) {
		reply_invalid(r, err);
		return;
	}
	char *text = json_dumps(p, JSON_COMPACT);
	const char *params[4] = {extra[0], text, extra[1], extra[2]};
	r->dir_changes = 1; /* a status change shares or hides the member's items */
	api_sql(r, "SELECT tb_member_update($1::bigint, $2::jsonb, $3, $4::bigint)::text", 4,
	        params);
	free(text);
	json_decref(p);
}

static void member_update(struct api_req *r)
{
	struct req_error err;

	member_update_with(r, req_member(r->body, 1, &err), &err);
}

static void member_suspend(struct api_req *r)
{
	r->ok_status = 200;
	member_update_with(r, json_pack("{ss}", "status", "suspended"), NULL);
}

static void member_activate(struct api_req *r)
{
	r->ok_status = 200;
	member_update_with(r, json_pack("{ss}", "status", "active"), NULL);
}

static void member_balance(struct api_req *r)
{
	char num[24], floor[24];
	const char *params[2] = {API_I64(num, r->id),
	                         API_I64(floor, api_limits(r->api)->default_floor)};

	api_sql(r, "SELECT tb_balance($1::bigint, $2::bigint)::text", 2, params);
}

static void member_history(struct api_req *r)
{
	struct api_page page;
	char num[24];

	if (api_query_page(r, &page) == -1)
		return;
	const char *params[3] = {API_I64(num, r->id), page.cursor, page.limit};
	api_sql(r, "SELECT tb_history($1::bigint, $2::bigint, $3::int)::text", 3, params);
}

static void member_export(struct api_req *r)
{
	char num[24];
	const char *params[1] = {API_I64(num, r->id)};

	api_sql(r, "SELECT tb_member_export($1::bigint)::text", 1, params);
}

static void member_erase(struct api_req *r)
{
	struct req_error err;
	json_t *p = req_erase(r->body, &err);
	char num[24], *text;

	r->ok_status = 200;
	if (p == NULL) {
		reply_invalid(r, &err);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	r->dir_changes = 1;
	r->queues_messages = 1; /* peers are told (tb_erase_shared) */
	const char *params[3] = {API_I64(num, r->id), text, r->actor};
	api_sql(r, "SELECT tb_member_erase($1::bigint, $2::jsonb, $3)::text", 3, params);
	free(text);
	json_decref(p);
}

static void exchange_record(struct api_req *r)
{
	struct req_error err;
	char floor[24];

	if (api_override_allowed(r) == -1)
		return;
	/* From an accepted contact: the other bank's member is not retyped. */
	if (json_object_get(r->body, "contact") != NULL) {
		const char *extra[3] = {r->actor, API_I64(floor, api_limits(r->api)->default_floor),
		                        api_bank_id(r->api)};
		r->queues_messages = 1;
		api_sql_body(r, "SELECT tb_xb_record_contact($1::jsonb, $2, $3::bigint, $4)::text",
		             req_exchange_contact(r->body, api_limits(r->api)->max_exchange, &err),
		             &err, 3, extra);
		return;
	}
	json_t *p = req_exchange(r->body, api_limits(r->api)->max_exchange, &err);
	const char *bank = p != NULL ? json_string_value(json_object_get(p, "bank")) : NULL;

	if (p == NULL) {
		reply_invalid(r, &err);
		return;
	}
	/* A member of this bank named as BANK:NUMBER is simply a local member. */
	if (bank != NULL && strcmp(bank, api_bank_id(r->api)) == 0) {
		json_object_del(p, "bank");
		bank = NULL;
	}
	if (bank == NULL && json_integer_value(json_object_get(p, "payer")) ==
	                        json_integer_value(json_object_get(p, "earner"))) {
		json_decref(p);
		api_reply_error(r, 422, "same_member", "payer and earner are the same member");
		return;
	}
	if (bank != NULL)
		failpoint("reserve_before");
	api_batch_exchange(r, p, bank != NULL);
}

static void exchange_get_cross_bank(struct api_req *r)
{
	const char *params[1] = {r->name};

	api_sql(r, "SELECT tb_xb_get($1)::text", 1, params);
}

static void exchange_reverse_cross_bank(struct api_req *r)
{
	struct req_error err;
	char floor[24], *text;
	json_t *p = req_reverse(r->body, &err);

	if (p == NULL) {
		reply_invalid(r, &err);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	r->queues_messages = 1;
	const char *params[5] = {r->name, text, r->actor,
	                         API_I64(floor, api_limits(r->api)->default_floor),
	                         api_bank_id(r->api)};
	api_sql(r, "SELECT tb_xb_reverse($1, $2::jsonb, $3, $4::bigint, $5)::text", 5, params);
	free(text);
	json_decref(p);
}

static void audit_federation(struct api_req *r)
{
	api_sql(r, "SELECT tb_fed_audit()::text", 0, NULL);
}

static void exchange_group(struct api_req *r)
{
	struct req_error err;
	char floor[24];
	const char *extra[2] = {r->actor, API_I64(floor, api_limits(r->api)->default_floor)};

	if (api_override_allowed(r) == -1)
		return;
	api_sql_body(r, "SELECT tb_exchange_group($1::jsonb, $2, $3::bigint)::text",
	             req_group(r->body, api_limits(r->api)->max_exchange, &err), &err, 2, extra);
}

static void exchange_reverse(struct api_req *r)
{
	struct req_error err;
	char id[24], floor[24], community[24];
	json_t *p = req_reverse(r->body, &err);
	char *text;

	if (p == NULL) {
		reply_invalid(r, &err);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	const char *params[5] = {API_I64(id, r->id), text, r->actor,
	                         API_I64(floor, api_limits(r->api)->default_floor),
	                         API_I64(community, api_limits(r->api)->community_floor)};
	api_sql(r, "SELECT tb_reverse($1::bigint, $2::jsonb, $3, $4::bigint, $5::bigint)::text", 5,
	        params);
	free(text);
	json_decref(p);
}

static void grant(struct api_req *r)
{
	struct req_error err;
	char community[24];
	const char *extra[2] = {r->actor, API_I64(community, api_limits(r->api)->community_floor)};

	api_sql_body(r, "SELECT tb_grant($1::jsonb, $2, $3::bigint)::text",
	             req_grant(r->body, api_limits(r->api)->max_exchange, &err), &err, 2, extra);
}

static void exchange_get(struct api_req *r)
{
	char id[24];
	const char *params[1] = {API_I64(id, r->id)};

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
	const char *params[3] = {has_member ? API_I64(num, member) : NULL, page.cursor, page.limit};
	api_sql(r, "SELECT tb_exchange_list($1::bigint, $2::bigint, $3::int)::text", 3, params);
}

static void audit(struct api_req *r)
{
	char floor[24], community[24];
	const char *params[2] = {API_I64(floor, api_limits(r->api)->default_floor),
	                         API_I64(community, api_limits(r->api)->community_floor)};

	api_sql(r, "SELECT tb_audit($1::bigint, $2::bigint)::text", 2, params);
}

const struct api_route api_routes[] = {
    {"POST", "/v1/members", ROLE_COORDINATOR, 1, member_add, 0},
    {"GET", "/v1/members", ROLE_BROKER, 0, member_list, 0},
    {"GET", "/v1/members/#", ROLE_BROKER, 0, member_get, 0},
    {"PATCH", "/v1/members/#", ROLE_COORDINATOR, 1, member_update, 0},
    {"POST", "/v1/members/#/suspend", ROLE_COORDINATOR, 0, member_suspend, 0},
    {"POST", "/v1/members/#/activate", ROLE_COORDINATOR, 0, member_activate, 0},
    {"GET", "/v1/members/#/balance", ROLE_BROKER, 0, member_balance, 0},
    {"GET", "/v1/members/#/history", ROLE_BROKER, 0, member_history, 0},
    {"GET", "/v1/members/#/statement", ROLE_BROKER, 0, api_statement, 0},
    {"GET", "/v1/members/#/export", ROLE_COORDINATOR, 0, member_export, 0},
    {"POST", "/v1/members/#/erase", ROLE_COORDINATOR, 1, member_erase, 0},
    {"POST", "/v1/exchanges", ROLE_BROKER, 1, exchange_record, 0},
    {"POST", "/v1/exchanges/group", ROLE_BROKER, 1, exchange_group, 0},
    {"GET", "/v1/exchanges", ROLE_BROKER, 0, exchange_list, 0},
    {"GET", "/v1/exchanges/#", ROLE_BROKER, 0, exchange_get, 0},
    {"GET", "/v1/exchanges/*", ROLE_BROKER, 0, exchange_get_cross_bank, 0},
    {"POST", "/v1/exchanges/#/reverse", ROLE_COORDINATOR, 1, exchange_reverse, 0},
    {"POST", "/v1/exchanges/*/reverse", ROLE_COORDINATOR, 1, exchange_reverse_cross_bank, 0},
    {"POST", "/v1/claims", ROLE_BROKER, 1, api_claim_record, 0},
    {"GET", "/v1/claims", ROLE_BROKER, 0, api_claim_list, 0},
    {"GET", "/v1/claims/*", ROLE_BROKER, 0, api_claim_get, 0},
    {"POST", "/v1/claims/*/approve", ROLE_BROKER, 0, api_claim_approve, 0},
    {"POST", "/v1/claims/*/decline", ROLE_BROKER, 1, api_claim_decline, 0},
    {"POST", "/v1/referrals", ROLE_COORDINATOR, 1, api_referral_send, 0},
    {"GET", "/v1/referrals", ROLE_COORDINATOR, 0, api_referral_list, 0},
    {"GET", "/v1/referrals/*", ROLE_COORDINATOR, 0, api_referral_get, 0},
    {"POST", "/v1/referrals/*/accept", ROLE_COORDINATOR, API_BODY_OPTIONAL, api_referral_accept, 0},
    {"POST", "/v1/referrals/*/decline", ROLE_COORDINATOR, 1, api_referral_decline, 0},
    {"POST", "/v1/referrals/*/withdraw", ROLE_COORDINATOR, 0, api_referral_withdraw, 0},
    {"POST", "/v1/offers", ROLE_BROKER, 1, api_offer_add, 0},
    {"GET", "/v1/offers", ROLE_BROKER, 0, api_offer_list, 0},
    {"GET", "/v1/offers/#", ROLE_BROKER, 0, api_offer_get, 0},
    {"PATCH", "/v1/offers/#", ROLE_BROKER, 1, api_offer_update, 0},
    {"POST", "/v1/offers/#/withdraw", ROLE_BROKER, 0, api_offer_withdraw, 0},
    {"POST", "/v1/offers/#/approve", ROLE_BROKER, API_BODY_OPTIONAL, api_offer_approve, 0},
    {"POST", "/v1/requests", ROLE_BROKER, 1, api_request_add, 0},
    {"GET", "/v1/requests", ROLE_BROKER, 0, api_request_list, 0},
    {"GET", "/v1/requests/#", ROLE_BROKER, 0, api_request_get, 0},
    {"PATCH", "/v1/requests/#", ROLE_BROKER, 1, api_request_update, 0},
    {"POST", "/v1/requests/#/withdraw", ROLE_BROKER, 0, api_request_withdraw, 0},
    {"POST", "/v1/requests/#/approve", ROLE_BROKER, API_BODY_OPTIONAL, api_request_approve, 0},
    {"GET", "/v1/requests/#/matches", ROLE_BROKER, 0, api_request_matches, 0},
    {"GET", "/v1/directory", ROLE_BROKER, 0, api_directory_search, 0},
    {"GET", "/v1/directory/categories", ROLE_VIEWER, 0, api_directory_categories, 0},
    {"POST", "/v1/contacts", ROLE_BROKER, 1, api_contact_request, 0},
    {"GET", "/v1/contacts", ROLE_BROKER, 0, api_contact_list, 0},
    {"GET", "/v1/contacts/*", ROLE_BROKER, 0, api_contact_get, 0},
    {"POST", "/v1/contacts/*/accept", ROLE_BROKER, 1, api_contact_accept, 0},
    {"POST", "/v1/contacts/*/decline", ROLE_BROKER, API_BODY_OPTIONAL, api_contact_decline, 0},
    {"POST", "/v1/grants", ROLE_COORDINATOR, 1, grant, 0},
    {"GET", "/v1/audit", ROLE_VIEWER, 0, audit, 0},
    {"GET", "/v1/audit/federation", ROLE_VIEWER, 0, audit_federation, 0},
    {"GET", "/v1/reports/categories", ROLE_VIEWER, 0, api_report_categories, 0},
    {"GET", "/v1/reports/active", ROLE_VIEWER, 0, api_report_active, 0},
    {"GET", "/v1/reports/new-members", ROLE_VIEWER, 0, api_report_new_members, 0},
    {"GET", "/v1/reports/referrals", ROLE_VIEWER, 0, api_report_referrals, 0},
    {"GET", "/v1/reports/network", ROLE_VIEWER, 0, api_report_network, 0},
    {"POST", "/v1/reports/network/send", ROLE_COORDINATOR, 0, api_report_network_send, 0},
    {"GET", "/v1/network/summary", ROLE_VIEWER, 0, api_network_summary, 0},
    {"GET", "/v1/network/banks", ROLE_VIEWER, 0, api_network_banks, 0},
    {"GET", "/v1/network/banks/*/report", ROLE_VIEWER, 0, api_network_bank_report, 0},
    {"GET", "/v1/network/categories", ROLE_VIEWER, 0, api_network_categories, 0},
    {"GET", "/v1/network/areas", ROLE_VIEWER, 0, api_network_areas, 0},
    {"GET", "/v1/network/books", ROLE_VIEWER, 0, api_network_books, 0},
    {"GET", "/v1/register", ROLE_VIEWER, 0, api_register_show, 0},
    {"GET", "/v1/register/diff", ROLE_VIEWER, 0, api_register_diff, 0},
    {"GET", "/v1/register/history", ROLE_VIEWER, 0, api_register_history, 0},
    {"POST", "/v1/register/banks", ROLE_COORDINATOR, 1, api_register_add, 0},
    {"POST", "/v1/register/banks/*/remove", ROLE_COORDINATOR, 0, api_register_remove, 0},
    {"POST", "/v1/register/banks/*/revoke", ROLE_COORDINATOR, 0, api_register_revoke, 0},
    {"POST", "/v1/register/banks/*/rotate-key", ROLE_COORDINATOR, 1, api_register_rotate, 0},
    {"POST", "/v1/register/publish", ROLE_COORDINATOR, API_BODY_OPTIONAL, api_register_publish, 0},
    {"GET", "/v1/tokens", ROLE_COORDINATOR, 0, api_token_list, 0},
    {"POST", "/v1/tokens", ROLE_COORDINATOR, 1, api_token_create, 0},
    {"POST", "/v1/tokens/*/revoke", ROLE_COORDINATOR, 0, api_token_revoke, 0},
    {"GET", "/v1/backup", ROLE_VIEWER, 0, api_backup_status, 0},
    {"GET", "/v1/peers", ROLE_VIEWER, 0, api_peers, 0},
    {"POST", "/v1/peers/*/forget-key", ROLE_COORDINATOR, 1, api_peer_forget_key, 0},
    {"POST", "/v1/federation/test-messages", ROLE_COORDINATOR, 1, api_test_messages, 0},
    {"POST", "/v1/intake", ROLE_BROKER, 1, api_intake_add, 1},
    {"GET", "/v1/intake", ROLE_BROKER, 0, api_intake_list, 1},
    {"GET", "/v1/intake/#", ROLE_BROKER, 0, api_intake_get, 1},
    {"POST", "/v1/intake/#/contacted", ROLE_BROKER, 0, api_intake_contacted, 0},
    {"POST", "/v1/intake/#/joined", ROLE_BROKER, API_BODY_OPTIONAL, api_intake_joined, 0},
    {"POST", "/v1/intake/#/declined", ROLE_BROKER, 1, api_intake_declined, 0},
    {"POST", "/v1/intake/#/unreachable", ROLE_BROKER, 0, api_intake_unreachable, 0},
    {"POST", "/v1/intake/#/withdrawn", ROLE_BROKER, 0, api_intake_withdrawn, 1},
    {"GET", "/v1/intake/#/letter", ROLE_BROKER, 0, api_intake_letter, 1},
    {"POST", "/v1/intake/#/erase", ROLE_COORDINATOR, 0, api_intake_erase, 0},
    {"GET", "/v1/reports/intake", ROLE_VIEWER, 0, api_report_intake, 0},
    {"GET", "/v1/members/#/checks", ROLE_BROKER, 0, api_check_list, 0},
    {"POST", "/v1/members/#/checks", ROLE_BROKER, 1, api_check_add, 0},
    {"GET", "/v1/checks", ROLE_BROKER, 0, api_checks_expiring, 0},
    {"GET", "/v1/care-review", ROLE_BROKER, 0, api_care_review, 0},
    {"POST", "/v1/members/#/care-reviewed", ROLE_BROKER, API_BODY_OPTIONAL, api_care_reviewed, 0},
    {"GET", "/v1/todo", ROLE_BROKER, 0, api_todo, 0},
    {"POST", "/v1/session", 0, 1, api_session_start, 0},
    {"GET", "/v1/session", ROLE_REFERRER, 0, api_session_get, 1},
    {"DELETE", "/v1/session", 0, 0, api_session_end, 0},
    {"POST", "/v1/users/setup", 0, 1, api_user_setup, 0},
    {"GET", "/v1/users", ROLE_COORDINATOR, 0, api_user_list, 0},
    {"POST", "/v1/users", ROLE_COORDINATOR, 1, api_user_add, 0},
    {"POST", "/v1/users/*/reset", ROLE_COORDINATOR, 0, api_user_reset, 0},
    {"POST", "/v1/users/*/remove", ROLE_COORDINATOR, 0, api_user_remove, 0},
    {NULL, NULL, 0, 0, NULL, 0},
};
