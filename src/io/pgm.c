#include "pgm.h"

#include "log.h"
#include "mem.h"

#include <dirent.h>
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

	/* Backups ([backup]): WAL archived by PostgreSQL itself, base backups
	 * made by pg_basebackup in a child, looked at once a minute. */
	int backup;       /* on */
	char *backup_dir; /* DIR, holding wal/ and base/ */
	int keep_days, base_every_days;
	pid_t basebackup;        /* a pg_basebackup at work, or 0 */
	char base_name[32];      /* what it is making: DIR/base/NAME.part */
	time_t next_backup;      /* the next look */
	PGconn *stats;           /* for pg_stat_archiver */
	struct pgm_backup state; /* as last looked at */
};

/* Starts bindir/prog (or prog, a full path) with args as the cluster's
 * user, its stdout to the cluster's log file; returns its pid, or -1. */
static pid_t spawn(const struct pgm *p, const char *prog, const char *const *args)
{
	char path[4096];
	const char *argv[16];
	int n = 0;
	pid_t pid;

	if (prog[0] == '/')
		snprintf(path, sizeof(path), "%s", prog);
	else
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
	PQfinish(p->stats);
	free(p->backup_dir);
	free(p->opts);
	free(p->bindir);
	free(p->pgdata);
	free(p->rundir);
	free(p->logfile);
	free(p);
}

/* The handle, without touching the cluster: its paths, its options, and
 * the user it runs as. NULL with why logged. */
static struct pgm *pgm_new(const struct config *cfg)
{
	struct pgm *p = xcalloc(1, sizeof(*p));

	p->bindir = xstrdup(cfg->pg_bindir);
	p->pgdata = xasprintf("%s/postgres", cfg->data_dir);
	p->rundir = xasprintf("%s/run", cfg->data_dir);
	p->logfile = xasprintf("%s/postgres.log", cfg->data_dir);
	p->backup = cfg->backup_enabled && cfg->backup_dir != NULL;
	if (p->backup) {
		p->backup_dir = xstrdup(cfg->backup_dir);
		p->keep_days = cfg->backup_keep_days;
		p->base_every_days = cfg->backup_base_every_days;
		/* PostgreSQL's continuous archiving: each segment copied, made
		 * durable, and only then named as archived. The command runs in
		 * a shell twice over (pg_ctl's, then the archiver's): the
		 * directory holds no quote, backslash, '$' or '%' (config.c). */
		p->opts = xasprintf(
		    "-k %s -c listen_addresses='' -c archive_mode=on -c archive_timeout=%d "
		    "-c \"archive_command=test ! -f '%s/wal/%%f' && cp '%%p' '%s/wal/%%f.part' && "
		    "sync '%s/wal/%%f.part' && mv '%s/wal/%%f.part' '%s/wal/%%f' && sync "
		    "'%s/wal'\"",
		    p->rundir, cfg->backup_archive_timeout, p->backup_dir, p->backup_dir,
		    p->backup_dir, p->backup_dir, p->backup_dir, p->backup_dir);
	} else {
		p->opts = xasprintf("-k %s -c listen_addresses=''", p->rundir);
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->pg_user);
		if (pw == NULL || pw->pw_uid == 0) {
			log_error(
			    "pgm: running as root, the cluster needs an unprivileged user, but "
			    "pg_user '%s' %s",
			    cfg->pg_user, pw == NULL ? "does not exist" : "is root");
			pgm_free(p);
			return NULL;
		}
		p->as_other = 1;
		p->uid = pw->pw_uid;
		p->gid = pw->pw_gid;
	}
	return p;
}

/* DIR, DIR/wal and DIR/base, the cluster's user's. */
static int make_backup_dirs(const struct pgm *p)
{
	char wal[4200], base[4200];

	snprintf(wal, sizeof(wal), "%s/wal", p->backup_dir);
	snprintf(base, sizeof(base), "%s/base", p->backup_dir);
	if (make_dir(p, p->backup_dir, 0700) == -1 || make_dir(p, wal, 0700) == -1 ||
	    make_dir(p, base, 0700) == -1) {
		log_error("pgm: cannot make the backup directory %s", p->backup_dir);
		return -1;
	}
	return 0;
}

