#include "db.h"

#include "log.h"

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
	void *arg;
};

TAILQ_HEAD(db_queue, db_query);

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

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
	PGresult *res;      /* first result of the statement in flight */
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
};

static void conn_connect(struct db_conn *c);
static void conn_dispatch(struct db_conn *c);

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

static void query_finish(struct db_query *q, enum db_status status, const PGresult *res)
{
	struct db_result r = {.status = status, .res = res};

	if (status == DB_ERROR && res != NULL) {
		r.sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		r.message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		r.detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	}
	q->cb(q->arg, &r);
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
		query_finish(q, DB_UNAVAILABLE, NULL);
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
		query_finish(q, DB_UNAVAILABLE, NULL);
	if (db->live == 0)
		db_fail_queue(db);
	conn_schedule_retry(c);
}

static void conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_connect(arg);
}

/* Drains results while they are complete; finishes the statement at the end. */
static void conn_read_results(struct db_conn *c)
{
	PGresult *res;
	struct db_query *q;

	while (!PQisBusy(c->pg)) {
		res = PQgetResult(c->pg);
		if (res != NULL) {
			if (c->res == NULL)
				c->res = res;
			else
				PQclear(res);
			continue;
		}
		q = c->q;
		res = c->res;
		c->q = NULL;
		c->res = NULL;
		c->state = CONN_IDLE;
		if (q != NULL) {
			ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
			query_finish(
			    q, st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? DB_OK : DB_ERROR,
			    res);
		}
		PQclear(res);
		conn_dispatch(c);
		return;
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

/* Starts the next queued statement on an idle connection. */
static void conn_dispatch(struct db_conn *c)
{
	struct db *db = c->db;
	struct db_query *q = TAILQ_FIRST(&db->queue);

	if (c->state != CONN_IDLE || q == NULL)
		return;
	TAILQ_REMOVE(&db->queue, q, next);
	db->queued--;
	c->q = q;
	c->state = CONN_BUSY;
	if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params,
	                       NULL, NULL, 0)) {
		conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	conn_flush(c);
}

static void conn_up(struct db_conn *c)
{
	struct db *db = c->db;

	if (PQsetnonblocking(c->pg, 1) == -1) {
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

static void conn_connect(struct db_conn *c)
{
	c->pg = PQconnectStart(c->db->conninfo);
	c->state = CONN_CONNECTING;
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_lost(c, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
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
	struct db *db = calloc(1, sizeof(*db));

	db->base = base;
	db->conninfo = strdup(conninfo);
	db->size = size;
	db->conns = calloc((size_t)size, sizeof(*db->conns));
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
			query_finish(c->q, DB_UNAVAILABLE, NULL);
		PQfinish(c->pg);
	}
	db_fail_queue(db);
	event_free(db->kick);
	free(db->conns);
	free(db->conninfo);
	free(db);
}

int db_durable(struct db *db, db_cb cb, void *arg, enum db_status *status)
{
	return db_query(db, "SELECT txid_current()", 0, NULL, cb, arg, status);
}

int db_live(const struct db *db)
{
	return db->live;
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, enum db_status *status)
{
	struct db_query *q;

	if (db->live == 0) {
		*status = DB_UNAVAILABLE;
		return -1;
	}
	if (db->queued >= DB_MAX_QUEUE) {
		*status = DB_BUSY;
		return -1;
	}
	q = calloc(1, sizeof(*q));
	q->sql = strdup(sql);
	q->nparams = nparams;
	q->params = calloc((size_t)(nparams > 0 ? nparams : 1), sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->params[i] = params[i] != NULL ? strdup(params[i]) : NULL;
	q->cb = cb;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&db->queue, q, next);
	db->queued++;
	/* Started from the loop, so cb never runs inside this call. */
	event_active(db->kick, EV_TIMEOUT, 0);
	return 0;
}
