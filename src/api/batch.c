/* Exchanges recorded through the API go to the ledger in batches: every
 * POST /v1/exchanges that arrives while a batch is in the database waits
 * for the next, and a batch is one call (tb_exchange_batch, src/sql/exchanges.sql)
 * and one commit, each exchange with its own answer. Up to BATCHES_IN_FLIGHT
 * batches are in the database at once; each locks its keys, then its
 * accounts, in order, so batches wait on each other at worst, never in a
 * cycle. One at a time keeps batches large, and two are no faster where
 * they lock the same accounts. A batch frees its accounts when it commits,
 * without waiting for the disk, and its clients hear once the barrier sent
 * behind it has made it durable (on_durable).
 *
 * While a batch's clients wait for that barrier, the next batch takes the
 * exchanges already waiting and keeps the ledger busy: after local
 * exchanges the next batch never waits for more. After a batch that held a
 * cross-bank exchange it waits, up to BATCH_WAIT_US, until as many wait as
 * that batch held: its clients come back as one group, and every message of
 * proposals, sealing and answers between the banks, one per batch, carries
 * more, which costs the two banks less CPU per exchange than the wait does.
 * A lone client never waits. (Measurements: the README's Performance
 * section.) */
#include "internal.h"

#include "failpoint.h"
#include "log.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_MAX 500
#define BATCHES_IN_FLIGHT 1
#define BATCH_WAIT_US 2000

struct waiting {
	struct api_req *r;
	json_t *item; /* {"xb": bool, "actor": ..., "p": ...} */
};

struct api_batch {
	struct api *api;
	struct event *flush;
	struct event *wait; /* the next batch's wait for more (BATCH_WAIT_US) */
	enum { GO, WAITING, WAITED } state;
	size_t last_n;         /* how many the last batch held */
	int last_xb;           /* whether it held a cross-bank exchange */
	struct waiting *queue; /* waiting for the next batch */
	size_t n, cap;
	int in_flight;
	unsigned long long batches, exchanges, set_wise;
};

/* One batch in the database. */
struct sent {
	struct api_batch *b;
	struct waiting *items;
	size_t n;
	int xb;            /* whether it holds a cross-bank exchange */
	PGresult *answers; /* kept from commit until the commit is durable */
};

static void flush(evutil_socket_t fd, short what, void *arg);

static void waited(evutil_socket_t fd, short what, void *arg)
{
	struct api_batch *b = arg;

	(void)fd;
	(void)what;
	b->state = WAITED;
	flush(-1, 0, b);
}

struct api_batch *api_batch_new(struct api *api, struct event_base *base)
{
	struct api_batch *b = xcalloc(1, sizeof(*b));

	b->api = api;
	b->flush = event_new(base, -1, 0, flush, b);
	b->wait = evtimer_new(base, waited, b);
	return b;
}

void api_batch_free(struct api_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		json_decref(b->queue[i].item);
	event_free(b->flush);
	event_free(b->wait);
	free(b->queue);
	free(b);
}

/* Row i of a batch's answer: ok, body (the answer's JSON, sent as it is),
 * code, detail. */
