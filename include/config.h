/* config: the daemon's INI file, parsed into a fresh struct so a reload can
 * be checked whole before it replaces the running one.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_CONFIG_H
#define TB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_PROBLEMS 32
#define CONFIG_DEFAULT_MAX_EXCHANGE (24 * 60)

struct config_problem {
	int line; /* 0 when the problem is something missing */
	char msg[200];
};

struct config_problems {
	int n;
	struct config_problem items[CONFIG_MAX_PROBLEMS];
};

#define CONFIG_MAX_PEERS 64

/* A [peer ID] section: another daemon of the network. */
struct config_peer {
	char *id;   /* its bank id, as its certificate names it */
	char *host; /* address = host:port, where to dial it */
	int port;
	char *signing_key;      /* its Ed25519 public key (PEM), pinned */
	char *kind;             /* "bank" or "observer" */
	int64_t exposure_limit; /* minutes this bank lets it owe; for exchanges */
	int line;               /* where the section starts */
	int kind_set;
	/* exposure_limit alone, with the network's register: the limit of a
	 * bank the register lists, not a peer of the config's own. */
	int limit_only;
};

struct config {
	char *bank_id;   /* [bank] id: lower-case letters, digits, '-' */
	char *bank_name; /* [bank] name: shown to people */
	char *data_dir;  /* [bank] data_dir: managed database, state */
	char *log_level; /* [bank] log_level */

	char *database; /* [database] conninfo: libpq conninfo or "managed" */
	int db_managed;
	int db_pool;     /* [database] pool: connections */
	char *pg_bindir; /* [database] pg_bindir: initdb, pg_ctl (managed) */
	char *pg_user;   /* [database] pg_user: runs the cluster when root */
	/* [backup], for a managed cluster: WAL archived as it fills and at
	 * least every archive_timeout seconds, and a base backup every
	 * base_every_days, into dir (default DATA_DIR/backup), kept keep_days;
	 * enabled = no turns it off. */
	char *backup_dir;
	int backup_enabled;
	int backup_keep_days;
	int backup_base_every_days;
	int backup_archive_timeout;

	char *admin_host; /* [admin] listen = host:port */
	int admin_port;
	/* [admin] tls_listen = host:port: the console and API over TLS, with
	 * tls_cert (the certificate chain) and tls_key (PEM files). */
	char *admin_tls_host;
	int admin_tls_port;
	char *admin_tls_cert;
	char *admin_tls_key;
	char *token_file;           /* [admin] tokens */
	size_t max_body;            /* [admin] max_body, bytes */
	int admin_conns;            /* [admin] max_connections, in all */
	int admin_conns_per_source; /* [admin] max_connections_per_source: from one address */

	int64_t default_floor;   /* [ledger] default_floor, minutes (<= 0) */
	int64_t community_floor; /* [ledger] community_floor: how far grants may take the
	                            community account below zero */
	int64_t max_exchange;    /* [ledger] max_exchange, minutes */

	int active_days;    /* [reports] active_days: "active" = exchanged within this many days */
	int suppress_below; /* [reports] suppress_below: in the national body's report, counts */
	int round_to;       /* of people 1..suppress_below-1 are suppressed, others rounded */
	int dir_review;     /* [directory] review: shared items wait for a broker's approval */
	int referral_accept_negative; /* [referrals] accept_negative: a member may arrive owing */
	int referral_expire_days;     /* [referrals] expire_days: an undecided referral expires */
	int intake_overdue_days;      /* [intake] overdue_days: a referral not yet contacted */
	int session_idle_minutes;     /* [admin]: a console session unused this long ends */
	int session_hours;            /* [admin]: and any session after this long */
	int admin_behind_proxy;       /* [admin] behind_proxy: a TLS proxy is in front */
	/* [safeguarding] check_required: the categories whose helper needs a
	 * valid safeguarding check, as written and as a list. */
	char *check_required_text;
	char **check_required;
	int ncheck_required;

	/* [federation]: absent, the daemon links to no one. */
	int fed_enabled;
	char *fed_role; /* "bank" or "observer" (the national body) */
	char *fed_host; /* listen = host:port */
	int fed_port;
	char *fed_ca;           /* the network CA's certificate */
	char *fed_crl;          /* its revocation list */
	char *fed_cert;         /* this daemon's certificate */
	char *fed_key;          /* and its private key */
	char *fed_signing_key;  /* Ed25519 private key signing every message */
	char *fed_previous_key; /* the key before a rotation, announced and then retired */
	/* The national body's register key (private, Ed25519): the observer
	 * signs the register with it. */
	char *fed_register_signing_key;
	/* Its public half, at a bank: a register is taken only signed by it. */
	char *fed_register_key;
	/* Connections still in TLS or hello: [federation] max_handshakes in all,
	 * max_handshakes_per_source from one address, each given
	 * handshake_timeout seconds to finish. */
	int fed_handshakes;
	int fed_handshakes_per_source;
	int fed_handshake_timeout;
	/* What each peer may leave with us: open claims, open contact requests
	 * and shared directory items; and how long what peers sent is kept as
	 * proof (days). */
	int fed_max_open_claims;
	int fed_max_open_contacts;
	int fed_max_directory_items;
	int fed_inbox_keep_days;
	/* The register's peers: exposure_limit, the default of their exposure
	 * limits (a [peer] of exposure_limit alone sets one's own); and
	 * exchange_with, all or a list of the banks (of the config and the
	 * register) this bank exchanges hours, directory and contact requests
	 * with: the list, NULL for all. */
	int64_t fed_exposure_limit;
	char *fed_exchange_with;
	char **exchange_with;
	int nexchange_with;
	struct config_peer peers[CONFIG_MAX_PEERS];
	int npeers;
};

/* Parses INI text. Relative paths are resolved against base_dir (NULL: as
 * written). Returns a new config, or NULL with every problem found in probs. */
struct config *config_parse(const char *text, const char *base_dir, struct config_problems *probs);
/* Reads and parses a file; problems reading it are reported as line 0. */
struct config *config_load(const char *path, struct config_problems *probs);
void config_free(struct config *cfg);
const struct config_peer *config_peer(const struct config *cfg, const char *id);

/* Prints "path:line: message" for each problem. */
void config_problems_print(FILE *out, const char *path, const struct config_problems *probs);

#endif
