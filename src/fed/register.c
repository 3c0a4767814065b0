/* The network's register between a bank and the national body's observer
 * (proto/register.proto; the session messages in federation.proto).
 *
 * The observer offers a bank the register it last published when the bank
 * holds an older one, and tells its banks of each new serial. A bank asks
 * at the start of each session with the observer, hourly, and on a
 * notice; it takes a register only from a peer of kind observer, only
 * signed by the register key of its config over the exact bytes, only
 * with a serial above the one it holds, and only when every bank in it is
 * well formed. A refused register is logged and counted, and the last
 * good one stays.
 *
 * Both the national body and its banks run the register in force as
 * peers: every bank it lists but this one and those the config names is
 * dialed and accepted, with the register's address, keys (each in its
 * window) and certificate; a bank no longer listed is removed (closed,
 * neither dialed nor accepted); the register's CRL replaces an older one.
 * The database keeps the same set (tb_register_peers). */
#include "internal.h"

#include "log.h"
#include "mem.h"
#include "register.pb-c.h"
#include "req.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define REGISTER_ASK_SECONDS 3600

static int is_observer(const struct fed_peer *peer)
{
	return strcmp(peer->kind, "observer") == 0;
}

int fed_reg_runs(const struct fed *fed)
{
	return fed->register_key != NULL;
}

static int takes_register(const struct fed *fed)
{
	return fed_reg_runs(fed) && strcmp(fed->role, "bank") == 0;
}

void fed_reg_ask(struct fed_peer *peer)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__RegisterRequest ask = TIMEBANK__V1__REGISTER_REQUEST__INIT;

	if (peer->session == NULL || !is_observer(peer) || !takes_register(peer->fed))
		return;
	ask.have = peer->fed->register_serial;
	body.kind_case = TIMEBANK__V1__BODY__KIND_REGISTER_REQUEST;
	body.register_request = &ask;
	fed_conn_send(peer->session, &body);
}

/* ---- at the observer ---------------------------------------------------- */

static void on_offer(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *offer = NULL;

	if (!peer->fed->stopping && r->status == DB_OK && fed_call_current(c) &&
	    !PQgetisnull(r->res, 0, 0))
		offer = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
	if (offer != NULL && peer->session != NULL) {
		Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
		Timebank__V1__RegisterOffer msg = TIMEBANK__V1__REGISTER_OFFER__INIT;
		msg.signed_register.data = crypto_unhex_new(
		    json_string_value(json_object_get(offer, "signed")), &msg.signed_register.len);
		if (msg.signed_register.data != NULL) {
			body.kind_case = TIMEBANK__V1__BODY__KIND_REGISTER_OFFER;
			body.register_offer = &msg;
			fed_conn_send(peer->session, &body);
		}
		free(msg.signed_register.data);
	}
	json_decref(offer);
	fed_call_free(c);
}

static void serve(struct fed_peer *peer, uint64_t have)
{
	char text[24];
	const char *params[1] = {text};
	struct fed_call *c = fed_call_new(peer, 0);

	snprintf(text, sizeof(text), "%llu", (unsigned long long)have);
	if (fed_query(peer->fed, "SELECT tb_register_offer($1::bigint)::text", 1, params, on_offer,
	              c) == -1)
		fed_call_free(c);
}

void fed_reg_published(struct fed *fed, uint64_t serial)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__RegisterNotice notice = TIMEBANK__V1__REGISTER_NOTICE__INIT;

	if (fed == NULL || strcmp(fed->role, "observer") != 0)
		return;
	notice.serial = serial;
	body.kind_case = TIMEBANK__V1__BODY__KIND_REGISTER_NOTICE;
	body.register_notice = &notice;
	for (int i = 0; i < fed->npeers; i++)
		if (fed->peers[i]->session != NULL && !is_observer(fed->peers[i]))
			fed_conn_send(fed->peers[i]->session, &body);
	/* Its own peers follow what it published. */
	fed->register_wanted++;
	fed_reg_load(fed);
}

/* ---- at a bank ---------------------------------------------------------- */

static void refuse(struct fed_peer *peer, const char *why)
{
	static struct log_limit refused;

	peer->fed->register_refused++;
	log_limited(&refused, LOGL_WARN,
	            "fed: a register from %s is refused (%s); the one held (serial %llu) stays",
	            peer->id, why, (unsigned long long)peer->fed->register_serial);
}

_Static_assert(FED_MAX_KEYS >= REQ_REGISTER_MAX_KEYS, "a bank keeps every key a register gives");

