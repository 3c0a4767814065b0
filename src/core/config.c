#include "config.h"

#include "hours.h"
#include "mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef PG_BINDIR
#define PG_BINDIR "/usr/lib/postgresql/15/bin"
#endif

enum key_type { KT_STR, KT_PATH, KT_BANK_ID, KT_INT, KT_HOURS, KT_LISTEN, KT_LEVEL, KT_BOOL };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	int required;
	int64_t min, max; /* KT_INT, KT_HOURS */
};

#define OFF(f) offsetof(struct config, f)

static const struct key keys[] = {
    {"bank", "id", KT_BANK_ID, OFF(bank_id), 1, 0, 0},
    {"bank", "name", KT_STR, OFF(bank_name), 1, 0, 0},
    {"bank", "data_dir", KT_PATH, OFF(data_dir), 0, 0, 0},
    {"bank", "log_level", KT_LEVEL, OFF(log_level), 0, 0, 0},
    {"database", "conninfo", KT_STR, OFF(database), 1, 0, 0},
    {"database", "pool", KT_INT, OFF(db_pool), 0, 1, 64},
    {"database", "pg_bindir", KT_PATH, OFF(pg_bindir), 0, 0, 0},
    {"database", "pg_user", KT_STR, OFF(pg_user), 0, 0, 0},
    {"admin", "listen", KT_LISTEN, 0, 1, 0, 0},
    {"admin", "tokens", KT_PATH, OFF(token_file), 1, 0, 0},
    {"admin", "max_body", KT_INT, OFF(max_body), 0, 1024, 16 * 1024 * 1024},
    {"admin", "max_connections", KT_INT, OFF(admin_conns), 0, 1, 65536},
    {"admin", "max_connections_per_source", KT_INT, OFF(admin_conns_per_source), 0, 1, 65536},
    {"admin", "session_idle_minutes", KT_INT, OFF(session_idle_minutes), 0, 1, 24 * 60},
    {"admin", "session_hours", KT_INT, OFF(session_hours), 0, 1, 7 * 24},
    {"admin", "behind_proxy", KT_BOOL, OFF(admin_behind_proxy), 0, 0, 0},
    {"admin", "tls_listen", KT_LISTEN, 0, 0, 0, 0},
    {"admin", "tls_cert", KT_PATH, OFF(admin_tls_cert), 0, 0, 0},
    {"admin", "tls_key", KT_PATH, OFF(admin_tls_key), 0, 0, 0},
    {"ledger", "default_floor", KT_HOURS, OFF(default_floor), 0, -HOURS_LIMIT_MINUTES, 0},
    {"ledger", "community_floor", KT_HOURS, OFF(community_floor), 0, -HOURS_LIMIT_MINUTES, 0},
    {"ledger", "max_exchange", KT_HOURS, OFF(max_exchange), 0, 1, 1000 * 60},
    {"reports", "active_days", KT_INT, OFF(active_days), 0, 1, 3660},
    {"reports", "suppress_below", KT_INT, OFF(suppress_below), 0, 1, 1000},
    {"reports", "round_to", KT_INT, OFF(round_to), 0, 1, 1000},
    {"directory", "review", KT_BOOL, OFF(dir_review), 0, 0, 0},
    {"referrals", "accept_negative", KT_BOOL, OFF(referral_accept_negative), 0, 0, 0},
    {"referrals", "expire_days", KT_INT, OFF(referral_expire_days), 0, 1, 365},
    {"intake", "overdue_days", KT_INT, OFF(intake_overdue_days), 0, 1, 365},
    {"safeguarding", "check_required", KT_STR, OFF(check_required_text), 0, 0, 0},
    {"backup", "dir", KT_PATH, OFF(backup_dir), 0, 0, 0},
    {"backup", "keep_days", KT_INT, OFF(backup_keep_days), 0, 1, 3660},
    {"backup", "base_every_days", KT_INT, OFF(backup_base_every_days), 0, 1, 366},
    {"backup", "archive_timeout", KT_INT, OFF(backup_archive_timeout), 0, 60, 86400},
    {"backup", "enabled", KT_BOOL, OFF(backup_enabled), 0, 0, 0},
    {"federation", "role", KT_STR, OFF(fed_role), 0, 0, 0},
    {"federation", "listen", KT_LISTEN, 0, 0, 0, 0},
    {"federation", "ca", KT_PATH, OFF(fed_ca), 0, 0, 0},
    {"federation", "crl", KT_PATH, OFF(fed_crl), 0, 0, 0},
    {"federation", "cert", KT_PATH, OFF(fed_cert), 0, 0, 0},
    {"federation", "key", KT_PATH, OFF(fed_key), 0, 0, 0},
    {"federation", "signing_key", KT_PATH, OFF(fed_signing_key), 0, 0, 0},
    {"federation", "previous_signing_key", KT_PATH, OFF(fed_previous_key), 0, 0, 0},
    {"federation", "register_signing_key", KT_PATH, OFF(fed_register_signing_key), 0, 0, 0},
    {"federation", "register_key", KT_PATH, OFF(fed_register_key), 0, 0, 0},
    {"federation", "max_handshakes", KT_INT, OFF(fed_handshakes), 0, 1, 65536},
    {"federation", "max_handshakes_per_source", KT_INT, OFF(fed_handshakes_per_source), 0, 1,
     65536},
    {"federation", "handshake_timeout", KT_INT, OFF(fed_handshake_timeout), 0, 1, 300},
    {"federation", "max_open_claims", KT_INT, OFF(fed_max_open_claims), 0, 0, 1000000},
    {"federation", "max_open_contacts", KT_INT, OFF(fed_max_open_contacts), 0, 0, 1000000},
    {"federation", "max_directory_items", KT_INT, OFF(fed_max_directory_items), 0, 0, 1000000},
    {"federation", "inbox_keep_days", KT_INT, OFF(fed_inbox_keep_days), 0, 30, 36600},
    {"federation", "exposure_limit", KT_HOURS, OFF(fed_exposure_limit), 0, 0, HOURS_LIMIT_MINUTES},
    {"federation", "exchange_with", KT_STR, OFF(fed_exchange_with), 0, 0, 0},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct parse {
	struct config *cfg;
	struct config_problems *probs;
	const char *base_dir;
	const char *text; /* what the reader hands inih, line by line */
	int line;         /* line inih is handling now */
	int seen[NKEYS];  /* line each key was set on */
};

static void problem(struct config_problems *probs, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct config_problems *probs, int line, const char *fmt, ...)
{
	va_list ap;

	if (probs->n >= CONFIG_MAX_PROBLEMS)
		return;
	probs->items[probs->n].line = line;
	va_start(ap, fmt);
	vsnprintf(probs->items[probs->n].msg, sizeof(probs->items[0].msg), fmt, ap);
	va_end(ap);
	probs->n++;
}

static int valid_bank_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > 32 || !islower((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

static char *resolve_path(const char *base_dir, const char *value)
{
	if (value[0] == '/' || base_dir == NULL)
		return xstrdup(value);
	return xasprintf("%s/%s", base_dir, value);
}

static int parse_listen(const char *value, char **host, int *port)
{
	const char *colon = strrchr(value, ':');
	char *end;
	long n;

	if (colon == NULL || colon == value)
		return -1;
	errno = 0;
	n = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || n < 0 || n > 65535)
		return -1;
	free(*host);
	*host = strndup(value, (size_t)(colon - value));
	*port = (int)n;
	return 0;
}

/* Stores one value; returns 0 or -1 with a message in err. */
static int set_value(struct parse *p, const struct key *k, const char *value, char *err, size_t len)
{
	char *field = (char *)p->cfg + k->offset;
	int64_t minutes;
	long long n;
	char *end, **host;
	int *port;

	switch (k->type) {
	case KT_BANK_ID:
		if (!valid_bank_id(value)) {
			snprintf(err, len,
			         "bank id '%s' must be 2-32 lower-case letters, digits or '-', "
			         "starting with a letter",
			         value);
			return -1;
		}
		/* fall through */
	case KT_STR:
	case KT_LEVEL:
		if (value[0] == '\0') {
			snprintf(err, len, "%s must not be empty", k->name);
			return -1;
		}
		if (k->type == KT_LEVEL && strcmp(value, "debug") != 0 &&
		    strcmp(value, "info") != 0 && strcmp(value, "warn") != 0 &&
		    strcmp(value, "error") != 0) {
			snprintf(err, len, "log_level must be debug, info, warn or error");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case KT_PATH:
		if (value[0] == '\0') {
			snprintf(err, len, "%s must not be empty", k->name);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = resolve_path(p->base_dir, value);
		return 0;
	case KT_INT:
		errno = 0;
		n = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || n < k->min || n > k->max) {
			snprintf(err, len, "%s must be a whole number from %lld to %lld", k->name,
			         (long long)k->min, (long long)k->max);
			return -1;
		}
		if (k->offset == OFF(max_body))
			p->cfg->max_body = (size_t)n;
		else
			*(int *)field = (int)n;
		return 0;
	case KT_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "on") == 0) {
			*(int *)field = 1;
		} else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
		           strcmp(value, "off") == 0) {
			*(int *)field = 0;
		} else {
			snprintf(err, len, "%s must be yes or no", k->name);
			return -1;
		}
		return 0;
	case KT_HOURS:
		if (hours_parse(value, &minutes) == -1 || minutes < k->min || minutes > k->max) {
			char lo[32], hi[32];
			hours_format(k->min, lo, sizeof(lo));
			hours_format(k->max, hi, sizeof(hi));
			snprintf(err, len, "%s must be hours from %s to %s (like 10h, 1.5, 1h30m)",
			         k->name, lo, hi);
			return -1;
		}
		*(int64_t *)field = minutes;
		return 0;
	case KT_LISTEN:
		if (strcmp(k->name, "tls_listen") == 0)
			host = &p->cfg->admin_tls_host, port = &p->cfg->admin_tls_port;
		else if (strcmp(k->section, "admin") == 0)
			host = &p->cfg->admin_host, port = &p->cfg->admin_port;
		else
			host = &p->cfg->fed_host, port = &p->cfg->fed_port;
		if (parse_listen(value, host, port) == -1) {
			snprintf(err, len, "listen must be host:port, like 127.0.0.1:8401");
			return -1;
		}
		return 0;
	}
	return -1;
}

