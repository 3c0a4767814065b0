/* db: a small pool of asynchronous libpq connections driven by the libevent
 * loop (PQconnectStart / PQsendQueryParams / PQconsumeInput on PQsocket), in
 * pipeline mode, one statement (and its barrier) at a time on each. Lost
 * connections are re-made with jittered, capped backoff.
 * Layer: io (src/io/); includes core headers. */
#ifndef TB_DB_H
#define TB_DB_H

#include <event2/event.h>
#include <libpq-fe.h>

enum db_status {
	DB_OK,          /* the statement ran; res holds its result */
	DB_ERROR,       /* the server refused it; sqlstate, message, detail say why */
	DB_UNAVAILABLE, /* no connection, or it was lost before an answer */
	DB_BUSY,        /* too many statements queued */
};

struct db_result {
	enum db_status status;
	const PGresult *res; /* valid only during the callback */
	const char *sqlstate;
	const char *message;
	const char *detail;
};

typedef void (*db_cb)(void *arg, const struct db_result *r);

/* Why a statement failed, for a log line: the server's message, or
 * "database unavailable". */
static inline const char *db_result_why(const struct db_result *r)
{
	return r->status == DB_ERROR && r->message != NULL ? r->message : "database unavailable";
}

struct db;

/* Starts size connections to conninfo (copied). */
struct db *db_new(struct event_base *base, const char *conninfo, int size);
/* Closes every connection; queued statements are answered DB_UNAVAILABLE.
 * Accepts NULL. */
void db_free(struct db *db);

/* Queues one parameterised statement (params copied). Returns 0 when queued:
 * cb is then called exactly once, from the loop. Returns -1 with *status set
 * (DB_UNAVAILABLE or DB_BUSY) when it cannot be queued; cb is not called. */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, enum db_status *status) __attribute__((warn_unused_result));

/* As db_query, for a statement whose commit may be asynchronous: a barrier
 * follows it on the same connection, so on the same server, and makes it,
 * and everything committed before it, durable on disk (a transaction that
 * writes WAL and commits synchronously). cb hears the statement. When that
 * was DB_OK, durable_cb follows, exactly once: DB_OK once the commit is on
 * disk; anything else, and its fate is unknown (a retry with its key, or a
 * resend, settles it). When cb hears anything but DB_OK, durable_cb is not
 * called. Both get arg. */
int db_query_durable(struct db *db, const char *sql, int nparams, const char *const *params,
                     db_cb cb, db_cb durable_cb, void *arg, enum db_status *status)
    __attribute__((warn_unused_result));

/* cb(arg) runs whenever a connection that was up is lost. The server may
 * have restarted, failed over or been restored from a backup meanwhile, so
 * what was read from it before may no longer hold. One listener. */
void db_on_lost(struct db *db, void (*cb)(void *arg), void *arg);

/* Connections up now. */
int db_live(const struct db *db);

#endif
