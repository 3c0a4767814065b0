#include "schema.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>

int schema_latest(void)
{
	return schema_migrations[schema_migration_count - 1].version;
}

static int exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		log_error("schema: %s failed: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

static int current_version(PGconn *conn, int *version)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_version");
	int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		*version = atoi(PQgetvalue(res, 0, 0));
	else
		log_error("schema: cannot read schema_version: %s", PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

static int apply(PGconn *conn, const struct schema_migration *m)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;

	if (exec_ok(conn, "BEGIN", "begin") == -1)
		return -1;
	if (exec_ok(conn, m->sql, m->name) == -1)
		goto rollback;
	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexecParams(conn, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", 2,
	                   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("schema: recording version %d failed: %s", m->version,
		          PQresultErrorMessage(res));
		PQclear(res);
		goto rollback;
	}
	PQclear(res);
	if (exec_ok(conn, "COMMIT", "commit") == -1)
		return -1;
	log_info("schema: applied migration %s", m->name);
	return 0;
rollback:
	(void)exec_ok(conn, "ROLLBACK", "rollback");
	return -1;
}

int schema_migrate(PGconn *conn)
{
	int version, latest = schema_latest();

	/* Notices ("already exists, skipping") are not for the operator. */
	if (exec_ok(conn, "SET client_min_messages = warning", "quieting notices") == -1)
		return -1;
	if (exec_ok(conn,
	            "CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY, "
	            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	            "creating schema_version") == -1)
		return -1;
	/* Two daemons started on one database must not both migrate it. */
	if (exec_ok(conn, "SELECT pg_advisory_lock(hashtext('timebankd_schema'))", "lock") == -1)
		return -1;
	if (current_version(conn, &version) == -1)
		goto fail;
	if (version > latest) {
		log_error("schema: the database is at schema version %d but this timebankd knows "
		          "only up to %d; install the newer timebankd that wrote it",
		          version, latest);
		(void)exec_ok(conn, "SELECT pg_advisory_unlock(hashtext('timebankd_schema'))",
		              "unlock");
		return SCHEMA_TOO_NEW;
	}
	for (int i = 0; i < schema_migration_count; i++)
		if (schema_migrations[i].version > version &&
		    apply(conn, &schema_migrations[i]) == -1)
			goto fail;
	(void)exec_ok(conn, "SELECT pg_advisory_unlock(hashtext('timebankd_schema'))", "unlock");
	log_info("schema: database at version %d", latest);
	return 0;
fail:
	(void)exec_ok(conn, "SELECT pg_advisory_unlock(hashtext('timebankd_schema'))", "unlock");
	return -1;
}
