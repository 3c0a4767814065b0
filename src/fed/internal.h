/* What the federation link's files share, and no other module sees. They
 * call downwards only:
 *   fed.c        the link as fed.h shows it; joins the layers below
 *   register.c   the network's register: taken, served, its banks as peers
 *   peers.c      peers made, whether of the config or the register
 *   chan.c       the exactly-once channel, its state in the database
 *   recover.c    a restored bank taking its own messages back from a peer
 *   directory.c  the shared directory's pulls and pages
 *   call.c       database calls about a peer's session
 *   session.c    connections and sessions; hands what they carry up
 *                through struct fed_upcalls, never by name
 *   tls.c        TLS contexts and certificate identity
 * May include the core and io headers, and fed.h; never the API's. */
#ifndef TB_FED_INTERNAL_H
#define TB_FED_INTERNAL_H

#include "crypto.h"
#include "db.h"
#include "envelope.h"
#include "fed.h"
#include "gate.h"

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#define FED_MAX_KEYS 4
#define FED_MAX_REFUSALS 5 /* refusals on one session before it is dropped */

/* A quiet link costs next to nothing per peer. Each peer's session is looked
 * at every FED_ROUND_SECONDS; it is pinged only after FED_PING_SECONDS with
 * nothing sent, and dead after FED_IDLE_SECONDS with nothing heard; a
 * checkpoint goes when a stream moved, or as a heartbeat; the peer's
 * directory is pulled on its notice, and polled as a safety net. */
#define FED_ROUND_SECONDS 10
#define FED_PING_SECONDS 120
#define FED_IDLE_SECONDS 300
#define FED_HEARTBEAT_SECONDS 300
#define FED_DIR_POLL_SECONDS 600
/* What this daemon queues it seals at once (fed_kick, and after each apply
 * that queued an answer); the outbox is read besides every
 * FED_SEAL_POLL_MS, for what another writer queued. */
#define FED_SEAL_POLL_MS 2000

enum peer_state {
	PEER_IDLE,
	PEER_CONNECTING, /* TCP to the peer */
	PEER_TLS,        /* the TLS handshake, both certificates checked */
	PEER_HELLO,      /* TLS up, hellos being exchanged */
	PEER_ESTABLISHED,
	PEER_BACKOFF, /* waiting before dialing again */
	PEER_REMOVED, /* no longer in the network's register: neither dialed nor accepted */
};

struct fed_peer;

/* A verified channel message waiting to be applied: what the ledger needs
 * of it, and nothing more (chan.c). */
struct fed_pending {
	uint64_t seq;
	uint8_t hash[CRYPTO_HASH_LEN];
	uint8_t prev[CRYPTO_HASH_LEN];
	size_t prev_len;
	uint8_t *envelope; /* the exact bytes, kept as proof; NULL when redacted */
	size_t envelope_len;
	size_t raw_len; /* the envelope's length as it came, kept or not */
	char *body;     /* the body as the ledger's JSON text */
	size_t cost;    /* bytes held for it, counted in the peer's budget */
	size_t items;
	STAILQ_ENTRY(fed_pending) next;
};

/* One TLS connection, dialed or accepted. */
struct fed_conn {
	struct fed *fed;
	struct bufferevent *bev;
	struct fed_peer *peer; /* known once TLS names it */
	int outbound;
	int tcp_only; /* dialing: TCP not yet up, bev is plain and owns no fd */
	int closing;  /* closed: freed when the loop comes round */
	int hello_received;
	uint64_t confirmed;  /* what the peer says it applied: its hello, then its acks */
	int serves_recovery; /* its hello offers RecoverRequest */
	int refusals;
	time_t sent_at;         /* the last message sent: a ping follows FED_PING_SECONDS of none */
	int ticket;             /* accepted: its place at the gate, until proven */
	struct event *deadline; /* TLS and hello must be done by then */
	char addr[64];
	LIST_ENTRY(fed_conn) next;
};

/* A peer: named in the config, or a bank of the network's register
 * (register.c). Never freed while the link runs: a bank removed from the
 * register stays, PEER_REMOVED, and is itself again if it is added back. */
