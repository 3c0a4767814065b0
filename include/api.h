/* api: the admin HTTP/JSON API (its HTTP/1.1 server: http.h). Bearer tokens with roles; errors
 * are {"error": {"code", "message"}} with a stable code; writes go to the
 * ledger as one SQL call each, so an error never leaves anything written. */
#ifndef TB_API_H
#define TB_API_H

#include "auth.h"
#include "db.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

struct api;

/* Limits that a reload may change. */
struct api_limits {
	int64_t default_floor;   /* minutes */
	int64_t community_floor; /* minutes */
	int64_t max_exchange;    /* minutes */
	size_t max_body;         /* bytes */
	int active_days;         /* reports: the window for "active" */
};

/* Listens on host:port. Takes ownership of auth (freed on failure too); db is
 * borrowed. NULL with the reason logged when it cannot listen. */
struct api *api_new(struct event_base *base, const char *bank_id, const char *bank_name,
                    const char *host, int port, struct db *db, struct auth *auth,
                    const char *token_file, const struct api_limits *limits);
struct fed;
/* Lets the API show the federation link (GET /v1/peers) and wake it. */
void api_set_fed(struct api *api, struct fed *fed);

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
