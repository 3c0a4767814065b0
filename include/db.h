/* db: a small pool of asynchronous libpq connections driven by the libevent
 * loop (PQconnectStart / PQsendQueryParams / PQconsumeInput on PQsocket).
 * Lost connections are re-made with jittered, capped backoff. */
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

/* Makes sure everything committed before it is on disk: a transaction that
 * commits synchronously, which flushes the write-ahead log up to its own
 * commit record, and so past every earlier commit, asynchronous ones
 * included. cb hears DB_OK once that is so. Queued as db_query is. */
int db_durable(struct db *db, db_cb cb, void *arg, enum db_status *status)
    __attribute__((warn_unused_result));

/* Connections up now. */
int db_live(const struct db *db);

#endif
