/* Answering one request of the admin API: replies and their errors, the
 * ledger's refusals mapped to statuses, one SQL call answered, query
 * strings read, and telling the federation link what a write committed. */
#include "internal.h"

#include "failpoint.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "req.h"

#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define API_DEFAULT_LIMIT 50
#define API_MAX_LIMIT 500

/* Stable error codes raised by the ledger, and the HTTP status of each. */
static const struct {
	const char *code;
	int status;
} ledger_codes[] = {
    {"member_not_found", 404},
    {"exchange_not_found", 404},
    {"duplicate_member_number", 409},
    {"idempotency_conflict", 409},
    {"idempotency_key_erased", 409},
    {"below_floor", 422},
    {"member_inactive", 422},
    {"same_member", 422},
    {"invalid_date", 422},
    {"already_reversed", 409},
    {"not_reversible", 422},
    {"already_erased", 409},
    {"member_not_left", 409},
    {"balance_not_zero", 409},
    {"member_erased", 409},
    {"invalid_referrer", 422},
    {"invalid_period", 400},
    {"peer_not_found", 404},
    {"bank_not_found", 404},
    {"bank_exists", 409},
    {"key_in_use", 409},
    {"too_many_keys", 409},
    {"register_changed", 409},
    {"key_not_found", 404},
    {"unknown_bank", 422},
    {"not_exchanging", 422},
    {"peer_diverged", 409},
    {"claim_not_found", 404},
    {"claim_already_decided", 409},
    {"invalid_hours", 422},
    {"item_not_found", 404},
    {"item_withdrawn", 409},
    {"item_not_waiting", 409},
    {"item_changed", 409},
    {"contact_not_found", 404},
    {"contact_already_decided", 409},
    {"contact_not_accepted", 409},
    {"own_item", 422},
    {"ambiguous_handle", 422},
    {"wrong_bank", 422},
    {"invalid_category", 422},
    {"referral_not_found", 404},
    {"referral_already_decided", 409},
    {"referral_open", 409},
    {"member_has_open", 409},
    {"member_moving", 409},
    {"balance_refused", 422},
    {"exposure_limit", 422},
    {"intake_not_found", 404},
    {"other_organisation", 403},
    {"forbidden", 403},
    {"not_an_organisation", 422},
    {"invalid_transition", 409},
    {"no_consent", 422},
    {"member_already_referred", 409},
    {"intake_open", 409},
    {"safeguarding_check_required", 422},
    {"not_flagged", 409},
};

struct api_batch *api_batcher(const struct api *api)
{
	return api->batch;
}

const struct api_limits *api_limits(const struct api *api)
{
	return &api->limits;
}

const char *api_bank_id(const struct api *api)
{
	return api->bank_id;
}

struct db *api_db(const struct api *api)
{
	return api->db;
}

const char *api_bank_name(const struct api *api)
{
	return api->bank_name;
}

const char *api_token_file(const struct api *api)
{
	return api->token_file;
}

void api_written(struct api *api, int queued, int directory)
{
	if (api->link.written != NULL && (queued || directory))
		api->link.written(api->link.arg, queued, directory);
}

void api_req_free(struct api_req *r)
{
	struct api *api = r->api;

	evhttp_clear_headers(&r->query);
	json_decref(r->body);
	free(r);
	api->inflight--;
	if (api->draining && api->inflight == 0 && api->done != NULL) {
		void (*done)(void *) = api->done;
		api->done = NULL;
		done(api->done_arg);
	}
}

void api_reply_with(struct api_req *r, int status, const char *headers, const char *json_text)
{
	struct iovec body[2] = {{(void *)json_text, strlen(json_text)}, {"\n", 1}};
	char head[512];

	snprintf(head, sizeof(head), "Content-Type: application/json\r\n%s%s",
	         status == 503   ? "Retry-After: 1\r\n"
	         : status == 401 ? "WWW-Authenticate: Bearer\r\n"
	                         : "",
	         headers);
	api_reply_parts(r, status, head, body, 2);
}

void api_reply_parts(struct api_req *r, int status, const char *headers, const struct iovec *body,
                     int nbody)
{
	http_reply(r->req, status, headers, body, nbody);
	if (status / 100 < 6)
		r->api->by_class[status / 100]++;
	api_req_free(r);
}

void api_reply_text(struct api_req *r, int status, const char *json_text)
{
	api_reply_with(r, status, "", json_text);
}

void api_reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	json_t *j;
	char *text;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s{ssss}}", "error", "code", code, "message", msg);
	text = json_dumps(j, JSON_COMPACT);
	api_reply_text(r, status, text);
	free(text);
	json_decref(j);
}

static int ledger_status(const char *code)
{
	for (size_t i = 0; i < sizeof(ledger_codes) / sizeof(ledger_codes[0]); i++)
		if (strcmp(ledger_codes[i].code, code) == 0)
			return ledger_codes[i].status;
	return 422;
}

/* SQLSTATE classes that mean "the database is not there right now": the
 * request did not happen and can be retried. */
static int retryable_sqlstate(const char *s)
{
	return s != NULL && (strncmp(s, "08", 2) == 0 || strncmp(s, "57", 2) == 0 ||
	                     strncmp(s, "53", 2) == 0 || strncmp(s, "40", 2) == 0);
}

void api_reply_ledger_error(struct api_req *r, const char *code, const char *detail)
{
	api_reply_error(r, ledger_status(code), code, "%s", detail[0] != '\0' ? detail : code);
}

