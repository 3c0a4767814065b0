/* The federation link as the daemon sees it (fed.h): made from the config,
 * ticking, stopped and freed, shown and measured. It joins the layers
 * below: sessions (session.c), which hand up what they carry through the
 * table here; the channel (chan.c) and the directory (directory.c), which
 * call down into sessions and database calls (call.c). */
#include "internal.h"

#include "log.h"
#include "mem.h"
#include "req.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>

static void session_started(struct fed_peer *peer)
{
	fed_chan_session_started(peer);
	fed_dir_reset(peer);
	peer->dir_serving = 0;
	peer->dir_held = 0;
	fed_dir_pull(peer);
	fed_reg_ask(peer);
}

/* A verified message of an established session that is not the session's
 * own (hello, key rotation, ping): to the channel or the directory. */
static void received(struct fed_conn *conn, struct env_msg *msg, const uint8_t *raw, size_t len)
{
	const Timebank__V1__Body *body = msg->sp->body;
	struct fed_peer *peer = conn->peer;

	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_ACK:
		fed_chan_ack(peer, body->ack->sequence);
		break;
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_PULL:
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE:
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_NOTICE:
		fed_dir_received(peer, body);
		break;
	case TIMEBANK__V1__BODY__KIND_REGISTER_REQUEST:
	case TIMEBANK__V1__BODY__KIND_REGISTER_OFFER:
	case TIMEBANK__V1__BODY__KIND_REGISTER_NOTICE:
		fed_reg_received(peer, body);
		break;
	case TIMEBANK__V1__BODY__KIND_RECOVER_REQUEST:
		fed_recover_serve(peer, body->recover_request);
		break;
	case TIMEBANK__V1__BODY__KIND_RECOVER_PAGE:
		fed_recover_page(conn, body->recover_page);
		break;
	case TIMEBANK__V1__BODY__KIND_CHECKPOINT:
		fed_chan_checkpoint_check(
		    peer, body->checkpoint->sequence, body->checkpoint->chain_head.data,
		    body->checkpoint->chain_head.len, body->checkpoint->clearing_minutes,
		    body->checkpoint->applied != NULL ? &body->checkpoint->applied->sequence : NULL,
		    body->checkpoint->answer);
		break;
	default:
		if (env_is_channel(body))
			fed_chan_received(conn, msg, raw, len);
		break;
	}
}

static void writable(struct fed_peer *peer)
{
	fed_chan_pump(peer);
	fed_dir_writable(peer);
}

const struct fed_upcalls fed_upcalls = {
    .session_started = session_started,
    .session_ended = fed_chan_pending_clear,
    .key_learned = fed_chan_key_learned,
    .received = received,
    .writable = writable,
};

/* The CRL must be replaced before its nextUpdate, or every link fails at
 * once: warned of daily from 30 days ahead. */
static void check_crl(struct fed *fed, time_t now)
{
	long days = (long)((fed->crl_next_update - now) / 86400);

	if (fed->crl_next_update == 0 || fed->crl_next_update - now > 30 * 86400L ||
	    now - fed->crl_warned < 86400)
		return;
	fed->crl_warned = now;
	if (fed->crl_next_update <= now)
		log_error(
		    "fed: the CRL has EXPIRED: no peer's certificate verifies; ask the network "
		    "CA for a new one (tbpki crl) and reload");
	else
		log_warn(
		    "fed: the CRL expires in %ld days; ask the network CA for a new one (tbpki "
		    "crl) and reload before then, or every link fails",
		    days);
}

static void on_purged(void *arg, const struct db_result *r)
{
	(void)arg;
	if (r->status == DB_OK && strcmp(PQgetvalue(r->res, 0, 0), "0") != 0)
		log_info("fed: %s messages from peers older than their keeping time were deleted",
		         PQgetvalue(r->res, 0, 0));
	else if (r->status != DB_OK)
		log_warn("fed: old messages from peers could not be deleted: %s", db_result_why(r));
}

#define REPORTS_EVERY 3600 /* seconds between looks at the reports due */
#define REPORTS_RETRY 300  /* ...and after one that failed */

