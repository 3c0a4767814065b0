/* The federation link's connections and sessions: listening, dialing with
 * jittered capped backoff, TLS identity, hellos, keeping exactly one
 * session per peer, reading frames, refusing what is wrong. What a session
 * carries for the channel and the directory goes up through fed->up. */
#include "internal.h"

#include "failpoint.h"
#include "frame.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static const char *const state_names[] = {"idle",        "connecting",  "tls",    "hello",
                                          "established", "backing_off", "removed"};

int64_t fed_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *fed_peer_state_name(enum peer_state state)
{
	return state_names[state];
}

/* Every state change of a peer goes through here, and is logged. */
static void change_state(struct fed_peer *peer, enum peer_state state, const char *why)
{
	if (peer->state == state)
		return;
	log_info("fed: peer %s: %s -> %s%s%s", peer->id, state_names[peer->state],
	         state_names[state], why != NULL ? ": " : "", why != NULL ? why : "");
	peer->state = state;
	peer->since = time(NULL);
}

struct fed_peer *fed_peer_find(struct fed *fed, const char *id)
{
	for (int i = 0; i < fed->npeers; i++)
		if (strcmp(fed->peers[i]->id, id) == 0)
			return fed->peers[i];
	return NULL;
}

void fed_peer_dial_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fed_peer_dial(arg);
}

static void schedule_dial(struct fed_peer *peer)
{
	int ms = peer->backoff_ms / 2 + (int)(random() % (peer->backoff_ms / 2 + 1));
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	change_state(peer, PEER_BACKOFF, peer->last_error[0] ? peer->last_error : NULL);
	evtimer_add(peer->timer, &tv);
	peer->backoff_ms =
	    peer->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : peer->backoff_ms * 2;
}

void fed_conn_free(evutil_socket_t fd, short what, void *arg)
{
	struct fed_conn *conn = arg;

	(void)fd;
	(void)what;
	LIST_REMOVE(conn, next);
	gate_leave(conn->fed->gate, conn->ticket);
	if (conn->deadline != NULL)
		event_free(conn->deadline);
	if (conn->tcp_only && bufferevent_getfd(conn->bev) != -1)
		evutil_closesocket(bufferevent_getfd(conn->bev));
	bufferevent_free(conn->bev);
	free(conn);
}

/* Detaches the connection now and frees it when the loop comes round, so
 * the callback that closed it can still look at it. */
void fed_conn_close(struct fed_conn *conn, const char *why)
{
	struct fed_peer *peer = conn->peer;
	struct timeval now = {0, 0};

	/* Anyone can make us close connections that name no peer, as fast as
	 * they can open them. */
	static struct log_limit strangers;

	if (conn->closing)
		return;
	conn->closing = 1;
	if (why != NULL && peer != NULL) {
		log_warn("fed: %s (%s): closing: %s", conn->addr, peer->id, why);
		snprintf(peer->last_error, sizeof(peer->last_error), "%.250s", why);
	} else if (why != NULL) {
		log_limited(&strangers, LOGL_WARN, "fed: refused a connection from %s: %s",
		            conn->addr, why);
	}
	if (conn->deadline != NULL)
		evtimer_del(conn->deadline);
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
	event_base_once(conn->fed->base, -1, EV_TIMEOUT, fed_conn_free, conn, &now);
	if (peer != NULL && (peer->session == conn || peer->dialing == conn)) {
		if (peer->session == conn) {
			peer->session = NULL;
			peer->generation++;
			peer->fed->up->session_ended(peer);
		} else {
			peer->dialing = NULL;
		}
		/* Our own dial still under way will establish or fail by itself. */
		if (peer->state == PEER_REMOVED)
			;
		else if (peer->session == NULL && peer->dialing == NULL && !peer->fed->stopping &&
		         !evtimer_pending(peer->timer, NULL))
			schedule_dial(peer);
		else if (peer->session == NULL && peer->dialing != NULL)
			change_state(peer, peer->dialing->tcp_only ? PEER_CONNECTING : PEER_TLS,
			             "a surplus session closed; our dial goes on");
	}
}

static void send_signed(struct fed_conn *conn, const Timebank__V1__Body *body,
                        const struct crypto_key *key)
{
	struct fed *fed = conn->fed;
	uint8_t *buf, hash[CRYPTO_HASH_LEN];
	size_t len;

	if (env_seal(fed->bank_id, conn->peer->id, 0, NULL, fed_now_ms(), body, key, &buf, &len,
	             hash) == -1) {
		log_error("fed: cannot sign a message to %s", conn->peer->id);
		return;
	}
	fed_conn_write(conn, buf, len);
	free(buf);
}

