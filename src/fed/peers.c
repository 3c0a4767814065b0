/* The link's peers, whether the config names them or the network's
 * register lists them: made with every timer their session, channel and
 * directory use, and freed with the link. */
#include "internal.h"

#include "log.h"
#include "mem.h"

#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>

struct fed_peer *fed_peer_add(struct fed *fed, const char *id, const char *kind, const char *host,
                              int port)
{
	struct fed_peer *peer = fed_peer_new(fed, id, kind, host, port);

	peer->ack_timer = evtimer_new(fed->base, fed_chan_ack_due, peer);
	peer->apply_timer = evtimer_new(fed->base, fed_chan_apply_due, peer);
	peer->dir_timer = evtimer_new(fed->base, fed_dir_serve_due, peer);
	STAILQ_INIT(&peer->pending);
	snprintf(peer->checkpoint, sizeof(peer->checkpoint), "unknown");
	return peer;
}

int fed_peer_add_config(struct fed *fed, const struct config_peer *cp)
{
	struct fed_peer *peer = fed_peer_add(fed, cp->id, cp->kind, cp->host, cp->port);
	char err[300];

	peer->keys[0] = crypto_key_load(cp->signing_key, 0, err, sizeof(err));
	if (peer->keys[0] == NULL) {
		log_error("fed: peer %s: %s", cp->id, err);
		return -1;
	}
	peer->nkeys = 1;
	return 0;
}

void fed_peer_set_keys(struct fed_peer *peer, struct crypto_key **keys, const time_t *from,
                       const time_t *until, int n)
{
	for (int k = 0; k < peer->nkeys; k++)
		crypto_key_free(peer->keys[k]);
	for (int k = 0; k < n; k++) {
		peer->keys[k] = keys[k];
		peer->valid_from[k] = from[k];
		peer->learned_until[k] = until[k];
		peer->replaced_until[k] = 0;
	}
	peer->nkeys = n;
}

/* A peer a new CRL revokes goes now, not at its next connection. */
void fed_close_untrusted(struct fed *fed, const char *why)
{
	struct fed_conn *conn;

	LIST_FOREACH(conn, &fed->conns, next)
	{
		SSL *ssl = conn->tcp_only ? NULL : bufferevent_openssl_get_ssl(conn->bev);
		if (conn->closing || ssl == NULL || SSL_get0_peer_certificate(ssl) == NULL)
			continue;
		if (!fed_tls_still_trusted(fed->ctx, ssl))
			fed_conn_close(conn, why);
	}
}

void fed_peers_stop(struct fed *fed)
{
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = fed->peers[i];
		evtimer_del(peer->timer);
		evtimer_del(peer->ack_timer);
		evtimer_del(peer->apply_timer);
		evtimer_del(peer->dir_timer);
	}
}

void fed_peers_free(struct fed *fed)
{
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = fed->peers[i];
		for (int k = 0; k < peer->nkeys; k++)
			crypto_key_free(peer->keys[k]);
		if (peer->timer != NULL)
			event_free(peer->timer);
		if (peer->ack_timer != NULL)
			event_free(peer->ack_timer);
		if (peer->apply_timer != NULL)
			event_free(peer->apply_timer);
		if (peer->dir_timer != NULL)
			event_free(peer->dir_timer);
		fed_chan_pending_clear(peer);
		fed_dir_reset(peer);
		free(peer->id);
		free(peer->host);
		free(peer->kind);
		free(peer);
	}
	free(fed->peers);
	fed->peers = NULL;
	fed->npeers = 0;
}
