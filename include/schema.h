/* schema: the database's schema, shipped inside the binary. Migrations
 * (tables, indexes, constraints, data moves) are applied once each, in one
 * transaction each, and recorded with their SHA-256; a released migration
 * never changes. The functions, views and triggers that hold the rules are
 * dropped and made again from the shipped sources at every start, in one
 * transaction, so the database holds exactly what this binary ships.
 * Blocking: for start-up only.
 * Layer: io (src/io/); includes core headers. */
#ifndef TB_SCHEMA_H
#define TB_SCHEMA_H

#include <libpq-fe.h>

struct schema_file {
	int version;        /* migrations: NNN of NNN_name.sql */
	const char *name;   /* the file's name without .sql */
	const char *sha256; /* migrations: of the file, in hex */
	const char *sql;
};

extern const struct schema_file schema_migrations[];
extern const int schema_migration_count;
extern const struct schema_file schema_sources[];
extern const int schema_source_count;

/* Brings the database up to this binary's newest migration and applies the
 * sources: 0. Refuses with SCHEMA_REFUSED (a message logged) when the
 * database is newer than this binary, or holds a migration that differs
 * from the one shipped; -1 when a statement failed (logged), which may be
 * worth retrying. */
#define SCHEMA_REFUSED (-2)
int schema_migrate(PGconn *conn) __attribute__((warn_unused_result));

/* The newest version this binary knows. */
int schema_latest(void);

#endif