/* Why the banks a register lists are not well formed, or NULL (why). */
static const char *bad_banks(const Timebank__V1__Register *reg, char *why, size_t len)
{
	return req_register_bad(reg, why, len) == -1 ? why : NULL;
}

/* The register's address of a bank, split; 0 or -1. */
static int split_address(const char *address, char *host, size_t len, int *port)
{
	const char *colon = strrchr(address, ':');

	if (colon == NULL || (size_t)(colon - address) >= len)
		return -1;
	snprintf(host, len, "%.*s", (int)(colon - address), address);
	*port = atoi(colon + 1);
	return 0;
}

static const json_t *state_of(const json_t *states, const char *id)
{
	const json_t *row;
	size_t i;

	json_array_foreach(states, i, row)
	{
		if (strcmp(json_string_value(json_object_get(row, "peer")), id) == 0)
			return row;
	}
	return NULL;
}

/* One bank of the register as our peer: made, or brought up to it. */
static void apply_bank(struct fed *fed, const Timebank__V1__RegisterBank *b, const json_t *states)
{
	struct fed_peer *peer = fed_peer_find(fed, b->id);
	struct crypto_key *keys[FED_MAX_KEYS];
	time_t from[FED_MAX_KEYS], until[FED_MAX_KEYS];
	const json_t *row = state_of(states, b->id);
	char host[256];
	int port, n = 0, fresh = peer == NULL;

	if (peer != NULL && !peer->from_register)
		return; /* the config names it: the config's word stands */
	if (split_address(b->address, host, sizeof(host), &port) == -1)
		return; /* bad_banks refused it */
	if (fresh) {
		peer = fed_peer_add(fed, b->id, b->kind, host, port);
		peer->from_register = 1;
		log_info("fed: peer %s (%s) joins from the network's register, at %s", b->id,
		         b->kind, b->address);
	} else if (strcmp(peer->host, host) != 0 || peer->port != port ||
	           strcmp(peer->kind, b->kind) != 0) {
		log_info("fed: peer %s is at %s now, as the network's register says", b->id,
		         b->address);
		free(peer->host);
		free(peer->kind);
		peer->host = xstrdup(host);
		peer->kind = xstrdup(b->kind);
		peer->port = port;
	}
	for (size_t k = 0; k < b->n_keys; k++) {
		keys[n] =
		    crypto_key_from_raw(b->keys[k]->public_key.data, b->keys[k]->public_key.len);
		from[n] = (time_t)b->keys[k]->not_before_unix;
		until[n] = (time_t)b->keys[k]->not_after_unix;
		n += keys[n] != NULL;
	}
	fed_peer_set_keys(peer, keys, from, until, n);
	if (strcmp(peer->cert_sha256, b->cert_sha256) != 0) {
		struct fed_conn *conn;
		snprintf(peer->cert_sha256, sizeof(peer->cert_sha256), "%s", b->cert_sha256);
		/* Its sessions showed the certificate named before: they start
		 * again, and show the one named now. */
		LIST_FOREACH(conn, &fed->conns, next)
		if (conn->peer == peer)
			fed_conn_close(conn, "the network's register names another certificate");
	}
	if (fresh && fed->loaded && row != NULL)
		fed_chan_load_row(peer, row);
	if (peer->state == PEER_REMOVED)
		fed_peer_restore(peer);
	else if (fresh)
		fed_peer_dial(peer);
}

/* A peer removed from the register before this start: shown as removed,
 * with what waits for it, and never dialed or accepted. */
static void removed_before(struct fed *fed, const json_t *states)
{
	const json_t *row;
	size_t i;

	json_array_foreach(states, i, row)
	{
		const char *id = json_string_value(json_object_get(row, "peer"));
		const char *kind = json_string_value(json_object_get(row, "kind"));
		struct fed_peer *peer;
		if (id == NULL || kind == NULL || !json_is_true(json_object_get(row, "removed")) ||
		    fed_peer_find(fed, id) != NULL)
			continue;
		peer = fed_peer_add(fed, id, kind, "", 0);
		peer->from_register = 1;
		fed_peer_remove(peer, "removed from the network's register");
		if (fed->loaded)
			fed_chan_load_row(peer, row);
	}
}

/* Whether the register lists id. */
static int lists(const Timebank__V1__Register *reg, const char *id)
{
	for (size_t i = 0; i < reg->n_banks; i++)
		if (strcmp(reg->banks[i]->id, id) == 0)
			return 1;
	return 0;
}

