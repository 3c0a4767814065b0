/* api: the admin HTTP/JSON API (its HTTP/1.1 server: http.h). Bearer tokens with roles; errors
 * are {"error": {"code", "message"}} with a stable code; writes go to the
 * ledger as one SQL call each, so an error never leaves anything written.
 * Layer: api (src/api/); includes core and io headers; nothing of the federation. */
#ifndef TB_API_H
#define TB_API_H

#include "auth.h"
#include "db.h"

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct api;

/* Limits that a reload may change. */
struct api_limits {
	int64_t default_floor;    /* minutes */
	int64_t community_floor;  /* minutes */
	int64_t max_exchange;     /* minutes */
	size_t max_body;          /* bytes */
	int active_days;          /* reports: the window for "active" */
	int max_conns;            /* connections, in all and from one address; */
	int max_conns_per_source; /* read at start only */
	int dir_review;           /* shared items wait for a broker's approval */
	int suppress_below;       /* reports: counts of people under this are suppressed, */
	int round_to;             /* and the others rounded to a multiple of this */
	int observer;             /* the national body: /metrics shows the network */
	int session_idle;         /* seconds a console session may go unused */
	int session_max;          /* seconds a console session lasts at most */
	int behind_proxy;         /* a TLS reverse proxy in front: cookies are Secure, and
	                             a client's address is the proxy's X-Forwarded-For */
};

/* Listens on host:port. Takes ownership of auth (freed on failure too); db is
 * borrowed. NULL with the reason logged when it cannot listen. */
struct api *api_new(struct event_base *base, const char *bank_id, const char *bank_name,
                    const char *host, int port, struct db *db, struct auth *auth,
                    const char *token_file, const struct api_limits *limits);
struct evbuffer;
/* The federation link as the API knows it: what the daemon gives it
 * (daemon/main.c), so that the API calls nothing of the link's own. */
struct api_link {
	void *arg;
	/* A write committed that may have queued channel messages (queued)
	 * or changed the shared directory (directory). */
	void (*written)(void *arg, int queued, int directory);
	/* Each peer's link (GET /v1/peers), merged with the channel's state
	 * (tb_fed_state(), may be NULL). New reference. */
	json_t *(*peers)(void *arg, const json_t *db_state);
	/* Appends the link's Prometheus metrics. */
	void (*metrics)(void *arg, struct evbuffer *out);
	/* Stops accepting a peer's learned key: 0, or -1 when it has none. */
	int (*forget_key)(void *arg, const char *peer, const char *key_id);
	/* The national body published its register as serial: its banks hear. */
	void (*register_published)(void *arg, uint64_t serial);
};
/* Serves the API and the console over TLS on host:port too, with the
 * certificate chain and key in these PEM files: 0, or -1 with why logged. */
int api_listen_tls(struct api *api, const char *host, int port, const char *cert, const char *key);
/* The managed cluster, whose backups GET /v1/backup and /metrics show
 * (borrowed). Without it the API answers as a bank on an external database. */
struct pgm;
void api_set_pgm(struct api *api, const struct pgm *pgm);
/* Without it the API answers as a bank with no [federation]. */
void api_set_link(struct api *api, const struct api_link *link);
/* At the national body: the register key (taken) that signs the register,
 * and the CA's CRL file it carries. Without it the register routes answer
 * 409 no_register_key. */
struct crypto_key;
void api_set_register(struct api *api, struct crypto_key *key, const char *crl_path);
/* At the national body: publishes the last register again, as the next
 * serial with a new next update, when its next update is near (the daemon
 * calls it at start and hourly). Banks hear of it as of any publish. */
void api_register_refresh(struct api *api);
/* The tokens in force, and a new set that replaces them (owned). */
const struct auth *api_auth(const struct api *api);
void api_set_auth(struct api *api, struct auth *auth);

/* Closes the listener and every connection. Accepts NULL. */
void api_free(struct api *api);

/* Replaces the tokens (ownership taken) and limits; the token file the API
 * manages tokens in is from then on token_file. */
void api_reload(struct api *api, struct auth *auth, const char *token_file,
                const struct api_limits *limits);

/* Stops accepting connections, answers new requests 503 shutting_down, and
 * calls done(arg) once every request already started has been answered. */
void api_drain(struct api *api, void (*done)(void *), void *arg);

#endif