const struct config_peer *config_peer(const struct config *cfg, const char *id)
{
	for (int i = 0; i < cfg->npeers; i++)
		if (strcmp(cfg->peers[i].id, id) == 0)
			return &cfg->peers[i];
	return NULL;
}

/* A key of a [peer ID] section. */
static void on_peer_key(struct parse *p, const char *id, const char *name, const char *value)
{
	struct config_peer *peer = (struct config_peer *)config_peer(p->cfg, id);
	int64_t minutes;

	if (peer == NULL) {
		if (!valid_bank_id(id)) {
			problem(p->probs, p->line,
			        "peer id '%s' must be 2-32 lower-case letters, "
			        "digits or '-'",
			        id);
			return;
		}
		if (p->cfg->npeers == CONFIG_MAX_PEERS) {
			problem(p->probs, p->line, "more than %d peers", CONFIG_MAX_PEERS);
			return;
		}
		peer = &p->cfg->peers[p->cfg->npeers++];
		peer->id = xstrdup(id);
		peer->kind = xstrdup("bank");
		peer->exposure_limit = 100 * 60;
		peer->line = p->line;
	}
	if (strcmp(name, "address") == 0) {
		if (parse_listen(value, &peer->host, &peer->port) == -1)
			problem(p->probs, p->line, "address must be host:port");
	} else if (strcmp(name, "signing_key") == 0) {
		free(peer->signing_key);
		peer->signing_key = resolve_path(p->base_dir, value);
	} else if (strcmp(name, "kind") == 0) {
		if (strcmp(value, "bank") != 0 && strcmp(value, "observer") != 0)
			problem(p->probs, p->line, "kind must be bank or observer");
		free(peer->kind);
		peer->kind = xstrdup(value);
		peer->kind_set = 1;
	} else if (strcmp(name, "exposure_limit") == 0) {
		if (hours_parse(value, &minutes) == -1 || minutes < 0)
			problem(p->probs, p->line, "exposure_limit must be hours, like 50h");
		else
			peer->exposure_limit = minutes;
	} else {
		problem(p->probs, p->line, "unknown key '%s' in [peer %s]", name, id);
	}
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	char err[160];

	if (strncmp(section, "peer ", 5) == 0) {
		on_peer_key(p, section + 5, name, value);
		return 1;
	}

	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
			continue;
		if (p->seen[i]) {
			problem(p->probs, p->line, "'%s' in [%s] set twice (first on line %d)",
			        name, section, p->seen[i]);
			return 1;
		}
		p->seen[i] = p->line;
		if (set_value(p, &keys[i], value, err, sizeof(err)) == -1)
			problem(p->probs, p->line, "%s", err);
		return 1;
	}
	problem(p->probs, p->line, "unknown key '%s' in [%s]", name, section);
	return 1;
}

