/* The federation channel over a session: sealing queued messages once and
 * in order, sending them from where the peer says it stands, applying what
 * arrives in order and acknowledging it after commit, and comparing signed
 * checkpoints. The state is in the database (src/sql/channel.sql);
 * the fields of struct fed_peer mirror it. */
#include "internal.h"

#include "dir_text.h"
#include "failpoint.h"
#include "log.h"
#include "mem.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_BATCH 1000
#define SEND_BATCH 500
#define APPLY_BATCH 500               /* messages in one apply */
#define APPLY_ITEMS 4000              /* ...and items in all, past the first message */
#define APPLY_BYTES (2 * 1024 * 1024) /* ...and bytes of envelopes as they came, past the first */
/* What a peer's messages waiting to be applied may hold of our memory: its
 * envelopes and their bodies as JSON text. Beyond it the session is not
 * read until applies have made room. */
#define PENDING_BYTES (16 * 1024 * 1024)
#define ACK_GAP_MS 50    /* at most one acknowledgement this often, under load */
#define APPLY_WAIT_MS 30 /* a lone message waits this long for the next, under load */

/* ---- loading ---------------------------------------------------------- */

/* Keys this peer announced in past rotations, in the order they were
 * learned. Each is kept only if announced by a key held: the pinned key, or
 * one kept before it. A peer re-pinned in the config so starts afresh from
 * the key pinned, and what an older key announced is dropped. */
static void load_keys(struct fed_peer *peer, const json_t *keys)
{
	const json_t *k;
	uint8_t raw[CRYPTO_PUB_LEN];
	size_t i;

	json_array_foreach(keys, i, k)
	{
		const char *id = json_string_value(json_object_get(k, "key_id"));
		const char *replaces = json_string_value(json_object_get(k, "replaces"));
		long grace = (long)json_number_value(json_object_get(k, "grace_seconds"));
		long left = FED_LEARNED_KEY_DAYS * 86400L -
		            (long)json_number_value(json_object_get(k, "learned_seconds_ago"));
		if (crypto_unhex(json_string_value(json_object_get(k, "public_key")), raw,
		                 sizeof(raw)) != CRYPTO_PUB_LEN ||
		    replaces == NULL || id == NULL)
			continue;
		if (strcmp(id, crypto_key_id(peer->keys[0])) == 0)
			continue; /* the config pins it now */
		/* An ended grace period or lifetime leaves the key refused at once. */
		if (fed_peer_add_key(peer, raw, sizeof(raw), replaces, grace > 0 ? grace : -1,
		                     left > 0 ? left : -1, 1) == -1)
			log_warn(
			    "fed: peer %s: learned key %s is not used: %s, which announced it, is "
			    "not a key held now (the config pins %s)",
			    peer->id, id, replaces, crypto_key_id(peer->keys[0]));
	}
}

void fed_chan_load_row(struct fed_peer *peer, const json_t *row)
{
	peer->in_applied = (uint64_t)json_integer_value(json_object_get(row, "applied"));
	peer->in_durable = peer->in_applied;
	peer->sealed = (uint64_t)json_integer_value(json_object_get(row, "sealed"));
	peer->acked = (uint64_t)json_integer_value(json_object_get(row, "acked"));
	const char *stage =
	    json_string_value(json_object_get(json_object_get(row, "recovering"), "stage"));
	peer->recovering = stage == NULL                    ? RECOVER_NONE
	                   : strcmp(stage, "agreeing") == 0 ? RECOVER_AGREEING
	                                                    : RECOVER_HELD;
	snprintf(peer->checkpoint, sizeof(peer->checkpoint), "%s",
	         json_is_true(json_object_get(row, "diverged")) ? "diverged" : "unknown");
	/* The register gives its peers' keys; none is learned. */
	if (!peer->from_register)
		load_keys(peer, json_object_get(row, "keys"));
}

/* The channel's state as read, until the barrier behind the read has made
 * it durable: a hello says only what is on disk. */
struct load {
	struct fed *fed;
	unsigned epoch;
	json_t *rows;
};

static void on_load_durable(void *arg, const struct db_result *r)
{
	struct load *l = arg;
	struct fed *fed = l->fed;
	json_t *row;
	size_t i;

	fed->sealing = 0;
	/* Not read, or a connection lost since: read again, at the next tick. */
	if (fed->stopping || r->status != DB_OK || l->rows == NULL || l->epoch != fed->epoch) {
		json_decref(l->rows);
		free(l);
		return;
	}
	json_array_foreach(l->rows, i, row)
	{
		struct fed_peer *peer =
		    fed_peer_find(fed, json_string_value(json_object_get(row, "peer")));
		if (peer != NULL)
			fed_chan_load_row(peer, row);
	}
	json_decref(l->rows);
	free(l);
	fed->loaded = 1;
	fed_start_dialing(fed);
}

static void on_loaded(void *arg, const struct db_result *r)
{
	struct load *l = arg;

	if (!l->fed->stopping)
		l->rows = fed_db_answer(r, "reading the channel state", NULL);
	if (r->status != DB_OK) { /* no barrier follows: the next tick tries again */
		l->fed->sealing = 0;
		free(l);
	}
}

void fed_chan_load(struct fed *fed)
{
	struct load *l;
	enum db_status st;

	/* The daemon registered every configured peer at start-up. */
	if (fed->sealing)
		return;
	l = xcalloc(1, sizeof(*l));
	l->fed = fed;
	l->epoch = fed->epoch;
	if (db_query_durable(fed->db, "SELECT tb_fed_state()::text", 0, NULL, on_loaded,
	                     on_load_durable, l, &st) == 0)
		fed->sealing = 1;
	else
		free(l);
}

