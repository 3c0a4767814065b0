/* What the admin API's files share, and no other module sees: the
 * server and its state (api.c), answering one request (request.c), the
 * routes (routes.c) and their handlers (books, claims, directory, peers,
 * tokens), and exchanges recorded in batches (batch.c). They call
 * downwards only: api.c -> routes and handlers -> batch.c -> request.c.
 * May include the core and io headers, and api.h; never the federation's. */
#ifndef TB_API_INTERNAL_H
#define TB_API_INTERNAL_H

#include "api.h"
#include "req.h"

#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

/* A report's period when none is asked for: all time. */
#define ALL_FROM "1900-01-01"
#define ALL_TO "9999-12-31"

/* Writes a number as SQL parameter text into buf; yields buf. */
#define API_I64(buf, v) (snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(v)), (buf))

struct api_batch;
struct api_sessions;

/* The API's state: api.c makes and frees it; the other files read it. */
struct api {
	struct event_base *base;
	char *bank_id;
	char *bank_name;
	char *token_file;
	char *users_file; /* the console's accounts: TOKEN_FILE.users */
	struct api_sessions *sessions;
	struct api_link link; /* the federation link, when there is one */
	struct http_server *http;
	struct http_server *https; /* [admin] tls_listen, or NULL */
	const struct pgm *pgm;     /* the managed cluster, or NULL */
	struct db *db;
	struct auth *auth;
	struct api_limits limits;
	int inflight;
	int draining;
	void (*done)(void *);
	void *done_arg;
	unsigned long long by_class[6]; /* replies by status class: [2] = 2xx ... */
	struct api_batch *batch;
	/* The national body's register key and the CRL the register carries. */
	struct crypto_key *register_key;
	char *crl_path;
	/* The national body's figures for /metrics, as last read (observer). */
	char *network_metrics;
	time_t network_metrics_at;
	int network_reading;
};

#define NETWORK_METRICS_SECONDS 10

/* One request being answered. Freed by the reply. */
struct api_req {
	struct api *api;
	struct http_req *req;
	enum auth_role role;       /* copied: a reload may free the token */
	long long org;             /* a referrer's organisation, else 0 */
	char actor[AUTH_NAME_MAX]; /* the token's name, recorded by writes */
	int64_t id;                /* '#' in the path: a number or id */
	char name[AUTH_NAME_MAX];  /* '*' in the path: a token name */
	char csrf[65];             /* a console session's CSRF token; "" for a bearer token */
	struct evkeyvalq query;
	json_t *body;                /* parsed JSON body, or NULL */
	const char *failpoint_after; /* a crash-test step once the ledger answered */
	int queues_messages;         /* success may have queued federation messages */
	int dir_changes;             /* success may have changed the shared directory */
	uint64_t register_serial;    /* success published the register as this serial */
	int ok_status;
};

#define API_BODY_OPTIONAL 2

struct api_route {
	const char *method;
	const char *path;    /* "/v1/members/#": '#' matches a number, '*' a name */
	enum auth_role role; /* 0: no token or session needed */
	int needs_body;      /* 1: a JSON body; API_BODY_OPTIONAL: one when sent */
	void (*handle)(struct api_req *r);
	int referrer; /* a referrer's token may call it too, for its organisation */
};

extern const struct api_route api_routes[];

/* Handlers kept in their own files (api_books.c, api_tokens.c, api_fed.c,
 * api_claims.c, api_dir.c). */
