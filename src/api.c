#include "api_internal.h"

#include "failpoint.h"
#include "fed.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "req.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define API_DEFAULT_LIMIT 50
#define API_MAX_LIMIT 500

struct api {
	struct event_base *base;
	char *bank_id;
	char *bank_name;
	char *token_file;
	struct fed *fed;
	struct http_server *http;
	struct db *db;
	struct auth *auth;
	struct api_limits limits;
	int inflight;
	int draining;
	void (*done)(void *);
	void *done_arg;
	unsigned long long by_class[6]; /* replies by status class: [2] = 2xx ... */
	struct api_batch *batch;
};

/* Stable error codes raised by the ledger, and the HTTP status of each. */
static const struct {
	const char *code;
	int status;
} ledger_codes[] = {
    {"member_not_found", 404},
    {"exchange_not_found", 404},
    {"duplicate_member_number", 409},
    {"idempotency_conflict", 409},
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
    {"unknown_bank", 422},
    {"peer_diverged", 409},
    {"claim_not_found", 404},
    {"claim_already_decided", 409},
    {"invalid_hours", 422},
    {"item_not_found", 404},
    {"item_withdrawn", 409},
    {"contact_not_found", 404},
    {"contact_already_decided", 409},
    {"contact_not_accepted", 409},
    {"own_item", 422},
    {"ambiguous_handle", 422},
    {"wrong_bank", 422},
    {"invalid_category", 422},
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

void api_set_fed(struct api *api, struct fed *fed)
{
	api->fed = fed;
}

struct fed *api_fed(const struct api *api)
{
	return api->fed;
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

int api_reload_tokens(struct api *api, char *err, size_t errlen)
{
	struct auth *auth = auth_load(api->token_file, err, errlen);

	if (auth == NULL)
		return -1;
	auth_free(api->auth);
	api->auth = auth;
	log_info("api: %d tokens in force", auth_count(auth));
	return 0;
}

static void req_free(struct api_req *r)
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

void api_reply_text(struct api_req *r, int status, const char *json_text)
{
	struct iovec body[2] = {{(void *)json_text, strlen(json_text)}, {"\n", 1}};

	http_reply(r->req, status,
	           status == 503 ? "Content-Type: application/json\r\nRetry-After: 1\r\n"
	           : status == 401
	               ? "Content-Type: application/json\r\nWWW-Authenticate: Bearer\r\n"
	               : "Content-Type: application/json\r\n",
	           body, 2);
	if (status / 100 < 6)
		r->api->by_class[status / 100]++;
	req_free(r);
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
		if (r->kicks_fed)
			fed_kick(r->api->fed); /* committed: something may be queued */
		if (r->dir_changes)
			fed_dir_changed(r->api->fed);
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

/* Matches path against a pattern: '#' takes a number into r->id, '*' a
 * token name into r->name. */
static int path_match(const char *pattern, const char *path, struct api_req *r)
{
	while (*pattern != '\0') {
		const char *start = path;
		if (*pattern == '#') {
			int64_t v = 0;
			while (*path >= '0' && *path <= '9' && path - start < 15)
				v = v * 10 + (*path++ - '0');
			if (path == start || v == 0 || (*path != '/' && *path != '\0'))
				return 0;
			r->id = v;
			pattern++;
			continue;
		}
		if (*pattern == '*') {
			while (*path != '\0' && *path != '/' && path - start < AUTH_NAME_MAX - 1)
				path++;
			if (path == start || (*path != '/' && *path != '\0'))
				return 0;
			snprintf(r->name, sizeof(r->name), "%.*s", (int)(path - start), start);
			pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return *path == '\0' || (*path == '/' && path[1] == '\0');
}

static void reply_health(struct api_req *r)
{
	int up = db_live(r->api->db) > 0;
	json_t *j = json_pack("{ssssss}", "status", up ? "ok" : "degraded", "bank", r->api->bank_id,
	                      "database", up ? "up" : "down");
	char *text = json_dumps(j, JSON_COMPACT);

	api_reply_text(r, up ? 200 : 503, text);
	free(text);
	json_decref(j);
}

static void reply_metrics(struct api_req *r)
{
	struct api *api = r->api;
	struct evbuffer *buf = evbuffer_new();

	evbuffer_add_printf(
	    buf, "# HELP timebankd_http_replies_total Admin API replies by status class.\n"
	         "# TYPE timebankd_http_replies_total counter\n");
	for (int c = 2; c <= 5; c++)
		evbuffer_add_printf(buf, "timebankd_http_replies_total{class=\"%dxx\"} %llu\n", c,
		                    api->by_class[c]);
	evbuffer_add_printf(buf,
	                    "# HELP timebankd_http_inflight Admin API requests being answered.\n"
	                    "# TYPE timebankd_http_inflight gauge\ntimebankd_http_inflight %d\n"
	                    "# HELP timebankd_db_connections_up Live ledger database connections.\n"
	                    "# TYPE timebankd_db_connections_up gauge\n"
	                    "timebankd_db_connections_up %d\n",
	                    api->inflight - 1, db_live(api->db));
	unsigned long long batches, exchanges, set_wise;
	api_batch_stats(api->batch, &batches, &exchanges, &set_wise);
	evbuffer_add_printf(buf,
	                    "# HELP timebankd_exchange_batches_total Batches of exchanges sent to "
	                    "the ledger.\n# TYPE timebankd_exchange_batches_total counter\n"
	                    "timebankd_exchange_batches_total %llu\n"
	                    "# HELP timebankd_exchanges_batched_total Exchanges sent in those "
	                    "batches.\n# TYPE timebankd_exchanges_batched_total counter\n"
	                    "timebankd_exchanges_batched_total %llu\n"
	                    "# HELP timebankd_exchange_batches_set_wise_total Batches posted "
	                    "set-wise, nothing in them refused; the others went one exchange at a "
	                    "time.\n# TYPE timebankd_exchange_batches_set_wise_total counter\n"
	                    "timebankd_exchange_batches_set_wise_total %llu\n",
	                    batches, exchanges, set_wise);
	if (api->fed != NULL)
		fed_metrics(api->fed, buf);
	struct iovec body = {evbuffer_pullup(buf, -1), evbuffer_get_length(buf)};
	http_reply(r->req, 200, "Content-Type: text/plain; version=0.0.4\r\n", &body, 1);
	evbuffer_free(buf);
	api->by_class[2]++;
	req_free(r);
}

/* 0 with r->role and r->actor set, or -1 after answering 401. */
static int authenticate(struct api_req *r)
{
	const char *h = http_req_header(r->req, "Authorization");
	const struct auth_token *t = NULL;

	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
		t = auth_check(r->api->auth, h + 7);
	if (t == NULL) {
		api_reply_error(r, 401, "unauthorized", "a valid bearer token is required");
		return -1;
	}
	r->role = t->role;
	snprintf(r->actor, sizeof(r->actor), "%s", t->name);
	return 0;
}

/* 0 with r->body set, or -1 after answering 4xx. */
static int read_body(struct api_req *r)
{
	size_t len;
	const char *body = http_req_body(r->req, &len);
	json_error_t jerr;

	if (len > r->api->limits.max_body) {
		api_reply_error(r, 413, "body_too_large", "the request body is over %zu bytes",
		                r->api->limits.max_body);
		return -1;
	}
	if (len == 0) {
		api_reply_error(r, 400, "invalid_json",
		                "the request body is empty; send a JSON object");
		return -1;
	}
	r->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->body == NULL) {
		api_reply_error(r, 400, "invalid_json", "the request body is not valid JSON: %s",
		                jerr.text);
		return -1;
	}
	return 0;
}

static void route(struct api_req *r, const char *path)
{
	const char *method = http_req_method(r->req);
	const struct api_route *rt;
	int path_known = 0;

	for (rt = api_routes; rt->path != NULL; rt++) {
		if (!path_match(rt->path, path, r))
			continue;
		path_known = 1;
		if (strcmp(rt->method, method) == 0)
			break;
	}
	if (rt->path == NULL) {
		if (path_known)
			api_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s",
			                method, path);
		else
			api_reply_error(r, 404, "not_found", "no such endpoint: %s", path);
		return;
	}
	if (authenticate(r) == -1)
		return;
	if (r->role < rt->role) {
		api_reply_error(r, 403, "forbidden", "this needs a %s token; yours is %s",
		                auth_role_name(rt->role), auth_role_name(r->role));
		return;
	}
	if (rt->needs_body && read_body(r) == -1)
		return;
	r->ok_status = strcmp(method, "POST") == 0 ? 201 : 200;
	rt->handle(r);
}

static void on_request(struct http_req *req, void *arg)
{
	struct api *api = arg;
	struct api_req *r = xcalloc(1, sizeof(*r));
	const char *target = http_req_target(req), *mark = strchr(target, '?');
	const char *query = mark != NULL ? mark + 1 : NULL;
	size_t len = mark != NULL ? (size_t)(mark - target) : strlen(target);
	char path[1024];

	r->api = api;
	r->req = req;
	TAILQ_INIT(&r->query);
	api->inflight++;
	if (len >= sizeof(path)) {
		api_reply_error(r, 414, "uri_too_long", "the path is over %zu bytes",
		                sizeof(path) - 1);
		return;
	}
	memcpy(path, target, len);
	path[len] = '\0';
	if (api->draining) {
		api_reply_error(r, 503, "shutting_down",
		                "timebankd is shutting down; retry shortly");
		return;
	}
	if (query != NULL && evhttp_parse_query_str(query, &r->query) == -1) {
		api_reply_error(r, 400, "invalid_request", "the query string is malformed");
		return;
	}
	if (strcmp(path, "/v1/health") == 0)
		reply_health(r);
	else if (strcmp(path, "/metrics") == 0)
		reply_metrics(r);
	else
		route(r, path);
}

/* Bodies over max_body get a JSON 413 from read_body, the connection kept;
 * the server's own cap, far above it, refuses before reading the body, so
 * that a client sending without end is not read to the end. */
static size_t hard_body_cap(const struct api_limits *limits)
{
	size_t cap = limits->max_body * 4;

	return cap < 1048576 ? 1048576 : cap;
}

struct api *api_new(struct event_base *base, const char *bank_id, const char *bank_name,
                    const char *host, int port, struct db *db, struct auth *auth,
                    const char *token_file, const struct api_limits *limits)
{
	struct api *api = xcalloc(1, sizeof(*api));

	api->base = base;
	api->bank_id = xstrdup(bank_id);
	api->bank_name = xstrdup(bank_name);
	api->token_file = xstrdup(token_file);
	api->db = db;
	api->auth = auth;
	api->limits = *limits;
	api->batch = api_batch_new(api, base);
	/* Every method reaches the router, so unknown ones get a JSON 405. */
	api->http = http_server_new(base, host, port, hard_body_cap(limits), 60, on_request, api);
	if (api->http == NULL) {
		log_error("api: cannot listen on %s:%d", host, port);
		api_free(api);
		return NULL;
	}
	log_info("api: listening on %s:%d (%d tokens)", host, port, auth_count(auth));
	return api;
}

void api_free(struct api *api)
{
	if (api == NULL)
		return;
	http_server_free(api->http);
	api_batch_free(api->batch);
	auth_free(api->auth);
	free(api->bank_id);
	free(api->bank_name);
	free(api->token_file);
	free(api);
}

void api_reload(struct api *api, struct auth *auth, const char *token_file,
                const struct api_limits *limits)
{
	auth_free(api->auth);
	api->auth = auth;
	free(api->token_file);
	api->token_file = xstrdup(token_file);
	api->limits = *limits;
	http_server_set_max_body(api->http, hard_body_cap(limits));
}

void api_drain(struct api *api, void (*done)(void *), void *arg)
{
	http_server_stop_accepting(api->http);
	api->draining = 1;
	api->done = done;
	api->done_arg = arg;
	log_info("api: draining: %d requests in flight", api->inflight);
	if (api->inflight == 0) {
		api->done = NULL;
		done(arg);
	}
}