struct pgm *pgm_start(const struct config *cfg, char **conninfo)
{
	struct pgm *p = pgm_new(cfg);

	if (p == NULL)
		return NULL;
	if (pgm_init(p, cfg) == -1 || (p->backup && make_backup_dirs(p) == -1))
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

static void backup_tick(struct pgm *p, time_t now);
static void remove_base(const char *dir);

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
		if (p->backup)
			backup_tick(p, now);
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
	p->next_backup = p->running_since + 5; /* a first base backup soon after start */
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
	if (p->basebackup != 0) {
		char part[4200];
		kill(p->basebackup, SIGTERM);
		(void)waitpid(p->basebackup, NULL, 0);
		snprintf(part, sizeof(part), "%s/base/%s.part", p->backup_dir, p->base_name);
		remove_base(part);
		log_info("pgm: base backup %s left unfinished at shutdown", p->base_name);
	}
	const char *args[] = {"-D", p->pgdata, "-m", "fast", "-w", "-t", "60", "stop", NULL};
	if (run(p, "pg_ctl", args) != 0)
		log_warn("pgm: PostgreSQL did not stop cleanly; see %s", p->logfile);
	else
		log_info("pgm: PostgreSQL stopped");
	pgm_free(p);
}

/* ---- backups ------------------------------------------------------------ */

#define BACKUP_LOOK_SECONDS 60  /* how often the backups are looked at */
#define BASE_RETRY_SECONDS 3600 /* after a base backup failed */
#define BASE_NAME_LEN 16        /* YYYYMMDDTHHMMSSZ */

/* A base backup's name as a time; -1 for a name that is not one. */
static time_t base_time(const char *name)
{
	struct tm tm = {0};
	const char *end;

	if (strlen(name) != BASE_NAME_LEN)
		return -1;
	end = strptime(name, "%Y%m%dT%H%M%SZ", &tm);
	return end != NULL && *end == '\0' ? timegm(&tm) : -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The finished base backups under dir/base, oldest first, into names
 * (each BASE_NAME_LEN + 1 bytes); how many, at most max. */
static int list_bases(const char *dir, char (*names)[BASE_NAME_LEN + 1], int max)
{
	char path[4200];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/base", dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max)
		if (base_time(e->d_name) != -1)
			snprintf(names[n++], BASE_NAME_LEN + 1, "%.16s", e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), by_name);
	return n;
}

/* Bytes under path, down to depth levels of directories. */
static long long tree_bytes(const char *path, int depth)
{
	char sub[4200];
	struct dirent *e;
	struct stat st;
	long long total = 0;
	DIR *d;

	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (lstat(sub, &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			total += depth > 0 ? tree_bytes(sub, depth - 1) : 0;
		else if (S_ISREG(st.st_mode))
			total += st.st_size;
	}
	closedir(d);
	return total;
}

/* Removes a base backup's directory and the files in it. */
static void remove_base(const char *dir)
{
	char sub[4200];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
				snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
				if (unlink(sub) == -1)
					log_warn("pgm: cannot remove %s: %s", sub, strerror(errno));
			}
		closedir(d);
	}
	if (rmdir(dir) == -1 && errno != ENOENT)
		log_warn("pgm: cannot remove %s: %s", dir, strerror(errno));
}

/* The label file PostgreSQL archived for base backup name (NNN.backup,
 * "LABEL: name"), into out; 0, or -1 when there is none. */
static int backup_label(const char *dir, const char *name, char *out, size_t len)
{
	char path[4200], line[256], want[64];
	struct dirent *e;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "%s/wal", dir);
	snprintf(want, sizeof(want), "LABEL: %s\n", name);
	if ((d = opendir(path)) == NULL)
		return -1;
	while (!found && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		FILE *f;
		if (n < 8 || strcmp(e->d_name + n - 7, ".backup") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/wal/%s", dir, e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL)
			if (strcmp(line, want) == 0) {
				snprintf(out, len, "%s", e->d_name);
				found = 1;
				break;
			}
		fclose(f);
	}
	closedir(d);
	return found ? 0 : -1;
}