/* ---- sealing ---------------------------------------------------------- */

/* Envelopes just sealed, kept until their seal commits: each then goes
 * straight to its peer's session when it is the next that session needs,
 * rather than being read back from the outbox. */
struct sealed {
	struct fed *fed;
	size_t n, cap;
	struct sealed_env {
		char *peer;
		uint64_t seq;
		uint8_t *env;
		size_t len;
	} * envs;
};

static void sealed_free(struct sealed *sd)
{
	for (size_t i = 0; i < sd->n; i++) {
		free(sd->envs[i].peer);
		free(sd->envs[i].env);
	}
	free(sd->envs);
	free(sd);
}

/* Frames one envelope onto the session; the peer's sent mark moves. */
static void send_envelope(struct fed_peer *peer, uint64_t seq, const uint8_t *env, size_t len)
{
	fed_conn_write(peer->session, env, len);
	peer->send_after = seq;
	peer->sent++;
}

/* What a peer's session may be sent now without reading the outbox: the
 * next in order, while the output is not backed up. */
static int sendable(const struct fed_peer *peer, uint64_t seq)
{
	return peer->session != NULL && !peer->pumping && seq == peer->send_after + 1 &&
	       evbuffer_get_length(bufferevent_get_output(peer->session->bev)) <= FED_SEND_BUFFER;
}

static void on_sealed(void *arg, const struct db_result *r)
{
	struct sealed *sd = arg;
	struct fed *fed = sd->fed;
	json_t *rows, *row;
	size_t i;

	fed->sealing = 0;
	if (fed->stopping || (rows = fed_db_answer(r, "storing sealed messages", NULL)) == NULL) {
		sealed_free(sd);
		return;
	}
	json_array_foreach(rows, i, row)
	{
		struct fed_peer *peer =
		    fed_peer_find(fed, json_string_value(json_object_get(row, "peer")));
		if (peer != NULL)
			peer->sealed = (uint64_t)json_integer_value(json_object_get(row, "sealed"));
	}
	json_decref(rows);
	if (sd->n > 0)
		failpoint("send_before");
	for (i = 0; i < sd->n; i++) {
		struct sealed_env *e = &sd->envs[i];
		struct fed_peer *peer = fed_peer_find(fed, e->peer);
		if (peer != NULL && sendable(peer, e->seq))
			send_envelope(peer, e->seq, e->env, e->len);
	}
	for (i = 0; i < (size_t)fed->npeers; i++)
		fed_chan_pump(fed->peers[i]); /* whatever the sessions still lack */
	/* Again only if asked to seal meanwhile, or a full batch was read: sealing
	 * again every time would mostly find nothing. */
	if (fed->reseal || sd->n >= SEAL_BATCH)
		fed_chan_seal(fed);
	sealed_free(sd);
}

/* A proposal's note (tb_xb_proposal: our payer's number, who recorded
 * it) goes sealed to ourselves, as its sender_note: the peer keeps
 * bytes it cannot read, and gives them back after a restore (recover.c).
 * -1 when a note cannot be sealed. */
static int seal_notes(const struct fed *fed, json_t *body)
{
	json_t *item, *note;
	size_t i;

	if (!json_is_object(body) ||
	    strcmp(json_string_value(json_object_get(body, "kind")) ?: "", "xb_propose") != 0)
		return 0;
	json_array_foreach(json_object_get(body, "items"), i, item)
	{
		const char *xid = json_string_value(json_object_get(item, "xid"));
		char *text, *hex;
		uint8_t *sealed;
		size_t len;
		int rc;

		if (!json_is_object(note = json_object_get(item, "note")) || xid == NULL)
			continue;
		text = json_dumps(note, JSON_COMPACT);
		rc = crypto_note_seal(fed->sign_key, xid, (const uint8_t *)text, strlen(text),
		                      &sealed, &len);
		free(text);
		if (rc == -1)
			return -1;
		hex = xmalloc(2 * len + 1);
		crypto_hex(sealed, len, hex);
		json_object_set_new(item, "sender_note", json_string(hex));
		json_object_del(item, "note");
		free(hex);
		free(sealed);
	}
	return 0;
}

/* Signs one queued row; appends {peer, seq, envelope, hash} to items, keeps
 * the envelope in sd, and leaves its hash in prev. -1 when the body is not
 * a channel message. */
static int seal_row(struct fed *fed, const json_t *row, uint8_t *prev, int has_prev, json_t *items,
                    struct sealed *sd)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	const char *peer = json_string_value(json_object_get(row, "peer"));
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(row, "seq"));
	uint8_t *env, hash[CRYPTO_HASH_LEN];
	char hash_hex[2 * CRYPTO_HASH_LEN + 1], *env_hex;
	size_t len;
	int sealed;

	if (seal_notes(fed, json_object_get(row, "body")) == -1 ||
	    env_body_from_json(json_object_get(row, "body"), &body) == -1)
		return -1;
	sealed = env_seal(fed->bank_id, peer, seq, has_prev ? prev : NULL, fed_now_ms(), &body,
	                  fed->sign_key, &env, &len, hash);
	env_body_release(&body);
	if (sealed == -1)
		return -1;
	env_hex = xmalloc(2 * len + 1);
	crypto_hex(env, len, env_hex);
	crypto_hex(hash, sizeof(hash), hash_hex);
	json_array_append_new(items, json_pack("{sssIssss}", "peer", peer, "seq", (json_int_t)seq,
	                                       "envelope", env_hex, "hash", hash_hex));
	free(env_hex);
	if (sd->n == sd->cap) {
		sd->cap = sd->cap ? 2 * sd->cap : 8;
		sd->envs = xrealloc(sd->envs, sd->cap * sizeof(*sd->envs));
	}
	sd->envs[sd->n++] = (struct sealed_env){xstrdup(peer), seq, env, len};
	memcpy(prev, hash, CRYPTO_HASH_LEN);
	return 0;
}