void fed_conn_write(struct fed_conn *conn, const uint8_t *env, size_t len)
{
	uint8_t header[FRAME_HEADER];

	frame_header((uint32_t)len, header);
	bufferevent_write(conn->bev, header, sizeof(header));
	bufferevent_write(conn->bev, env, len);
	conn->sent_at = time(NULL);
	conn->fed->frames_sent++;
}

void fed_conn_send(struct fed_conn *conn, const Timebank__V1__Body *body)
{
	send_signed(conn, body, conn->fed->sign_key);
}

/* During a rotation, each session starts by announcing the new key, signed
 * with the old one, which the peer still holds. */
static void announce_key(struct fed_conn *conn)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__KeyRotation rot = TIMEBANK__V1__KEY_ROTATION__INIT;

	rot.new_public_key.data = (uint8_t *)crypto_key_raw(conn->fed->sign_key);
	rot.new_public_key.len = CRYPTO_PUB_LEN;
	body.kind_case = TIMEBANK__V1__BODY__KIND_KEY_ROTATION;
	body.key_rotation = &rot;
	send_signed(conn, &body, conn->fed->previous_key);
}

int fed_peer_key_good(const struct fed_peer *peer, int i, time_t now)
{
	return peer->valid_from[i] <= now &&
	       (peer->replaced_until[i] == 0 || peer->replaced_until[i] > now) &&
	       (peer->learned_until[i] == 0 || peer->learned_until[i] > now);
}

int fed_peer_add_key(struct fed_peer *peer, const uint8_t *raw, size_t len, const char *replaces,
                     long grace_seconds, long learned_seconds, int replay)
{
	struct crypto_key *key = crypto_key_from_raw(raw, len);
	time_t now = time(NULL);
	int signer = -1;

	if (key == NULL)
		return -1;
	for (int i = 0; i < peer->nkeys; i++) {
		if (strcmp(crypto_key_id(peer->keys[i]), crypto_key_id(key)) == 0) {
			crypto_key_free(key); /* known already */
			return 0;
		}
		if (strcmp(crypto_key_id(peer->keys[i]), replaces) == 0)
			signer = i;
	}
	/* A key in its grace period could have leaked: it may not name a
	 * successor, nor may a key that has ended (replayed from the database,
	 * it was good when it did). */
	if (signer == -1 || peer->replaced_until[signer] != 0 ||
	    (!replay && !fed_peer_key_good(peer, signer, now))) {
		crypto_key_free(key);
		return -1;
	}
	if (peer->nkeys == FED_MAX_KEYS) {
		log_warn("fed: peer %s announced more keys than are kept; ignored", peer->id);
		crypto_key_free(key);
		return -1;
	}
	/* The grace starts at the first announcement, not at every repeat. */
	peer->replaced_until[signer] = now + grace_seconds;
	peer->replaced_until[peer->nkeys] = 0;
	peer->learned_until[peer->nkeys] = now + learned_seconds;
	peer->valid_from[peer->nkeys] = 0;
	peer->keys[peer->nkeys++] = key;
	return 0;
}

int fed_peer_forget_key(struct fed_peer *peer, const char *key_id)
{
	for (int i = 1; i < peer->nkeys; i++) {
		if (strcmp(crypto_key_id(peer->keys[i]), key_id) != 0)
			continue;
		crypto_key_free(peer->keys[i]);
		for (int j = i; j + 1 < peer->nkeys; j++) {
			peer->keys[j] = peer->keys[j + 1];
			peer->replaced_until[j] = peer->replaced_until[j + 1];
			peer->learned_until[j] = peer->learned_until[j + 1];
			peer->valid_from[j] = peer->valid_from[j + 1];
		}
		peer->nkeys--;
		return 0;
	}
	return -1;
}

