/* timebankd: one time bank's daemon. Options, config, signals, start-up and
 * wiring; the work is done by the modules in src/. */
#include "api.h"
#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "fed.h"
#include "hours.h"
#include "log.h"
#include "mem.h"
#include "pgm.h"
#include "schema.h"

#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_WAIT_SECONDS 30

struct daemon {
	const char *config_path;
	struct config *cfg;
	struct event_base *base;
	struct pgm *pgm;
	struct db *db;
	struct fed *fed;
	struct api *api;
	struct event *register_tick; /* at the national body: its refresh, hourly */
	int stopping;
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: timebankd -c FILE          run the bank\n"
	        "       timebankd -n -c FILE       check the config and exit\n"
	        "       timebankd -c FILE -T NAME [-R ROLE]\n"
	        "                                  make an API token (coordinator, broker or\n"
	        "                                  viewer; default coordinator), print it once\n"
	        "       timebankd --restore [--to TIME] -c FILE\n"
	        "                                  put the managed cluster back from its backups,\n"
	        "                                  to the newest point archived or to TIME (UTC,\n"
	        "                                  2026-12-04 09:30:00); the bank must be stopped\n"
	        "       timebankd --restored -c FILE\n"
	        "                                  say that the database was put back from a\n"
	        "                                  backup by other means: the next start catches\n"
	        "                                  up with the peers as after --restore\n"
	        "       timebankd --check-backup DIR\n"
	        "                                  whether DIR ([backup] dir) can be restored\n");
}

static struct api_limits limits_of(const struct config *cfg)
{
	struct api_limits l = {
	    .default_floor = cfg->default_floor,
	    .community_floor = cfg->community_floor,
	    .max_exchange = cfg->max_exchange,
	    .max_body = cfg->max_body,
	    .active_days = cfg->active_days,
	    .max_conns = cfg->admin_conns,
	    .max_conns_per_source = cfg->admin_conns_per_source,
	    .dir_review = cfg->dir_review,
	    .suppress_below = cfg->suppress_below,
	    .round_to = cfg->round_to,
	    .observer = cfg->fed_role != NULL && strcmp(cfg->fed_role, "observer") == 0,
	    .session_idle = cfg->session_idle_minutes * 60,
	    .session_max = cfg->session_hours * 3600,
	    .behind_proxy = cfg->admin_behind_proxy,
	};
	return l;
}

/* What peers may make this bank keep (fed_limits), as the config says,
 * with its id, role and disclosure rule for the activity reports: JSON
 * text, freed by the caller. */
