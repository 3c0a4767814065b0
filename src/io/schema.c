#include "schema.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const struct schema_file *shipped(int version)
{
	for (int i = 0; i < schema_migration_count; i++)
		if (schema_migrations[i].version == version)
			return &schema_migrations[i];
	return NULL;
}

/* Compares what the database recorded with what this binary ships: 0 and
 * the newest version applied, or SCHEMA_REFUSED (logged). */
static int check_recorded(PGconn *conn, int *version)
{
	PGresult *res =
	    PQexec(conn, "SELECT version, name, sha256 FROM schema_version ORDER BY version");
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42703") == 0) {
			log_error(
			    "schema: this database was made by a development build of timebankd "
			    "from before its baseline migration (its schema_version records no "
			    "SHA-256); make it again with this timebankd");
			rc = SCHEMA_REFUSED;
		} else {
			log_error("schema: cannot read schema_version: %s",
			          PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
		return rc;
	}
	*version = 0;
	for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
		int v = atoi(PQgetvalue(res, i, 0));
		const struct schema_file *m = shipped(v);

		*version = v;
		if (v > schema_latest()) {
			log_error(
			    "schema: the database is at schema version %d but this timebankd knows "
			    "only up to %d; install the newer timebankd that wrote it",
			    v, schema_latest());
			rc = SCHEMA_REFUSED;
		} else if (m == NULL || strcmp(m->name, PQgetvalue(res, i, 1)) != 0 ||
		           strcmp(m->sha256, PQgetvalue(res, i, 2)) != 0) {
			log_error(
			    "schema: the database applied migration %d as %s (SHA-256 %s), but "
			    "this timebankd ships %s (SHA-256 %s); a released migration must never "
			    "change: run the timebankd that made this database",
			    v, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			    m != NULL ? m->name : "nothing", m != NULL ? m->sha256 : "none");
			rc = SCHEMA_REFUSED;
		}
	}
	PQclear(res);
	return rc;
}

static int apply(PGconn *conn, const struct schema_file *m)
{
	char version[16];
	const char *params[3] = {version, m->name, m->sha256};
	PGresult *res;

	if (exec_ok(conn, "BEGIN", "begin") == -1)
		return -1;
	if (exec_ok(conn, m->sql, m->name) == -1)
		goto rollback;
	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexecParams(conn,
	                   "INSERT INTO schema_version (version, name, sha256) VALUES ($1, $2, $3)",
	                   3, NULL, params, NULL, NULL, 0);
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

/* Drops every trigger, view and function in the schema but an extension's,
 * so that what the sources no longer define is gone once they are applied.
 * Nothing else depends on them: tables' defaults and checks call none. */
static const char drop_rules[] =
    "DO $$\n"
    "DECLARE r record;\n"
    "BEGIN\n"
    "    FOR r IN SELECT t.tgname, c.oid::regclass AS rel FROM pg_trigger t\n"
    "             JOIN pg_class c ON c.oid = t.tgrelid\n"
    "             WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal "
    "LOOP\n"
    "        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);\n"
    "    END LOOP;\n"
    "    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c\n"
    "             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v'\n"
    "               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
    "'pg_class'::regclass\n"
    "                               AND d.objid = c.oid AND d.deptype = 'e') LOOP\n"
    "        EXECUTE format('DROP VIEW %s', r.rel);\n"
    "    END LOOP;\n"
    "    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p\n"
    "             WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind = 'f'\n"
    "               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
    "'pg_proc'::regclass\n"
    "                               AND d.objid = p.oid AND d.deptype = 'e') LOOP\n"
    "        EXECUTE format('DROP FUNCTION %s', r.f);\n"
    "    END LOOP;\n"
    "END $$";

/* The sources in one transaction: a database never holds half of them.
 * Bodies are checked when first run, not as each is made, so a file may
 * call what a later one defines. */
static int apply_sources(PGconn *conn)
{
	if (exec_ok(conn, "BEGIN", "begin") == -1)
		return -1;
	if (exec_ok(conn, "SET LOCAL check_function_bodies = off", "setting up the sources") ==
	        -1 ||
	    exec_ok(conn, drop_rules, "dropping the rules") == -1)
		goto rollback;
	for (int i = 0; i < schema_source_count; i++)
		if (exec_ok(conn, schema_sources[i].sql, schema_sources[i].name) == -1)
			goto rollback;
	if (exec_ok(conn, "COMMIT", "commit") == -1)
		return -1;
	return 0;
rollback:
	(void)exec_ok(conn, "ROLLBACK", "rollback");
	return -1;
}

int schema_migrate(PGconn *conn)
{
	int version, rc;

	/* Notices ("already exists, skipping") are not for the operator. */
	if (exec_ok(conn, "SET client_min_messages = warning", "quieting notices") == -1)
		return -1;
	if (exec_ok(conn,
	            "CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY, "
	            "name text NOT NULL, sha256 text NOT NULL, "
	            "applied_at timestamptz NOT NULL DEFAULT now())",
	            "creating schema_version") == -1)
		return -1;
	/* Two daemons started on one database must not both migrate it. */
	if (exec_ok(conn, "SELECT pg_advisory_lock(hashtext('timebankd_schema'))", "lock") == -1)
		return -1;
	rc = check_recorded(conn, &version);
	for (int i = 0; rc == 0 && i < schema_migration_count; i++)
		if (schema_migrations[i].version > version)
			rc = apply(conn, &schema_migrations[i]);
	if (rc == 0)
		rc = apply_sources(conn);
	(void)exec_ok(conn, "SELECT pg_advisory_unlock(hashtext('timebankd_schema'))", "unlock");
	if (rc == 0)
		log_info("schema: database at version %d, %d files of rules applied",
		         schema_latest(), schema_source_count);
	return rc;
}
