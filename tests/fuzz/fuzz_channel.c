/* libFuzzer target: what a peer with a valid key can make the daemon do,
 * from a verified envelope down to its database calls. The input is a run
 * of bodies (each a 2-byte length and a serialized Body); each is sealed as
 * the peer would seal it, next in its stream or as a session message, and
 * handed to the session (fed_session_message), which checks it and passes
 * it to the channel, the directory or the checkpoints. The database is
 * stubbed at its calls (db_query, db_query_durable): every parameter the
 * SQL reads as jsonb must be JSON, and each call is answered, as the real
 * database would, on a later turn of the loop. A crash, a leak, or a bad
 * parameter fails it. */
#include "../../src/fed/internal.h"

#include "log.h"
#include "mem.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the database, stubbed at its calls -------------------------------- */

struct stub_call {
	db_cb cb, durable_cb;
	void *arg;
	char *sql;
	struct stub_call *next;
};

static struct stub_call *calls;

/* The answer a call gets: for the apply, everything applied. */
static PGresult *answer(const char *sql)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc col = {.name = "v", .typid = 25, .typlen = -1, .atttypmod = -1};
	const char *v = "{}";

	if (strstr(sql, "tb_fed_apply") != NULL)
		v = "{\"applied\": 0, \"duplicates\": 0, \"queued\": 0}";
	else if (strstr(sql, "tb_dir_cursor") != NULL || strstr(sql, "tb_fed_inbox_purge"))
		v = "0";
	else if (strstr(sql, "tb_fed_checkpoint_check") != NULL)
		v = "agree";
	else if (strstr(sql, "tb_dir_page") != NULL)
		v = "{\"since\": 0, \"next\": 0, \"more\": false, \"items\": []}";
	PQsetResultAttrs(res, 1, &col);
	PQsetvalue(res, 0, 0, (char *)v, (int)strlen(v));
	return res;
}

/* Every ::jsonb parameter must be JSON the database would take. */
static void check_params(const char *sql, int n, const char *const *params)
{
	for (int i = 0; i < n; i++) {
		char mark[16];
		snprintf(mark, sizeof(mark), "$%d::jsonb", i + 1);
		if (strstr(sql, mark) == NULL)
			continue;
		json_error_t err;
		json_t *j = json_loads(params[i], JSON_REJECT_DUPLICATES, &err);
		if (j == NULL) {
			fprintf(stderr, "%s: $%d is not JSON: %s\n", sql, i + 1, err.text);
			abort();
		}
		json_decref(j);
	}
}

static int queue(const char *sql, int n, const char *const *params, db_cb cb, db_cb durable,
                 void *arg)
{
	struct stub_call *c = xcalloc(1, sizeof(*c));

	check_params(sql, n, params);
	c->cb = cb;
	c->durable_cb = durable;
	c->arg = arg;
	c->sql = xstrdup(sql);
	c->next = calls;
	calls = c;
	return 0;
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, enum db_status *st)
{
	(void)db;
	*st = DB_OK;
	return queue(sql, nparams, params, cb, NULL, arg);
}

int db_query_durable(struct db *db, const char *sql, int nparams, const char *const *params,
                     db_cb cb, db_cb durable_cb, void *arg, enum db_status *st)
{
	(void)db;
	*st = DB_OK;
	return queue(sql, nparams, params, cb, durable_cb, arg);
}

void db_on_lost(struct db *db, void (*cb)(void *arg), void *arg)
{
	(void)db;
	(void)cb;
	(void)arg;
}

/* Answers what was asked, until nothing more is. */
static void answer_calls(void)
{
	while (calls != NULL) {
		struct stub_call *c = calls;
		PGresult *res = answer(c->sql);
		struct db_result r = {.status = DB_OK, .res = res};
		calls = c->next;
		c->cb(c->arg, &r);
		if (c->durable_cb != NULL) {
			struct db_result ok = {.status = DB_OK};
			c->durable_cb(c->arg, &ok);
		}
		PQclear(res);
		free(c->sql);
		free(c);
	}
}