/* Hands inih one line at a time and counts them, so on_key knows its line. */
static char *read_line(char *buf, int size, void *stream)
{
	struct parse *p = stream;
	int n = 0;

	if (*p->text == '\0')
		return NULL;
	while (n < size - 1 && *p->text != '\0') {
		char c = *p->text++;
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	/* The rest of an over-long line is dropped, so line numbers stay true. */
	if (n == size - 1 && buf[n - 1] != '\n')
		while (*p->text != '\0' && *p->text++ != '\n')
			;
	buf[n] = '\0';
	p->line++;
	return buf;
}

static void set_defaults(struct config *cfg)
{
	cfg->db_pool = 4;
	cfg->max_body = 64 * 1024;
	cfg->admin_conns = 512;
	cfg->admin_conns_per_source = 128;
	cfg->fed_handshakes = 64;
	cfg->fed_handshakes_per_source = 16;
	cfg->fed_handshake_timeout = 10;
	cfg->fed_max_open_claims = 1000;
	cfg->fed_max_open_contacts = 1000;
	cfg->fed_max_directory_items = 5000;
	cfg->fed_inbox_keep_days = 2192;
	cfg->fed_exposure_limit = 100 * 60;
	cfg->default_floor = -10 * 60;
	cfg->community_floor = -1000 * 60;
	cfg->max_exchange = CONFIG_DEFAULT_MAX_EXCHANGE;
	cfg->active_days = 90;
	/* NHS Digital's rule for sub-national figures. */
	cfg->suppress_below = 8;
	cfg->round_to = 5;
	cfg->dir_review = 1;
	cfg->referral_expire_days = 30;
	cfg->intake_overdue_days = 14;
	cfg->session_idle_minutes = 30;
	cfg->backup_enabled = 1;
	cfg->backup_keep_days = 28;
	cfg->backup_base_every_days = 7;
	cfg->backup_archive_timeout = 300;
	cfg->session_hours = 12;
}

/* A category as exchanges are recorded with it: 1 to 40 of a-z, 0-9, '-'. */
static int valid_category(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 40)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return 0;
	return 1;
}

