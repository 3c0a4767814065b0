/* pgm: the bank's own managed PostgreSQL cluster under data_dir, on a unix
 * socket only. Made with initdb the first time, started at daemon start-up,
 * stopped when the daemon exits. When the daemon runs as root, the cluster
 * runs as an unprivileged user (config: pg_user). Starting and stopping
 * block (start-up and shut-down only); supervision runs on the loop.
 * Layer: io (src/io/); includes core headers. */
#ifndef TB_PGM_H
#define TB_PGM_H

#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <time.h>

struct pgm;

/* Where the managed cluster's backups stand. Continuous archiving is
 * PostgreSQL's own: each WAL segment is copied to DIR/wal as it fills, and
 * at least every archive_timeout seconds; a base backup is made by
 * pg_basebackup into DIR/base/NAME (NAME its UTC start, YYYYMMDDTHHMMSSZ)
 * every base_every_days, and what is older than keep_days is removed, but
 * the newest base from before then, from which the window restores. */
struct pgm_backup {
	int enabled;
	const char *dir; /* DIR, while the handle lives */
	int keep_days, base_every_days;
	int bases;            /* base backups kept */
	char oldest_base[32]; /* their names, or "" */
	char newest_base[32];
	time_t newest_base_at;
	long long newest_base_bytes;
	int base_running;   /* one is being made */
	char last_wal[64];  /* the last WAL segment archived, or "" */
	time_t last_wal_at; /* when: the newest point a restore reaches */
	long long failed;   /* archive attempts that failed since the cluster started */
	char last_failed_wal[64];
	time_t last_failed_at;
	long long bytes; /* everything under DIR */
};

/* The state as last looked at (once a minute), into out. */
void pgm_backup_state(const struct pgm *pgm, struct pgm_backup *out);
/* The backup directory, or NULL when backups are off. */
const char *pgm_backup_dir(const struct pgm *pgm);

/* timebankd --restore: puts the managed cluster back from its backups, to
 * the newest point archived, or to the time given (PostgreSQL's
 * recovery_target_time, like "2026-12-04 09:30:00+00"). The cluster must
 * not be running; its data directory is kept beside, as
 * postgres.before-restore-TIME. Blocking; 0, or -1 with why logged. */
int pgm_restore(const struct config *cfg, const char *to);
/* A restore leaves DATA_DIR/restored (its stamp, and the target if one
 * was given) for the first start after it, which records it in the
 * database (tb_restored) and takes it away: --restore does, and
 * --restored for a database put back by other means. 0 or -1 (logged). */
int pgm_mark_restored(const struct config *cfg, const char *to);
/* The mark, if there is one: 1 with its stamp and target ("" none), 0
 * none. */
int pgm_restored(const struct config *cfg, char *stamp, size_t stamp_len, char *target,
                 size_t target_len);
void pgm_restored_done(const struct config *cfg);
/* timebankd --check-backup DIR: whether DIR holds a base backup and the WAL
 * from its start that a restore needs: 0, or -1 with why printed. */
int pgm_check_backup(const char *dir, FILE *out);

/* Makes and starts the cluster, or adopts it if it is already running (left
 * by a daemon that crashed). Returns the handle and a conninfo to reach it
 * (caller frees), or NULL with the reason logged. */
struct pgm *pgm_start(const struct config *cfg, char **conninfo);
/* Watches the cluster from base's loop: a postmaster that is gone is
 * started again, with backoff, and logged. */
void pgm_supervise(struct pgm *pgm, struct event_base *base);
/* Stops watching, stops the cluster (fast shutdown) and frees the handle.
 * Accepts NULL. */
void pgm_stop(struct pgm *pgm);

#endif