/* ---- a session with the peer cheshire ---------------------------------- */

static struct fed fed;
static struct fed_peer *peer;
static struct fed_conn *conn;
static struct crypto_key *peer_key;

static struct crypto_key *make_key(void)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char path[] = "/tmp/fuzz-key-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	char err[200];
	struct crypto_key *k;

	PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	k = crypto_key_load(path, 1, err, sizeof(err));
	unlink(path);
	EVP_PKEY_free(pkey);
	return k;
}

static void setup(void)
{
	log_set_level(LOGL_ERROR);
	fed.up = &fed_upcalls;
	fed.base = event_base_new();
	fed.bank_id = "colchester";
	fed.role = "bank";
	fed.sign_key = make_key();
	fed.loaded = 1;
	fed.max_exchange = 1440;
	LIST_INIT(&fed.conns);
	peer = fed_peer_add(&fed, "cheshire", "bank", "127.0.0.1", 8402);
	peer_key = make_key();
	/* The peer's public half, as the config would pin it. */
	peer->keys[0] = crypto_key_from_raw(crypto_key_raw(peer_key), CRYPTO_PUB_LEN);
	peer->nkeys = 1;
}

/* A new established session, as after a hello. */
static void open_session(void)
{
	struct bufferevent *pair[2];

	bufferevent_pair_new(fed.base, 0, pair);
	bufferevent_free(pair[1]); /* what we send goes nowhere */
	conn = xcalloc(1, sizeof(*conn));
	conn->fed = &fed;
	conn->bev = pair[0];
	conn->peer = peer;
	conn->outbound = 1;
	conn->hello_received = 1;
	conn->ticket = -1;
	LIST_INSERT_HEAD(&fed.conns, conn, next);
	peer->session = conn;
	peer->state = PEER_ESTABLISHED;
	peer->generation++;
}

/* The session closed and freed, and the peer as before it: nothing
 * waiting, no learned key, no dial. */
static void close_session(void)
{
	answer_calls();
	if (peer->session != NULL)
		fed_conn_close(peer->session, NULL);
	event_base_loop(fed.base, EVLOOP_NONBLOCK); /* frees it */
	answer_calls();
	evtimer_del(peer->timer);
	evtimer_del(peer->ack_timer);
	evtimer_del(peer->apply_timer);
	evtimer_del(peer->dir_timer);
	fed_chan_pending_clear(peer);
	peer->applying = peer->pumping = peer->acking = 0;
	peer->dir_pulling = peer->dir_serving = peer->dir_held = 0;
	peer->in_applied = peer->in_durable = peer->acked = peer->sealed = 0;
	peer->penalty_until = 0;
	while (peer->nkeys > 1)
		crypto_key_free(peer->keys[--peer->nkeys]);
	peer->replaced_until[0] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t prev[CRYPTO_HASH_LEN];
	int has_prev = 0;
	uint64_t seq = 0;

	if (fed.base == NULL)
		setup();
	open_session();
	while (size >= 3 && peer->session == conn) {
		size_t len = (size_t)data[0] << 8 | data[1];
		int in_stream = data[2] & 1;
		Timebank__V1__Body *body;
		uint8_t *env, hash[CRYPTO_HASH_LEN];
		size_t env_len;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		body = timebank__v1__body__unpack(NULL, len, data);
		data += len;
		size -= len;
		if (body == NULL)
			continue;
		if (env_seal("cheshire", "colchester", in_stream ? seq + 1 : 0,
		             in_stream && has_prev ? prev : NULL, 0, body, peer_key, &env, &env_len,
		             hash) == 0) {
			if (in_stream) {
				seq++;
				memcpy(prev, hash, sizeof(prev));
				has_prev = 1;
			}
			fed_session_message(conn, env, env_len);
			free(env);
		}
		timebank__v1__body__free_unpacked(body, NULL);
		answer_calls();
		event_base_loop(fed.base, EVLOOP_NONBLOCK);
	}
	close_session();
	return 0;
}
