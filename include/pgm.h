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

struct pgm;

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