/* listen in [admin]: loopback, since it speaks no TLS. */
static void check_loopback(struct parse *p)
{
	const char *h = p->cfg->admin_host;
	struct in_addr v4;
	struct in6_addr v6;
	int loopback;

	char bare[64];

	if (h == NULL)
		return;
	/* "[::1]" as the listen line writes it. */
	snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(h + (h[0] == '['), "]"),
	         h + (h[0] == '['));
	loopback = (inet_pton(AF_INET, h, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
	           (inet_pton(AF_INET6, bare, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6)) ||
	           strcmp(h, "localhost") == 0;
	if (!loopback)
		problem(p->probs, 0,
		        "listen in [admin] (%.64s) is not a loopback address: passwords, session "
		        "cookies and tokens cross it, and off this machine need TLS; serve TLS "
		        "with tls_listen, tls_cert and tls_key, or listen on 127.0.0.1 behind a "
		        "TLS reverse proxy on this machine and say behind_proxy = yes",
		        h);
}

/* The admin API carries passwords, session cookies and tokens: off this
 * machine only through TLS, which the daemon serves itself (tls_listen,
 * with tls_cert and tls_key) or a reverse proxy on this machine terminates
 * (behind_proxy); listen, without TLS, is on loopback. */
static void check_admin_listen(struct parse *p)
{
	const struct config *c = p->cfg;

	if ((c->admin_tls_host != NULL) != (c->admin_tls_cert != NULL) ||
	    (c->admin_tls_cert != NULL) != (c->admin_tls_key != NULL))
		problem(p->probs, 0,
		        "tls_listen, tls_cert and tls_key in [admin] go together: the address "
		        "to serve TLS on, its certificate chain and its private key");
	check_loopback(p);
}

/* check_required = the categories whose helper needs a valid check. */
static void check_safeguarding(struct parse *p)
{
	struct config *cfg = p->cfg;
	char *list, *save = NULL;

	if (cfg->check_required_text == NULL)
		return;
	list = xstrdup(cfg->check_required_text);
	for (char *c = strtok_r(list, ", ", &save); c != NULL; c = strtok_r(NULL, ", ", &save)) {
		if (!valid_category(c)) {
			problem(p->probs, 0,
			        "check_required in [safeguarding] must be categories separated by "
			        "commas, such as personal-care, childcare ('%.40s' is not one)",
			        c);
			break;
		}
		cfg->check_required = xrealloc(cfg->check_required,
		                               (size_t)(cfg->ncheck_required + 1) * sizeof(char *));
		cfg->check_required[cfg->ncheck_required++] = xstrdup(c);
	}
	free(list);
}

/* exchange_with = all, or the ids of the banks hours are exchanged with. */
static void check_exchange_with(struct parse *p)
{
	struct config *cfg = p->cfg;
	char *list, *save = NULL;

	if (cfg->fed_exchange_with == NULL || strcmp(cfg->fed_exchange_with, "all") == 0)
		return;
	list = xstrdup(cfg->fed_exchange_with);
	for (char *id = strtok_r(list, ", ", &save); id != NULL; id = strtok_r(NULL, ", ", &save)) {
		if (!valid_bank_id(id)) {
			problem(
			    p->probs, 0,
			    "exchange_with in [federation] must be all, or bank ids separated by "
			    "commas ('%.40s' is not one)",
			    id);
			break;
		}
		cfg->exchange_with = xrealloc(cfg->exchange_with,
		                              (size_t)(cfg->nexchange_with + 1) * sizeof(char *));
		cfg->exchange_with[cfg->nexchange_with++] = xstrdup(id);
	}
	free(list);
	if (cfg->nexchange_with == 0 && p->probs->n == 0)
		problem(p->probs, 0,
		        "exchange_with in [federation] names no bank; say all, or list them");
}

static void check_federation(struct parse *p)
{
	struct config *cfg = p->cfg;
	const char *need[] = {"listen", "ca", "crl", "cert", "key", "signing_key"};

	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, "federation") == 0 && p->seen[i])
			cfg->fed_enabled = 1;
	if (!cfg->fed_enabled && cfg->npeers > 0)
		problem(p->probs, cfg->peers[0].line, "peers need a [federation] section");
	if (!cfg->fed_enabled)
		return;
	for (size_t n = 0; n < sizeof(need) / sizeof(need[0]); n++)
		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].section, "federation") == 0 &&
			    strcmp(keys[i].name, need[n]) == 0 && !p->seen[i])
				problem(p->probs, 0, "missing '%s' in [federation]", need[n]);
	if (cfg->fed_role == NULL)
		cfg->fed_role = xstrdup("bank");
	else if (strcmp(cfg->fed_role, "bank") != 0 && strcmp(cfg->fed_role, "observer") != 0)
		problem(p->probs, 0, "role in [federation] must be bank or observer");
	if (cfg->fed_register_signing_key != NULL && strcmp(cfg->fed_role, "observer") != 0)
		problem(p->probs, 0, "only the national body (role = observer) signs the register");
	check_exchange_with(p);
	for (int i = 0; i < cfg->npeers; i++) {
		struct config_peer *peer = &cfg->peers[i];
		/* With the network's register, a [peer] of exposure_limit alone sets
		 * the limit of a bank the register lists. */
		int registered =
		    cfg->fed_register_key != NULL || cfg->fed_register_signing_key != NULL;
		if (peer->host == NULL && peer->signing_key == NULL && registered &&
		    !peer->kind_set) {
			peer->limit_only = 1;
			continue;
		}
		if (peer->host == NULL)
			problem(p->probs, peer->line, "[peer %s] needs an address%s", peer->id,
			        registered
			            ? " (or exposure_limit alone, for a bank of the register)"
			            : "");
		if (peer->signing_key == NULL)
			problem(p->probs, peer->line, "[peer %s] needs its signing_key", peer->id);
		if (cfg->bank_id != NULL && strcmp(peer->id, cfg->bank_id) == 0)
			problem(p->probs, peer->line, "a bank cannot be its own peer");
	}
}