/* The register in force as our peers, and its CRL. A bank the register
 * does not list is no member: every bank of it would refuse it, and it
 * dials none of them. */
static void apply(struct fed *fed, const Timebank__V1__Register *reg, const json_t *states)
{
	int member = !takes_register(fed) || lists(reg, fed->bank_id);
	char err[200];

	if (!member)
		log_warn("fed: this bank (%s) is not in the network's register (serial %llu): no "
		         "bank of it is a peer; the national body adds it with tbctl register "
		         "add-bank",
		         fed->bank_id, (unsigned long long)reg->serial);
	removed_before(fed, states);
	for (size_t i = 0; member && i < reg->n_banks; i++)
		if (strcmp(reg->banks[i]->id, fed->bank_id) != 0)
			apply_bank(fed, reg->banks[i], states);
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = fed->peers[i];
		if (peer->from_register && (!member || !lists(reg, peer->id)))
			fed_peer_remove(peer, "removed from the network's register");
	}
	switch (fed_tls_use_crl(fed->ctx, reg->crl.data, reg->crl.len, &fed->crl_this_update,
	                        &fed->crl_next_update, err, sizeof(err))) {
	case 1:
		fed->crl_warned = 0;
		fed_close_untrusted(fed, "its certificate is revoked by the register's CRL");
		break;
	case -1:
		log_warn("fed: the register's CRL is not used (%s); the one in force stays", err);
		break;
	default:
		break;
	}
}

/* The register's bytes as they came, verified and read; NULL (why set). */
static Timebank__V1__Register *open_signed(const struct fed *fed, const uint8_t *data, size_t len,
                                           const char **why)
{
	Timebank__V1__SignedRegister *sr = timebank__v1__signed_register__unpack(NULL, len, data);
	Timebank__V1__Register *reg = NULL;

	if (sr == NULL)
		*why = "not a signed register";
	else if (strcmp(sr->key_id, crypto_key_id(fed->register_key)) != 0)
		*why = "signed by another key than the register key";
	else if (crypto_verify(fed->register_key, sr->register_.data, sr->register_.len,
	                       sr->signature.data, sr->signature.len) == -1)
		*why = "its signature does not verify";
	else if ((reg = timebank__v1__register__unpack(NULL, sr->register_.len,
	                                               sr->register_.data)) == NULL)
		*why = "its register does not parse";
	if (sr != NULL)
		timebank__v1__signed_register__free_unpacked(sr, NULL);
	return reg;
}

static void on_taken(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed *fed = c->peer->fed;
	json_t *res = r->status == DB_OK ? json_loads(PQgetvalue(r->res, 0, 0), 0, NULL) : NULL;
	uint64_t serial = (uint64_t)json_integer_value(json_object_get(res, "serial"));

	if (!fed->stopping && res != NULL) {
		if (json_is_true(json_object_get(res, "taken"))) {
			log_info("fed: took the network's register, serial %llu, from %s",
			         (unsigned long long)serial, c->peer->id);
			/* The peers now follow it. */
			fed->register_wanted++;
			fed_reg_load(fed);
		}
		if (serial > fed->register_serial) {
			fed->register_serial = serial;
			fed->register_next_update =
			    (time_t)json_integer_value(json_object_get(res, "next_update_unix"));
			fed->register_warned = 0;
		}
	} else if (!fed->stopping) {
		log_warn("fed: the register from %s could not be kept: %s", c->peer->id,
		         db_result_why(r));
	}
	json_decref(res);
	fed_call_free(c);
}

static void take(struct fed_peer *peer, const ProtobufCBinaryData *offer)
{
	struct fed *fed = peer->fed;
	Timebank__V1__Register *reg = NULL;
	const char *why = NULL;
	char serial[24], crl_why[80], bad[160];
	char *hex, *text;
	json_t *json;
	struct fed_call *c;

	reg = open_signed(fed, offer->data, offer->len, &why);
	if (reg == NULL)
		;
	else if (reg->serial < fed->register_serial)
		why = "an older serial than the one held";
	else if (reg->serial == fed->register_serial)
		why = ""; /* the one held: nothing to do */
	else
		why = bad_banks(reg, bad, sizeof(bad));
	if (why == NULL &&
	    !fed_tls_crl_ok(fed->ctx, reg->crl.data, reg->crl.len, crl_why, sizeof(crl_why)))
		why = crl_why;
	if (why != NULL) {
		if (*why != '\0')
			refuse(peer, why);
		goto done;
	}
	hex = xmalloc(2 * offer->len + 1);
	crypto_hex(offer->data, offer->len, hex);
	json = env_msg_to_json(&reg->base);
	json_object_del(json, "crl"); /* kept in the signed bytes, not twice */
	text = json_dumps(json, JSON_COMPACT);
	snprintf(serial, sizeof(serial), "%llu", (unsigned long long)reg->serial);
	const char *params[4] = {serial, hex, text, peer->id};
	c = fed_call_new(peer, 0);
	if (fed_query(fed, "SELECT tb_register_take($1::bigint, $2, $3::jsonb, $4)::text", 4,
	              params, on_taken, c) == -1)
		fed_call_free(c);
	free(text);
	free(hex);
	json_decref(json);
done:
	if (reg != NULL)
		timebank__v1__register__free_unpacked(reg, NULL);
}