static void on_reports(void *arg, const struct db_result *r)
{
	struct fed *fed = arg;
	json_t *queued;

	if (fed->stopping)
		return;
	queued = r->status == DB_OK ? json_loads(PQgetvalue(r->res, 0, 0), 0, NULL) : NULL;
	if (queued != NULL && json_array_size(queued) > 0) {
		log_info("fed: %zu activity reports queued for the national body",
		         json_array_size(queued));
		fed_chan_seal(fed);
	} else if (r->status != DB_OK) {
		log_warn(
		    "fed: the activity reports could not be made: %s; trying again in 5 minutes",
		    db_result_why(r));
		fed->last_reports = time(NULL) - REPORTS_EVERY + REPORTS_RETRY;
	}
	json_decref(queued);
}

/* A bank linked to the national body sends it the reports due (at start,
 * then hourly: tb_reports_send decides which are). */
static void send_reports(struct fed *fed, time_t now)
{
	int observers = 0;

	if (strcmp(fed->role, "bank") != 0 || now - fed->last_reports < REPORTS_EVERY)
		return;
	for (int i = 0; i < fed->npeers; i++)
		observers += strcmp(fed->peers[i]->kind, "observer") == 0 &&
		             fed->peers[i]->state != PEER_REMOVED;
	if (observers == 0)
		return;
	fed->last_reports = now;
	if (fed_query(fed, "SELECT tb_reports_send()::text", 0, NULL, on_reports, fed) == -1)
		fed->last_reports = now - REPORTS_EVERY + REPORTS_RETRY; /* the database is away */
}

static void on_expired(void *arg, const struct db_result *r)
{
	struct fed *fed = arg;

	if (fed->stopping)
		return;
	if (r->status == DB_OK && strcmp(PQgetvalue(r->res, 0, 0), "0") != 0) {
		log_info("fed: %s referrals no coordinator decided in time expired and were erased",
		         PQgetvalue(r->res, 0, 0));
		fed_chan_seal(fed);
	} else if (r->status != DB_OK) {
		log_warn("fed: expired referrals could not be erased: %s", db_result_why(r));
	}
}

/* A bank's referrals left undecided past [referrals] expire_days expire,
 * erased, and the referring bank is told (tb_referrals_expire). */
static void expire_referrals(struct fed *fed)
{
	if (strcmp(fed->role, "bank") == 0 &&
	    fed_query(fed, "SELECT tb_referrals_expire()", 0, NULL, on_expired, fed) == -1)
		log_debug("fed: the database is away; referrals expire at the next tick");
}

/* What the link starts from: the register in force and its peers (where
 * there is a register key), then the channel's state, which dials. */
static void load_state(struct fed *fed)
{
	if (fed_reg_runs(fed) && !fed->register_loaded)
		fed_reg_load(fed);
	else
		fed_chan_load(fed);
}

/* A session with nothing else to say says this, so that the peer hears it
 * is alive within FED_IDLE_SECONDS. */