static void on_unsealed(void *arg, const struct db_result *r)
{
	struct fed *fed = arg;
	json_t *rows, *row, *items;
	uint8_t prev[CRYPTO_HASH_LEN];
	const char *current = "";
	int has_prev = 0;
	char *text;
	size_t i;
	struct sealed *sd;

	fed->sealing = 0;
	if (fed->stopping || (rows = fed_db_answer(r, "reading the outbox", NULL)) == NULL)
		return;
	items = json_array();
	sd = xcalloc(1, sizeof(*sd));
	sd->fed = fed;
	/* Each peer's rows chain on from the head already sealed. */
	json_array_foreach(rows, i, row)
	{
		const char *peer = json_string_value(json_object_get(row, "peer"));
		if (strcmp(peer, current) != 0) {
			current = peer;
			has_prev = crypto_unhex(json_string_value(json_object_get(row, "prev")),
			                        prev, sizeof(prev)) == CRYPTO_HASH_LEN;
		}
		if (seal_row(fed, row, prev, has_prev, items, sd) == -1) {
			log_error("fed: message %lld to %s cannot be sealed; its stream waits",
			          (long long)json_integer_value(json_object_get(row, "seq")), peer);
			break;
		}
		has_prev = 1;
	}
	json_decref(rows);
	if (json_array_size(items) > 0) {
		text = json_dumps(items, JSON_COMPACT);
		const char *params[1] = {text};
		if (fed_query(fed, "SELECT tb_fed_seal($1::jsonb)::text", 1, params, on_sealed,
		              sd) == 0) {
			fed->sealing = 1;
			sd = NULL;
		}
		free(text);
	}
	if (sd != NULL)
		sealed_free(sd);
	json_decref(items);
	if (!fed->sealing && fed->reseal)
		fed_chan_seal(fed); /* queued since this call read the outbox */
}

/* Proposals waiting become one message per peer, and everything queued is
 * read to be sealed in order: one call (tb_fed_to_seal). */
void fed_chan_seal(struct fed *fed)
{
	char lim[16];
	const char *params[1] = {lim};

	if (!fed->loaded || fed->stopping)
		return;
	if (fed->sealing) {
		fed->reseal = 1;
		return;
	}
	fed->reseal = 0;
	snprintf(lim, sizeof(lim), "%d", SEAL_BATCH);
	if (fed_query(fed, "SELECT tb_fed_to_seal($1::int)::text", 1, params, on_unsealed, fed) ==
	    0)
		fed->sealing = 1;
}

/* ---- sending ---------------------------------------------------------- */

static void on_outbox(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *rows, *row;
	uint8_t *env;
	size_t i;

	peer->pumping = 0;
	if (peer->fed->stopping) {
		fed_call_free(c);
		return;
	}
	rows = fed_db_answer(r, "reading sealed messages", peer->id);
	if (rows != NULL && json_array_size(rows) > 0)
		failpoint("send_before");
	if (rows != NULL && fed_call_current(c)) {
		json_array_foreach(rows, i, row)
		{
			uint64_t seq = (uint64_t)json_integer_value(json_array_get(row, 0));
			const char *hex = json_string_value(json_array_get(row, 1));
			size_t len = strlen(hex) / 2;
			if (seq <= peer->send_after)
				continue;
			if (len == 0) {
				/* Acknowledged once, and redacted since by an erasure: the
				 * peer, which lost it, finds the gap and says so. */
				log_warn("fed: %s asks again for message %llu, which an erasure "
				         "redacted; it cannot be sent again",
				         peer->id, (unsigned long long)seq);
				peer->send_after = seq;
				continue;
			}
			env = xmalloc(len);
			crypto_unhex(hex, env, len);
			send_envelope(peer, seq, env, len);
			free(env);
		}
	}
	json_decref(rows);
	fed_call_free(c);
	if (r->status == DB_OK)
		fed_chan_pump(peer);
}

void fed_chan_pump(struct fed_peer *peer)
{
	char after[24], lim[16];
	const char *params[3] = {peer->id, after, lim};
	struct fed_call *c;

	if (peer->session == NULL || peer->pumping || peer->send_after >= peer->sealed ||
	    peer->fed->stopping ||
	    evbuffer_get_length(bufferevent_get_output(peer->session->bev)) > FED_SEND_BUFFER)
		return;
	snprintf(after, sizeof(after), "%llu", (unsigned long long)peer->send_after);
	snprintf(lim, sizeof(lim), "%d", SEND_BATCH);
	c = fed_call_new(peer, 0);
	if (fed_query(peer->fed, "SELECT tb_fed_outbox($1, $2::bigint, $3::int)::text", 3, params,
	              on_outbox, c) == 0)
		peer->pumping = 1;
	else
		fed_call_free(c);
}

/* ---- receiving -------------------------------------------------------- */

static void apply_next(struct fed_peer *peer);

