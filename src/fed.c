/* The federation link's connections and sessions: listening, dialing with
 * jittered capped backoff, TLS identity, hellos, keeping exactly one
 * session per peer, reading frames, refusing what is wrong. */
#include "fed_internal.h"

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
#define IDLE_SECONDS 30 /* a session silent this long is dead (pings every 10 s) */

static const char *const state_names[] = {"idle",  "connecting",  "tls",
                                          "hello", "established", "backing_off"};

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
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
		if (strcmp(fed->peers[i].id, id) == 0)
			return &fed->peers[i];
	return NULL;
}

static void peer_dial(struct fed_peer *peer);

static void on_dial_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_dial(arg);
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

static void conn_free(evutil_socket_t fd, short what, void *arg)
{
	struct fed_conn *conn = arg;

	(void)fd;
	(void)what;
	LIST_REMOVE(conn, next);
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

	if (conn->closing)
		return;
	conn->closing = 1;
	if (why != NULL)
		log_warn("fed: %s%s%s: closing: %s", conn->addr, peer ? " (" : "",
		         peer ? peer->id : "", why);
	if (why != NULL && peer != NULL)
		snprintf(peer->last_error, sizeof(peer->last_error), "%.250s", why);
	if (why != NULL && peer == NULL)
		log_info("fed: refused a connection from %s", conn->addr);
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
	event_base_once(conn->fed->base, -1, EV_TIMEOUT, conn_free, conn, &now);
	if (peer != NULL && (peer->session == conn || peer->dialing == conn)) {
		if (peer->session == conn) {
			peer->session = NULL;
			peer->generation++;
			json_array_clear(peer->pending);
		} else {
			peer->dialing = NULL;
		}
		/* Our own dial still under way will establish or fail by itself. */
		if (peer->session == NULL && peer->dialing == NULL && !peer->fed->stopping &&
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
	uint8_t *buf, hash[CRYPTO_HASH_LEN], header[FRAME_HEADER];
	size_t len;

	if (env_seal(fed->bank_id, conn->peer->id, 0, NULL, now_ms(), body, key, &buf, &len,
	             hash) == -1) {
		log_error("fed: cannot sign a message to %s", conn->peer->id);
		return;
	}
	frame_header((uint32_t)len, header);
	bufferevent_write(conn->bev, header, sizeof(header));
	bufferevent_write(conn->bev, buf, len);
	free(buf);
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

void fed_peer_add_key(struct fed_peer *peer, const uint8_t *raw, size_t len, const char *replaces,
                      long grace_seconds)
{
	struct crypto_key *key = crypto_key_from_raw(raw, len);

	if (key == NULL)
		return;
	for (int i = 0; i < peer->nkeys; i++) {
		/* The grace starts at the first announcement, not at every repeat. */
		if (strcmp(crypto_key_id(peer->keys[i]), replaces) == 0 &&
		    peer->key_expires[i] == 0)
			peer->key_expires[i] = time(NULL) + grace_seconds;
		if (strcmp(crypto_key_id(peer->keys[i]), crypto_key_id(key)) == 0) {
			crypto_key_free(key); /* known already */
			return;
		}
	}
	if (peer->nkeys == FED_MAX_KEYS) {
		log_warn("fed: peer %s announced more keys than are kept; ignored", peer->id);
		crypto_key_free(key);
		return;
	}
	peer->key_expires[peer->nkeys] = 0;
	peer->keys[peer->nkeys++] = key;
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
	fed_peer_add_key(peer, rot->new_public_key.data, rot->new_public_key.len, msg->key_id,
	                 FED_KEY_GRACE_DAYS * 86400L);
	if (peer->nkeys > before) {
		log_info("fed: peer %s announced a new signing key %s, signed by %s; both are "
		         "accepted for %d days",
		         peer->id, crypto_key_id(peer->keys[peer->nkeys - 1]), msg->key_id,
		         FED_KEY_GRACE_DAYS);
		fed_chan_key_learned(peer, peer->keys[peer->nkeys - 1], msg->key_id);
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
	peer->session = conn;
	peer->generation++;
	peer->backoff_ms = BACKOFF_MIN_MS;
	peer->last_error[0] = '\0';
	evtimer_del(peer->timer);
	peer->send_after = conn->confirmed;
	change_state(peer, PEER_ESTABLISHED, conn->outbound ? "we dialed" : "it dialed");
	fed_chan_session_started(peer);
	peer->dir_pulling = 0;
	fed_dir_pull(peer);
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
	establish(conn);
}

static void on_message(struct fed_conn *conn, const uint8_t *buf, size_t len)
{
	struct fed_peer *peer = conn->peer;
	struct crypto_key *keys[FED_MAX_KEYS];
	struct env_msg msg;
	time_t now = time(NULL);
	int nkeys = 0;

	/* A key replaced in a rotation is good until its grace period ends. */
	for (int i = 0; i < peer->nkeys; i++)
		if (peer->key_expires[i] == 0 || peer->key_expires[i] > now)
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
	} else if (peer->session != conn && body->kind_case != TIMEBANK__V1__BODY__KIND_HELLO) {
		/* A session being replaced: what it sends now is sent again. */
	} else {
		switch (body->kind_case) {
		case TIMEBANK__V1__BODY__KIND_HELLO:
			on_hello(conn, body->hello);
			break;
		case TIMEBANK__V1__BODY__KIND_ACK:
			fed_chan_ack(peer, body->ack->sequence);
			break;
		case TIMEBANK__V1__BODY__KIND_DIRECTORY_PULL:
		case TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE:
		case TIMEBANK__V1__BODY__KIND_DIRECTORY_NOTICE:
			fed_dir_received(peer, body);
			break;
		case TIMEBANK__V1__BODY__KIND_CHECKPOINT:
			fed_chan_checkpoint_check(
			    peer, body->checkpoint->sequence, body->checkpoint->chain_head.data,
			    body->checkpoint->chain_head.len, body->checkpoint->clearing_minutes);
			break;
		default:
			/* Pings keep the session alive; nothing else to do. */
			if (env_is_channel(body))
				fed_chan_received(conn, &msg, buf, len);
			break;
		}
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
		uint8_t *buf = xmalloc(len);
		evbuffer_remove(in, buf, len);
		on_message(conn, buf, len);
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
		fed_chan_pump(conn->peer);
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
		peer = fed_peer_find(conn->fed, id);
		if (peer == NULL) {
			char why[160];
			snprintf(why, sizeof(why), "its certificate names %s, which is not a peer",
			         id);
			fed_conn_close(conn, why);
			return;
		}
		conn->peer = peer;
		if (!conn->fed->loaded) {
			fed_conn_close(conn, "not ready: the channel state is still being read");
			return;
		}
		if (peer->penalty_until > time(NULL)) {
			fed_conn_close(conn, "it misbehaved recently; refused for now");
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
		snprintf(why, sizeof(why), "silent for %d seconds", IDLE_SECONDS);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the other side");
	else
		fed_tls_error(bev, why, sizeof(why));
	fed_conn_close(conn, why);
}

static struct fed_conn *conn_new(struct fed *fed, struct bufferevent *bev, int outbound)
{
	struct fed_conn *conn = xcalloc(1, sizeof(*conn));
	struct timeval idle = {IDLE_SECONDS, 0};

	conn->fed = fed;
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
	return conn;
}

/* TCP is up (or failed): start TLS on the connected socket. */
static void on_tcp_event(struct bufferevent *plain, short what, void *arg)
{
	struct fed_conn *conn = arg;
	struct timeval idle = {IDLE_SECONDS, 0};
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
	if (conn->peer->session == NULL)
		change_state(conn->peer, PEER_TLS, NULL);
}

static void peer_dial(struct fed_peer *peer)
{
	struct fed *fed = peer->fed;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];
	struct bufferevent *plain;
	struct fed_conn *conn;

	if (peer->session != NULL || peer->dialing != NULL || !fed->loaded)
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

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	struct fed *fed = arg;
	SSL *ssl = SSL_new(fed->ctx);
	struct bufferevent *bev =
	    bufferevent_openssl_socket_new(fed->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	struct fed_conn *conn = conn_new(fed, bev, 0);
	char host[INET6_ADDRSTRLEN] = "?";

	(void)l;
	(void)socklen;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	snprintf(conn->addr, sizeof(conn->addr), "%s:%d", host,
	         sa->sa_family == AF_INET ? ntohs(((struct sockaddr_in *)sa)->sin_port) : 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fed *fed = arg;
	time_t now = time(NULL);
	int checkpoints = now - fed->last_checkpoint >= 10;

	(void)fd;
	(void)what;
	if (!fed->loaded) {
		fed_chan_load(fed);
		return;
	}
	fed_chan_seal(fed);
	if (checkpoints)
		fed->last_checkpoint = now;
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = &fed->peers[i];
		if (peer->session == NULL)
			continue;
		if (checkpoints) {
			Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
			Timebank__V1__Ping ping = TIMEBANK__V1__PING__INIT;
			body.kind_case = TIMEBANK__V1__BODY__KIND_PING;
			body.ping = &ping;
			fed_conn_send(peer->session, &body);
			fed_chan_checkpoint_send(peer);
			fed_dir_pull(peer);
		}
		fed_chan_pump(peer);
	}
}

/* Sealing starts at once rather than at the loop's next turn, where it
 * waited behind every request and answer that turn had ready. */
void fed_kick(struct fed *fed)
{
	if (fed != NULL)
		fed_chan_seal(fed);
}

/* The server may have restarted, failed over or been put back to a backup
 * since the channel's state was read, so what memory says was applied,
 * sealed or acknowledged may be ahead of what the database holds. Every
 * session closes, and none starts again (no hello, no acknowledgement)
 * until that state has been read again. */
static void on_db_lost(void *arg)
{
	struct fed *fed = arg;
	struct fed_conn *conn;

	fed->epoch++; /* a read of the state under way is read again */
	if (fed->stopping || !fed->loaded)
		return;
	fed->loaded = 0;
	log_warn("fed: a database connection was lost; closing every session and reading the "
	         "channel's state again");
	LIST_FOREACH(conn, &fed->conns, next)
	fed_conn_close(conn, "the database connection was lost");
}

/* Called by fed_chan once the channel state is read. */
void fed_start_dialing(struct fed *fed)
{
	for (int i = 0; i < fed->npeers; i++)
		peer_dial(&fed->peers[i]);
}

static int load_peer(struct fed *fed, struct fed_peer *peer, const struct config_peer *cp)
{
	char err[300];

	peer->fed = fed;
	peer->id = xstrdup(cp->id);
	peer->host = xstrdup(cp->host);
	peer->port = cp->port;
	peer->kind = xstrdup(cp->kind);
	peer->keys[0] = crypto_key_load(cp->signing_key, 0, err, sizeof(err));
	if (peer->keys[0] == NULL) {
		log_error("fed: peer %s: %s", cp->id, err);
		return -1;
	}
	peer->nkeys = 1;
	peer->timer = evtimer_new(fed->base, on_dial_timer, peer);
	peer->ack_timer = evtimer_new(fed->base, fed_chan_ack_due, peer);
	peer->apply_timer = evtimer_new(fed->base, fed_chan_apply_due, peer);
	peer->backoff_ms = BACKOFF_MIN_MS;
	peer->pending = json_array();
	peer->since = time(NULL);
	snprintf(peer->checkpoint, sizeof(peer->checkpoint), "unknown");
	return 0;
}

struct fed *fed_new(struct event_base *base, const struct config *cfg, struct db *db)
{
	struct fed *fed = xcalloc(1, sizeof(*fed));
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct timeval tick = {0, 200 * 1000};
	char addr[300], err[512];

	fed->base = base;
	fed->db = db;
	fed->bank_id = xstrdup(cfg->bank_id);
	fed->role = xstrdup(cfg->fed_role);
	LIST_INIT(&fed->conns);
	fed->ctx = fed_tls_ctx(cfg, err, sizeof(err));
	if (fed->ctx == NULL) {
		log_error("fed: TLS: %s", err);
		goto fail;
	}
	fed->sign_key = crypto_key_load(cfg->fed_signing_key, 1, err, sizeof(err));
	if (fed->sign_key == NULL) {
		log_error("fed: signing key: %s", err);
		goto fail;
	}
	if (cfg->fed_previous_key != NULL) {
		fed->previous_key = crypto_key_load(cfg->fed_previous_key, 1, err, sizeof(err));
		if (fed->previous_key == NULL) {
			log_error("fed: previous signing key: %s", err);
			goto fail;
		}
		log_info("fed: rotating signing keys: announcing %s, signed by %s",
		         crypto_key_id(fed->sign_key), crypto_key_id(fed->previous_key));
	}
	for (int i = 0; i < cfg->npeers; i++) {
		fed->npeers++;
		if (load_peer(fed, &fed->peers[i], &cfg->peers[i]) == -1)
			goto fail;
	}
	snprintf(addr, sizeof(addr), "%s:%d", cfg->fed_host, cfg->fed_port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == -1) {
		log_error("fed: listen address %s is not an IP address and port", addr);
		goto fail;
	}
	fed->listener =
	    evconnlistener_new_bind(base, on_accept, fed, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	                            64, (struct sockaddr *)&ss, sslen);
	if (fed->listener == NULL) {
		log_error("fed: cannot listen on %s", addr);
		goto fail;
	}
	db_on_lost(db, on_db_lost, fed);
	fed->tick = event_new(base, -1, EV_PERSIST, on_tick, fed);
	event_add(fed->tick, &tick);
	log_info("fed: %s %s listening on %s with %d peers (signing key %s)", fed->role,
	         fed->bank_id, addr, fed->npeers, crypto_key_id(fed->sign_key));
	fed_chan_load(fed);
	return fed;
fail:
	fed_free(fed);
	return NULL;
}

void fed_stop(struct fed *fed)
{
	struct fed_conn *conn;

	if (fed == NULL)
		return;
	fed->stopping = 1;
	db_on_lost(fed->db, NULL, NULL);
	LIST_FOREACH(conn, &fed->conns, next)
	fed_conn_close(conn, NULL);
	for (int i = 0; i < fed->npeers; i++) {
		evtimer_del(fed->peers[i].timer);
		evtimer_del(fed->peers[i].ack_timer);
		evtimer_del(fed->peers[i].apply_timer);
	}
}

void fed_free(struct fed *fed)
{
	struct fed_conn *conn;

	if (fed == NULL)
		return;
	/* Connections closed but not yet freed: the loop has stopped. */
	while ((conn = LIST_FIRST(&fed->conns)) != NULL)
		conn_free(-1, 0, conn);
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = &fed->peers[i];
		for (int k = 0; k < peer->nkeys; k++)
			crypto_key_free(peer->keys[k]);
		if (peer->timer != NULL)
			event_free(peer->timer);
		if (peer->ack_timer != NULL)
			event_free(peer->ack_timer);
		if (peer->apply_timer != NULL)
			event_free(peer->apply_timer);
		json_decref(peer->pending);
		free(peer->id);
		free(peer->host);
		free(peer->kind);
	}
	if (fed->listener != NULL)
		evconnlistener_free(fed->listener);
	if (fed->tick != NULL)
		event_free(fed->tick);
	crypto_key_free(fed->sign_key);
	crypto_key_free(fed->previous_key);
	SSL_CTX_free(fed->ctx);
	free(fed->bank_id);
	free(fed->role);
	free(fed);
}

json_t *fed_peers_json(const struct fed *fed, const json_t *db_state)
{
	json_t *items = json_array();
	char since[32];
	struct tm tm;

	for (int i = 0; i < fed->npeers; i++) {
		const struct fed_peer *peer = &fed->peers[i];
		json_t *row = NULL, *item;
		size_t j;
		gmtime_r(&peer->since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_foreach(
		    (json_t *)db_state, j,
		    item) if (strcmp(json_string_value(json_object_get(item, "peer")), peer->id) ==
		              0) row = item;
		item = json_pack("{ss ss ss ss ss sI sI sI sI sI ss}", "peer", peer->id, "kind",
		                 peer->kind, "state", state_names[peer->state], "since", since,
		                 "last_error", peer->last_error, "sent", (json_int_t)peer->sent,
		                 "received", (json_int_t)peer->received, "duplicates",
		                 (json_int_t)peer->duplicates, "refused", (json_int_t)peer->refused,
		                 "acked", (json_int_t)peer->acked, "checkpoint", peer->checkpoint);
		json_object_set_new(item, "address", json_sprintf("%s:%d", peer->host, peer->port));
		if (row != NULL) {
			json_object_set(item, "applied", json_object_get(row, "applied"));
			json_object_set(item, "outbox_depth", json_object_get(row, "outbox_depth"));
			json_object_set(item, "diverged", json_object_get(row, "diverged"));
			json_object_set(item, "diverged_reason",
			                json_object_get(row, "diverged_reason"));
			json_object_set(item, "directory", json_object_get(row, "directory"));
		}
		json_array_append_new(items, item);
	}
	/* ready: the channel's state is read, so peers are dialed and accepted. */
	return json_pack("{sssssbso}", "bank", fed->bank_id, "role", fed->role, "ready",
	                 fed->loaded, "peers", items);
}

void fed_metrics(const struct fed *fed, struct evbuffer *out)
{
	static const struct {
		const char *name, *help;
		size_t offset;
	} counters[] = {
	    {"sent", "Channel messages sent to the peer.", offsetof(struct fed_peer, sent)},
	    {"received", "Channel messages received from the peer.",
	     offsetof(struct fed_peer, received)},
	    {"duplicates", "Messages received again and skipped.",
	     offsetof(struct fed_peer, duplicates)},
	    {"refused", "Messages and frames refused from the peer.",
	     offsetof(struct fed_peer, refused)},
	};

	evbuffer_add_printf(out, "# HELP timebankd_peer_established 1 when the session is up.\n"
	                         "# TYPE timebankd_peer_established gauge\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(out, "timebankd_peer_established{peer=\"%s\"} %d\n",
		                    fed->peers[i].id, fed->peers[i].state == PEER_ESTABLISHED);
	evbuffer_add_printf(out, "# HELP timebankd_peer_connections Connections open with the "
	                         "peer, its session and any still in TLS or hello.\n"
	                         "# TYPE timebankd_peer_connections gauge\n");
	for (int i = 0; i < fed->npeers; i++) {
		const struct fed_conn *conn;
		int n = 0;
		LIST_FOREACH(conn, &fed->conns, next)
			n += conn->peer == &fed->peers[i] && !conn->closing;
		evbuffer_add_printf(out, "timebankd_peer_connections{peer=\"%s\"} %d\n",
		                    fed->peers[i].id, n);
	}
	evbuffer_add_printf(out,
	                    "# HELP timebankd_peer_diverged 1 when the peer's checkpoint "
	                    "disagrees with our books.\n# TYPE timebankd_peer_diverged gauge\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(out, "timebankd_peer_diverged{peer=\"%s\"} %d\n",
		                    fed->peers[i].id,
		                    strcmp(fed->peers[i].checkpoint, "diverged") == 0);
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		evbuffer_add_printf(out,
		                    "# HELP timebankd_peer_messages_%s_total %s\n"
		                    "# TYPE timebankd_peer_messages_%s_total counter\n",
		                    counters[c].name, counters[c].help, counters[c].name);
		for (int i = 0; i < fed->npeers; i++) {
			const unsigned long long *v =
			    (const void *)((const char *)&fed->peers[i] + counters[c].offset);
			evbuffer_add_printf(out,
			                    "timebankd_peer_messages_%s_total{peer=\"%s\"} %llu\n",
			                    counters[c].name, fed->peers[i].id, *v);
		}
	}
	evbuffer_add_printf(out, "# HELP timebankd_peer_directory_items_applied_total Directory "
	                         "items pulled from the peer and applied.\n"
	                         "# TYPE timebankd_peer_directory_items_applied_total counter\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(
		    out, "timebankd_peer_directory_items_applied_total{peer=\"%s\"} %llu\n",
		    fed->peers[i].id, fed->peers[i].dir_applied);
	evbuffer_add_printf(out, "# HELP timebankd_peer_directory_items_served_total Directory "
	                         "items of ours sent to the peer.\n"
	                         "# TYPE timebankd_peer_directory_items_served_total counter\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(
		    out, "timebankd_peer_directory_items_served_total{peer=\"%s\"} %llu\n",
		    fed->peers[i].id, fed->peers[i].dir_served);
}