/* Keeps what restores any point of the last keep_days: the base backups
 * made since, and the newest one made before; the rest go, with the WAL
 * archived before the oldest kept one (pg_archivecleanup). */
static void prune(struct pgm *p, time_t now)
{
	char names[256][BASE_NAME_LEN + 1], path[4200], label[128], wal[4200];
	time_t cutoff = now - (time_t)p->keep_days * 86400;
	int n = list_bases(p->backup_dir, names, 256), first = 0;

	for (int i = 0; i < n; i++)
		if (base_time(names[i]) <= cutoff)
			first = i; /* the newest made before the window */
	for (int i = 0; i < first; i++) {
		snprintf(path, sizeof(path), "%.4000s/base/%.16s", p->backup_dir, names[i]);
		log_info("pgm: removing base backup %s, older than %d days", names[i],
		         p->keep_days);
		remove_base(path);
	}
	if (n == 0 || backup_label(p->backup_dir, names[first], label, sizeof(label)) == -1)
		return;
	snprintf(wal, sizeof(wal), "%s/wal", p->backup_dir);
	const char *args[] = {wal, label, NULL};
	if (run(p, "pg_archivecleanup", args) != 0)
		log_warn("pgm: pg_archivecleanup in %s failed; see %s", wal, p->logfile);
}

/* A finished pg_basebackup: named, or its remains removed. Whether one
 * finished. */
static int reap_basebackup(struct pgm *p, time_t now)
{
	char part[4200], done[4200];
	int status;
	pid_t r;

	if (p->basebackup == 0 || (r = waitpid(p->basebackup, &status, WNOHANG)) == 0)
		return 0;
	p->basebackup = 0;
	snprintf(part, sizeof(part), "%s/base/%s.part", p->backup_dir, p->base_name);
	snprintf(done, sizeof(done), "%s/base/%s", p->backup_dir, p->base_name);
	if (r == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || rename(part, done) == -1) {
		log_warn("pgm: base backup %s failed; trying again in an hour; see %s",
		         p->base_name, p->logfile);
		remove_base(part);
		p->next_backup = now + BASE_RETRY_SECONDS;
		return 1;
	}
	log_info("pgm: base backup %s made (%lld bytes)", p->base_name, tree_bytes(done, 0));
	prune(p, now);
	return 1;
}

/* pg_basebackup in a child, when the newest base backup is old enough. */
static void start_basebackup(struct pgm *p, time_t now, time_t newest)
{
	char part[4200];
	struct tm tm;

	if (p->basebackup != 0 ||
	    (newest != 0 && now - newest < (time_t)p->base_every_days * 86400))
		return;
	gmtime_r(&now, &tm);
	strftime(p->base_name, sizeof(p->base_name), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(part, sizeof(part), "%s/base/%s.part", p->backup_dir, p->base_name);
	remove_base(part);
	const char *args[] = {"-h", p->rundir, "-U", PGM_ROLE, "-D", part,         "-Ft", "-z",
	                      "-X", "stream",  "-c", "fast",   "-l", p->base_name, "-w",  NULL};
	log_info("pgm: making base backup %s in %s", p->base_name, p->backup_dir);
	p->basebackup = spawn(p, "pg_basebackup", args);
	if (p->basebackup == -1) {
		log_error("pgm: cannot run pg_basebackup: %s", strerror(errno));
		p->basebackup = 0;
		p->next_backup = now + BASE_RETRY_SECONDS;
	}
}

/* What PostgreSQL's archiver says (pg_stat_archiver); a failure not seen
 * before is logged. Blocking, on a local socket, once a minute. */
static void read_archiver(struct pgm *p)
{
	PGresult *r;

	if (p->stats == NULL || PQstatus(p->stats) != CONNECTION_OK) {
		char conninfo[4200];
		PQfinish(p->stats);
		snprintf(conninfo, sizeof(conninfo),
		         "host=%s dbname=postgres user=%s connect_timeout=2", p->rundir, PGM_ROLE);
		p->stats = PQconnectdb(conninfo);
		if (PQstatus(p->stats) != CONNECTION_OK)
			return;
	}
	r = PQexec(p->stats, "SELECT failed_count, coalesce(last_failed_wal, ''), "
	                     "coalesce(extract(epoch FROM last_failed_time)::bigint, 0), "
	                     "coalesce(last_archived_wal, ''), "
	                     "coalesce(extract(epoch FROM last_archived_time)::bigint, 0) "
	                     "FROM pg_stat_archiver");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		struct pgm_backup *st = &p->state;
		long long before = st->failed;
		st->failed = atoll(PQgetvalue(r, 0, 0));
		snprintf(st->last_failed_wal, sizeof(st->last_failed_wal), "%s",
		         PQgetvalue(r, 0, 1));
		st->last_failed_at = (time_t)atoll(PQgetvalue(r, 0, 2));
		snprintf(st->last_wal, sizeof(st->last_wal), "%s", PQgetvalue(r, 0, 3));
		st->last_wal_at = (time_t)atoll(PQgetvalue(r, 0, 4));
		if (st->failed > before)
			log_warn(
			    "pgm: archiving WAL to %s/wal failed (%lld times so far, last %s); the "
			    "bank goes on, but what is not archived cannot be restored: see %s",
			    p->backup_dir, st->failed, st->last_failed_wal, p->logfile);
	} else {
		PQfinish(p->stats);
		p->stats = NULL;
	}
	PQclear(r);
}