static void on_key_rotation(struct fed_conn *conn, const struct env_msg *msg)
{
	const Timebank__V1__KeyRotation *rot = msg->sp->body->key_rotation;
	struct fed_peer *peer = conn->peer;
	int before = peer->nkeys;

	if (rot->new_public_key.len != CRYPTO_PUB_LEN) {
		fed_conn_refuse(conn, "a key rotation without a key");
		return;
	}
	/* A peer of the register has the keys the register gives it. */
	if (peer->from_register)
		return;
	if (fed_peer_add_key(peer, rot->new_public_key.data, rot->new_public_key.len, msg->key_id,
	                     FED_KEY_GRACE_DAYS * 86400L, FED_LEARNED_KEY_DAYS * 86400L, 0) == -1) {
		fed_conn_refuse(conn, "a key rotation signed by a key that may not announce one "
		                      "(replaced already, or ended)");
		return;
	}
	if (peer->nkeys > before) {
		log_info(
		    "fed: peer %s announced a new signing key %s, signed by %s; both are "
		    "accepted for %d days; pin the new one in its [peer] signing_key within %d "
		    "days",
		    peer->id, crypto_key_id(peer->keys[peer->nkeys - 1]), msg->key_id,
		    FED_KEY_GRACE_DAYS, FED_LEARNED_KEY_DAYS);
		peer->fed->up->key_learned(peer, peer->keys[peer->nkeys - 1], msg->key_id);
	}
}

void fed_conn_refuse(struct fed_conn *conn, const char *what)
{
	struct fed_peer *peer = conn->peer;

	if (conn->closing)
		return;
	peer->refused++;
	log_warn("fed: refused a message from %s: %s", peer->id, what);
	if (++conn->refusals >= FED_MAX_REFUSALS) {
		/* It keeps misbehaving: drop it, and refuse it for a while. */
		peer->penalty_until = time(NULL) + peer->backoff_ms / 1000 + 5;
		fed_conn_close(conn, "too many refused messages");
	}
}

static void send_hello(struct fed_conn *conn)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__Hello hello = TIMEBANK__V1__HELLO__INIT;

	hello.protocol_version = ENV_PROTOCOL_VERSION;
	hello.bank_id = conn->fed->bank_id;
	hello.last_applied = conn->peer->in_durable;
	hello.recovery = 1;
	body.kind_case = TIMEBANK__V1__BODY__KIND_HELLO;
	body.hello = &hello;
	fed_conn_send(conn, &body);
}

/* Both banks may dial; of two sessions between a pair, the one dialed by
 * the bank whose id sorts first survives, at both ends alike. */
static int preferred(const struct fed_conn *conn)
{
	const char *dialer = conn->outbound ? conn->fed->bank_id : conn->peer->id;
	const char *other = conn->outbound ? conn->peer->id : conn->fed->bank_id;

	return strcmp(dialer, other) < 0;
}

static void establish(struct fed_conn *conn)
{
	struct fed_peer *peer = conn->peer;

	if (peer->session != NULL && peer->session != conn) {
		if (!preferred(conn)) {
			fed_conn_close(conn, NULL);
			return;
		}
		log_info("fed: peer %s: keeping the session dialed by %s", peer->id,
		         conn->outbound ? conn->fed->bank_id : peer->id);
		struct fed_conn *old = peer->session;
		peer->session = NULL;
		fed_conn_close(old, NULL);
	}
	if (peer->dialing == conn)
		peer->dialing = NULL;
	if (conn->deadline != NULL)
		evtimer_del(conn->deadline);
	gate_leave(conn->fed->gate, conn->ticket);
	conn->ticket = -1;
	peer->session = conn;
	peer->generation++;
	peer->backoff_ms = BACKOFF_MIN_MS;
	peer->last_error[0] = '\0';
	evtimer_del(peer->timer);
	peer->send_after = conn->confirmed;
	change_state(peer, PEER_ESTABLISHED, conn->outbound ? "we dialed" : "it dialed");
	peer->fed->up->session_started(peer);
}

static void on_hello(struct fed_conn *conn, const Timebank__V1__Hello *hello)
{
	if (conn->hello_received) {
		fed_conn_refuse(conn, "a second hello");
		return;
	}
	if (hello->protocol_version != ENV_PROTOCOL_VERSION) {
		fed_conn_close(conn, "speaks another protocol version");
		return;
	}
	if (hello->bank_id == NULL || strcmp(hello->bank_id, conn->peer->id) != 0) {
		fed_conn_close(conn, "hello names another bank");
		return;
	}
	conn->hello_received = 1;
	conn->confirmed = hello->last_applied;
	conn->serves_recovery = hello->recovery;
	establish(conn);
}