void api_reply_failure(struct api_req *r, const struct db_result *res)
{
	switch (res->status) {
	case DB_OK:
		log_error("api: the ledger gave no answer for %s", http_req_target(r->req));
		api_reply_error(r, 500, "internal_error", "the ledger gave no answer");
		return;
	case DB_ERROR:
		if (res->sqlstate != NULL && strcmp(res->sqlstate, "TB000") == 0) {
			api_reply_ledger_error(r, res->message,
			                       res->detail != NULL ? res->detail : res->message);
			return;
		}
		if (retryable_sqlstate(res->sqlstate))
			break;
		log_error("api: ledger error %s on %s: %s", res->sqlstate ? res->sqlstate : "?",
		          http_req_target(r->req), res->message ? res->message : "");
		api_reply_error(r, 500, "internal_error",
		                "the ledger could not do this; nothing was changed");
		return;
	case DB_BUSY:
		api_reply_error(r, 503, "busy", "too many requests waiting for the ledger; retry");
		return;
	case DB_UNAVAILABLE:
		break;
	}
	api_reply_error(r, 503, "database_unavailable",
	                "the ledger database is unavailable; retry with the same idempotency key");
}

static void on_sql(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;

	if (res->status == DB_OK && PQntuples(res->res) == 1 && !PQgetisnull(res->res, 0, 0)) {
		if (r->failpoint_after != NULL)
			failpoint(r->failpoint_after);
		api_written(r->api, r->queues_messages, r->dir_changes);
		if (r->register_serial != 0 && r->api->link.register_published != NULL)
			r->api->link.register_published(r->api->link.arg, r->register_serial);
		api_reply_text(r, r->ok_status, PQgetvalue(res->res, 0, 0));
		return;
	}
	api_reply_failure(r, res);
}

void api_sql(struct api_req *r, const char *sql, int nparams, const char *const *params)
{
	enum db_status st;

	if (db_query(r->api->db, sql, nparams, params, on_sql, r, &st) == -1) {
		struct db_result res = {.status = st};
		on_sql(r, &res);
	}
}

int api_query_int(struct api_req *r, const char *name, int64_t *out, int *present)
{
	const char *v = evhttp_find_header(&r->query, name);

	*present = v != NULL;
	if (v == NULL)
		return 0;
	if (req_parse_int(v, 1, INT64_MAX, out) == -1) {
		api_reply_error(r, 400, "invalid_request", "%s must be a positive whole number",
		                name);
		return -1;
	}
	return 0;
}

int api_query_period(struct api_req *r, const char *def_from, const char *def_to, char *from,
                     char *to)
{
	const char *names[2] = {"from", "to"}, *defs[2] = {def_from, def_to};
	char *outs[2] = {from, to};

	for (int i = 0; i < 2; i++) {
		const char *v = evhttp_find_header(&r->query, names[i]);
		if (v == NULL)
			v = defs[i];
		if (v == NULL || !req_valid_date(v)) {
			api_reply_error(r, 400, "invalid_date",
			                "%s must be a date written YYYY-MM-DD", names[i]);
			return -1;
		}
		snprintf(outs[i], 11, "%s", v);
	}
	if (strcmp(from, to) > 0) {
		api_reply_error(r, 400, "invalid_period", "the period ends before it starts");
		return -1;
	}
	return 0;
}

int api_query_page(struct api_req *r, struct api_page *page)
{
	const char *v = evhttp_find_header(&r->query, "limit");
	int64_t limit = API_DEFAULT_LIMIT, cursor;
	int has_cursor;

	if (v != NULL && req_parse_int(v, 1, API_MAX_LIMIT, &limit) == -1) {
		api_reply_error(r, 400, "invalid_request", "limit must be from 1 to %d",
		                API_MAX_LIMIT);
		return -1;
	}
	if (api_query_int(r, "cursor", &cursor, &has_cursor) == -1)
		return -1;
	snprintf(page->limit, sizeof(page->limit), "%lld", (long long)limit);
	snprintf(page->cursor_text, sizeof(page->cursor_text), "%lld", (long long)cursor);
	page->cursor = has_cursor ? page->cursor_text : NULL;
	return 0;
}

void api_list_between_banks(struct api_req *r, const char *sql, const char *directions)
{
	struct api_page page;
	const char *direction = evhttp_find_header(&r->query, "direction");
	const char *state = evhttp_find_header(&r->query, "state");

	if (direction == NULL)
		direction = "incoming";
	if (strcmp(direction, "incoming") != 0 && strcmp(direction, "outgoing") != 0) {
		api_reply_error(r, 400, "invalid_request", "direction must be %s", directions);
		return;
	}
	if (state != NULL && strcmp(state, "open") != 0 && strcmp(state, "all") != 0) {
		api_reply_error(r, 400, "invalid_request", "state must be open or all");
		return;
	}
	if (api_query_page(r, &page) == -1)
		return;
	const char *params[4] = {direction, state != NULL && strcmp(state, "all") == 0 ? "f" : "t",
	                         page.cursor, page.limit};
	api_sql(r, sql, 4, params);
}

/* A safeguarding override is a coordinator's: 0, or -1 after answering 403. */
int api_override_allowed(struct api_req *r)
{
	if (json_object_get(r->body, "safeguarding_override") == NULL ||
	    r->role >= ROLE_COORDINATOR)
		return 0;
	api_reply_error(r, 403, "forbidden",
	                "a safeguarding override needs a coordinator token; yours is %s",
	                auth_role_name(r->role));
	return -1;
}