/* Once a minute: the archiver read, a base backup begun, and the state
 * kept for status and metrics; the state again as soon as a base backup
 * ends. */
static void backup_tick(struct pgm *p, time_t now)
{
	char names[256][BASE_NAME_LEN + 1], path[4200];
	int finished = reap_basebackup(p, now), due = now >= p->next_backup, n;

	if (!due && !finished)
		return;
	if (due) {
		p->next_backup = now + BACKUP_LOOK_SECONDS;
		read_archiver(p);
	}
	n = list_bases(p->backup_dir, names, 256);
	if (due)
		start_basebackup(p, now, n > 0 ? base_time(names[n - 1]) : 0);
	p->state.bases = n;
	p->state.base_running = p->basebackup != 0;
	snprintf(p->state.oldest_base, sizeof(p->state.oldest_base), "%s", n > 0 ? names[0] : "");
	snprintf(p->state.newest_base, sizeof(p->state.newest_base), "%s",
	         n > 0 ? names[n - 1] : "");
	p->state.newest_base_at = n > 0 ? base_time(names[n - 1]) : 0;
	if (n > 0) {
		snprintf(path, sizeof(path), "%s/base/%s", p->backup_dir, names[n - 1]);
		p->state.newest_base_bytes = tree_bytes(path, 0);
	}
	p->state.bytes = tree_bytes(p->backup_dir, 2);
}

void pgm_backup_state(const struct pgm *p, struct pgm_backup *out)
{
	memset(out, 0, sizeof(*out));
	if (p == NULL || !p->backup)
		return;
	*out = p->state;
	out->enabled = 1;
	out->dir = p->backup_dir;
	out->keep_days = p->keep_days;
	out->base_every_days = p->base_every_days;
}

const char *pgm_backup_dir(const struct pgm *p)
{
	return p != NULL && p->backup ? p->backup_dir : NULL;
}

/* A restore's target as PostgreSQL takes it: "YYYY-MM-DD HH:MM:SS+00" from
 * that or "YYYY-MM-DDTHH:MM:SSZ" (UTC), into out, and as a time. -1 for
 * anything else. */
static time_t restore_target(const char *to, char *out, size_t len)
{
	struct tm tm = {0};
	const char *end = strptime(to, "%Y-%m-%d %H:%M:%S", &tm);

	if (end == NULL)
		end = strptime(to, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL || !(*end == '\0' || strcmp(end, "Z") == 0 || strcmp(end, "+00") == 0 ||
	                     strcmp(end, "+00:00") == 0))
		return -1;
	strftime(out, len, "%Y-%m-%d %H:%M:%S+00", &tm);
	return timegm(&tm);
}

/* Runs prog as the cluster's user, as run() does, saying what failed. */
static int run_or_say(const struct pgm *p, const char *prog, const char *const *args)
{
	int rc = run(p, prog, args);

	if (rc != 0)
		log_error("pgm: %s %s failed (%d); see %s", prog, args[0], rc, p->logfile);
	return rc == 0 ? 0 : -1;
}

