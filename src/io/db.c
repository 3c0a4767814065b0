#include "db.h"

#include "log.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define DB_MAX_QUEUE 4096
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct db_query {
	TAILQ_ENTRY(db_query) next;
	char *sql;
	int nparams;
	char **params;
	db_cb cb;
	db_cb durable_cb; /* with a barrier after the statement (db_query_durable) */
	void *arg;
};

TAILQ_HEAD(db_queue, db_query);

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

/* What the results coming in on a busy connection answer. */
enum conn_step {
	STEP_STATEMENT, /* the statement in flight */
	STEP_BARRIER,   /* its barrier, the statement having answered DB_OK */
	STEP_DISCARD,   /* its barrier, the statement having failed: nobody hears */
};

struct db_conn {
	struct db *db;
	int index;
	enum conn_state state;
	PGconn *pg;
	struct event *rd;    /* read readiness (persistent while connected) */
	struct event *wr;    /* one-shot: connect poll or pending flush */
	struct event *retry; /* reconnect timer */
	int backoff_ms;
	struct db_query *q; /* statement in flight */
	enum conn_step step;
	PGresult *res; /* first result of the step in flight */
};

struct db {
	struct event_base *base;
	char *conninfo;
	int size;
	int live;
	int queued;
	struct db_conn *conns;
	struct db_queue queue;
	struct event *kick; /* starts queued statements from the loop */
	void (*on_lost)(void *arg);
	void *on_lost_arg;
};

/* The barrier. PostgreSQL flushes the WAL at commit only for a transaction
 * that wrote WAL itself and commits synchronously (RecordTransactionCommit:
 * wrote_xlog, and synchronous_commit above off); one that only took an xid,
 * as txid_current() does, commits asynchronously, its commit record left in
 * the WAL buffers. A transactional logical message is WAL the transaction
 * writes, and takes it an xid, with no table touched; synchronous_commit is
 * raised for this transaction where the server's setting is off. Its
 * commit then waits for XLogFlush up to its own commit record, and the WAL
 * is flushed in order, so everything committed before it, asynchronous
 * commits included, is on disk (and at a synchronous standby, where the
 * server's setting asks for one) when it answers. */
static const char durable_sql[] =
    "SELECT set_config('synchronous_commit', CASE current_setting('synchronous_commit') "
    "WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true), "
    "pg_logical_emit_message(true, 'timebankd', '')";

static void conn_connect(struct db_conn *c);
static void conn_dispatch(struct db_conn *c);

static struct db_query *query_new(const char *sql, int nparams, const char *const *params, db_cb cb,
                                  db_cb durable_cb, void *arg)
{
	struct db_query *q = xcalloc(1, sizeof(*q));

	q->sql = xstrdup(sql);
	q->nparams = nparams;
	q->params = xcalloc((size_t)(nparams > 0 ? nparams : 1), sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->params[i] = params[i] != NULL ? xstrdup(params[i]) : NULL;
	q->cb = cb;
	q->durable_cb = durable_cb;
	q->arg = arg;
	return q;
}

static void query_free(struct db_query *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static void answer(struct db_query *q, db_cb cb, enum db_status status, const PGresult *res)
{
	struct db_result r = {.status = status, .res = res};

	if (status == DB_ERROR && res != NULL) {
		r.sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		r.message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		r.detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	}
	cb(q->arg, &r);
}

/* The connection is gone before q was answered: what is left to hear of it
 * (its statement, or the barrier behind a statement that answered DB_OK)
 * hears DB_UNAVAILABLE. Frees q. */
static void query_lost(struct db_query *q, enum conn_step step)
{
	if (step == STEP_STATEMENT)
		answer(q, q->cb, DB_UNAVAILABLE, NULL);
	else if (step == STEP_BARRIER)
		answer(q, q->durable_cb, DB_UNAVAILABLE, NULL);
	query_free(q);
}

static void conn_clear_events(struct db_conn *c)
{
	if (c->rd != NULL)
		event_free(c->rd);
	if (c->wr != NULL)
		event_free(c->wr);
	c->rd = c->wr = NULL;
}

/* Answers everything queued when no connection is left to run it. */
static void db_fail_queue(struct db *db)
{
	struct db_query *q;

	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, next);
		db->queued--;
		query_lost(q, STEP_STATEMENT);
	}
}