static char *limits_text(const struct config *cfg)
{
	json_t *j =
	    json_pack("{si si si si ss ss? si si}", "max_open_claims", cfg->fed_max_open_claims,
	              "max_open_contacts", cfg->fed_max_open_contacts, "max_directory_items",
	              cfg->fed_max_directory_items, "inbox_keep_days", cfg->fed_inbox_keep_days,
	              "bank_id", cfg->bank_id, "role", cfg->fed_role, "suppress_below",
	              cfg->suppress_below, "round_to", cfg->round_to);
	json_t *with = cfg->exchange_with != NULL ? json_array() : json_null();
	json_t *own = json_object();
	char *text;

	/* Whom hours are exchanged with (null: every peer), and the exposure
	 * limits of the register's peers. */
	for (int i = 0; i < cfg->nexchange_with; i++)
		json_array_append_new(with, json_string(cfg->exchange_with[i]));
	for (int i = 0; i < cfg->npeers; i++)
		if (cfg->peers[i].limit_only)
			json_object_set_new(own, cfg->peers[i].id,
			                    json_integer(cfg->peers[i].exposure_limit));
	json_object_set_new(j, "exchange_with", with);
	json_object_set_new(j, "register_exposure_limit", json_integer(cfg->fed_exposure_limit));
	json_object_set_new(j, "register_limits", own);
	json_object_set_new(j, "referral_accept_negative",
	                    json_boolean(cfg->referral_accept_negative));
	json_object_set_new(j, "referral_expire_days", json_integer(cfg->referral_expire_days));
	json_object_set_new(j, "intake_overdue_days", json_integer(cfg->intake_overdue_days));
	json_t *required = json_array();
	for (int i = 0; i < cfg->ncheck_required; i++)
		json_array_append_new(required, json_string(cfg->check_required[i]));
	json_object_set_new(j, "check_required", required);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

/* Every configured peer has its channel row (and, for a bank, its clearing
 * account with the exposure limit as its floor) before anything can queue
 * to it; then the rules read the config's part they need (fed_limits),
 * which a bank with no federation has too. */
static int register_peers(PGconn *c, const struct config *cfg)
{
	char ids[CONFIG_MAX_PEERS * 34 + 3], kinds[CONFIG_MAX_PEERS * 10 + 3];
	char limits[CONFIG_MAX_PEERS * 22 + 3];
	const char *params[3] = {ids, kinds, limits};
	size_t n = 0, k = 0, l = 0;
	PGresult *r;
	int ok;

	ids[n++] = kinds[k++] = limits[l++] = '{';
	for (int i = 0, first = 1; i < cfg->npeers; i++) {
		const char *sep = first ? "" : ",";
		if (cfg->peers[i].limit_only)
			continue; /* a bank of the register: tb_register_peers */
		first = 0;
		n += (size_t)snprintf(ids + n, sizeof(ids) - n, "%s%s", sep, cfg->peers[i].id);
		k +=
		    (size_t)snprintf(kinds + k, sizeof(kinds) - k, "%s%s", sep, cfg->peers[i].kind);
		l += (size_t)snprintf(limits + l, sizeof(limits) - l, "%s%lld", sep,
		                      (long long)cfg->peers[i].exposure_limit);
	}
	snprintf(ids + n, sizeof(ids) - n, "}");
	snprintf(kinds + k, sizeof(kinds) - k, "}");
	snprintf(limits + l, sizeof(limits) - l, "}");
	r = cfg->fed_enabled ? PQexecParams(c,
	                                    "SELECT tb_fed_peers($1::text[], $2::text[], "
	                                    "$3::bigint[])",
	                                    3, NULL, params, NULL, NULL, 0)
	                     : PQexec(c, "SELECT 1");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (ok) {
		char *lim = limits_text(cfg);
		const char *lp[1] = {lim};
		PQclear(r);
		r = PQexecParams(c, "SELECT tb_fed_limits_set($1::jsonb)", 1, NULL, lp, NULL, NULL,
		                 0);
		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		free(lim);
	}
	if (!ok)
		log_error("cannot register the peers: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Every answer waits for the commit behind it to be on disk, which holds
 * only while PostgreSQL's own settings keep that promise: say so when they
 * do not (test and benchmark clusters may turn fsync off on purpose). */
static void warn_if_not_durable(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT current_setting('fsync'), "
	                        "current_setting('synchronous_commit')");

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		if (strcmp(PQgetvalue(r, 0, 0), "off") == 0)
			log_warn(
			    "the database runs with fsync off: a crash of its machine can lose "
			    "exchanges already answered");
		if (strcmp(PQgetvalue(r, 0, 1), "off") == 0)
			log_warn(
			    "the database commits with synchronous_commit off: a crash can lose "
			    "members, claims and other changes already answered (set it on for "
			    "the daemon's role: ALTER ROLE ... SET synchronous_commit = on)");
	}
	PQclear(r);
}

/* The first start after a restore records it (tb_restored): numbers given
 * from now on pass those the lost history gave, and every peer's stream is
 * held until its hello says whether we are behind it. 0 or -1. */
static int record_restore(PGconn *c, const struct config *cfg)
{
	char stamp[64], target[128];
	const char *params[2] = {stamp, target};
	PGresult *r;
	int ok;

	if (!pgm_restored(cfg, stamp, sizeof(stamp), target, sizeof(target)))
		return 0;
	if (target[0] == '\0')
		params[1] = NULL;
	r = PQexecParams(c, "SELECT tb_restored($1, $2)::text", 2, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (ok) {
		log_warn("restore %s recorded (%s): numbers given from now on pass any the lost "
		         "history gave, and each peer's stream is held until it says whether this "
		         "bank is behind it",
		         stamp, PQgetvalue(r, 0, 0));
		pgm_restored_done(cfg);
	} else {
		log_error("restore %s could not be recorded: %s", stamp, PQresultErrorMessage(r));
	}
	PQclear(r);
	return ok ? 0 : -1;
}

/* Start-up only: waits for the database, then brings its schema up to date
 * and registers the peers. A failure part way (the database restarting, or
 * a deadlock with what a killed predecessor left running) is tried again
 * until the deadline; a database newer than this binary stops the daemon. */
static void migrate(const char *conninfo, const struct config *cfg)
{
	time_t deadline = time(NULL) + CONNECT_WAIT_SECONDS;
	PGconn *c;

	for (;;) {
		int rc;

		c = PQconnectdb(conninfo);
		if (PQstatus(c) != CONNECTION_OK) {
			if (time(NULL) >= deadline)
				fatal("cannot connect to the database: %s", PQerrorMessage(c));
			PQfinish(c);
			sleep(1);
			continue;
		}
		rc = schema_migrate(c);
		if (rc == 0)
			rc = register_peers(c, cfg);
		if (rc == 0)
			rc = record_restore(c, cfg);
		if (rc == 0) {
			warn_if_not_durable(c);
			PQfinish(c);
			return;
		}
		if (rc == SCHEMA_REFUSED || time(NULL) >= deadline) {
			PQfinish(c);
			fatal("the database schema could not be brought up to date; not starting");
		}
		log_warn("schema: start-up did not complete; trying again");
		PQfinish(c);
		sleep(1);
	}
}

static void on_limits_set(void *arg, const struct db_result *r)
{
	(void)arg;
	if (r->status != DB_OK)
		log_error("reload: peers' limits were not stored: %s", db_result_why(r));
}

/* The national body's register is refreshed before it goes stale: looked
 * at soon after start, then hourly. */
static void on_register_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval hour = {3600, 0};

	(void)fd;
	(void)what;
	api_register_refresh(d->api);
	evtimer_add(d->register_tick, &hour);
}

static void on_drained(void *arg)
{
	struct daemon *d = arg;

	log_info("timebankd: all requests answered; stopping");
	event_base_loopexit(d->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (d->stopping) {
		log_warn("timebankd: second signal %d; stopping now", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("timebankd: signal %d: no new requests; finishing those in flight", (int)sig);
	api_drain(d->api, on_drained, d);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct config_problems probs;
	struct config *cfg;
	struct auth *auth;
	struct api_limits limits;
	char err[512], floor[32], max[32];

	(void)sig;
	(void)what;
	cfg = config_load(d->config_path, &probs);
	if (cfg == NULL) {
		for (int i = 0; i < probs.n; i++)
			log_error("reload: %s:%d: %s; keeping the running config", d->config_path,
			          probs.items[i].line, probs.items[i].msg);
		return;
	}
	auth = auth_load(cfg->token_file, err, sizeof(err));
	if (auth == NULL) {
		/* A token taken out of the file stays out, whatever else is wrong
		 * with it. */
		struct auth *kept = auth_still_listed(api_auth(d->api), cfg->token_file);
		log_error("reload: %s; keeping the limits, and of the running tokens the %d the "
		          "file still lists",
		          err, auth_count(kept));
		api_set_auth(d->api, kept);
		config_free(cfg);
		return;
	}
	if (strcmp(cfg->bank_id, d->cfg->bank_id) != 0 || strcmp(cfg->database, d->cfg->database) ||
	    strcmp(cfg->admin_host, d->cfg->admin_host) || cfg->admin_port != d->cfg->admin_port ||
	    cfg->db_pool != d->cfg->db_pool)
		log_warn("reload: bank id, database or listen address changed: restart to apply");
	limits = limits_of(cfg);
	api_reload(d->api, auth, cfg->token_file, &limits);
	if (d->fed != NULL)
		fed_set_max_exchange(d->fed, cfg->max_exchange);
	{
		char *lim = limits_text(cfg);
		const char *lp[1] = {lim};
		enum db_status st;
		if (db_query(d->db, "SELECT tb_fed_limits_set($1::jsonb)", 1, lp, on_limits_set,
		             NULL, &st) == -1)
			log_error(
			    "reload: the database is away; the rules' limits stay as they were");
		free(lim);
	}
	if (d->fed != NULL && cfg->fed_crl != NULL && fed_reload_crl(d->fed, cfg->fed_crl) == -1)
		log_error("reload: %s cannot be read; keeping the CRL in force", cfg->fed_crl);
	hours_format(cfg->default_floor, floor, sizeof(floor));
	hours_format(cfg->max_exchange, max, sizeof(max));
	log_info("reload: %d tokens, default floor %s, max exchange %s, max body %zu bytes, "
	         "directory review %s",
	         auth_count(auth), floor, max, cfg->max_body, cfg->dir_review ? "on" : "off");
	config_free(cfg);
}

static int make_token(const struct config *cfg, const char *name, const char *role_name)
{
	enum auth_role role = ROLE_COORDINATOR;
	char token[AUTH_TOKEN_LEN + 1], err[256];

	if (role_name != NULL && auth_role_parse(role_name, &role) == -1) {
		fprintf(stderr, "timebankd: role must be coordinator, broker or viewer\n");
		return 2;
	}
	if (role == ROLE_REFERRER) {
		fprintf(stderr, "timebankd: a referrer's token is for one organisation: make it "
		                "with tbctl token add NAME --role referrer --org NUMBER\n");
		return 2;
	}
	if (auth_add_token(cfg->token_file, name, role, 0, token, err, sizeof(err)) != AUTH_OK) {
		fprintf(stderr, "timebankd: %s\n", err);
		return 1;
	}
	printf("%s\n", token);
	fprintf(stderr, "timebankd: %s token '%s' added to %s; send SIGHUP to a running daemon\n",
	        auth_role_name(role), name, cfg->token_file);
	return 0;
}

static int check_only(const struct config *cfg, const char *path)
{
	char err[512];
	struct auth *auth = auth_load(cfg->token_file, err, sizeof(err));

	if (auth == NULL) {
		fprintf(stderr, "%s: tokens: %s\n", path, err);
		return 1;
	}
	auth_free(auth);
	printf("%s: ok (bank %s, %s database)\n", path, cfg->bank_id,
	       cfg->db_managed ? "managed" : "external");
	return 0;
}

/* The federation link as the API sees it (struct api_link). */
static void link_written(void *fed, int queued, int directory)
{
	if (queued)
		fed_kick(fed);
	if (directory)
		fed_dir_changed(fed);
}

static json_t *link_peers(void *fed, const json_t *db_state)
{
	return fed_peers_json(fed, db_state);
}

static void link_metrics(void *fed, struct evbuffer *out)
{
	fed_metrics(fed, out);
}

static int link_forget_key(void *fed, const char *peer, const char *key_id)
{
	return fed_forget_key(fed, peer, key_id);
}

static void link_register_published(void *arg, uint64_t serial)
{
	fed_reg_published(arg, serial);
}

static int run(struct daemon *d)
{
	struct event *ev_term, *ev_int, *ev_hup;
	struct api_limits limits = limits_of(d->cfg);
	char *conninfo = NULL, err[512];
	struct auth *auth;
	enum log_level level;

	if (log_level_parse(d->cfg->log_level, &level) == 0)
		log_set_level(level);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	auth = auth_load(d->cfg->token_file, err, sizeof(err));
	if (auth == NULL)
		fatal("tokens: %s", err);
	if (d->cfg->db_managed) {
		d->pgm = pgm_start(d->cfg, &conninfo);
		if (d->pgm == NULL)
			fatal("the managed database could not be started");
	} else {
		conninfo = xstrdup(d->cfg->database);
	}
	migrate(conninfo, d->cfg);

	d->base = event_base_new();
	d->db = db_new(d->base, conninfo, d->cfg->db_pool);
	free(conninfo);
	d->api = api_new(d->base, d->cfg->bank_id, d->cfg->bank_name, d->cfg->admin_host,
	                 d->cfg->admin_port, d->db, auth, d->cfg->token_file, &limits);
	if (d->api == NULL ||
	    (d->cfg->admin_tls_host != NULL &&
	     api_listen_tls(d->api, d->cfg->admin_tls_host, d->cfg->admin_tls_port,
	                    d->cfg->admin_tls_cert, d->cfg->admin_tls_key) == -1)) {
		api_free(d->api);
		db_free(d->db);
		pgm_stop(d->pgm);
		fatal("cannot start the admin API");
	}
	if (d->cfg->fed_enabled) {
		d->fed = fed_new(d->base, d->cfg, d->db);
		if (d->fed == NULL) {
			api_free(d->api);
			db_free(d->db);
			pgm_stop(d->pgm);
			fatal("cannot start the federation link");
		}
		api_set_link(d->api,
		             &(struct api_link){d->fed, link_written, link_peers, link_metrics,
		                                link_forget_key, link_register_published});
	}
	if (d->cfg->fed_register_signing_key != NULL) {
		struct crypto_key *key =
		    crypto_key_load(d->cfg->fed_register_signing_key, 1, err, sizeof(err));
		if (key == NULL) {
			fed_free(d->fed);
			api_free(d->api);
			db_free(d->db);
			pgm_stop(d->pgm);
			fatal("the register key %s: %s", d->cfg->fed_register_signing_key, err);
		}
		api_set_register(d->api, key, d->cfg->fed_crl);
		struct timeval soon = {5, 0};
		d->register_tick = evtimer_new(d->base, on_register_tick, d);
		evtimer_add(d->register_tick, &soon);
	}
	if (d->pgm != NULL) {
		pgm_supervise(d->pgm, d->base);
		api_set_pgm(d->api, d->pgm);
	}
	ev_term = evsignal_new(d->base, SIGTERM, on_stop, d);
	ev_int = evsignal_new(d->base, SIGINT, on_stop, d);
	ev_hup = evsignal_new(d->base, SIGHUP, on_reload, d);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	log_info("timebankd: bank %s (%s) running", d->cfg->bank_id, d->cfg->bank_name);

	event_base_dispatch(d->base);

	/* The link stops first, so database answers after this are ignored. */
	fed_stop(d->fed);
	api_free(d->api);
	db_free(d->db);
	fed_free(d->fed);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	if (d->register_tick != NULL)
		event_free(d->register_tick);
	pgm_stop(d->pgm);
	event_base_free(d->base);
	log_info("timebankd: stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = {0};
	struct config_problems probs;
	const char *token_name = NULL, *role = NULL;
	int check = 0, opt, rc;

	mem_install();
	static const struct option longs[] = {{"restore", no_argument, NULL, 'r'},
	                                      {"to", required_argument, NULL, 't'},
	                                      {"check-backup", required_argument, NULL, 'b'},
	                                      {"restored", no_argument, NULL, 'm'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	const char *restore_to = NULL, *backup_dir = NULL;
	int restore = 0, restored = 0;

	while ((opt = getopt_long(argc, argv, "c:nT:R:h", longs, NULL)) != -1) {
		switch (opt) {
		case 'r':
			restore = 1;
			break;
		case 'm':
			restored = 1;
			break;
		case 't':
			restore_to = optarg;
			break;
		case 'b':
			backup_dir = optarg;
			break;
		case 'c':
			d.config_path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'T':
			token_name = optarg;
			break;
		case 'R':
			role = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (backup_dir != NULL && d.config_path == NULL && optind == argc)
		return pgm_check_backup(backup_dir, stdout) == 0 ? 0 : 1;
	if (d.config_path == NULL || optind != argc || (restore_to != NULL && !restore) ||
	    (restored && restore)) {
		usage(stderr);
		return 2;
	}
	d.cfg = config_load(d.config_path, &probs);
	if (d.cfg == NULL) {
		config_problems_print(stderr, d.config_path, &probs);
		fprintf(stderr, "timebankd: %d problem%s in %s; not starting\n", probs.n,
		        probs.n == 1 ? "" : "s", d.config_path);
		return 1;
	}
	if (check)
		rc = check_only(d.cfg, d.config_path);
	else if (restore)
		rc = pgm_restore(d.cfg, restore_to) == 0 ? 0 : 1;
	else if (restored)
		rc = pgm_mark_restored(d.cfg, NULL) == 0 ? 0 : 1;
	else if (token_name != NULL)
		rc = make_token(d.cfg, token_name, role);
	else
		rc = run(&d);
	config_free(d.cfg);
	return rc;
}