/* Waits until the cluster has finished recovery and is promoted. */
static int wait_promoted(const struct pgm *p)
{
	char conninfo[4200];

	snprintf(conninfo, sizeof(conninfo), "host=%s dbname=postgres user=%s connect_timeout=5",
	         p->rundir, PGM_ROLE);
	for (int i = 0; i < 7200; i++) {
		PGconn *c = PQconnectdb(conninfo);
		int done = 0;
		if (PQstatus(c) == CONNECTION_OK) {
			PGresult *r = PQexec(c, "SELECT NOT pg_is_in_recovery()");
			done = PQresultStatus(r) == PGRES_TUPLES_OK &&
			       strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			PQclear(r);
		}
		PQfinish(c);
		if (done)
			return 0;
		usleep(500 * 1000);
	}
	log_error("pgm: the restored cluster did not finish its recovery in an hour; see %s",
	          p->logfile);
	return -1;
}

int pgm_restore(const struct config *cfg, const char *to)
{
	char names[256][BASE_NAME_LEN + 1], target[64] = "", aside[4300], base[4100], tarball[4200];
	char signal_file[4200], opts[8192], stamp[32], walball[4300], waldir[4200];
	struct pgm *p;
	struct stat st;
	time_t now = time(NULL), when = now;
	int n, chosen = -1, fd, rc = -1;
	struct tm tm;

	if (!cfg->db_managed || cfg->backup_dir == NULL) {
		log_error("pgm: --restore is for a managed cluster with backups ([backup]); an "
		          "external database is restored with its own tools");
		return -1;
	}
	if (to != NULL && (when = restore_target(to, target, sizeof(target))) == -1) {
		log_error("pgm: --to %s: give a UTC time, like 2026-12-04 09:30:00", to);
		return -1;
	}
	if ((p = pgm_new(cfg)) == NULL)
		return -1;
	if (pgm_running(p)) {
		log_error("pgm: PostgreSQL is running in %s: stop the bank first", p->pgdata);
		goto out;
	}
	n = list_bases(p->backup_dir, names, 256);
	for (int i = 0; i < n; i++)
		if (base_time(names[i]) <= when)
			chosen = i;
	if (chosen == -1) {
		log_error("pgm: no base backup in %s/base from before %s", p->backup_dir,
		          to != NULL ? to : "now");
		goto out;
	}
	snprintf(base, sizeof(base), "%.4000s/base/%.16s", p->backup_dir, names[chosen]);
	snprintf(tarball, sizeof(tarball), "%s/base.tar.gz", base);
	snprintf(walball, sizeof(walball), "%s/pg_wal.tar.gz", base);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, sizeof(aside), "%s.before-restore-%s", p->pgdata, stamp);
	if (stat(p->pgdata, &st) == 0 && rename(p->pgdata, aside) == -1) {
		log_error("pgm: cannot move %s aside: %s", p->pgdata, strerror(errno));
		goto out;
	}
	if (stat(p->pgdata, &st) == 0 || errno != ENOENT || make_dir(p, p->pgdata, 0700) == -1)
		goto out;
	log_info("pgm: restoring %s from base backup %s%s%s; the cluster that was there is kept "
	         "as %s",
	         p->pgdata, names[chosen], to != NULL ? " to " : " to the newest point archived",
	         target, aside);
	const char *untar[] = {"-xzf", tarball, "-C", p->pgdata, NULL};
	snprintf(waldir, sizeof(waldir), "%s/pg_wal", p->pgdata);
	const char *untar_wal[] = {"-xzf", walball, "-C", waldir, NULL};
	if (run_or_say(p, "/bin/tar", untar) == -1 ||
	    (stat(walball, &st) == 0 && run_or_say(p, "/bin/tar", untar_wal) == -1))
		goto out;
	snprintf(signal_file, sizeof(signal_file), "%s/recovery.signal", p->pgdata);
	if ((fd = open(signal_file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (p->as_other && fchown(fd, p->uid, p->gid) == -1)) {
		log_error("pgm: cannot write %s: %s", signal_file, strerror(errno));
		if (fd != -1)
			close(fd);
		goto out;
	}
	close(fd);
	/* PostgreSQL's own recovery: the archive's WAL replayed to the target
	 * (or to its end), then promoted to a new timeline. */
	snprintf(opts, sizeof(opts),
	         "%s -c \"restore_command=cp '%s/wal/%%f' '%%p'\" -c "
	         "recovery_target_action=promote%s%s%s",
	         p->opts, p->backup_dir, to != NULL ? " -c \"recovery_target_time='" : "", target,
	         to != NULL ? "'\"" : "");
	const char *start[] = {"-D",   p->pgdata, "-l", p->logfile, "-w", "-t",
	                       "3600", "-o",      opts, "start",    NULL};
	if (run_or_say(p, "pg_ctl", start) == -1 || wait_promoted(p) == -1) {
		if (to != NULL)
			log_error("pgm: where %s says the recovery target was not reached, %s is "
			          "past the newest point archived: give an earlier time, or none "
			          "for the newest",
			          p->logfile, to);
		goto stop;
	}
	if (pgm_mark_restored(cfg, to) == -1)
		goto stop;
	log_info("pgm: restored; the bank starts from there, and its peers are asked for what "
	         "it lost");
	rc = 0;
stop:;
	const char *halt[] = {"-D", p->pgdata, "-m", "fast", "-w", "-t", "120", "stop", NULL};
	if (run(p, "pg_ctl", halt) != 0)
		log_warn("pgm: the restored cluster did not stop cleanly; see %s", p->logfile);
out:
	pgm_free(p);
	return rc;
}

static void restored_path(const struct config *cfg, char *path, size_t len)
{
	snprintf(path, len, "%s/restored", cfg->data_dir);
}

int pgm_mark_restored(const struct config *cfg, const char *to)
{
	char path[4200], tmp[4300], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;

	if (mkdir(cfg->data_dir, 0700) == -1 && errno != EEXIST) {
		log_error("pgm: cannot make data_dir %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	restored_path(cfg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%s\n%s\n", stamp, to ? to : "") < 0 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
		log_error("pgm: cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int pgm_restored(const struct config *cfg, char *stamp, size_t stamp_len, char *target,
                 size_t target_len)
{
	char path[4200];
	FILE *f;

	restored_path(cfg, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	stamp[0] = target[0] = '\0';
	if (fgets(stamp, (int)stamp_len, f) == NULL || fgets(target, (int)target_len, f) == NULL)
		target[0] = '\0';
	fclose(f);
	stamp[strcspn(stamp, "\n")] = '\0';
	target[strcspn(target, "\n")] = '\0';
	return stamp[0] != '\0';
}

void pgm_restored_done(const struct config *cfg)
{
	char path[4200];

	restored_path(cfg, path, sizeof(path));
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("pgm: cannot remove %s: %s", path, strerror(errno));
}

int pgm_check_backup(const char *dir, FILE *out)
{
	char names[256][BASE_NAME_LEN + 1], path[4200], label[128];
	struct stat st;
	int n = list_bases(dir, names, 256), good = 0;

	if (n == 0) {
		fprintf(out, "%s: no base backup in %s/base\n", dir, dir);
		return -1;
	}
	for (int i = n - 1; i >= 0; i--) {
		snprintf(path, sizeof(path), "%.4000s/base/%.16s/base.tar.gz", dir, names[i]);
		int tarball = stat(path, &st) == 0 && st.st_size > 0;
		snprintf(path, sizeof(path), "%.4000s/base/%.16s/backup_manifest", dir, names[i]);
		int manifest = stat(path, &st) == 0;
		int labelled = backup_label(dir, names[i], label, sizeof(label)) == 0;
		fprintf(out, "%s: %s%s%s%s\n", names[i],
		        tarball && manifest && labelled ? "restorable" : "NOT restorable:",
		        tarball ? "" : " no base.tar.gz", manifest ? "" : " no backup_manifest",
		        labelled ? "" : " its label is not in the WAL archive");
		good += tarball && manifest && labelled;
	}
	return good > 0 ? 0 : -1;
}