struct fed_peer {
	struct fed *fed;
	char *id;
	char *host;
	int port;
	char *kind;
	int from_register;
	char cert_sha256[65]; /* its certificate, as the register names it; "" any */
	/* A peer of the config: keys[0] is pinned there; the others were
	 * announced in rotations. A key replaced by a newer one is good until
	 * its grace ends (replaced_until); a learned key is good for
	 * FED_LEARNED_KEY_DAYS after it was learned (learned_until), time for
	 * the operator to pin it; 0 is no end. Only a key not replaced may
	 * announce another. A peer of the register: its keys are the
	 * register's, each good from valid_from until learned_until. */
	struct crypto_key *keys[FED_MAX_KEYS];
	time_t replaced_until[FED_MAX_KEYS];
	time_t learned_until[FED_MAX_KEYS];
	time_t valid_from[FED_MAX_KEYS];
	int nkeys;

	enum peer_state state;
	time_t since;
	char last_error[256];
	struct fed_conn *session; /* the one established session */
	struct fed_conn *dialing; /* our outbound attempt, until established */
	struct event *timer;      /* the next dial */
	int backoff_ms;
	time_t penalty_until; /* misbehaved: refuse it until then */
	unsigned generation;  /* bumped per session, to spot stale answers */

	/* The channel (mirrors of fed_peers, kept by fed_chan.c). */
	uint64_t in_applied; /* what the database applied, as far as we know */
	uint64_t in_durable; /* ...and known durable: what the peer hears */
	uint64_t sealed;
	/* After a restore (recovery.sql, recover.c): RECOVER_HELD while we
	 * wait for its hello or take our messages back from it, when nothing
	 * from it is applied; RECOVER_AGREEING once they are held again, until
	 * its next checkpoint agrees. Nothing new is sealed for it meanwhile. */
	int recovering;
	int recover_asking; /* a RecoverRequest is out, for what follows recover_asked */
	uint64_t recover_asked;
	uint64_t recover_to; /* the last of ours it applied, as its hello said */
	int recover_serving; /* its asking for its own messages back, being answered */
	int recover_dropped; /* a message from it was not applied while held: it sends it again */
	int recover_warned;  /* told the log that it cannot serve recovery */
	uint64_t acked;
	uint64_t send_after;       /* sent to this session up to here */
	uint64_t ack_sent;         /* acknowledged to this session up to here */
	int64_t ack_ms;            /* when the last acknowledgement went */
	struct event *ack_timer;   /* the next one, when it waits (ACK_GAP_MS) */
	struct event *apply_timer; /* a lone message's wait for a run (APPLY_WAIT_MS) */
	int64_t recv_ms;           /* when the last message came */
	int close_behind;          /* ...less than APPLY_WAIT_MS after the one before */
	int pumping;
	int applying;
	int acking;
	STAILQ_HEAD(, fed_pending) pending; /* verified messages waiting to be applied */
	size_t npending;
	size_t pending_bytes; /* their cost: reading stops beyond FED_PENDING_BYTES */
	char checkpoint[16];
	/* What our last checkpoint to this session said (cp_at 0: none yet).
	 * The next goes when either stream moved, the peer asked for one, or
	 * FED_HEARTBEAT_SECONDS passed. */
	uint64_t cp_acked, cp_applied;
	time_t cp_at;
	int cp_wanted;
	int cp_sending; /* one read and on its way: no other is started meanwhile */

	/* The peer's directory (kept by fed_dir.c). */
	uint64_t dir_version; /* the peer's version we applied up to */
	int dir_pulling;      /* a pull asked, its page not come */
	uint64_t dir_asked;   /* the cursor our pull named: the page must answer it */
	int dir_again;        /* the peer changed again during a pull */
	time_t dir_pull_at;   /* the last pull started: the next poll is FED_DIR_POLL_SECONDS on */
	int dir_applying;     /* a page being applied, which moves the cursor to: */
	uint64_t dir_applying_next;
	struct fed_dir_page {
		char *text;    /* its JSON text; NULL: none */
		uint64_t next; /* its cursor */
		int more;      /* it said more follows */
	} dir_waiting;         /* the page after it, come meanwhile */
	/* Its pulls of ours: one served at a time, none while its output is
	 * backed up, at most DIR_SERVES_PER_SECOND; the latest waits. */
	int dir_serving;
	int dir_held;
	uint64_t dir_held_since;
	unsigned dir_held_limit;
	int64_t dir_served_ms;
	struct event *dir_timer;
	unsigned long long dir_applied, dir_served;

	int db_calls; /* its session messages' database calls waiting (call.c) */

