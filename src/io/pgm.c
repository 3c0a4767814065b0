#include "pgm.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PGM_DB "timebank"
#define PGM_ROLE "timebankd"
#define WATCH_SECONDS 1        /* how often the postmaster is looked for */
#define RESTART_MIN_SECONDS 1  /* backoff between starts, doubling... */
#define RESTART_MAX_SECONDS 60 /* ...up to this */
#define STEADY_SECONDS 60      /* running this long resets the backoff */

struct pgm {
	char *bindir;
	char *pgdata;
	char *rundir;
	char *logfile;
	char *opts; /* the server's options: its socket, no TCP */
	uid_t uid;
	gid_t gid;
	int as_other; /* we are root and the cluster runs as uid */

	/* Supervision, from the event loop. */
	struct event *watch;
	pid_t starter;     /* a pg_ctl start not yet reaped, or 0 */
	int down;          /* the postmaster was found gone */
	int attempts;      /* starts since it was last steady */
	time_t next_start; /* not before then */
	time_t running_since;
};

/* Starts bindir/prog with args as the cluster's user, its stdout to the
 * cluster's log file; returns its pid, or -1. */
static pid_t spawn(const struct pgm *p, const char *prog, const char *const *args)
{
	char path[4096];
	const char *argv[16];
	int n = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", p->bindir, prog);
	argv[n++] = path;
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(p->logfile, O_WRONLY | O_APPEND | O_CREAT, 0600);
		if (p->as_other &&
		    (setgroups(0, NULL) == -1 || setgid(p->gid) == -1 || setuid(p->uid) == -1))
			_exit(126);
		if (fd != -1)
			dup2(fd, STDOUT_FILENO);
		/* Nothing of the daemon's (its listening sockets above all) may
		 * live on in the postmaster pg_ctl starts. */
		close_range(3, ~0U, 0);
		if (chdir("/") == -1)
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Runs bindir/prog with args as the cluster's user; returns its exit status
 * or -1. */
static int run(const struct pgm *p, const char *prog, const char *const *args)
{
	pid_t pid = spawn(p, prog, args);
	int status;

	if (pid == -1)
		return -1;
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
	if (p->watch != NULL)
		event_free(p->watch);
	free(p->opts);
	free(p->bindir);
	free(p->pgdata);
	free(p->rundir);
	free(p->logfile);
	free(p);
}

struct pgm *pgm_start(const struct config *cfg, char **conninfo)
{
	struct pgm *p = xcalloc(1, sizeof(*p));

	p->bindir = xstrdup(cfg->pg_bindir);
	p->pgdata = xasprintf("%s/postgres", cfg->data_dir);
	p->rundir = xasprintf("%s/run", cfg->data_dir);
	p->logfile = xasprintf("%s/postgres.log", cfg->data_dir);
	p->opts = xasprintf("-k %s -c listen_addresses=''", p->rundir);
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
		const char *args[] = {"-D",  p->pgdata, "-l",    p->logfile, "-w", "-t",
		                      "120", "-o",      p->opts, "start",    NULL};
		if (run(p, "pg_ctl", args) != 0) {
			log_error("pgm: PostgreSQL did not start; see %s", p->logfile);
			goto fail;
		}
		log_info("pgm: PostgreSQL started in %s", p->pgdata);
	}
	if (create_database(p) == -1)
		goto fail;
	*conninfo = xasprintf("host=%s dbname=%s user=%s", p->rundir, PGM_DB, PGM_ROLE);
	return p;
fail:
	pgm_free(p);
	return NULL;
}

/* A process that has exited and waits to be reaped: a postmaster whose
 * parent (pg_ctl, gone) left it to an init that reaps late, or never, as
 * in some containers. kill() still finds it. */
static int zombie(pid_t pid)
{
	char path[64], line[512], *end = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	/* "pid (comm) state ...", where comm may hold spaces and parentheses. */
	if (fgets(line, sizeof(line), f) != NULL)
		end = strrchr(line, ')');
	fclose(f);
	return end != NULL && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X');
}

/* The postmaster named by postmaster.pid, if it is alive; 0 if none is. */
static pid_t postmaster(const struct pgm *p)
{
	char path[4200];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/postmaster.pid", p->pgdata);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno != EPERM) || zombie((pid_t)pid))
		return 0;
	return (pid_t)pid;
}

/* The pg_ctl start the watch ran, once it has exited. */
static void reap_starter(struct pgm *p)
{
	int status;
	pid_t r;

	if (p->starter == 0 || (r = waitpid(p->starter, &status, WNOHANG)) == 0)
		return;
	if (r == p->starter && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		log_error("pgm: starting PostgreSQL failed (pg_ctl exited %d); see %s",
		          WIFEXITED(status) ? WEXITSTATUS(status) : -1, p->logfile);
	p->starter = 0;
}

/* Once a second: is the postmaster there? A cluster that died (killed,
 * crashed, stopped by hand) is started again by pg_ctl in a child, not
 * waited for: the database pool reconnects by itself once it is up. Starts
 * back off from 1 s to 60 s while it will not stay up. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct pgm *p = arg;
	time_t now = time(NULL);
	pid_t pid;
	int backoff;

	(void)fd;
	(void)what;
	reap_starter(p);
	if ((pid = postmaster(p)) != 0) {
		if (p->down) {
			log_info("pgm: PostgreSQL is running again in %s (postmaster %ld)",
			         p->pgdata, (long)pid);
			p->down = 0;
			p->running_since = now;
		}
		if (p->attempts > 0 && now - p->running_since >= STEADY_SECONDS)
			p->attempts = 0;
		return;
	}
	if (!p->down) {
		p->down = 1;
		p->next_start = now;
	}
	if (p->starter != 0 || now < p->next_start)
		return;
	backoff = RESTART_MIN_SECONDS << (p->attempts < 6 ? p->attempts : 6);
	if (backoff > RESTART_MAX_SECONDS)
		backoff = RESTART_MAX_SECONDS;
	p->attempts++;
	p->next_start = now + backoff;
	log_error("pgm: PostgreSQL in %s is not running; starting it again (attempt %d; next "
	          "in %d s if it does not stay up)",
	          p->pgdata, p->attempts, backoff);
	const char *args[] = {"-D", p->pgdata, "-l",    p->logfile, "-W",
	                      "-o", p->opts,   "start", NULL};
	p->starter = spawn(p, "pg_ctl", args);
	if (p->starter == -1) {
		log_error("pgm: cannot run pg_ctl: %s", strerror(errno));
		p->starter = 0;
	}
}

void pgm_supervise(struct pgm *p, struct event_base *base)
{
	struct timeval every = {WATCH_SECONDS, 0};

	p->running_since = time(NULL);
	p->watch = event_new(base, -1, EV_PERSIST, on_watch, p);
	event_add(p->watch, &every);
}

void pgm_stop(struct pgm *p)
{
	if (p == NULL)
		return;
	if (p->watch != NULL) {
		event_free(p->watch);
		p->watch = NULL;
	}
	if (p->starter != 0)
		(void)waitpid(p->starter, NULL, 0); /* pg_ctl -W returns at once */
	const char *args[] = {"-D", p->pgdata, "-m", "fast", "-w", "-t", "60", "stop", NULL};
	if (run(p, "pg_ctl", args) != 0)
		log_warn("pgm: PostgreSQL did not stop cleanly; see %s", p->logfile);
	else
		log_info("pgm: PostgreSQL stopped");
	pgm_free(p);
}