static void conn_schedule_retry(struct db_conn *c)
{
	int ms = c->backoff_ms;
	struct timeval tv;

	ms = ms / 2 + (int)(random() % (ms / 2 + 1)); /* jitter: 50-100% */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->retry, &tv);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* The connection failed or was lost: answer what was in flight, retry later. */
static void conn_lost(struct db_conn *c, const char *why)
{
	struct db *db = c->db;
	struct db_query *q = c->q;
	enum conn_step step = c->step;
	int was_up = c->state == CONN_IDLE || c->state == CONN_BUSY;
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", why != NULL && *why ? why : "connection closed");
	msg[strcspn(msg, "\n")] = '\0';
	conn_clear_events(c);
	PQclear(c->res);
	c->res = NULL;
	c->q = NULL;
	PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_DOWN;
	if (was_up && --db->live == 0)
		log_warn("db: database unavailable (%s); reconnecting", msg);
	else
		log_debug("db: connection %d down: %s", c->index, msg);
	if (q != NULL)
		query_lost(q, step);
	if (db->live == 0)
		db_fail_queue(db);
	conn_schedule_retry(c);
	if (was_up && db->on_lost != NULL)
		db->on_lost(db->on_lost_arg);
}

static void conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_connect(arg);
}

/* The step in flight has all its results (the pipeline's sync has come):
 * its callback hears them, and the connection goes on to the statement's
 * barrier, or to the next statement. */
static void conn_step_done(struct db_conn *c)
{
	struct db_query *q = c->q;
	PGresult *res = c->res;
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	enum db_status status = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? DB_OK : DB_ERROR;

	c->res = NULL;
	if (c->step == STEP_STATEMENT) {
		answer(q, q->cb, status, res);
		if (q->durable_cb != NULL) {
			c->step = status == DB_OK ? STEP_BARRIER : STEP_DISCARD;
			PQclear(res);
			return; /* the barrier's results follow */
		}
	} else if (c->step == STEP_BARRIER) {
		answer(q, q->durable_cb, status, res);
	}
	PQclear(res);
	query_free(q);
	c->q = NULL;
	c->state = CONN_IDLE;
	conn_dispatch(c);
}

/* Drains results while they are complete. In pipeline mode each step ends
 * with a NULL and then the sync's own result. */
static void conn_read_results(struct db_conn *c)
{
	PGresult *res;
	int nulls = 0;

	while (c->state == CONN_BUSY && !PQisBusy(c->pg)) {
		res = PQgetResult(c->pg);
		if (res == NULL) {
			if (++nulls > 1)
				return; /* nothing more until more input */
			continue;
		}
		nulls = 0;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			conn_step_done(c);
		} else if (c->res == NULL) {
			c->res = res;
		} else {
			PQclear(res);
		}
	}
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	PGnotify *n;

	(void)fd;
	(void)what;
	if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	while ((n = PQnotifies(c->pg)) != NULL)
		PQfreemem(n);
	if (c->state == CONN_BUSY)
		conn_read_results(c);
}

static void conn_flush(struct db_conn *c);

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_flush(arg);
}

static void conn_flush(struct db_conn *c)
{
	int r = PQflush(c->pg);

	if (r == -1) {
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	if (r == 1) {
		if (c->wr == NULL)
			c->wr = event_new(c->db->base, PQsocket(c->pg), EV_WRITE, conn_on_write, c);
		event_add(c->wr, NULL);
	}
}

/* Starts the next queued statement on an idle connection, and its barrier
 * behind it when it has one: sent together, the server runs the barrier as
 * soon as the statement has committed, without waiting for us to read the
 * answer and ask. */
static void conn_dispatch(struct db_conn *c)
{
	struct db *db = c->db;
	struct db_query *q = TAILQ_FIRST(&db->queue);

	if (c->state != CONN_IDLE || q == NULL)
		return;
	TAILQ_REMOVE(&db->queue, q, next);
	db->queued--;
	c->q = q;
	c->step = STEP_STATEMENT;
	c->state = CONN_BUSY;
	if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params,
	                       NULL, NULL, 0) ||
	    !PQpipelineSync(c->pg) ||
	    (q->durable_cb != NULL &&
	     (!PQsendQueryParams(c->pg, durable_sql, 0, NULL, NULL, NULL, NULL, 0) ||
	      !PQpipelineSync(c->pg)))) {
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	conn_flush(c);
}

