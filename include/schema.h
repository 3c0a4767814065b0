/* schema: versioned SQL migrations shipped inside the binary, applied at
 * start-up in one transaction each. */
#ifndef TB_SCHEMA_H
#define TB_SCHEMA_H

#include <libpq-fe.h>

struct schema_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct schema_migration schema_migrations[];
extern const int schema_migration_count;

/* Brings the database up to this binary's newest version: 0. Refuses with
 * SCHEMA_TOO_NEW (a message logged) when the database is newer than this
 * binary; -1 when a statement failed (logged). Blocking: for start-up only. */
#define SCHEMA_TOO_NEW (-2)
int schema_migrate(PGconn *conn) __attribute__((warn_unused_result));

/* The newest version this binary knows. */
int schema_latest(void);

#endif
