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
 * good one stays. (What the bank does with the banks listed is the
 * register's next part.) */
#include "internal.h"

#include "log.h"
#include "mem.h"
#include "register.pb-c.h"
#include "req.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define REGISTER_ASK_SECONDS 3600
#define REGISTER_MAX_BANKS 1000
#define REGISTER_MAX_CRL (1024 * 1024)

static int is_observer(const struct fed_peer *peer)
{
	return strcmp(peer->kind, "observer") == 0;
}

static int takes_register(const struct fed *fed)
{
	return fed->register_key != NULL && strcmp(fed->role, "bank") == 0;
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
		const char *hex = json_string_value(json_object_get(offer, "signed"));
		size_t max = hex != NULL ? strlen(hex) / 2 : 0;
		uint8_t *bytes = xmalloc(max > 0 ? max : 1);
		long n = hex != NULL ? crypto_unhex(hex, bytes, max) : -1;
		if (n > 0) {
			msg.signed_register.data = bytes;
			msg.signed_register.len = (size_t)n;
			body.kind_case = TIMEBANK__V1__BODY__KIND_REGISTER_OFFER;
			body.register_offer = &msg;
			fed_conn_send(peer->session, &body);
		}
		free(bytes);
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
		if (fed->peers[i].session != NULL && !is_observer(&fed->peers[i]))
			fed_conn_send(fed->peers[i].session, &body);
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

/* Why the banks a register lists are not well formed, or NULL. */
static const char *bad_banks(const Timebank__V1__Register *reg)
{
	if (reg->n_banks > REGISTER_MAX_BANKS)
		return "more banks than a register may hold";
	if (reg->crl.len == 0 || reg->crl.len > REGISTER_MAX_CRL)
		return "no CRL, or an oversized one";
	for (size_t i = 0; i < reg->n_banks; i++) {
		const Timebank__V1__RegisterBank *b = reg->banks[i];
		if (!req_valid_bank_id(b->id))
			return "a bank with a bad id";
		if (!req_valid_address(b->address))
			return "a bank with a bad address";
		if (strcmp(b->kind, "bank") != 0 && strcmp(b->kind, "observer") != 0)
			return "a bank of no known kind";
		if (b->n_keys == 0)
			return "a bank without a signing key";
		for (size_t k = 0; k < b->n_keys; k++)
			if (b->keys[k]->public_key.len != CRYPTO_PUB_LEN)
				return "a signing key that is not 32 bytes";
		for (size_t j = 0; j < i; j++)
			if (strcmp(reg->banks[j]->id, b->id) == 0)
				return "a bank listed twice";
	}
	return NULL;
}

static void on_taken(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed *fed = c->peer->fed;
	json_t *res = r->status == DB_OK ? json_loads(PQgetvalue(r->res, 0, 0), 0, NULL) : NULL;
	uint64_t serial = (uint64_t)json_integer_value(json_object_get(res, "serial"));

	if (!fed->stopping && res != NULL) {
		if (json_is_true(json_object_get(res, "taken")))
			log_info("fed: took the network's register, serial %llu, from %s",
			         (unsigned long long)serial, c->peer->id);
		if (serial > fed->register_serial) {
			fed->register_serial = serial;
			fed->register_next_update =
			    (time_t)json_integer_value(json_object_get(res, "next_update_unix"));
			fed->register_warned = 0;
		}
	} else if (!fed->stopping) {
		log_warn("fed: the register from %s could not be kept: %s", c->peer->id,
		         r->status == DB_ERROR && r->message ? r->message : "database unavailable");
	}
	json_decref(res);
	fed_call_free(c);
}

static void take(struct fed_peer *peer, const ProtobufCBinaryData *offer)
{
	struct fed *fed = peer->fed;
	Timebank__V1__SignedRegister *sr;
	Timebank__V1__Register *reg = NULL;
	const char *why = NULL;
	char serial[24];
	char *hex, *text;
	json_t *json;
	struct fed_call *c;

	sr = timebank__v1__signed_register__unpack(NULL, offer->len, offer->data);
	if (sr == NULL)
		why = "not a signed register";
	else if (strcmp(sr->key_id, crypto_key_id(fed->register_key)) != 0)
		why = "signed by another key than the register key";
	else if (crypto_verify(fed->register_key, sr->register_.data, sr->register_.len,
	                       sr->signature.data, sr->signature.len) == -1)
		why = "its signature does not verify";
	else if ((reg = timebank__v1__register__unpack(NULL, sr->register_.len,
	                                               sr->register_.data)) == NULL)
		why = "its register does not parse";
	else if (reg->serial < fed->register_serial)
		why = "an older serial than the one held";
	else if (reg->serial == fed->register_serial)
		why = ""; /* the one held: nothing to do */
	else
		why = bad_banks(reg);
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
	if (sr != NULL)
		timebank__v1__signed_register__free_unpacked(sr, NULL);
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

static void on_held(void *arg, const struct db_result *r)
{
	struct fed *fed = arg;
	json_t *res;

	if (fed->stopping || r->status != DB_OK)
		return;
	res = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
	fed->register_serial = (uint64_t)json_integer_value(json_object_get(res, "serial"));
	fed->register_next_update =
	    (time_t)json_integer_value(json_object_get(res, "next_update_unix"));
	fed->register_loaded = 1;
	json_decref(res);
	for (int i = 0; i < fed->npeers; i++)
		fed_reg_ask(&fed->peers[i]);
}

void fed_reg_tick(struct fed *fed, time_t now)
{
	if (!takes_register(fed))
		return;
	if (!fed->register_loaded) {
		if (!fed->register_loading &&
		    fed_query(fed, "SELECT tb_register_held()::text", 0, NULL, on_held, fed) == 0)
			fed->register_loading = 1;
		return;
	}
	if (now - fed->last_register_ask >= REGISTER_ASK_SECONDS) {
		fed->last_register_ask = now;
		for (int i = 0; i < fed->npeers; i++)
			fed_reg_ask(&fed->peers[i]);
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