static void ping_if_quiet(struct fed_conn *conn, time_t now)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__Ping ping = TIMEBANK__V1__PING__INIT;

	if (now - conn->sent_at < FED_PING_SECONDS)
		return;
	body.kind_case = TIMEBANK__V1__BODY__KIND_PING;
	body.ping = &ping;
	fed_conn_send(conn, &body);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fed *fed = arg;
	time_t now = time(NULL);
	int64_t now_ms = fed_now_ms();
	int round = now - fed->last_round >= FED_ROUND_SECONDS;

	(void)fd;
	(void)what;
	if (!fed->loaded) {
		load_state(fed);
		return;
	}
	if (now_ms - fed->seal_polled_ms >= FED_SEAL_POLL_MS) {
		fed->seal_polled_ms = now_ms;
		fed_chan_seal(fed);
	}
	check_crl(fed, now);
	send_reports(fed, now);
	fed_reg_tick(fed, now);
	if (round) {
		fed->last_round = now;
		expire_referrals(fed);
	}
	if (now - fed->last_purge >= 86400) {
		fed->last_purge = now;
		if (fed_query(fed, "SELECT tb_fed_inbox_purge()", 0, NULL, on_purged, NULL) == -1)
			fed->last_purge = 0; /* the database is away: again at the next tick */
	}
	for (int i = 0; i < fed->npeers; i++) {
		struct fed_peer *peer = fed->peers[i];
		if (peer->session == NULL)
			continue;
		if (round) {
			fed_chan_checkpoint_round(peer, now);
			fed_dir_poll(peer, now);
			ping_if_quiet(peer->session, now);
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

struct fed *fed_new(struct event_base *base, const struct config *cfg, struct db *db)
{
	struct fed *fed = xcalloc(1, sizeof(*fed));
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct timeval tick = {0, 200 * 1000};
	char addr[300], err[512];

	fed->base = base;
	fed->db = db;
	fed->up = &fed_upcalls;
	fed->bank_id = xstrdup(cfg->bank_id);
	fed->role = xstrdup(cfg->fed_role);
	LIST_INIT(&fed->conns);
	fed->ctx = fed_tls_ctx(cfg, err, sizeof(err));
	if (fed->ctx == NULL) {
		log_error("fed: TLS: %s", err);
		goto fail;
	}
	fed->crl_next_update = fed_tls_crl_next_update(cfg->fed_crl);
	fed->crl_this_update = fed_tls_crl_this_update(cfg->fed_crl);
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
	/* A bank holds the register key's public half; the national body its
	 * private key, which verifies as well as it signs. */
	if (cfg->fed_register_key != NULL || cfg->fed_register_signing_key != NULL) {
		fed->register_key =
		    cfg->fed_register_key != NULL
		        ? crypto_key_load(cfg->fed_register_key, 0, err, sizeof(err))
		        : crypto_key_load(cfg->fed_register_signing_key, 1, err, sizeof(err));
		if (fed->register_key == NULL) {
			log_error("fed: register key: %s", err);
			goto fail;
		}
	}
	for (int i = 0; i < cfg->npeers; i++)
		if (cfg->peers[i].host != NULL && fed_peer_add_config(fed, &cfg->peers[i]) == -1)
			goto fail;
	snprintf(addr, sizeof(addr), "%s:%d", cfg->fed_host, cfg->fed_port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == -1) {
		log_error("fed: listen address %s is not an IP address and port", addr);
		goto fail;
	}
	struct gate_limits caps = {cfg->fed_handshakes, cfg->fed_handshakes_per_source};
	fed->handshake_timeout = cfg->fed_handshake_timeout;
	fed->max_exchange = cfg->max_exchange;
	fed->gate =
	    gate_listen(base, (struct sockaddr *)&ss, sslen, "fed", caps, fed_session_accept, fed);
	if (fed->gate == NULL) {
		log_error("fed: cannot listen on %s", addr);
		goto fail;
	}
	db_on_lost(db, on_db_lost, fed);
	fed->tick = event_new(base, -1, EV_PERSIST, on_tick, fed);
	event_add(fed->tick, &tick);
	log_info("fed: %s %s listening on %s with %d peers in its config%s (signing key %s)",
	         fed->role, fed->bank_id, addr, fed->npeers,
	         fed->register_key != NULL ? " and those of the network's register" : "",
	         crypto_key_id(fed->sign_key));
	load_state(fed);
	return fed;
fail:
	fed_free(fed);
	return NULL;
}

void fed_set_max_exchange(struct fed *fed, int64_t minutes)
{
	fed->max_exchange = minutes;
}

int fed_reload_crl(struct fed *fed, const char *crl_path)
{
	time_t issued = fed_tls_crl_this_update(crl_path);

	/* The register's CRL may be newer than the file: the newer stays. */
	if (issued != 0 && issued < fed->crl_this_update) {
		log_info("fed: %s is older than the CRL in force (from the network's register); "
		         "keeping that",
		         crl_path);
		return 0;
	}
	if (fed_tls_reload_crl(fed->ctx, crl_path) == -1)
		return -1;
	fed->crl_next_update = fed_tls_crl_next_update(crl_path);
	fed->crl_this_update = issued;
	fed->crl_warned = 0;
	fed_close_untrusted(fed, "its certificate is revoked by the reloaded CRL");
	return 0;
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
	fed_peers_stop(fed);
}

void fed_free(struct fed *fed)
{
	struct fed_conn *conn;

	if (fed == NULL)
		return;
	/* Connections closed but not yet freed: the loop has stopped. */
	while ((conn = LIST_FIRST(&fed->conns)) != NULL)
		fed_conn_free(-1, 0, conn);
	fed_peers_free(fed);
	gate_free(fed->gate);
	if (fed->tick != NULL)
		event_free(fed->tick);
	crypto_key_free(fed->sign_key);
	crypto_key_free(fed->register_key);
	crypto_key_free(fed->previous_key);
	SSL_CTX_free(fed->ctx);
	free(fed->bank_id);
	free(fed->role);
	free(fed);
}

/* The peer's signing keys: the one the config pins and those learned in
 * rotations, or the register's, with when each is accepted (learned_until:
 * a learned key's end, or a register key's not_after). */
static json_t *keys_json(const struct fed_peer *peer)
{
	json_t *keys = json_array();
	time_t now = time(NULL);

	for (int k = 0; k < peer->nkeys; k++)
		json_array_append_new(
		    keys,
		    json_pack("{sssssosososb}", "key_id", crypto_key_id(peer->keys[k]), "source",
		              peer->from_register ? "register"
		              : k == 0            ? "config"
		                                  : "learned",
		              "replaced_until", req_time_json(peer->replaced_until[k]),
		              "learned_until", req_time_json(peer->learned_until[k]), "valid_from",
		              req_time_json(peer->valid_from[k]), "good",
		              fed_peer_key_good(peer, k, now)));
	return keys;
}

int fed_forget_key(struct fed *fed, const char *peer_id, const char *key_id)
{
	struct fed_peer *peer = fed_peer_find(fed, peer_id);

	if (peer == NULL || fed_peer_forget_key(peer, key_id) == -1)
		return -1;
	log_info("fed: peer %s: learned key %s forgotten", peer_id, key_id);
	return 0;
}

json_t *fed_peers_json(const struct fed *fed, const json_t *db_state)
{
	json_t *items = json_array();
	char since[32];
	struct tm tm;

	for (int i = 0; i < fed->npeers; i++) {
		const struct fed_peer *peer = fed->peers[i];
		json_t *row = NULL, *item;
		size_t j;
		gmtime_r(&peer->since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_foreach(
		    (json_t *)db_state, j,
		    item) if (strcmp(json_string_value(json_object_get(item, "peer")), peer->id) ==
		              0) row = item;
		item =
		    json_pack("{ss ss ss ss ss sI sI sI sI sI ss}", "peer", peer->id, "kind",
		              peer->kind, "state", fed_peer_state_name(peer->state), "since", since,
		              "last_error", peer->last_error, "sent", (json_int_t)peer->sent,
		              "received", (json_int_t)peer->received, "duplicates",
		              (json_int_t)peer->duplicates, "refused", (json_int_t)peer->refused,
		              "acked", (json_int_t)peer->acked, "checkpoint", peer->checkpoint);
		json_object_set_new(item, "address",
		                    peer->port != 0 ? json_sprintf("%s:%d", peer->host, peer->port)
		                                    : json_string(""));
		/* Whether the config names it, or the network's register lists it. */
		json_object_set_new(item, "source",
		                    json_string(peer->from_register ? "register" : "config"));
		json_object_set_new(item, "keys", keys_json(peer));
		if (row != NULL) {
			json_object_set(item, "applied", json_object_get(row, "applied"));
			json_object_set(item, "outbox_depth", json_object_get(row, "outbox_depth"));
			json_object_set(item, "diverged", json_object_get(row, "diverged"));
			json_object_set(item, "diverged_reason",
			                json_object_get(row, "diverged_reason"));
			json_object_set(item, "directory", json_object_get(row, "directory"));
			json_object_set(item, "sealed", json_object_get(row, "sealed"));
			json_object_set(item, "recovering", json_object_get(row, "recovering"));
			json_object_set(item, "recovery_lost",
			                json_object_get(row, "recovery_lost"));
		}
		if (peer->recover_warned && peer->recovering == RECOVER_HELD)
			json_object_set_new(
			    item, "recovery_blocked",
			    json_string("it runs an older timebankd, which cannot give "
			                "our messages back: upgrade it"));
		json_array_append_new(items, item);
	}
	char crl[32] = "";
	if (fed->crl_next_update != 0) {
		gmtime_r(&fed->crl_next_update, &tm);
		strftime(crl, sizeof(crl), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	/* ready: the channel's state is read, so peers are dialed and accepted;
	 * crl_expires: when the CRL in force must be replaced. */
	json_t *out =
	    json_pack("{sssssbsosssI}", "bank", fed->bank_id, "role", fed->role, "ready",
	              fed->loaded, "peers", items, "crl_expires", crl, "crl_expires_in_days",
	              (json_int_t)((fed->crl_next_update - time(NULL)) / 86400));
	/* The network's register held, at a bank that takes one. */
	if (fed->register_key != NULL)
		json_object_set_new(out, "register",
		                    json_pack("{sIsIsI}", "serial",
		                              (json_int_t)fed->register_serial, "next_update_unix",
		                              (json_int_t)fed->register_next_update, "refused",
		                              (json_int_t)fed->register_refused));
	return out;
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

	gate_metrics(fed->gate, out);
	fed_reg_metrics(fed, out);
	evbuffer_add_printf(out,
	                    "# HELP timebankd_fed_frames_sent_total Messages sent to peers: the "
	                    "channel's, and the sessions' own (hellos, pings, checkpoints, "
	                    "directory pulls and pages).\n"
	                    "# TYPE timebankd_fed_frames_sent_total counter\n"
	                    "timebankd_fed_frames_sent_total %llu\n"
	                    "# HELP timebankd_fed_frames_received_total Messages received from "
	                    "peers, of every kind.\n"
	                    "# TYPE timebankd_fed_frames_received_total counter\n"
	                    "timebankd_fed_frames_received_total %llu\n",
	                    fed->frames_sent, fed->frames_received);
	evbuffer_add_printf(out,
	                    "# HELP timebankd_crl_next_update_timestamp_seconds When the CRL in "
	                    "force must be replaced (its nextUpdate); warned of 30 days ahead.\n"
	                    "# TYPE timebankd_crl_next_update_timestamp_seconds gauge\n"
	                    "timebankd_crl_next_update_timestamp_seconds %lld\n",
	                    (long long)fed->crl_next_update);
	evbuffer_add_printf(out, "# HELP timebankd_peer_established 1 when the session is up.\n"
	                         "# TYPE timebankd_peer_established gauge\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(out, "timebankd_peer_established{peer=\"%s\"} %d\n",
		                    fed->peers[i]->id, fed->peers[i]->state == PEER_ESTABLISHED);
	evbuffer_add_printf(out, "# HELP timebankd_peer_connections Connections open with the "
	                         "peer, its session and any still in TLS or hello.\n"
	                         "# TYPE timebankd_peer_connections gauge\n");
	for (int i = 0; i < fed->npeers; i++) {
		const struct fed_conn *conn;
		int n = 0;
		LIST_FOREACH(conn, &fed->conns, next)
		n += conn->peer == fed->peers[i] && !conn->closing;
		evbuffer_add_printf(out, "timebankd_peer_connections{peer=\"%s\"} %d\n",
		                    fed->peers[i]->id, n);
	}
	evbuffer_add_printf(out, "# HELP timebankd_peer_pending_bytes Bytes held for the peer's "
	                         "messages waiting to be applied.\n"
	                         "# TYPE timebankd_peer_pending_bytes gauge\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(out, "timebankd_peer_pending_bytes{peer=\"%s\"} %zu\n",
		                    fed->peers[i]->id, fed->peers[i]->pending_bytes);
	evbuffer_add_printf(out,
	                    "# HELP timebankd_peer_diverged 1 when the peer's checkpoint "
	                    "disagrees with our books.\n# TYPE timebankd_peer_diverged gauge\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(out, "timebankd_peer_diverged{peer=\"%s\"} %d\n",
		                    fed->peers[i]->id,
		                    strcmp(fed->peers[i]->checkpoint, "diverged") == 0);
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		evbuffer_add_printf(out,
		                    "# HELP timebankd_peer_messages_%s_total %s\n"
		                    "# TYPE timebankd_peer_messages_%s_total counter\n",
		                    counters[c].name, counters[c].help, counters[c].name);
		for (int i = 0; i < fed->npeers; i++) {
			const unsigned long long *v =
			    (const void *)((const char *)fed->peers[i] + counters[c].offset);
			evbuffer_add_printf(out,
			                    "timebankd_peer_messages_%s_total{peer=\"%s\"} %llu\n",
			                    counters[c].name, fed->peers[i]->id, *v);
		}
	}
	evbuffer_add_printf(out, "# HELP timebankd_peer_directory_items_applied_total Directory "
	                         "items pulled from the peer and applied.\n"
	                         "# TYPE timebankd_peer_directory_items_applied_total counter\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(
		    out, "timebankd_peer_directory_items_applied_total{peer=\"%s\"} %llu\n",
		    fed->peers[i]->id, fed->peers[i]->dir_applied);
	evbuffer_add_printf(out, "# HELP timebankd_peer_directory_items_served_total Directory "
	                         "items of ours sent to the peer.\n"
	                         "# TYPE timebankd_peer_directory_items_served_total counter\n");
	for (int i = 0; i < fed->npeers; i++)
		evbuffer_add_printf(
		    out, "timebankd_peer_directory_items_served_total{peer=\"%s\"} %llu\n",
		    fed->peers[i]->id, fed->peers[i]->dir_served);
}