/* Back-pressure: a peer far ahead of the database is not read until what
 * waits fits its budget again. */
static void read_if_room(struct fed_peer *peer)
{
	if (peer->session == NULL)
		return;
	if (peer->pending_bytes < PENDING_BYTES)
		bufferevent_enable(peer->session->bev, EV_READ);
	else
		bufferevent_disable(peer->session->bev, EV_READ);
}

static void send_ack(struct fed_peer *peer)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__Ack ack = TIMEBANK__V1__ACK__INIT;

	ack.sequence = peer->in_durable;
	body.kind_case = TIMEBANK__V1__BODY__KIND_ACK;
	body.ack = &ack;
	fed_conn_send(peer->session, &body);
	peer->ack_sent = peer->in_durable;
	peer->ack_ms = fed_now_ms();
}

/* What is durable is acknowledged at once after a quiet spell, and
 * otherwise at most every ACK_GAP_MS: each acknowledgement is an envelope
 * signed here and verified and recorded by the peer, and under load one
 * would go for nearly every apply. Hearing later costs the peer nothing: it
 * only counts what is still in flight, and a new session starts from what
 * its hello says. */
static void ack_soon(struct fed_peer *peer)
{
	int64_t since = fed_now_ms() - peer->ack_ms;
	struct timeval tv = {0, 0};

	if (peer->in_durable <= peer->ack_sent || evtimer_pending(peer->ack_timer, NULL))
		return;
	if (since < 0 || since >= ACK_GAP_MS) {
		send_ack(peer);
		return;
	}
	tv.tv_usec = (suseconds_t)(ACK_GAP_MS - since) * 1000;
	evtimer_add(peer->ack_timer, &tv);
}

void fed_chan_ack_due(evutil_socket_t fd, short what, void *arg)
{
	struct fed_peer *peer = arg;

	(void)fd;
	(void)what;
	if (peer->session != NULL && !peer->fed->stopping && peer->in_durable > peer->ack_sent)
		send_ack(peer);
}

/* The apply committed without waiting for the disk (tb_fed_apply), so the
 * accounts it locked were free at once and the next apply could start; the
 * peer hears it applied only now, once the barrier behind it has made it
 * durable (c->seq: what it applied up to). If that fails the apply may be
 * lost with the database: the session closes, and the next one starts
 * from what is known durable. */
static void on_flushed(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;

	if (peer->fed->stopping) {
		fed_call_free(c);
		return;
	}
	if (r->status != DB_OK) {
		log_warn("fed: applies from %s could not be confirmed durable: %s", peer->id,
		         db_result_why(r));
		peer->in_applied = peer->in_durable;
		if (fed_call_current(c))
			fed_conn_close(peer->session, "the database could not confirm its applies");
	} else {
		if (c->seq > peer->in_durable)
			peer->in_durable = c->seq;
		if (fed_call_current(c))
			ack_soon(peer);
	}
	fed_call_free(c);
}

/* c->seq: how many messages the apply held. When the apply committed, the
 * barrier's answer follows (on_flushed), which frees c. */
static void on_applied(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	uint64_t held = c->seq;
	json_t *res;
	const char *err;

	peer->applying = 0;
	if (r->status != DB_OK) {
		/* Nothing was applied, and no barrier follows: the peer sends it all
		 * again next session. */
		if (!peer->fed->stopping) {
			(void)fed_db_answer(r, "applying messages", peer->id); /* logs why */
			if (fed_call_current(c))
				fed_conn_close(peer->session,
				               "the database could not apply its messages");
		}
		fed_call_free(c);
		return;
	}
	c->seq = 0; /* nothing known applied, until read below */
	if (peer->fed->stopping)
		return;
	failpoint("apply_after"); /* committed, not yet acknowledged */
	res = fed_db_answer(r, "applying messages", peer->id);
	if (res == NULL) {
		if (fed_call_current(c))
			fed_conn_close(peer->session, "the database could not read its applies");
		return;
	}
	uint64_t applied = (uint64_t)json_integer_value(json_object_get(res, "applied"));
	uint64_t dups = (uint64_t)json_integer_value(json_object_get(res, "duplicates"));
	/* What the database skipped after a refused message is refused too. */
	uint64_t skipped = held - (applied - peer->in_applied) - dups;

	c->seq = applied; /* durable even if this session ends meanwhile: the next hello says so */
	peer->in_applied = applied;
	peer->duplicates += dups;
	/* Answers queued by the apply go now, not at the next tick. */
	if (json_integer_value(json_object_get(res, "queued")) > 0)
		fed_chan_seal(peer->fed);
	err = json_string_value(json_object_get(res, "error"));
	if (fed_call_current(c)) {
		if (err != NULL && strcmp(err, "sequence_reused") == 0 &&
		    strcmp(peer->checkpoint, "diverged") != 0) {
			snprintf(peer->checkpoint, sizeof(peer->checkpoint), "diverged");
			log_error("fed: peer %s has DIVERGED: it sent a different message under "
			          "sequence %lld, which we applied already (was it restored from a "
			          "backup?); refused, and no new proposals go to it",
			          peer->id,
			          (long long)json_integer_value(json_object_get(res, "error_seq")));
		}
		if (err != NULL) {
			char what[96];
			snprintf(what, sizeof(what), "%s at sequence %lld (applied up to %llu)",
			         err,
			         (long long)json_integer_value(json_object_get(res, "error_seq")),
			         (unsigned long long)peer->in_applied);
			fed_conn_refuse(peer->session, what);
			/* What followed the bad message cannot apply either. */
			skipped += peer->npending;
			fed_chan_pending_clear(peer);
			for (uint64_t i = 1; i < skipped && peer->session != NULL; i++)
				fed_conn_refuse(peer->session, "a message after a refused one");
		}
		read_if_room(peer);
	}
	json_decref(res);
	apply_next(peer);
}