static void check_whole(struct parse *p)
{
	struct config *cfg = p->cfg;

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].required && !p->seen[i])
			problem(p->probs, 0, "missing '%s' in [%s]", keys[i].name, keys[i].section);
	if (cfg->database != NULL && strcmp(cfg->database, "managed") == 0) {
		cfg->db_managed = 1;
		if (cfg->data_dir == NULL)
			problem(p->probs, 0, "conninfo = managed needs 'data_dir' in [bank]");
		else if (cfg->backup_dir == NULL)
			cfg->backup_dir = xasprintf("%s/backup", cfg->data_dir);
	}
	/* The archive command names the directory in quotes: none in it. */
	if (cfg->backup_dir != NULL && strpbrk(cfg->backup_dir, "'\"\\%$`\n") != NULL)
		problem(p->probs, 0,
		        "dir in [backup] must not hold quotes, backslashes, '$' or '%%'");
	if (cfg->pg_bindir == NULL)
		cfg->pg_bindir = xstrdup(PG_BINDIR);
	if (cfg->pg_user == NULL)
		cfg->pg_user = xstrdup("postgres");
	if (cfg->log_level == NULL)
		cfg->log_level = xstrdup("info");
	check_federation(p);
	check_safeguarding(p);
	check_admin_listen(p);
}