void fed_session_message(struct fed_conn *conn, const uint8_t *buf, size_t len)
{
	struct fed_peer *peer = conn->peer;
	struct crypto_key *keys[FED_MAX_KEYS];
	struct env_msg msg;
	time_t now = time(NULL);
	int nkeys = 0;

	/* A key replaced in a rotation is good until its grace period ends. */
	for (int i = 0; i < peer->nkeys; i++)
		if (fed_peer_key_good(peer, i, now))
			keys[nkeys++] = peer->keys[i];
	enum env_result r = env_open(buf, len, keys, nkeys, peer->id, conn->fed->bank_id, &msg);
	const Timebank__V1__Body *body;

	if (r != ENV_OK) {
		fed_conn_refuse(conn, env_result_name(r));
		return;
	}
	body = msg.sp->body;
	if (body->kind_case == TIMEBANK__V1__BODY__KIND_KEY_ROTATION && msg.sp->sequence == 0) {
		on_key_rotation(conn, &msg);
	} else if (!conn->hello_received && body->kind_case != TIMEBANK__V1__BODY__KIND_HELLO) {
		fed_conn_refuse(conn, "a message before the hello");
	} else if (msg.sp->sequence == 0 && env_is_channel(body)) {
		fed_conn_refuse(conn, "a channel message without a sequence");
	} else if (msg.sp->sequence != 0 && !env_is_channel(body)) {
		fed_conn_refuse(conn, "a session message with a sequence");
	} else if (body->kind_case == TIMEBANK__V1__BODY__KIND_TEST &&
	           strlen(body->test->text) > ENV_MAX_TEST_TEXT) {
		char why[80];
		snprintf(why, sizeof(why), "a test message with more than %d bytes of text",
		         ENV_MAX_TEST_TEXT);
		fed_conn_refuse(conn, why);
	} else if (env_body_items(body) > env_body_max_items(body)) {
		char why[96];
		snprintf(why, sizeof(why), "a message of %zu items, over the %zu one may hold",
		         env_body_items(body), env_body_max_items(body));
		fed_conn_refuse(conn, why);
	} else if (peer->session != conn && body->kind_case != TIMEBANK__V1__BODY__KIND_HELLO) {
		/* A session being replaced: what it sends now is sent again. */
	} else {
		if (body->kind_case == TIMEBANK__V1__BODY__KIND_HELLO)
			on_hello(conn, body->hello);
		else if (body->kind_case != TIMEBANK__V1__BODY__KIND_PING)
			conn->fed->up->received(conn, &msg, buf, len);
		/* Pings keep the session alive; nothing else to do. */
	}
	env_msg_clear(&msg);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct fed_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t header[FRAME_HEADER];
	uint32_t len;

	for (;;) {
		if (evbuffer_copyout(in, header, sizeof(header)) < (ev_ssize_t)sizeof(header))
			return;
		/* The length is checked against the cap before anything is allocated. */
		switch (frame_peek(header, evbuffer_get_length(in), FRAME_MAX, &len)) {
		case FRAME_NEED_MORE:
			return;
		case FRAME_TOO_BIG:
			if (conn->peer != NULL)
				conn->peer->refused++;
			fed_conn_close(conn, "a frame over the 1 MiB cap");
			return;
		case FRAME_EMPTY:
			if (conn->peer != NULL)
				conn->peer->refused++;
			fed_conn_close(conn, "an empty frame");
			return;
		case FRAME_OK:
			break;
		}
		evbuffer_drain(in, FRAME_HEADER);
		conn->fed->frames_received++;
		uint8_t *buf = xmalloc(len);
		evbuffer_remove(in, buf, len);
		fed_session_message(conn, buf, len);
		free(buf);
		if (conn->closing)
			return;
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct fed_conn *conn = arg;

	if (conn->peer != NULL && conn->peer->sent > 0 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		failpoint("send_after"); /* what was written has gone to the socket */
	if (conn->peer != NULL && conn->peer->session == conn)
		conn->fed->up->writable(conn->peer);
}

/* TLS is up: who is it? */
static void on_connected(struct fed_conn *conn)
{
	char id[64];
	struct fed_peer *peer;

	if (fed_tls_peer_id(bufferevent_openssl_get_ssl(conn->bev), id, sizeof(id)) == -1) {
		fed_conn_close(conn, "its certificate names no bank");
		return;
	}
	if (conn->outbound) {
		if (strcmp(id, conn->peer->id) != 0) {
			char why[160];
			snprintf(why, sizeof(why), "its certificate names %s, not %s", id,
			         conn->peer->id);
			fed_conn_close(conn, why);
			return;
		}
	} else {
		/* Before the state is read, the register's peers are not yet known. */
		if (!conn->fed->loaded) {
			fed_conn_close(conn, "not ready: the channel state is still being read");
			return;
		}
		peer = fed_peer_find(conn->fed, id);
		if (peer == NULL || peer->state == PEER_REMOVED) {
			char why[160];
			snprintf(why, sizeof(why), "its certificate names %s, which is %s", id,
			         peer == NULL ? "not a peer"
			                      : "no longer in the network's register");
			fed_conn_close(conn, why);
			return;
		}
		conn->peer = peer;
		if (peer->penalty_until > time(NULL)) {
			fed_conn_close(conn, "it misbehaved recently; refused for now");
			return;
		}
	}
	/* The register may name the one certificate a bank of it shows. */
	if (conn->peer->cert_sha256[0] != '\0') {
		X509 *cert = SSL_get0_peer_certificate(bufferevent_openssl_get_ssl(conn->bev));
		char hex[65];
		if (cert == NULL || fed_tls_cert_sha256(cert, hex) == -1 ||
		    strcmp(hex, conn->peer->cert_sha256) != 0) {
			fed_conn_close(conn,
			               "its certificate is not the one the network's register "
			               "names");
			return;
		}
	}
	/* A second connection to a peer already in session changes nothing yet. */
	if (conn->peer->session == NULL)
		change_state(conn->peer, PEER_HELLO, NULL);
	if (conn->fed->previous_key != NULL)
		announce_key(conn);
	send_hello(conn);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct fed_conn *conn = arg;
	char why[300];

	if (what & BEV_EVENT_CONNECTED) {
		on_connected(conn);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "silent for %d seconds", FED_IDLE_SECONDS);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the other side");
	else
		fed_tls_error(bev, why, sizeof(why));
	fed_conn_close(conn, why);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct fed_conn *conn = arg;
	char why[80];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "TLS and hello not done in %d seconds",
	         conn->fed->handshake_timeout);
	fed_conn_close(conn, why);
}

/* TLS and hello must be done in handshake_timeout from now, however the
 * bytes come: the read timeout alone is reset by every one. */
static void arm_deadline(struct fed_conn *conn)
{
	struct timeval tv = {conn->fed->handshake_timeout, 0};

	if (conn->deadline == NULL)
		conn->deadline = evtimer_new(conn->fed->base, on_deadline, conn);
	evtimer_add(conn->deadline, &tv);
}

static struct fed_conn *conn_new(struct fed *fed, struct bufferevent *bev, int outbound)
{
	struct fed_conn *conn = xcalloc(1, sizeof(*conn));
	struct timeval idle = {FED_IDLE_SECONDS, 0};

	conn->fed = fed;
	conn->ticket = -1;
	conn->bev = bev;
	conn->outbound = outbound;
	/* A peer closing a surplus session need not say goodbye in TLS. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	LIST_INSERT_HEAD(&fed->conns, conn, next);
	bufferevent_setcb(bev, on_read, on_write, on_event, conn);
	bufferevent_set_timeouts(bev, &idle, NULL);
	/* Pump more of the outbox once what was written has mostly gone. */
	bufferevent_setwatermark(bev, EV_WRITE, 256 * 1024, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm_deadline(conn);
	return conn;
}

/* TCP is up (or failed): start TLS on the connected socket. */
static void on_tcp_event(struct bufferevent *plain, short what, void *arg)
{
	struct fed_conn *conn = arg;
	struct timeval idle = {FED_IDLE_SECONDS, 0};
	evutil_socket_t fd;
	char why[300];

	if (!(what & BEV_EVENT_CONNECTED)) {
		if (what & BEV_EVENT_TIMEOUT)
			snprintf(why, sizeof(why), "no answer to connect");
		else
			snprintf(why, sizeof(why), "%s",
			         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		fed_conn_close(conn, why);
		return;
	}
	fd = bufferevent_getfd(plain);
	bufferevent_set_timeouts(plain, NULL, NULL);
	bufferevent_setcb(plain, NULL, NULL, NULL, NULL);
	bufferevent_free(plain); /* not the socket: it was not given to plain */
	conn->tcp_only = 0;
	conn->bev = bufferevent_openssl_socket_new(conn->fed->base, fd, SSL_new(conn->fed->ctx),
	                                           BUFFEREVENT_SSL_CONNECTING,
	                                           BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	bufferevent_setcb(conn->bev, on_read, on_write, on_event, conn);
	bufferevent_set_timeouts(conn->bev, &idle, NULL);
	bufferevent_setwatermark(conn->bev, EV_WRITE, 256 * 1024, 0);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	arm_deadline(conn);
	if (conn->peer->session == NULL)
		change_state(conn->peer, PEER_TLS, NULL);
}

void fed_peer_dial(struct fed_peer *peer)
{
	struct fed *fed = peer->fed;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];
	struct bufferevent *plain;
	struct fed_conn *conn;

	if (peer->session != NULL || peer->dialing != NULL || !fed->loaded ||
	    peer->state == PEER_REMOVED)
		return;
	snprintf(addr, sizeof(addr), "%s:%d", peer->host, peer->port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(peer->last_error, sizeof(peer->last_error),
		         "address %.200s is not an IP address and port", addr);
		schedule_dial(peer);
		return;
	}
	/* TCP first, so a peer that is down reads as such, not as a TLS failure. */
	plain = bufferevent_socket_new(fed->base, -1, BEV_OPT_DEFER_CALLBACKS);
	conn = xcalloc(1, sizeof(*conn));
	conn->fed = fed;
	conn->bev = plain;
	conn->outbound = 1;
	conn->tcp_only = 1;
	conn->ticket = -1;
	conn->peer = peer;
	snprintf(conn->addr, sizeof(conn->addr), "%.63s", addr);
	LIST_INSERT_HEAD(&fed->conns, conn, next);
	peer->dialing = conn;
	bufferevent_setcb(plain, NULL, NULL, on_tcp_event, conn);
	/* A connect nobody answers gives up after this (the write timeout). */
	struct timeval connect_limit = {10, 0};
	bufferevent_set_timeouts(plain, &connect_limit, &connect_limit);
	change_state(peer, PEER_CONNECTING, NULL);
	if (bufferevent_socket_connect(plain, (struct sockaddr *)&ss, sslen) == -1)
		fed_conn_close(conn, "cannot connect");
}

void fed_session_accept(evutil_socket_t fd, int ticket, const char *addr, void *arg)
{
	struct fed *fed = arg;
	SSL *ssl = SSL_new(fed->ctx);
	struct bufferevent *bev =
	    bufferevent_openssl_socket_new(fed->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	struct fed_conn *conn = conn_new(fed, bev, 0);

	conn->ticket = ticket;
	snprintf(conn->addr, sizeof(conn->addr), "%s", addr);
}

/* Called by fed_chan once the channel state is read. */
void fed_start_dialing(struct fed *fed)
{
	for (int i = 0; i < fed->npeers; i++)
		fed_peer_dial(fed->peers[i]);
}

void fed_peer_remove(struct fed_peer *peer, const char *why)
{
	struct fed_conn *conn;

	if (peer->state == PEER_REMOVED)
		return;
	change_state(peer, PEER_REMOVED, why);
	snprintf(peer->last_error, sizeof(peer->last_error), "%.250s", why);
	evtimer_del(peer->timer);
	LIST_FOREACH(conn, &peer->fed->conns, next)
	if (conn->peer == peer)
		fed_conn_close(conn, why);
}

void fed_peer_restore(struct fed_peer *peer)
{
	if (peer->state != PEER_REMOVED)
		return;
	peer->backoff_ms = BACKOFF_MIN_MS;
	peer->last_error[0] = '\0';
	change_state(peer, PEER_IDLE, "in the network's register again");
	fed_peer_dial(peer);
}

struct fed_peer *fed_peer_new(struct fed *fed, const char *id, const char *kind, const char *host,
                              int port)
{
	struct fed_peer *peer = xcalloc(1, sizeof(*peer));

	fed->peers = xrealloc(fed->peers, (size_t)(fed->npeers + 1) * sizeof(*fed->peers));
	fed->peers[fed->npeers++] = peer;
	peer->fed = fed;
	peer->id = xstrdup(id);
	peer->host = xstrdup(host);
	peer->port = port;
	peer->kind = xstrdup(kind);
	peer->timer = evtimer_new(fed->base, fed_peer_dial_due, peer);
	peer->backoff_ms = BACKOFF_MIN_MS;
	peer->since = time(NULL);
	return peer;
}