void fed_reg_received(struct fed_peer *peer, const Timebank__V1__Body *body)
{
	struct fed *fed = peer->fed;

	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_REGISTER_REQUEST:
		if (strcmp(fed->role, "observer") == 0 && !is_observer(peer))
			serve(peer, body->register_request->have);
		break;
	case TIMEBANK__V1__BODY__KIND_REGISTER_NOTICE:
		if (is_observer(peer) && body->register_notice->serial > fed->register_serial)
			fed_reg_ask(peer);
		break;
	case TIMEBANK__V1__BODY__KIND_REGISTER_OFFER:
		if (!takes_register(fed))
			break; /* this daemon holds no register key: it takes no register */
		if (!is_observer(peer))
			refuse(peer, "served by a peer that is not the national body");
		else
			take(peer, &body->register_offer->signed_register);
		break;
	default:
		break;
	}
}

/* The register in force, read (tb_register_in_force_signed) and checked
 * here before anything follows it: then the database's peers follow it
 * (tb_register_peers), and ours. A held register this bank cannot use (the
 * config's register key changed since it was taken) is forgotten, so that
 * the national body's next offer is taken whatever its serial. The first,
 * at start, is followed by the channel's state. */
struct reg_load {
	struct fed *fed;
	unsigned wanted;
	Timebank__V1__Register *reg; /* the register read, until its peers are made */
};

/* The load is over: what it read is let go. */
static void drop(struct reg_load *l)
{
	l->fed->register_loading = 0;
	if (l->reg != NULL)
		timebank__v1__register__free_unpacked(l->reg, NULL);
	free(l);
}

static void loaded(struct reg_load *l)
{
	struct fed *fed = l->fed;

	fed->register_applied = l->wanted;
	drop(l);
	if (!fed->register_loaded) {
		fed->register_loaded = 1;
		fed_chan_load(fed);
		return;
	}
	for (int i = 0; i < fed->npeers; i++)
		fed_reg_ask(fed->peers[i]);
}

/* The database could not be read: again at the next tick. */
static void load_failed(struct reg_load *l, const char *why)
{
	if (!l->fed->stopping)
		log_warn("fed: the network's register could not be read: %s; trying again", why);
	drop(l);
}

static void on_peers(void *arg, const struct db_result *r)
{
	struct reg_load *l = arg;
	struct fed *fed = l->fed;
	json_t *res = NULL;

	if (fed->stopping || r->status != DB_OK ||
	    (res = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL)) == NULL) {
		load_failed(l, db_result_why(r));
		return;
	}
	if (l->wanted != fed->register_wanted) {
		/* A newer register came meanwhile: what was read is not followed,
		 * the newer one is read. */
		json_decref(res);
		drop(l);
		fed_reg_load(fed);
		return;
	}
	if (l->reg != NULL) {
		apply(fed, l->reg, json_object_get(res, "peers"));
		fed->register_serial = l->reg->serial;
		fed->register_next_update = (time_t)l->reg->next_update_unix;
	} else {
		fed->register_serial = 0; /* forgotten: the next one offered is taken */
		fed->register_next_update = 0;
	}
	json_decref(res);
	loaded(l);
}

/* The national body's own register, as it published it (its database). */
static Timebank__V1__Register *open_published(const uint8_t *data, size_t len, const char **why)
{
	Timebank__V1__SignedRegister *sr = timebank__v1__signed_register__unpack(NULL, len, data);
	Timebank__V1__Register *reg =
	    sr != NULL ? timebank__v1__register__unpack(NULL, sr->register_.len, sr->register_.data)
	               : NULL;

	if (reg == NULL)
		*why = "it does not parse";
	if (sr != NULL)
		timebank__v1__signed_register__free_unpacked(sr, NULL);
	return reg;
}

