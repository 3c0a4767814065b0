/* The admin API's server: listening, each request's path, token and body
 * checked and routed, health and metrics, reloads and draining. */
#include "internal.h"

#include "crypto.h"
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
#include <time.h>

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

static void send_metrics(struct api_req *r, const char *network)
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
	http_server_metrics(api->http, buf);
	if (api->https != NULL)
		http_server_metrics(api->https, buf);
	evbuffer_add_printf(buf,
	                    "# HELP timebankd_log_lines_suppressed_total Repeated log lines left "
	                    "out by the rate limit.\n"
	                    "# TYPE timebankd_log_lines_suppressed_total counter\n"
	                    "timebankd_log_lines_suppressed_total %llu\n",
	                    log_suppressed_total());
	api_backup_metrics(api, buf);
	if (api->link.metrics != NULL)
		api->link.metrics(api->link.arg, buf);
	if (network != NULL)
		evbuffer_add(buf, network, strlen(network));
	struct iovec body = {evbuffer_pullup(buf, -1), evbuffer_get_length(buf)};
	http_reply(r->req, 200, "Content-Type: text/plain; version=0.0.4\r\n", &body, 1);
	evbuffer_free(buf);
	api->by_class[2]++;
	api_req_free(r);
}

static void on_network_metrics(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;
	struct api *api = r->api;

	api->network_reading = 0;
	if (res->status == DB_OK && PQntuples(res->res) == 1) {
		free(api->network_metrics);
		api->network_metrics = xstrdup(PQgetvalue(res->res, 0, 0));
		api->network_metrics_at = time(NULL);
	}
	send_metrics(r, api->network_metrics);
}

/* At the national body, the network's figures come from its database, read
 * at most every NETWORK_METRICS_SECONDS however often anyone scrapes (the
 * endpoint needs no token); without the database the daemon's own still
 * answer, with the network's as last read. */
static void reply_metrics(struct api_req *r)
{
	struct api *api = r->api;
	enum db_status st;

	if (!api->limits.observer || api->network_reading ||
	    time(NULL) - api->network_metrics_at < NETWORK_METRICS_SECONDS) {
		send_metrics(r, api->network_metrics);
		return;
	}
	api->network_reading = 1;
	if (db_query(api->db, "SELECT tb_network_metrics()", 0, NULL, on_network_metrics, r, &st) ==
	    -1) {
		api->network_reading = 0;
		send_metrics(r, api->network_metrics);
	}
}

/* The token an Authorization header presents, or NULL. */
static const struct auth_token *bearer(const struct api *api, const char *header)
{
	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	return auth_check(api->auth, header + 7);
}

/* 0 with r->role and r->actor set, or -1 after answering 401. A request
 * with no Authorization header may be a console session's (its cookie). */