/* Whether a lone message waits for the next, to be applied with it as one
 * run. Only while the peer's messages come close together: the last came
 * less than APPLY_WAIT_MS after the one before. It then waits until a
 * second is here, or APPLY_WAIT_MS after it came; one after a quiet spell
 * is applied at once.
 *
 * Each apply costs the same again whatever it holds: a transaction, its
 * durable flush, and at a payer's bank a message of answers, signed, sent,
 * verified and applied there; a run of proposals is also decided in one
 * pass (tb_fed_apply). Two messages applied as one run cost less than
 * each alone, which more than pays for the wait. */
static int waits_for_run(struct fed_peer *peer)
{
	int64_t waited = fed_now_ms() - peer->recv_ms;
	struct timeval tv = {0, 0};

	if (peer->npending >= 2 || !peer->close_behind || waited < 0 || waited >= APPLY_WAIT_MS) {
		evtimer_del(peer->apply_timer);
		return 0;
	}
	if (!evtimer_pending(peer->apply_timer, NULL)) {
		tv.tv_usec = (suseconds_t)(APPLY_WAIT_MS - waited) * 1000;
		evtimer_add(peer->apply_timer, &tv);
	}
	return 1;
}

void fed_chan_apply_due(evutil_socket_t fd, short what, void *arg)
{
	struct fed_peer *peer = arg;

	(void)fd;
	(void)what;
	peer->close_behind = 0;
	apply_next(peer);
}

/* The run's messages as tb_fed_apply reads them, [{seq, prev, hash,
 * envelope, body}, ...], taken off the queue: at most APPLY_BATCH of them,
 * APPLY_ITEMS items and APPLY_BYTES of envelopes. Written out directly, since every value is a
 * number, hex, or a body already written as JSON. Returns how many. */
static size_t take_run(struct fed_peer *peer, struct evbuffer *out)
{
	struct fed_pending *p;
	size_t n = 0, items = 0, bytes = 0;
	char hash[2 * CRYPTO_HASH_LEN + 1], prev[2 * CRYPTO_HASH_LEN + 1];

	evbuffer_add(out, "[", 1);
	while ((p = STAILQ_FIRST(&peer->pending)) != NULL && n < APPLY_BATCH &&
	       (n == 0 || (items + p->items <= APPLY_ITEMS && bytes + p->raw_len <= APPLY_BYTES))) {
		char *env = xmalloc(2 * p->envelope_len + 1);
		crypto_hex(p->hash, CRYPTO_HASH_LEN, hash);
		crypto_hex(p->prev, p->prev_len, prev);
		crypto_hex(p->envelope, p->envelope_len, env);
		evbuffer_add_printf(
		    out,
		    "%s{\"seq\":%llu,\"prev\":\"%s\",\"hash\":\"%s\",\"envelope\":\"%s\","
		    "\"body\":%s}",
		    n ? "," : "", (unsigned long long)p->seq, prev, hash, env, p->body);
		free(env);
		STAILQ_REMOVE_HEAD(&peer->pending, next);
		peer->npending--;
		peer->pending_bytes -= p->cost;
		items += p->items;
		bytes += p->raw_len;
		n++;
		free(p->envelope);
		free(p->body);
		free(p);
	}
	evbuffer_add(out, "]", 2); /* with the NUL */
	return n;
}

static void apply_next(struct fed_peer *peer)
{
	struct evbuffer *text;
	struct fed_call *c;
	enum db_status st;
	size_t n;

	if (peer->applying || peer->npending == 0 || peer->session == NULL || waits_for_run(peer))
		return;
	text = evbuffer_new();
	n = take_run(peer, text);
	read_if_room(peer);
	failpoint("apply_before");
	char most[24];
	const char *params[3] = {peer->id, (const char *)evbuffer_pullup(text, -1), most};
	snprintf(most, sizeof(most), "%lld", (long long)peer->fed->max_exchange);
	c = fed_call_new(peer, n);
	if (db_query_durable(peer->fed->db, "SELECT tb_fed_apply($1, $2::jsonb, $3::bigint)::text",
	                     3, params, on_applied, on_flushed, c, &st) == 0) {
		peer->applying = 1;
	} else {
		fed_call_free(c);
		fed_conn_close(peer->session, "the database is unavailable");
	}
	evbuffer_free(text);
}

void fed_chan_pending_clear(struct fed_peer *peer)
{
	struct fed_pending *p;

	while ((p = STAILQ_FIRST(&peer->pending)) != NULL) {
		STAILQ_REMOVE_HEAD(&peer->pending, next);
		free(p->envelope);
		free(p->body);
		free(p);
	}
	peer->npending = 0;
	peer->pending_bytes = 0;
}

/* A peer's words in claims, contacts and their answers are held to the
 * check our own are (dir_personal_detail): one that holds a way to reach a
 * person is not kept, and the message is applied without it. (Refusing
 * the message instead would stop the peer's stream.) Returns how many
 * items it blanked. */