	/* Counters for tbctl peers and metrics. */
	unsigned long long sent, received, duplicates, refused;
};

/* What sessions hand up (session.c calls these, fed.c sets them). */
struct fed_upcalls {
	void (*session_started)(struct fed_peer *peer);
	/* The established session closed: what it brought and is not yet
	 * applied is dropped (its peer sends it again). */
	void (*session_ended)(struct fed_peer *peer);
	void (*key_learned)(struct fed_peer *peer, const struct crypto_key *key,
	                    const char *replaces);
	/* A verified message of the session that is not the session's own. */
	void (*received)(struct fed_conn *conn, struct env_msg *msg, const uint8_t *raw,
	                 size_t len);
	/* The session's output has room again. */
	void (*writable)(struct fed_peer *peer);
};

/* What fed.c hands sessions (fed_new sets it; the channel's fuzz target
 * too). */
extern const struct fed_upcalls fed_upcalls;

struct fed {
	const struct fed_upcalls *up;
	struct event_base *base;
	struct db *db;
	char *bank_id;
	char *role;
	SSL_CTX *ctx;
	struct crypto_key *sign_key;
	struct crypto_key *previous_key; /* during a rotation: announces sign_key */
	struct gate *gate;               /* the federation port */
	int handshake_timeout;           /* seconds for TLS and hello */
	int64_t max_exchange;    /* [ledger] max_exchange: what a peer may ask us to record */
	struct fed_peer **peers; /* the config's, then the register's */
	int npeers;
	LIST_HEAD(, fed_conn) conns;
	struct event *tick; /* sealing, checkpoints, pings */
	int loaded;         /* channel state read from the database */
	unsigned epoch;     /* bumped when a database connection is lost */
	int stopping;       /* shutting down: database answers are ignored */
	int sealing;
	int reseal;             /* asked to seal while sealing: again once done */
	int64_t seal_polled_ms; /* the outbox last read by the tick (FED_SEAL_POLL_MS) */
	time_t last_round; /* of each peer's pings, checkpoints and polls (FED_ROUND_SECONDS) */
	/* Every message to and from peers, of the channel and of sessions. */
	unsigned long long frames_sent, frames_received;
	time_t last_purge;      /* of old messages from peers (tb_fed_inbox_purge) */
	time_t last_reports;    /* reports due to the national body queued (tb_reports_send) */
	time_t crl_next_update; /* when the CRL in force must be replaced; 0 unknown */
	time_t crl_warned;      /* the last warning that it soon must */
	/* The network's register (register.c), at a bank with a register key. */
	struct crypto_key *register_key;
	uint64_t register_serial;    /* the serial held */
	time_t register_next_update; /* when it is due to be replaced; 0 unknown */
	time_t register_warned;
	time_t last_register_ask;
	int register_loaded; /* the register in force is read from the database */
	int register_loading;
	unsigned register_wanted;  /* bumped by each register taken or published */
	unsigned register_applied; /* ...and the last our peers follow */
	time_t crl_this_update;    /* when the CRL in force was issued */
	unsigned long long register_refused;
};

/* tls.c */
SSL_CTX *fed_tls_ctx(const struct config *cfg, char *err, size_t errlen);
/* The bank id a connected peer's certificate names; 0 or -1. */
int fed_tls_peer_id(SSL *ssl, char *out, size_t len) __attribute__((warn_unused_result));
/* A fresh store for ctx: its CA certificates and the CRL at crl_path. 0, or
 * -1 with the store in force kept. */
int fed_tls_reload_crl(SSL_CTX *ctx, const char *crl_path) __attribute__((warn_unused_result));
/* When the CRL at path must be replaced (its nextUpdate); 0 unknown. */
time_t fed_tls_crl_next_update(const char *path);
/* Puts the CRL in PEM text (the register's) in force in ctx, if it is
 * signed by the network CA and issued no earlier than the one in force
 * (*this_update, updated). 1 put in force, 0 older, -1 not a CRL of the CA
 * (why in err). */
int fed_tls_use_crl(SSL_CTX *ctx, const uint8_t *pem, size_t len, time_t *this_update,
                    time_t *next_update, char *err, size_t errlen);
