#include "pgm.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PGM_DB "timebank"
#define PGM_ROLE "timebankd"

struct pgm {
	char *bindir;
	char *pgdata;
	char *rundir;
	char *logfile;
	uid_t uid;
	gid_t gid;
	int as_other; /* we are root and the cluster runs as uid */
};

/* Runs bindir/prog with args as the cluster's user; returns its exit status
 * or -1. Its stdout goes to the cluster's log file. */
static int run(const struct pgm *p, const char *prog, const char *const *args)
{
	char path[4096];
	const char *argv[16];
	int n = 0, status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", p->bindir, prog);
	argv[n++] = path;
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	if (pid == -1)
		return -1;
	if (pid == 0) {
		int fd = open(p->logfile, O_WRONLY | O_APPEND | O_CREAT, 0600);
		if (p->as_other &&
		    (setgroups(0, NULL) == -1 || setgid(p->gid) == -1 || setuid(p->uid) == -1))
			_exit(126);
		if (fd != -1)
			dup2(fd, STDOUT_FILENO);
		if (chdir("/") == -1)
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int make_dir(const struct pgm *p, const char *dir, mode_t mode)
{
	if (mkdir(dir, mode) == -1 && errno != EEXIST) {
		log_error("pgm: cannot make %s: %s", dir, strerror(errno));
		return -1;
	}
	if (p->as_other && chown(dir, p->uid, p->gid) == -1) {
		log_error("pgm: cannot give %s to the cluster's user: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int pgm_init(struct pgm *p, const struct config *cfg)
{
	char version[4096];
	struct stat st;

	if (mkdir(cfg->data_dir, 0700) == -1 && errno != EEXIST) {
		log_error("pgm: cannot make data_dir %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	/* The cluster's user must be able to pass through data_dir. */
	if (p->as_other && chmod(cfg->data_dir, 0711) == -1)
		log_warn("pgm: cannot open %s to the cluster's user: %s", cfg->data_dir,
		         strerror(errno));
	if (make_dir(p, p->rundir, 0700) == -1)
		return -1;
	if (p->as_other) {
		int fd = open(p->logfile, O_WRONLY | O_APPEND | O_CREAT, 0600);
		if (fd != -1 && fchown(fd, p->uid, p->gid) == -1)
			log_warn("pgm: cannot give %s to the cluster's user", p->logfile);
		if (fd != -1)
			close(fd);
	}
	snprintf(version, sizeof(version), "%s/PG_VERSION", p->pgdata);
	if (stat(version, &st) == 0)
		return 0;
	if (make_dir(p, p->pgdata, 0700) == -1)
		return -1;
	log_info("pgm: creating the bank's PostgreSQL cluster in %s", p->pgdata);
	const char *args[] = {"-D",    p->pgdata, "-U",   PGM_ROLE,      "-A",
	                      "trust", "-E",      "UTF8", "--no-locale", NULL};
	if (run(p, "initdb", args) != 0) {
		log_error("pgm: initdb failed; see %s", p->logfile);
		return -1;
	}
	return 0;
}

static int pgm_running(const struct pgm *p)
{
	const char *args[] = {"-D", p->pgdata, "status", NULL};

	return run(p, "pg_ctl", args) == 0;
}

static int create_database(const struct pgm *p)
{
	char conninfo[4200];
	const char *params[1] = {PGM_DB};
	PGconn *c;
	PGresult *r;
	int ok;

	snprintf(conninfo, sizeof(conninfo), "host=%s dbname=postgres user=%s", p->rundir,
	         PGM_ROLE);
	c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		log_error("pgm: cannot connect to the new cluster: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	r = PQexecParams(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL,
	                 NULL, 0);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (ok && PQntuples(r) == 0) {
		PQclear(r);
		r = PQexec(c, "CREATE DATABASE " PGM_DB);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	}
	if (!ok)
		log_error("pgm: cannot create database %s: %s", PGM_DB, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static void pgm_free(struct pgm *p)
{
	free(p->bindir);
	free(p->pgdata);
	free(p->rundir);
	free(p->logfile);
	free(p);
}

struct pgm *pgm_start(const struct config *cfg, char **conninfo)
{
	struct pgm *p = calloc(1, sizeof(*p));
	char opts[4200];

	p->bindir = strdup(cfg->pg_bindir);
	if (asprintf(&p->pgdata, "%s/postgres", cfg->data_dir) < 0 ||
	    asprintf(&p->rundir, "%s/run", cfg->data_dir) < 0 ||
	    asprintf(&p->logfile, "%s/postgres.log", cfg->data_dir) < 0)
		fatal("out of memory");
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->pg_user);
		if (pw == NULL || pw->pw_uid == 0) {
			log_error(
			    "pgm: running as root, the cluster needs an unprivileged user, but "
			    "pg_user '%s' %s",
			    cfg->pg_user, pw == NULL ? "does not exist" : "is root");
			goto fail;
		}
		p->as_other = 1;
		p->uid = pw->pw_uid;
		p->gid = pw->pw_gid;
	}
	if (pgm_init(p, cfg) == -1)
		goto fail;
	if (pgm_running(p)) {
		log_info("pgm: adopting the cluster already running in %s", p->pgdata);
	} else {
		snprintf(opts, sizeof(opts), "-k %s -c listen_addresses=''", p->rundir);
		const char *args[] = {"-D",  p->pgdata, "-l", p->logfile, "-w", "-t",
		                      "120", "-o",      opts, "start",    NULL};
		if (run(p, "pg_ctl", args) != 0) {
			log_error("pgm: PostgreSQL did not start; see %s", p->logfile);
			goto fail;
		}
		log_info("pgm: PostgreSQL started in %s", p->pgdata);
	}
	if (create_database(p) == -1)
		goto fail;
	if (asprintf(conninfo, "host=%s dbname=%s user=%s", p->rundir, PGM_DB, PGM_ROLE) < 0)
		fatal("out of memory");
	return p;
fail:
	pgm_free(p);
	return NULL;
}

void pgm_stop(struct pgm *p)
{
	if (p == NULL)
		return;
	const char *args[] = {"-D", p->pgdata, "-m", "fast", "-w", "-t", "60", "stop", NULL};
	if (run(p, "pg_ctl", args) != 0)
		log_warn("pgm: PostgreSQL did not stop cleanly; see %s", p->logfile);
	else
		log_info("pgm: PostgreSQL stopped");
	pgm_free(p);
}