static int blank_personal_details(const struct fed_peer *peer, json_t *body)
{
	static struct log_limit blanked;
	json_t *item;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(body, "items"), i, item)
	{
		const char *text = json_string_value(json_object_get(item, "message"));
		char what[80];
		enum dir_detail d =
		    text != NULL ? dir_personal_detail(text, what, sizeof(what)) : DIR_CLEAN;
		if (d == DIR_CLEAN)
			continue;
		json_object_set_new(item, "message", json_string(""));
		n++;
		log_limited(&blanked, LOGL_WARN,
		            "fed: peer %s sent %s in a %s message; its words are not kept",
		            peer->id, dir_detail_name(d),
		            json_string_value(json_object_get(body, "kind")));
	}
	return n;
}

void fed_chan_received(struct fed_conn *conn, struct env_msg *msg, const uint8_t *raw,
                       size_t raw_len)
{
	struct fed_peer *peer = conn->peer;
	struct fed_pending *p;
	json_t *body;
	int64_t t = fed_now_ms();

	/* Held after a restore: what it answered of ours must be held again
	 * before anything it sends is applied (recover.c). Not acknowledged,
	 * so it comes again on the next session. */
	if (peer->recovering == RECOVER_HELD) {
		peer->recover_dropped = 1;
		return;
	}
	p = xcalloc(1, sizeof(*p));
	body = env_body_to_json(msg->sp->body);

	peer->close_behind = t - peer->recv_ms < APPLY_WAIT_MS;
	peer->recv_ms = t;
	peer->received++;
	p->seq = msg->sp->sequence;
	memcpy(p->hash, msg->hash, CRYPTO_HASH_LEN);
	p->prev_len = msg->sp->prev_hash.len; /* 0 or CRYPTO_HASH_LEN (env_open) */
	if (p->prev_len > 0)
		memcpy(p->prev, msg->sp->prev_hash.data, p->prev_len);
	/* Words not kept are not kept in the proof either: the envelope is
	 * stored redacted to its hash, as an erasure leaves it. */
	if (blank_personal_details(peer, body) == 0) {
		p->envelope = xmalloc(raw_len);
		memcpy(p->envelope, raw, raw_len);
		p->envelope_len = raw_len;
	}
	p->raw_len = raw_len;
	p->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	p->items = env_body_items(msg->sp->body);
	p->cost = sizeof(*p) + raw_len + strlen(p->body);
	STAILQ_INSERT_TAIL(&peer->pending, p, next);
	peer->npending++;
	peer->pending_bytes += p->cost;
	read_if_room(peer);
	apply_next(peer);
}

/* ---- acknowledgements and checkpoints ----------------------------------- */

static void on_acked(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;

	peer->acking = 0;
	if (!peer->fed->stopping && r->status == DB_OK && peer->acked > c->seq)
		fed_chan_ack(peer, peer->acked); /* a later ack came meanwhile */
	fed_call_free(c);
}

void fed_chan_ack(struct fed_peer *peer, uint64_t seq)
{
	char s[24];
	const char *params[2] = {peer->id, s};
	struct fed_call *c;

	if (seq > peer->sealed) {
		log_warn("fed: %s acknowledged %llu, beyond the %llu we sent; ignored", peer->id,
		         (unsigned long long)seq, (unsigned long long)peer->sealed);
		return;
	}
	if (seq > peer->acked)
		peer->acked = seq;
	if (peer->session != NULL && seq > peer->session->confirmed)
		peer->session->confirmed = seq;
	if (peer->acking)
		return;
	snprintf(s, sizeof(s), "%llu", (unsigned long long)peer->acked);
	c = fed_call_new(peer, peer->acked);
	if (fed_query(peer->fed, "SELECT tb_fed_acked($1, $2::bigint)", 2, params, on_acked, c) ==
	    0)
		peer->acking = 1;
	else
		fed_call_free(c);
}

/* A checkpoint read, until the barrier behind the read has made what it
 * says durable. */
struct checkpoint {
	struct fed_call *c;
	json_t *cp; /* NULL: not to be sent */
};

static void checkpoint_free(struct checkpoint *k)
{
	k->c->peer->cp_sending = 0;
	json_decref(k->cp);
	fed_call_free(k->c);
	free(k);
}

static void on_checkpoint_durable(void *arg, const struct db_result *r)
{
	struct checkpoint *k = arg;
	struct fed_peer *peer = k->c->peer;
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__Checkpoint checkpoint = TIMEBANK__V1__CHECKPOINT__INIT;
	Timebank__V1__StreamPosition applied = TIMEBANK__V1__STREAM_POSITION__INIT;
	uint8_t head[CRYPTO_HASH_LEN];
	long n;

	if (k->cp != NULL && !peer->fed->stopping && r->status == DB_OK && fed_call_current(k->c)) {
		n = crypto_unhex(json_string_value(json_object_get(k->cp, "head")), head,
		                 sizeof(head));
		checkpoint.sequence = (uint64_t)json_integer_value(json_object_get(k->cp, "seq"));
		checkpoint.chain_head.data = head;
		checkpoint.chain_head.len = n > 0 ? (size_t)n : 0;
		checkpoint.clearing_minutes =
		    json_integer_value(json_object_get(k->cp, "clearing"));
		applied.sequence = (uint64_t)json_integer_value(json_object_get(k->cp, "applied"));
		checkpoint.applied = &applied;
		/* Recovering, we leave it when the peer's own checkpoint agrees. */
		checkpoint.answer = peer->recovering == RECOVER_AGREEING;
		body.kind_case = TIMEBANK__V1__BODY__KIND_CHECKPOINT;
		body.checkpoint = &checkpoint;
		fed_conn_send(peer->session, &body);
		peer->cp_acked = checkpoint.sequence;
		peer->cp_applied = applied.sequence;
		peer->cp_at = time(NULL);
		peer->cp_wanted = 0;
	}
	checkpoint_free(k);
}