struct config *config_parse(const char *text, const char *base_dir, struct config_problems *probs)
{
	struct parse p = {0};
	int rc;

	probs->n = 0;
	p.cfg = xcalloc(1, sizeof(*p.cfg));
	set_defaults(p.cfg);
	p.probs = probs;
	p.base_dir = base_dir;
	p.text = text;
	rc = ini_parse_stream(read_line, &p, on_key, &p);
	if (rc > 0)
		problem(probs, rc, "syntax error: expected [section] or key = value");
	else if (rc < 0)
		problem(probs, 0, "out of memory");
	check_whole(&p);
	if (probs->n > 0) {
		config_free(p.cfg);
		return NULL;
	}
	return p.cfg;
}

struct config *config_load(const char *path, struct config_problems *probs)
{
	char *text = NULL, *copy = NULL, real[PATH_MAX];
	struct config *cfg = NULL;
	size_t len = 0;
	FILE *f;

	probs->n = 0;
	f = fopen(path, "r");
	if (f == NULL) {
		problem(probs, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	text = xmalloc(1024 * 1024 + 1);
	len = fread(text, 1, 1024 * 1024 + 1, f);
	fclose(f);
	if (len > 1024 * 1024) {
		problem(probs, 0, text == NULL ? "out of memory" : "file over 1 MiB");
		free(text);
		return NULL;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		problem(probs, 0, "not a text file");
		free(text);
		return NULL;
	}
	if (realpath(path, real) != NULL)
		copy = xstrdup(real);
	cfg = config_parse(text, copy != NULL ? dirname(copy) : NULL, probs);
	free(copy);
	free(text);
	return cfg;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->bank_id);
	free(cfg->bank_name);
	free(cfg->data_dir);
	free(cfg->backup_dir);
	free(cfg->log_level);
	free(cfg->database);
	free(cfg->pg_bindir);
	free(cfg->pg_user);
	free(cfg->admin_host);
	free(cfg->admin_tls_host);
	free(cfg->admin_tls_cert);
	free(cfg->admin_tls_key);
	free(cfg->token_file);
	free(cfg->fed_role);
	free(cfg->fed_host);
	free(cfg->fed_ca);
	free(cfg->fed_crl);
	free(cfg->fed_cert);
	free(cfg->fed_key);
	free(cfg->fed_signing_key);
	free(cfg->fed_previous_key);
	free(cfg->fed_register_signing_key);
	free(cfg->fed_register_key);
	free(cfg->fed_exchange_with);
	free(cfg->check_required_text);
	for (int i = 0; i < cfg->ncheck_required; i++)
		free(cfg->check_required[i]);
	free(cfg->check_required);
	for (int i = 0; i < cfg->nexchange_with; i++)
		free(cfg->exchange_with[i]);
	free(cfg->exchange_with);
	for (int i = 0; i < cfg->npeers; i++) {
		free(cfg->peers[i].id);
		free(cfg->peers[i].host);
		free(cfg->peers[i].signing_key);
		free(cfg->peers[i].kind);
	}
	free(cfg);
}

void config_problems_print(FILE *out, const char *path, const struct config_problems *probs)
{
	for (int i = 0; i < probs->n; i++) {
		if (probs->items[i].line > 0)
			fprintf(out, "%s:%d: %s\n", path, probs->items[i].line,
			        probs->items[i].msg);
		else
			fprintf(out, "%s: %s\n", path, probs->items[i].msg);
	}
}