void api_statement(struct api_req *r);
void api_report_categories(struct api_req *r);
void api_report_active(struct api_req *r);
void api_report_new_members(struct api_req *r);
void api_report_network(struct api_req *r);
void api_report_network_send(struct api_req *r);
void api_network_summary(struct api_req *r);
void api_network_categories(struct api_req *r);
void api_network_areas(struct api_req *r);
void api_network_books(struct api_req *r);
void api_network_banks(struct api_req *r);
void api_network_bank_report(struct api_req *r);
void api_register_show(struct api_req *r);
void api_register_diff(struct api_req *r);
void api_register_history(struct api_req *r);
void api_register_add(struct api_req *r);
void api_register_remove(struct api_req *r);
void api_register_revoke(struct api_req *r);
void api_register_rotate(struct api_req *r);
void api_register_publish(struct api_req *r);
void api_report_referrals(struct api_req *r);
void api_backup_status(struct api_req *r);
/* The backups' figures for /metrics, onto buf (none without a managed cluster). */
struct evbuffer;
void api_backup_metrics(const struct api *api, struct evbuffer *buf);
void api_token_list(struct api_req *r);
void api_token_create(struct api_req *r);
void api_token_revoke(struct api_req *r);
void api_peers(struct api_req *r);
void api_peer_forget_key(struct api_req *r);
void api_claim_record(struct api_req *r);
void api_claim_list(struct api_req *r);
void api_claim_get(struct api_req *r);
void api_claim_approve(struct api_req *r);
void api_claim_decline(struct api_req *r);
void api_referral_send(struct api_req *r);
void api_referral_list(struct api_req *r);
void api_referral_get(struct api_req *r);
void api_referral_accept(struct api_req *r);
void api_referral_decline(struct api_req *r);
void api_referral_withdraw(struct api_req *r);
void api_offer_add(struct api_req *r);
void api_offer_update(struct api_req *r);
void api_offer_withdraw(struct api_req *r);
void api_offer_approve(struct api_req *r);
void api_offer_get(struct api_req *r);
void api_offer_list(struct api_req *r);
void api_request_add(struct api_req *r);
void api_request_update(struct api_req *r);
void api_request_withdraw(struct api_req *r);
void api_request_approve(struct api_req *r);
void api_request_get(struct api_req *r);
void api_request_list(struct api_req *r);
void api_request_matches(struct api_req *r);
void api_directory_search(struct api_req *r);
void api_directory_categories(struct api_req *r);
void api_contact_request(struct api_req *r);
void api_contact_list(struct api_req *r);
void api_contact_get(struct api_req *r);
void api_contact_accept(struct api_req *r);
void api_contact_decline(struct api_req *r);
void api_test_messages(struct api_req *r);
/* session.c: the console's accounts and sessions. */
/* NULL with why logged when it has no pipe for its password checks. */
struct api_sessions *api_sessions_new(struct event_base *base, const char *bank_id);
void api_sessions_free(struct api_sessions *s); /* accepts NULL */
/* Authenticates r by its session cookie: 1 with r->role and r->actor set,
 * 0 when it has none, -1 after answering (ended, or a write without its
 * CSRF token). */
int api_session_auth(struct api_req *r) __attribute__((warn_unused_result));
/* 1 if a Cookie header (may be NULL) names a session there is: whose
 * request's body may be read before it is authenticated. */
int api_session_known(struct api_sessions *s, const char *cookies);
void api_session_start(struct api_req *r);
void api_session_get(struct api_req *r);
void api_session_end(struct api_req *r);
void api_user_add(struct api_req *r);
void api_user_list(struct api_req *r);
void api_user_reset(struct api_req *r);
void api_user_remove(struct api_req *r);
void api_user_setup(struct api_req *r);
void api_intake_add(struct api_req *r);
void api_intake_list(struct api_req *r);
void api_intake_get(struct api_req *r);
void api_intake_contacted(struct api_req *r);
void api_intake_joined(struct api_req *r);
void api_intake_declined(struct api_req *r);
void api_intake_unreachable(struct api_req *r);
void api_intake_withdrawn(struct api_req *r);
void api_intake_letter(struct api_req *r);
void api_intake_erase(struct api_req *r);
void api_report_intake(struct api_req *r);
void api_check_add(struct api_req *r);
void api_check_list(struct api_req *r);
void api_checks_expiring(struct api_req *r);
void api_care_review(struct api_req *r);
void api_care_reviewed(struct api_req *r);
void api_todo(struct api_req *r);
/* A body's safeguarding_override is a coordinator's to give: 0, or -1
 * after answering 403 (r is then freed). */