static void on_checkpoint(void *arg, const struct db_result *r)
{
	struct checkpoint *k = arg;
	struct fed_peer *peer = k->c->peer;

	if (!peer->fed->stopping)
		k->cp = fed_db_answer(r, "reading a checkpoint", peer->id);
	/* A peer that says it applied less than it acknowledged before (its
	 * database went back) is not told of more until it has said so again on
	 * this session: it is being sent the rest, and would see a checkpoint
	 * beyond them as a divergence. */
	if (k->cp != NULL && (!fed_call_current(k->c) ||
	                      (uint64_t)json_integer_value(json_object_get(k->cp, "seq")) >
	                          peer->session->confirmed)) {
		json_decref(k->cp);
		k->cp = NULL;
	}
	if (r->status != DB_OK)
		checkpoint_free(k); /* no barrier follows */
}

void fed_chan_checkpoint_send(struct fed_peer *peer)
{
	const char *params[1] = {peer->id};
	struct checkpoint *k;
	enum db_status st;

	/* One at a time: the one on its way reads the stream after this ask. */
	if (peer->cp_sending)
		return;
	k = xcalloc(1, sizeof(*k));
	k->c = fed_call_new(peer, 0);
	peer->cp_sending = 1;
	if (db_query_durable(peer->fed->db, "SELECT tb_fed_checkpoint($1)::text", 1, params,
	                     on_checkpoint, on_checkpoint_durable, k, &st) == -1)
		checkpoint_free(k);
}

/* Nothing changed on a quiet link needs no checkpoint but the heartbeat;
 * a peer recovering after a restore is sent one every round (asking for
 * the peer's in return), until it has recovered. */
void fed_chan_checkpoint_round(struct fed_peer *peer, time_t now)
{
	if (peer->cp_at != 0 && !peer->cp_wanted && peer->recovering != RECOVER_AGREEING &&
	    peer->acked == peer->cp_acked && peer->in_applied == peer->cp_applied &&
	    now - peer->cp_at < FED_HEARTBEAT_SECONDS)
		return;
	fed_chan_checkpoint_send(peer);
}

static void on_checkpoint_checked(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	const char *verdict;

	if (!peer->fed->stopping && r->status == DB_OK) {
		verdict = PQgetvalue(r->res, 0, 0);
		if (strcmp(verdict, "recovered") == 0) {
			log_info(
			    "fed: recovered with %s: its checkpoint at %llu agrees with what we "
			    "applied again; what waited for it is sealed now",
			    peer->id, (unsigned long long)c->seq);
			peer->recovering = RECOVER_NONE;
			verdict = "agree";
			fed_chan_seal(peer->fed);
		}
		if (strcmp(verdict, "diverged") == 0 && strcmp(peer->checkpoint, "diverged") != 0)
			log_error(
			    "fed: peer %s has DIVERGED: its checkpoint at %llu does not match "
			    "what we applied; no new proposals go to it",
			    peer->id, (unsigned long long)c->seq);
		if (strcmp(peer->checkpoint, "diverged") != 0)
			snprintf(peer->checkpoint, sizeof(peer->checkpoint), "%s", verdict);
	}
	fed_call_free(c);
}

static void on_clearing_stored(void *arg, const struct db_result *r)
{
	(void)r; /* kept for the next audit; the next checkpoint replaces it anyway */
	fed_call_free(arg);
}

void fed_chan_checkpoint_check(struct fed_peer *peer, uint64_t seq, const uint8_t *head,
                               size_t head_len, int64_t clearing, const uint64_t *applied,
                               int answer)
{
	char s[24], hex[2 * CRYPTO_HASH_LEN + 1], c_text[24], a_text[24];
	const char *params[3] = {peer->id, s, hex};
	/* applied: absent from a peer that does not say, or past any sequence. */
	const char *cparams[4] = {peer->id, c_text,
	                          applied != NULL && *applied <= INT64_MAX ? a_text : NULL, s};
	struct fed_call *c;

	/* Ours in return, at once unless one went within the second (a peer
	 * that asks again and again is answered once a round). */
	if (answer && time(NULL) - peer->cp_at >= 1)
		fed_chan_checkpoint_send(peer);
	else if (answer)
		peer->cp_wanted = 1;
	/* A peer sending checkpoints faster than they are checked loses them:
	 * the next brings the same news. */
	if ((c = fed_call_shared(peer)) == NULL)
		return;
	/* Its clearing balance for us, and where both streams stood when it
	 * read it, for tbctl audit --federation. A sequence past any a bigint
	 * holds is past any there is. */
	snprintf(c_text, sizeof(c_text), "%lld", (long long)clearing);
	if (applied != NULL)
		snprintf(a_text, sizeof(a_text), "%llu", (unsigned long long)*applied);
	snprintf(s, sizeof(s), "%llu", (unsigned long long)(seq <= INT64_MAX ? seq : INT64_MAX));
	/* Not stored when the database is down: the next checkpoint brings it. */
	if (fed_query(peer->fed,
	              "SELECT tb_fed_peer_clearing($1, $2::bigint, $3::bigint, $4::bigint)", 4,
	              cparams, on_clearing_stored, c) == -1) {
		fed_call_free(c);
		log_debug("fed: peer %s: its clearing balance is not stored; the database is away",
		          peer->id);
	}

	if (head_len > CRYPTO_HASH_LEN)
		head_len = 0;
	crypto_hex(head, head_len, hex);
	c = fed_call_new(peer, seq);
	if (fed_query(peer->fed, "SELECT tb_fed_checkpoint_check($1, $2::bigint, $3)", 3, params,
	              on_checkpoint_checked, c) == -1)
		fed_call_free(c);
}