/* Whether the CRL in PEM text is the network CA's: 1, or 0 (why in err). */
int fed_tls_crl_ok(SSL_CTX *ctx, const uint8_t *pem, size_t len, char *err, size_t errlen);
/* When the CRL at path was issued (its lastUpdate); 0 unknown. */
time_t fed_tls_crl_this_update(const char *path);
/* Whether the peer's certificate on ssl still verifies against ctx's
 * store: after a CRL reload, a revoked peer's session is closed. */
int fed_tls_still_trusted(SSL_CTX *ctx, SSL *ssl);
/* The SHA-256 of cert's DER, as hex into hex (65 bytes). 0 or -1. */
int fed_tls_cert_sha256(X509 *cert, char *hex);
/* Why a TLS connection failed, for the log and tbctl peers. */
void fed_tls_error(struct bufferevent *bev, char *buf, size_t len);

/* session.c */
int64_t fed_now_ms(void);
const char *fed_peer_state_name(enum peer_state state);
/* A new peer, added to fed's, with its timers; no keys yet. */
struct fed_peer *fed_peer_new(struct fed *fed, const char *id, const char *kind, const char *host,
                              int port);
struct fed_peer *fed_peer_find(struct fed *fed, const char *id);
/* Dials every peer; called once the channel's state is read. */
void fed_start_dialing(struct fed *fed);
/* Dials one peer now, unless it has a session or a dial under way. */
void fed_peer_dial(struct fed_peer *peer);
/* Closes every connection of peer's and neither dials nor accepts it again
 * until fed_peer_restore. */
void fed_peer_remove(struct fed_peer *peer, const char *why);
void fed_peer_restore(struct fed_peer *peer);
void fed_peer_dial_due(evutil_socket_t fd, short what, void *arg);
/* The gate's callback: a connection to the federation port. */
void fed_session_accept(evutil_socket_t fd, int ticket, const char *addr, void *arg);
void fed_conn_close(struct fed_conn *conn, const char *why);
/* Frees a closed connection (fed_conn_close schedules it). */
void fed_conn_free(evutil_socket_t fd, short what, void *arg);
/* Seals and writes a session message (sequence 0) on conn. */
void fed_conn_send(struct fed_conn *conn, const Timebank__V1__Body *body);
/* Frames one envelope, already sealed, onto the connection. */
void fed_conn_write(struct fed_conn *conn, const uint8_t *env, size_t len);
void fed_conn_refuse(struct fed_conn *conn, const char *what);
/* One frame's envelope from conn's peer: verified, checked for its place
 * in the session, and handed up. */
void fed_session_message(struct fed_conn *conn, const uint8_t *buf, size_t len);
#define FED_KEY_GRACE_DAYS 7
#define FED_LEARNED_KEY_DAYS 90
/* Accepts a peer's new signing key, announced (signed) by replaces, which
 * stays good for grace_seconds; the new key is good for learned_seconds
 * unless the config pins it. 0, or -1 when replaces may not announce it
 * (unknown, replaced itself, or ended; replay: read back from the
 * database, when only its being held and not replaced counts). */
int fed_peer_add_key(struct fed_peer *peer, const uint8_t *raw, size_t len, const char *replaces,
                     long grace_seconds, long learned_seconds, int replay);
/* Whether key i of peer is good at now; and whether it may announce. */
int fed_peer_key_good(const struct fed_peer *peer, int i, time_t now);
/* Forgets a learned key (never the pinned one). 0, or -1 when there is none. */
int fed_peer_forget_key(struct fed_peer *peer, const char *key_id);

/* call.c: a database call about one peer's session; freed by its callback. */
struct fed_call {
	struct fed_peer *peer;
	unsigned generation;
	uint64_t seq;
	int shared; /* counted in the peer's share (db_calls) */
};
struct fed_call *fed_call_new(struct fed_peer *peer, uint64_t seq);
void fed_call_free(struct fed_call *c);
/* A peer's share of the database queue: what its session messages may
 * have waiting there at once (checkpoints, directory pulls and pages; the
 * channel's applies, acks and sends go one at a time and are not counted). */
#define FED_PEER_DB_SHARE 4
/* A call counted in that share, or NULL (logged) when it is full. */
struct fed_call *fed_call_shared(struct fed_peer *peer);
/* The same session as when the call was made, still up. */
int fed_call_current(const struct fed_call *c);
/* The JSON of a one-value answer, or NULL (logged). */
json_t *fed_db_answer(const struct db_result *r, const char *what, const char *peer);
int fed_query(struct fed *fed, const char *sql, int n, const char *const *params, db_cb cb,
              void *arg) __attribute__((warn_unused_result));

