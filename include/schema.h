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

/* Brings the database up to this binary's newest version. Refuses (-1, with
 * a message logged) when the database is newer than this binary. Blocking:
 * for start-up only. */
int schema_migrate(PGconn *conn) __attribute__((warn_unused_result));

/* The newest version this binary knows. */
int schema_latest(void);

#endif