static void answer(struct waiting *w, const PGresult *res, int i)
{
	if (PQgetvalue(res, i, 0)[0] == 't')
		api_reply_text(w->r, w->r->ok_status, PQgetvalue(res, i, 1));
	else
		api_reply_ledger_error(w->r, PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
}

static int cross_bank(const struct sent *sent)
{
	for (size_t i = 0; i < sent->n; i++)
		if (json_is_true(json_object_get(sent->items[i].item, "xb")))
			return 1;
	return 0;
}

/* Answers every exchange of the batch: from its row when the batch is
 * durable, or with the failure (the keys make a retry safe). */
static void finish(struct sent *sent, const struct db_result *failure)
{
	if (failure == NULL && sent->xb)
		failpoint("reserve_after");
	for (size_t i = 0; i < sent->n; i++) {
		struct waiting *w = &sent->items[i];
		if (failure == NULL)
			answer(w, sent->answers, (int)i);
		else
			api_reply_failure(w->r, failure);
		json_decref(w->item);
	}
	if (failure == NULL && sent->xb)
		api_written(sent->b->api, 1, 0);
	PQclear(sent->answers);
	free(sent->items);
	free(sent);
}

/* The barrier behind the batch has answered: its clients hear now, the
 * batch being on disk. Otherwise the batch committed but may be lost: each
 * client retries with its key, and hears it recorded, or records it then. */
static void on_durable(void *arg, const struct db_result *res)
{
	struct sent *sent = arg;
	struct db_result unknown = {.status = DB_UNAVAILABLE}, no_answer = {.status = DB_OK};

	if (res->status != DB_OK)
		finish(sent, &unknown);
	else
		finish(sent, sent->answers != NULL ? NULL : &no_answer); /* 500: no answer */
}

/* The batch has committed without waiting for its WAL to reach the disk
 * (tb_exchange_batch commits asynchronously), so the accounts it locked are
 * free for the next batch at once, which goes now, before this loop turns
 * to the requests and answers waiting, so that the database is not left
 * idle behind them. Nobody hears of this batch until the barrier behind it
 * has made it durable (on_durable). */
static void on_batch(void *arg, const struct db_result *res)
{
	struct sent *sent = arg;
	struct api_batch *b = sent->b;

	b->in_flight--;
	flush(-1, 0, b);
	if (res->status != DB_OK) {
		finish(sent, res);
		return;
	}
	if (PQntuples(res->res) != (int)sent->n || PQnfields(res->res) != 5) {
		log_error("api: a batch of %zu exchanges had %d answers", sent->n,
		          PQntuples(res->res));
		return;
	}
	sent->answers = PQcopyResult(res->res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
	if (strcmp(PQgetvalue(res->res, 0, 4), "set-wise") == 0)
		b->set_wise++;
}

static void flush(evutil_socket_t fd, short what, void *arg)
{
	struct api_batch *b = arg;
	size_t n = b->n < BATCH_MAX ? b->n : BATCH_MAX;
	json_t *items;
	char floor[24], *text;
	enum db_status st;
	struct sent *sent;

	(void)fd;
	(void)what;
	if (b->in_flight >= BATCHES_IN_FLIGHT || n == 0 || b->state == WAITING)
		return;
	if (b->state == GO && b->last_xb && n < b->last_n) {
		struct timeval tv = {0, BATCH_WAIT_US};
		b->state = WAITING;
		evtimer_add(b->wait, &tv);
		return;
	}
	b->state = GO;
	b->last_n = n;
	sent = xmalloc(sizeof(*sent));
	sent->b = b;
	sent->n = n;
	sent->answers = NULL;
	sent->items = xmalloc(n * sizeof(*sent->items));
	memcpy(sent->items, b->queue, n * sizeof(*sent->items));
	memmove(b->queue, b->queue + n, (b->n - n) * sizeof(*b->queue));
	b->n -= n;
	sent->xb = cross_bank(sent);
	b->last_xb = sent->xb;
	items = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(items, sent->items[i].item);
	text = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	const char *params[3] = {text, API_I64(floor, api_limits(b->api)->default_floor),
	                         api_bank_id(b->api)};
	b->in_flight++;
	b->batches++;
	b->exchanges += n;
	if (db_query_durable(
	        api_db(b->api),
	        "SELECT ok, body, code, detail, current_setting('tb.batch_path', true) "
	        "FROM tb_exchange_batch($1::jsonb, $2::bigint, $3)",
	        3, params, on_batch, on_durable, sent, &st) == -1) {
		struct db_result res = {.status = st};
		on_batch(sent, &res);
	}
	free(text);
	/* More waiting, and room for another batch: send it too. */
	if (b->n > 0 && b->in_flight < BATCHES_IN_FLIGHT)
		event_active(b->flush, EV_TIMEOUT, 0);
}

void api_batch_exchange(struct api_req *r, json_t *p, int cross_bank)
{
	struct api_batch *b = api_batcher(r->api);

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->queue = xrealloc(b->queue, b->cap * sizeof(*b->queue));
	}
	b->queue[b->n].r = r;
	b->queue[b->n].item = json_pack("{sbssso}", "xb", cross_bank, "actor", r->actor, "p", p);
	b->n++;
	if (b->state == WAITING && b->n >= b->last_n) {
		evtimer_del(b->wait);
		b->state = WAITED;
	}
	if (b->in_flight < BATCHES_IN_FLIGHT)
		event_active(b->flush, EV_TIMEOUT, 0);
}

void api_batch_stats(const struct api_batch *b, unsigned long long *batches,
                     unsigned long long *exchanges, unsigned long long *set_wise)
{
	*batches = b->batches;
	*exchanges = b->exchanges;
	*set_wise = b->set_wise;
}