/* chan.c */
void fed_chan_load(struct fed *fed);
/* One peer's channel state, a row of tb_fed_state() (a peer added while
 * the link runs). */
void fed_chan_load_row(struct fed_peer *peer, const json_t *row);
void fed_chan_seal(struct fed *fed);
void fed_chan_pump(struct fed_peer *peer);
void fed_chan_received(struct fed_conn *conn, struct env_msg *msg, const uint8_t *raw,
                       size_t raw_len);
void fed_chan_ack(struct fed_peer *peer, uint64_t seq);
void fed_chan_ack_due(evutil_socket_t fd, short what, void *arg);
void fed_chan_apply_due(evutil_socket_t fd, short what, void *arg);
void fed_chan_checkpoint_send(struct fed_peer *peer);
/* Sends a checkpoint when one is due (see struct fed_peer). */
void fed_chan_checkpoint_round(struct fed_peer *peer, time_t now);
void fed_chan_checkpoint_check(struct fed_peer *peer, uint64_t seq, const uint8_t *head,
                               size_t head_len, int64_t clearing, const uint64_t *applied,
                               int answer);
void fed_chan_session_started(struct fed_peer *peer);
/* Drops what waits to be applied (the session it came on has gone). */
void fed_chan_pending_clear(struct fed_peer *peer);
void fed_chan_key_learned(struct fed_peer *peer, const struct crypto_key *key,
                          const char *replaces);

/* recover.c */
enum { RECOVER_NONE, RECOVER_HELD, RECOVER_AGREEING };
/* Asks the peer for our messages after the last we hold, unless asked. */
void fed_recover_ask(struct fed_peer *peer);
/* A peer asks for its own messages back, or answers our asking. */
void fed_recover_serve(struct fed_peer *peer, const Timebank__V1__RecoverRequest *req);
void fed_recover_page(struct fed_conn *conn, const Timebank__V1__RecoverPage *page);

/* directory.c */
/* Asks the peer for its directory changes since our cursor. */
void fed_dir_pull(struct fed_peer *peer);
/* Forgets the pull under way and any page waiting (a new session). */
void fed_dir_reset(struct fed_peer *peer);
/* The safety poll: a pull when none was made for FED_DIR_POLL_SECONDS, or
 * again when the one made had no answer in time. */
void fed_dir_poll(struct fed_peer *peer, time_t now);

/* peers.c */
/* A peer with every timer its session, channel and directory use. */
struct fed_peer *fed_peer_add(struct fed *fed, const char *id, const char *kind, const char *host,
                              int port);
/* A peer of the config, its key pinned. 0 or -1 (logged). */
int fed_peer_add_config(struct fed *fed, const struct config_peer *cp)
    __attribute__((warn_unused_result));
/* A register peer's keys replaced by keys[0..n) (taken over), each good
 * from from[k] until until[k] (0: no end). */
void fed_peer_set_keys(struct fed_peer *peer, struct crypto_key **keys, const time_t *from,
                       const time_t *until, int n);
/* Connections whose certificate the CA store in force no longer verifies
 * are closed (a CRL replaced). */
void fed_close_untrusted(struct fed *fed, const char *why);
void fed_peers_stop(struct fed *fed); /* every peer's timers */
void fed_peers_free(struct fed *fed);

/* register.c: the network's register, offered by the observer, taken by a
 * bank. */
void fed_reg_ask(struct fed_peer *peer);
void fed_reg_received(struct fed_peer *peer, const Timebank__V1__Body *body);
void fed_reg_tick(struct fed *fed, time_t now);
void fed_reg_metrics(const struct fed *fed, struct evbuffer *out);
/* At start: the register in force read and its peers made, then the
 * channel's state read (fed_chan_load). */
void fed_reg_load(struct fed *fed);
/* Whether the daemon runs the register's peers (it holds a register key). */
int fed_reg_runs(const struct fed *fed);
/* A directory pull, page or notice from the peer. */
void fed_dir_received(struct fed_peer *peer, const Timebank__V1__Body *body);
/* The peer's output has room again: a pull held for it may be served. */
void fed_dir_writable(struct fed_peer *peer);
void fed_dir_serve_due(evutil_socket_t fd, short what, void *arg);
#define FED_SEND_BUFFER (512 * 1024) /* output beyond this waits to drain */

#endif
