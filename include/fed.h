/* fed: the federation link. Mutual TLS 1.3 to every configured peer, a
 * session state machine per peer, and over it the durable exactly-once
 * channel whose state lives in the ledger database (src/sql/channel.sql).
 * Layer: fed (src/fed/); includes core and io headers; nothing of the API. */
#ifndef TB_FED_H
#define TB_FED_H

#include "config.h"
#include "db.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

struct fed;

/* Starts listening and dialing. Borrows db; copies what it needs of cfg.
 * NULL with the reason logged (start-up only). */
struct fed *fed_new(struct event_base *base, const struct config *cfg, struct db *db);
/* Stops the link: closes every session. Database answers that come later
 * are ignored. Call before freeing the db. */
void fed_stop(struct fed *fed);
void fed_free(struct fed *fed); /* accepts NULL */

/* New messages were queued: seal and send them now rather than at the next
 * tick. */
void fed_kick(struct fed *fed);

/* This bank's shared directory changed: tell the peers, who pull. */
void fed_dir_changed(struct fed *fed);

/* At the national body: the register was published as serial; every bank
 * linked hears of it, and asks. Accepts NULL. */
void fed_reg_published(struct fed *fed, uint64_t serial);

/* Each peer's link as tbctl peers shows it, merged with the channel's
 * counters from the database (tb_fed_state(), may be NULL). New reference. */
json_t *fed_peers_json(const struct fed *fed, const json_t *db_state);

/* Appends each peer's Prometheus metrics to out (an evbuffer). */
struct evbuffer;
void fed_metrics(const struct fed *fed, struct evbuffer *out);

/* Stops accepting a key learned from peer_id in a rotation (the pinned one
 * cannot be forgotten). 0, or -1 when there is no such learned key. */
int fed_forget_key(struct fed *fed, const char *peer_id, const char *key_id);
/* The most one exchange or claim from a peer may be (a reloaded config). */
void fed_set_max_exchange(struct fed *fed, int64_t minutes);
/* Re-reads the CRL (SIGHUP): new connections use it. 0 or -1. */
int fed_reload_crl(struct fed *fed, const char *crl_path) __attribute__((warn_unused_result));

#endif