static void on_held(void *arg, const struct db_result *r)
{
	struct reg_load *l = arg;
	struct fed *fed = l->fed;
	json_t *res = NULL;
	const char *hex, *why = NULL;
	char bad[160];
	uint8_t *bytes;
	size_t n;
	int forget = 0;

	if (fed->stopping || r->status != DB_OK ||
	    (res = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL)) == NULL) {
		load_failed(l, db_result_why(r));
		return;
	}
	/* None held: signed is null. */
	hex = json_string_value(json_object_get(res, "signed"));
	if (hex != NULL) {
		bytes = crypto_unhex_new(hex, &n);
		if (bytes == NULL)
			why = "it is not hex";
		else if (takes_register(fed))
			l->reg = open_signed(fed, bytes, n, &why);
		else
			l->reg = open_published(bytes, n, &why);
		if (l->reg != NULL)
			why = bad_banks(l->reg, bad, sizeof(bad));
		free(bytes);
	}
	if (why != NULL) {
		log_error("fed: the network's register held (serial %lld) is not used: %s%s",
		          (long long)json_integer_value(json_object_get(res, "serial")), why,
		          takes_register(fed) ? "; the national body's next one is taken"
		                              : "; publish it again");
		if (l->reg != NULL)
			timebank__v1__register__free_unpacked(l->reg, NULL);
		l->reg = NULL;
		forget = takes_register(fed);
	}
	json_decref(res);
	if (why != NULL && !forget) {
		loaded(l); /* the national body's, unreadable: its peers stay as they are */
		return;
	}
	/* Registers may be as large as a frame: the signed bytes are not sent back. */
	if (fed_query(fed,
	              forget ? "SELECT tb_register_forget()::text"
	                     : "SELECT tb_register_peers()::text",
	              0, NULL, on_peers, l) == -1)
		load_failed(l, "database unavailable");
}

void fed_reg_load(struct fed *fed)
{
	struct reg_load *l;

	if (fed->register_loading)
		return;
	l = xcalloc(1, sizeof(*l));
	l->fed = fed;
	l->wanted = fed->register_wanted;
	if (fed_query(fed, "SELECT tb_register_in_force_signed()::text", 0, NULL, on_held, l) == 0)
		fed->register_loading = 1;
	else
		free(l);
}

void fed_reg_tick(struct fed *fed, time_t now)
{
	if (!fed_reg_runs(fed))
		return;
	if (fed->register_applied != fed->register_wanted)
		fed_reg_load(fed); /* a register taken could not be followed: again */
	if (!takes_register(fed))
		return;
	if (now - fed->last_register_ask >= REGISTER_ASK_SECONDS) {
		fed->last_register_ask = now;
		for (int i = 0; i < fed->npeers; i++)
			fed_reg_ask(fed->peers[i]);
	}
	/* A register going stale is warned of daily from 30 days ahead. */
	if (fed->register_next_update != 0 && fed->register_next_update - now < 30 * 86400L &&
	    now - fed->register_warned >= 86400) {
		fed->register_warned = now;
		log_warn("fed: the network's register (serial %llu) %s; the national body must "
		         "publish a new one",
		         (unsigned long long)fed->register_serial,
		         fed->register_next_update <= now
		             ? "is past its next update"
		             : "is due for its next update within 30 days");
	}
}

void fed_reg_metrics(const struct fed *fed, struct evbuffer *out)
{
	if (!takes_register(fed))
		return;
	evbuffer_add_printf(
	    out,
	    "# HELP timebankd_register_serial The serial of the network's register held.\n"
	    "# TYPE timebankd_register_serial gauge\ntimebankd_register_serial %llu\n"
	    "# HELP timebankd_register_next_update_timestamp_seconds When the register held is "
	    "due to be replaced; warned of 30 days ahead.\n"
	    "# TYPE timebankd_register_next_update_timestamp_seconds gauge\n"
	    "timebankd_register_next_update_timestamp_seconds %lld\n"
	    "# HELP timebankd_register_refused_total Registers refused: another key, an older "
	    "serial, a bad bank, or not from the national body.\n"
	    "# TYPE timebankd_register_refused_total counter\ntimebankd_register_refused_total "
	    "%llu\n",
	    (unsigned long long)fed->register_serial, (long long)fed->register_next_update,
	    fed->register_refused);
}