static void conn_up(struct db_conn *c)
{
	struct db *db = c->db;

	if (PQsetnonblocking(c->pg, 1) == -1 || !PQenterPipelineMode(c->pg)) {
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	conn_clear_events(c);
	c->rd = event_new(db->base, PQsocket(c->pg), EV_READ | EV_PERSIST, conn_on_read, c);
	event_add(c->rd, NULL);
	c->state = CONN_IDLE;
	c->backoff_ms = BACKOFF_MIN_MS;
	if (db->live++ == 0)
		log_info("db: database connection up");
	conn_dispatch(c);
}

static void conn_on_poll(evutil_socket_t fd, short what, void *arg);

static void conn_poll(struct db_conn *c)
{
	PostgresPollingStatusType st = PQconnectPoll(c->pg);
	short want;

	switch (st) {
	case PGRES_POLLING_OK:
		conn_up(c);
		return;
	case PGRES_POLLING_FAILED:
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	default:
		/* The socket can change between polls, so watch it afresh. */
		want = st == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
		conn_clear_events(c);
		c->wr = event_new(c->db->base, PQsocket(c->pg), want, conn_on_poll, c);
		event_add(c->wr, NULL);
	}
}

static void conn_on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_poll(arg);
}

/* What the rules say with RAISE WARNING (a peer's report refused, say)
 * goes to the log, rate-limited like other lines a peer can cause; lesser
 * notices are left out. */
static void on_notice(void *arg, const PGresult *res)
{
	static struct log_limit warned;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void)arg;
	if (severity != NULL && text != NULL && strcmp(severity, "WARNING") == 0)
		log_limited(&warned, LOGL_WARN, "%s", text);
}

static void conn_connect(struct db_conn *c)
{
	c->pg = PQconnectStart(c->db->conninfo);
	c->state = CONN_CONNECTING;
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_lost(c, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
	PQsetNoticeReceiver(c->pg, on_notice, NULL);
	conn_clear_events(c);
	c->wr = event_new(c->db->base, PQsocket(c->pg), EV_WRITE, conn_on_poll, c);
	event_add(c->wr, NULL);
}

static void db_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < db->size && db->queued > 0; i++)
		conn_dispatch(&db->conns[i]);
}

struct db *db_new(struct event_base *base, const char *conninfo, int size)
{
	struct db *db = xcalloc(1, sizeof(*db));

	db->base = base;
	db->conninfo = xstrdup(conninfo);
	db->size = size;
	db->conns = xcalloc((size_t)size, sizeof(*db->conns));
	TAILQ_INIT(&db->queue);
	db->kick = event_new(base, -1, 0, db_on_kick, db);
	for (int i = 0; i < size; i++) {
		struct db_conn *c = &db->conns[i];
		c->db = db;
		c->index = i;
		c->backoff_ms = BACKOFF_MIN_MS;
		c->retry = evtimer_new(base, conn_on_retry, c);
		conn_connect(c);
	}
	return db;
}

void db_free(struct db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < db->size; i++) {
		struct db_conn *c = &db->conns[i];
		conn_clear_events(c);
		event_free(c->retry);
		PQclear(c->res);
		if (c->q != NULL)
			query_lost(c->q, c->step);
		PQfinish(c->pg);
	}
	db_fail_queue(db);
	event_free(db->kick);
	free(db->conns);
	free(db->conninfo);
	free(db);
}

void db_on_lost(struct db *db, void (*cb)(void *arg), void *arg)
{
	db->on_lost = cb;
	db->on_lost_arg = arg;
}

int db_live(const struct db *db)
{
	return db->live;
}

static int enqueue(struct db *db, struct db_query *q, enum db_status *status)
{
	if (db->live == 0) {
		*status = DB_UNAVAILABLE;
		query_free(q);
		return -1;
	}
	if (db->queued >= DB_MAX_QUEUE) {
		*status = DB_BUSY;
		query_free(q);
		return -1;
	}
	TAILQ_INSERT_TAIL(&db->queue, q, next);
	db->queued++;
	/* Started from the loop, so no callback runs inside this call. */
	event_active(db->kick, EV_TIMEOUT, 0);
	return 0;
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, enum db_status *status)
{
	return enqueue(db, query_new(sql, nparams, params, cb, NULL, arg), status);
}

int db_query_durable(struct db *db, const char *sql, int nparams, const char *const *params,
                     db_cb cb, db_cb durable_cb, void *arg, enum db_status *status)
{
	return enqueue(db, query_new(sql, nparams, params, cb, durable_cb, arg), status);
}