int api_override_allowed(struct api_req *r) __attribute__((warn_unused_result));

const struct api_limits *api_limits(const struct api *api);
const char *api_bank_id(const struct api *api);
const char *api_bank_name(const struct api *api);
struct db *api_db(const struct api *api);
const char *api_token_file(const struct api *api);
/* Tells the federation link, if there is one, that a write committed that
 * may have queued channel messages (queued) or changed the shared
 * directory (directory). */
void api_written(struct api *api, int queued, int directory);

/* batch.c: exchanges recorded in batches, one transaction each. */
struct api_batch *api_batch_new(struct api *api, struct event_base *base);
void api_batch_free(struct api_batch *b);
/* Records the validated exchange p (taken) in the next batch; answers r. */
void api_batch_exchange(struct api_req *r, json_t *p, int cross_bank);
/* Batches sent, exchanges in them, and batches posted set-wise (nothing in
 * them refused). */
void api_batch_stats(const struct api_batch *b, unsigned long long *batches,
                     unsigned long long *exchanges, unsigned long long *set_wise);
struct api_batch *api_batcher(const struct api *api);

/* Answers r with a ledger refusal (its code's status) or with what a failed
 * database call means (503 to retry, 500); takes r. */
void api_reply_ledger_error(struct api_req *r, const char *code, const char *detail);
void api_reply_failure(struct api_req *r, const struct db_result *res);

/* Frees r once it is answered (the replies below call it). */
void api_req_free(struct api_req *r);

/* Answers and frees r. */
void api_reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void api_reply_text(struct api_req *r, int status, const char *json_text);
/* api_reply_text with more header lines ("Name: value\r\n" each, or ""). */
void api_reply_with(struct api_req *r, int status, const char *headers, const char *json_text);
/* Answers with headers (each line ending "\r\n", Content-Type among them)
 * and the body's nbody parts, counts the reply and frees r. */
struct iovec;
void api_reply_parts(struct api_req *r, int status, const char *headers, const struct iovec *body,
                     int nbody);
/* The console's pages and files (console.c): GET / and /console/... */
void api_console(struct api_req *r, const char *path);
/* GET /v1/openapi.json: the API's OpenAPI 3 document (src/web/openapi.json). */
void api_openapi(struct api_req *r);

/* Runs one ledger SQL statement returning a single jsonb value and answers
 * with it (status r->ok_status), or with the mapped error. Takes r. */
/* A list of what passes between banks (claims, contacts, referrals):
 * ?direction=incoming (the default) or outgoing (directions: what each
 * means, for the error), ?state=open (the default) or all, and the page,
 * as sql's $1 direction, $2 open only, $3 cursor, $4 limit. */
void api_list_between_banks(struct api_req *r, const char *sql, const char *directions);
void api_sql(struct api_req *r, const char *sql, int nparams, const char *const *params);

/* api_sql with the validated body p (taken) as $1, then extra[0..nextra).
 * NULL p means validation failed with err: 400 (422 for same_member). */
void api_sql_body(struct api_req *r, const char *sql, json_t *p, const struct req_error *err,
                  int nextra, const char *const *extra);

/* A list's page from ?cursor= and ?limit=, as SQL parameter text. */
struct api_page {
	const char *cursor; /* NULL: the first page */
	char cursor_text[24];
	char limit[24];
};

/* Query-string helpers: 0, or -1 after answering 400 (r is then freed). */
int api_query_page(struct api_req *r, struct api_page *page) __attribute__((warn_unused_result));
int api_query_int(struct api_req *r, const char *name, int64_t *out, int *present)
    __attribute__((warn_unused_result));
/* ?from= and ?to= as YYYY-MM-DD (each defaults to def_from / def_to when
 * given, else is required) into from[11] and to[11]. */
int api_query_period(struct api_req *r, const char *def_from, const char *def_to, char *from,
                     char *to) __attribute__((warn_unused_result));

#endif