static int authenticate(struct api_req *r)
{
	const char *header = http_req_header(r->req, "Authorization");
	const struct auth_token *t = bearer(r->api, header);
	int session;

	if (header == NULL && (session = api_session_auth(r)) != 0)
		return session == 1 ? 0 : -1;
	if (t == NULL) {
		api_reply_error(r, 401, "unauthorized", "a valid bearer token is required");
		return -1;
	}
	r->role = t->role;
	r->org = t->org;
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

static int has_body(const struct api_req *r)
{
	size_t len;

	(void)http_req_body(r->req, &len);
	return len > 0;
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
	if (rt->role != 0 && authenticate(r) == -1)
		return;
	if (rt->role != 0 && (r->role == ROLE_REFERRER ? !rt->referrer : r->role < rt->role)) {
		api_reply_error(r, 403, "forbidden", "this needs a %s token; yours is %s",
		                auth_role_name(rt->role), auth_role_name(r->role));
		return;
	}
	if (rt->needs_body && (rt->needs_body != API_BODY_OPTIONAL || has_body(r)) &&
	    read_body(r) == -1)
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
	else if (strcmp(path, "/v1/openapi.json") == 0)
		api_openapi(r);
	else if (strcmp(path, "/") == 0 || strcmp(path, "/console") == 0 ||
	         strncmp(path, "/console/", 9) == 0)
		api_console(r, path);
	else
		route(r, path);
}

/* A request with a body and no valid token is refused before its body is
 * read: a stranger cannot make the daemon take in a megabyte to say 401. */
/* The writes that need no token, whose bodies are small: signing in, and
 * setting a password with a setup code. */
static int public_write(const struct http_head *h)
{
	return h->content_length <= 4096 && strcmp(h->method, "POST") == 0 &&
	       (strcmp(h->target, "/v1/session") == 0 || strcmp(h->target, "/v1/users/setup") == 0);
}

static int check_head(const struct http_head *h, void *arg, const char **code, const char **message)
{
	struct api *api = arg;

	if (h->content_length <= 0 || bearer(api, http_head_header(h, "Authorization")) != NULL ||
	    public_write(h) || api_session_known(api->sessions, http_head_header(h, "Cookie")))
		return 0;
	*code = "unauthorized";
	*message = "a valid bearer token is required";
	return 401;
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
	api->users_file = xasprintf("%s.users", token_file);
	api->sessions = api_sessions_new(base, bank_id);
	if (api->sessions == NULL) {
		auth_free(auth);
		free(api->bank_id);
		free(api->bank_name);
		free(api->token_file);
		free(api->users_file);
		free(api);
		return NULL;
	}
	api->db = db;
	api->auth = auth;
	api->limits = *limits;
	api->batch = api_batch_new(api, base);
	/* Every method reaches the router, so unknown ones get a JSON 405. */
	struct gate_limits conns = {limits->max_conns, limits->max_conns_per_source};
	api->http = http_server_new(base, host, port, hard_body_cap(limits), 60, conns, NULL,
	                            on_request, api);
	if (api->http == NULL) {
		log_error("api: cannot listen on %s:%d", host, port);
		api_free(api);
		return NULL;
	}
	http_server_set_check(api->http, check_head);
	log_info("api: listening on %s:%d (%d tokens)", host, port, auth_count(auth));
	return api;
}

int api_listen_tls(struct api *api, const char *host, int port, const char *cert, const char *key)
{
	struct gate_limits conns = {api->limits.max_conns, api->limits.max_conns_per_source};
	struct http_tls tls = {cert, key};

	api->https = http_server_new(api->base, host, port, hard_body_cap(&api->limits), 60, conns,
	                             &tls, on_request, api);
	if (api->https == NULL) {
		log_error("api: cannot serve TLS on %s:%d", host, port);
		return -1;
	}
	http_server_set_check(api->https, check_head);
	log_info("api: serving TLS on %s:%d", host, port);
	return 0;
}

void api_set_pgm(struct api *api, const struct pgm *pgm)
{
	api->pgm = pgm;
}

void api_set_link(struct api *api, const struct api_link *link)
{
	api->link = *link;
}

void api_set_register(struct api *api, struct crypto_key *key, const char *crl_path)
{
	crypto_key_free(api->register_key);
	free(api->crl_path);
	api->register_key = key;
	api->crl_path = crl_path != NULL ? xstrdup(crl_path) : NULL;
}

const struct auth *api_auth(const struct api *api)
{
	return api->auth;
}

void api_set_auth(struct api *api, struct auth *auth)
{
	auth_free(api->auth);
	api->auth = auth;
}

void api_free(struct api *api)
{
	if (api == NULL)
		return;
	http_server_free(api->http);
	http_server_free(api->https);
	api_batch_free(api->batch);
	auth_free(api->auth);
	free(api->bank_id);
	free(api->bank_name);
	free(api->token_file);
	free(api->users_file);
	api_sessions_free(api->sessions);
	free(api->network_metrics);
	crypto_key_free(api->register_key);
	free(api->crl_path);
	free(api);
}

void api_reload(struct api *api, struct auth *auth, const char *token_file,
                const struct api_limits *limits)
{
	api_set_auth(api, auth);
	free(api->token_file);
	api->token_file = xstrdup(token_file);
	free(api->users_file);
	api->users_file = xasprintf("%s.users", token_file);
	api->limits = *limits;
	http_server_set_max_body(api->http, hard_body_cap(limits));
	if (api->https != NULL)
		http_server_set_max_body(api->https, hard_body_cap(limits));
}

void api_drain(struct api *api, void (*done)(void *), void *arg)
{
	http_server_stop_accepting(api->http);
	if (api->https != NULL)
		http_server_stop_accepting(api->https);
	api->draining = 1;
	api->done = done;
	api->done_arg = arg;
	log_info("api: draining: %d requests in flight", api->inflight);
	if (api->inflight == 0) {
		api->done = NULL;
		done(arg);
	}
}