static void on_behind(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *res = NULL;
	const char *stage;

	if (peer->fed->stopping ||
	    (res = fed_db_answer(r, "recording what we lack", peer->id)) == NULL) {
		fed_call_free(c);
		return;
	}
	stage = json_string_value(json_object_get(res, "stage"));
	if (json_is_true(json_object_get(res, "diverged"))) {
		log_error("fed: peer %s has DIVERGED: it says it applied our messages up to %lld, "
		          "but we sealed only %lld, and this bank was not put back to an earlier "
		          "point (if it was, stop it and run timebankd --restored); nothing is "
		          "taken back from it, and no new proposals go to it",
		          peer->id, (long long)json_integer_value(json_object_get(res, "to")),
		          (long long)json_integer_value(json_object_get(res, "held")));
		snprintf(peer->checkpoint, sizeof(peer->checkpoint), "diverged");
		peer->recovering = RECOVER_NONE;
		/* What it sent before we knew comes again on a new session. */
		if (peer->recover_dropped && fed_call_current(c))
			fed_conn_close(peer->session, "diverged");
	} else if (json_is_true(json_object_get(res, "behind"))) {
		log_error(
		    "fed: peer %s applied our messages up to %lld, but we hold them only up to "
		    "%lld: this bank was put back to an earlier point. Nothing new goes to %s, "
		    "and nothing from it is applied, until we hold %lld to %lld again: we ask "
		    "it for them back",
		    peer->id, (long long)json_integer_value(json_object_get(res, "to")),
		    (long long)json_integer_value(json_object_get(res, "held")), peer->id,
		    (long long)json_integer_value(json_object_get(res, "from")),
		    (long long)json_integer_value(json_object_get(res, "to")));
		peer->recovering = RECOVER_HELD;
		peer->recover_to = (uint64_t)json_integer_value(json_object_get(res, "to"));
		if (fed_call_current(c))
			fed_recover_ask(peer);
	} else if (stage == NULL) {
		if (json_is_true(json_object_get(res, "released")))
			log_info(
			    "fed: %s has applied no more of ours than we hold: this bank is not "
			    "behind it since the restore, and its stream goes on",
			    peer->id);
		peer->recovering = RECOVER_NONE;
		fed_chan_seal(peer->fed);
	} else if (strcmp(stage, "agreeing") == 0) {
		peer->recovering = RECOVER_AGREEING;
	}
	json_decref(res);
	fed_call_free(c);
}

/* The peer's hello says how much of our stream it applied: past what we
 * hold sealed, we were restored, and hold back (tb_fed_behind), at once:
 * nothing it sends on this session is applied before we know. A stream
 * held since a restore is released by a hello that is not past it. */
static void check_behind(struct fed_peer *peer)
{
	char s[24];
	const char *params[2] = {peer->id, s};
	struct fed_call *c;
	uint64_t confirmed = peer->session->confirmed;

	if (confirmed > peer->sealed)
		peer->recovering = RECOVER_HELD;
	else if (peer->recovering == RECOVER_NONE)
		return;
	else if (peer->recovering == RECOVER_HELD)
		peer->recovering = RECOVER_AGREEING; /* applied from now; sealed once released */
	snprintf(s, sizeof(s), "%llu",
	         (unsigned long long)(confirmed <= INT64_MAX ? confirmed : (uint64_t)INT64_MAX));
	c = fed_call_new(peer, confirmed);
	if (fed_query(peer->fed, "SELECT tb_fed_behind($1, $2::bigint)::text", 2, params, on_behind,
	              c) == -1)
		fed_call_free(c);
}

void fed_chan_session_started(struct fed_peer *peer)
{
	peer->ack_sent = 0; /* this session has heard only the hello */
	peer->cp_at = 0;
	peer->cp_wanted = 0;
	peer->recover_asking = 0;
	peer->recover_dropped = 0;
	check_behind(peer);
	fed_chan_checkpoint_send(peer);
	fed_chan_pump(peer);
}

static void key_not_stored(const struct fed_peer *peer)
{
	log_error("fed: the new key of %s could not be stored; it is accepted until restart",
	          peer->id);
}

static void on_key_stored(void *arg, const struct db_result *r)
{
	struct fed_peer *peer = arg;

	if (!peer->fed->stopping && r->status != DB_OK)
		key_not_stored(peer);
}

void fed_chan_key_learned(struct fed_peer *peer, const struct crypto_key *key, const char *replaces)
{
	char hex[2 * CRYPTO_PUB_LEN + 1], days[8];
	const char *params[5] = {peer->id, crypto_key_id(key), hex, replaces, days};

	crypto_hex(crypto_key_raw(key), CRYPTO_PUB_LEN, hex);
	snprintf(days, sizeof(days), "%d", FED_KEY_GRACE_DAYS);
	if (fed_query(peer->fed, "SELECT tb_fed_key_learned($1, $2, $3, $4, $5::int)", 5, params,
	              on_key_stored, peer) == -1)
		key_not_stored(peer);
}
