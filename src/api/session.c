/* The console's accounts and sessions. People sign in with a password
 * (users.h); a session is a random cookie (HttpOnly, SameSite=Strict) with
 * a CSRF token that every write made with it must carry. Failed sign-ins
 * are slowed per account (locked a while after a few) and per address.
 * Sessions live in memory: a restart signs everyone out. A password is
 * checked on a thread of its own, the rest on the loop. Coordinators make
 * and remove accounts; each account sets its password once with a one-time
 * setup code. */
#include "internal.h"

#include "crypto.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "users.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SESSIONS_MAX 1024
#define FAILS_MAX 1024
#define ACCOUNT_FAILS 5    /* failed sign-ins before an account is locked, */
#define LOCK_SECONDS 900   /* for this long */
#define ADDRESS_FAILS 20   /* failed sign-ins from one address, */
#define ADDRESS_WINDOW 900 /* in this long, before it is slowed too */
#define SIGN_INS_PER_SECOND 8
#define SESSIONS_PER_USER 10
/* The cookie is named for the bank, tb_session_BANK: browsers send a
 * cookie to every port of a host, so two banks' consoles on one machine
 * would otherwise sign each other out. */
#define COOKIE_PREFIX "tb_session_"

struct session {
	int used;
	unsigned char id_hash[32]; /* of the cookie's value: the value itself is not kept */
	char csrf[65];
	char user[AUTH_NAME_MAX];
	enum auth_role role;
	long long org;
	time_t created, seen;
};

struct fail {
	char key[AUTH_NAME_MAX + 64]; /* NAME@ADDRESS, or an address */
	int count;
	time_t first, locked_until;
};

struct api_sessions {
	struct session s[SESSIONS_MAX];
	struct fail accounts[FAILS_MAX], addresses[FAILS_MAX];
	time_t second; /* sign-ins tried in this second */
	int tries;
	char cookie[sizeof(COOKIE_PREFIX) + 40];        /* tb_session_BANK */
	char secure_cookie[sizeof(COOKIE_PREFIX) + 48]; /* __Host-tb_session_BANK */
	/* Passwords are checked on threads of their own (scrypt takes 50 to
	 * 100 ms, which the loop's other requests and the federation would
	 * wait out); each thread, done, writes its job's address here. */
	int done[2];
	struct event *done_ev;
	int checking; /* threads at work */
};

/* One sign-in whose password a thread is checking. */
struct check_job {
	struct api_req *r;
	int done_fd;
	int found; /* the account exists */
	int ok;    /* the password is its own: set by the thread */
	struct users_account account;
	char password[USERS_PASSWORD_MAX + 1];
	char host[64];
};

#define CHECKING_MAX 4

static void signed_in(struct check_job *job);

static void on_checked(evutil_socket_t fd, short what, void *arg)
{
	struct api_sessions *s = arg;
	struct check_job *job;

	(void)what;
	while (read(fd, &job, sizeof(job)) == (ssize_t)sizeof(job)) {
		s->checking--;
		signed_in(job);
	}
}

struct api_sessions *api_sessions_new(struct event_base *base, const char *bank_id)
{
	struct api_sessions *s = xcalloc(1, sizeof(struct api_sessions));

	snprintf(s->cookie, sizeof(s->cookie), COOKIE_PREFIX "%s", bank_id);
	snprintf(s->secure_cookie, sizeof(s->secure_cookie), "__Host-" COOKIE_PREFIX "%s", bank_id);
	if (pipe2(s->done, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_error("api: no pipe for the password checks: %s", strerror(errno));
		free(s);
		return NULL;
	}
	s->done_ev = event_new(base, s->done[0], EV_READ | EV_PERSIST, on_checked, s);
	event_add(s->done_ev, NULL);
	return s;
}

void api_sessions_free(struct api_sessions *s)
{
	if (s == NULL)
		return;
	event_free(s->done_ev);
	close(s->done[0]);
	close(s->done[1]);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

static void *check_password(void *arg)
{
	struct check_job *job = arg;
	ssize_t w;

	job->ok = users_check_password(job->found ? &job->account : NULL, job->password);
	OPENSSL_cleanse(job->password, sizeof(job->password));
	/* A pointer is under PIPE_BUF: written whole, or not at all. */
	do
		w = write(job->done_fd, &job, sizeof(job));
	while (w == -1 && errno == EINTR);
	return NULL;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* The session cookie's name for r: over TLS (the daemon's or a proxy's),
 * __Host-tb_session_BANK, which a browser keeps only as this host's,
 * secure, for every path, so that nothing served over plain HTTP or from
 * another host of the domain can plant one; else tb_session_BANK. */
static const char *cookie_of(const struct api_req *r)
{
	const struct api_sessions *s = r->api->sessions;

	return api_limits(r->api)->behind_proxy || http_req_tls(r->req) ? s->secure_cookie
	                                                                : s->cookie;
}

/* The value of the session cookie in a Cookie header, into out (65 bytes);
 * 0, or -1 when there is none of the right shape. */
static int cookie_value(const char *cookie, const char *header, char *out)
{
	const char *p = header;
	size_t n, name = strlen(cookie);
	int found = 0;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, cookie, name) == 0 && p[name] == '=') {
			p += name + 1;
			n = strcspn(p, "; ");
			/* Two of them: one was planted beside ours. */
			if (n != 64 || found)
				return -1;
			memcpy(out, p, 64);
			out[64] = '\0';
			found = 1;
		}
		p = strchr(p, ';');
	}
	return found ? 0 : -1;
}

static struct session *find_session(struct api_sessions *s, const char *value)
{
	unsigned char h[32];
	struct session *found = NULL;

	crypto_sha256((const uint8_t *)value, strlen(value), h);
	for (int i = 0; i < SESSIONS_MAX; i++)
		if (s->s[i].used && CRYPTO_memcmp(s->s[i].id_hash, h, 32) == 0)
			found = &s->s[i];
	return found;
}

int api_session_known(struct api_sessions *s, const char *cookies)
{
	char value[65];
	int known;

	/* Before the request is read: either name (it is only whether its body
	 * may be read). */
	if (cookies == NULL || (cookie_value(s->cookie, cookies, value) == -1 &&
	                        cookie_value(s->secure_cookie, cookies, value) == -1))
		return 0;
	known = find_session(s, value) != NULL;
	OPENSSL_cleanse(value, sizeof(value));
	return known;
}

int api_session_auth(struct api_req *r)
{
	const char *cookies = http_req_header(r->req, "Cookie");
	const char *method = http_req_method(r->req);
	const struct api_limits *lim = api_limits(r->api);
	const char *csrf = http_req_header(r->req, "X-CSRF-Token");
	time_t now = time(NULL);
	char value[65];
	struct session *se;

	if (cookies == NULL || cookie_value(cookie_of(r), cookies, value) == -1)
		return 0;
	se = find_session(r->api->sessions, value);
	OPENSSL_cleanse(value, sizeof(value));
	if (se != NULL &&
	    (now - se->seen > lim->session_idle || now - se->created > lim->session_max)) {
		OPENSSL_cleanse(se, sizeof(*se));
		se = NULL;
	}
	/* The account as the file has it now: removed or changed by hand, its
	 * sessions end. */
	if (se != NULL) {
		struct users_account a;
		int ok = users_find(r->api->users_file, se->user, &a) == 1 && a.has_password &&
		         a.role == se->role && a.org == se->org;
		OPENSSL_cleanse(&a, sizeof(a));
		if (!ok) {
			OPENSSL_cleanse(se, sizeof(*se));
			se = NULL;
		}
	}
	if (se == NULL) {
		api_reply_error(r, 401, "session_expired", "the session has ended; sign in again");
		return -1;
	}
	/* A write made with the cookie carries the session's own token: a
	 * page of another site cannot read it, so cannot send it. */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    (csrf == NULL || strlen(csrf) != 64 || CRYPTO_memcmp(csrf, se->csrf, 64) != 0)) {
		api_reply_error(r, 403, "csrf_failed",
		                "a write from the console needs its X-CSRF-Token header");
		return -1;
	}
	se->seen = now;
	r->role = se->role;
	r->org = se->org;
	snprintf(r->actor, sizeof(r->actor), "%s", se->user);
	snprintf(r->csrf, sizeof(r->csrf), "%s", se->csrf);
	return 1;
}

/* An entry that still counts: failures in its window, or a lock. */
static int live(const struct fail *f, time_t now)
{
	return f->locked_until > now || (f->count > 0 && now - f->first <= ADDRESS_WINDOW);
}

/* The entry for key in table, or (make) a new one in a place that no
 * longer counts; NULL when there is none, or the table is full of live
 * entries (never evicted, so that failures cannot be washed out). */
static struct fail *fail_of(struct fail *table, const char *key, time_t now, int make)
{
	struct fail *spare = NULL;

	for (int i = 0; i < FAILS_MAX; i++) {
		if (live(&table[i], now) && strcmp(table[i].key, key) == 0)
			return &table[i];
		if (spare == NULL && !live(&table[i], now))
			spare = &table[i];
	}
	if (!make || spare == NULL)
		return NULL;
	struct fail *oldest = spare;
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->key, sizeof(oldest->key), "%s", key);
	oldest->first = now;
	return oldest;
}

/* The client's address: the host part of the connection's "HOST:PORT"
 * ("[V6]:PORT"), or, behind a proxy on this machine, the address the
 * proxy put last in X-Forwarded-For (the one it saw; earlier ones are the
 * client's word). */
/* An IPv6 address stands for its /64: one household or office is given a
 * whole /64, and a stranger its 2^64 addresses; failed sign-ins are
 * counted per /64 (as connections are, gate.h). out is left as it is
 * otherwise. */
static void per_network(char *out, size_t len)
{
	char bare[64];
	struct in6_addr a;

	snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(out + (out[0] == '['), "]"),
	         out + (out[0] == '['));
	if (inet_pton(AF_INET6, bare, &a) != 1 || IN6_IS_ADDR_V4MAPPED(&a))
		return;
	memset(a.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a, bare, sizeof(bare)) != NULL)
		snprintf(out, len, "%.45s/64", bare);
}

static void client_of(const struct api_req *r, char *out, size_t len)
{
	const char *source = http_req_source(r->req);
	const char *colon = strrchr(source, ':');
	const char *fwd = http_req_header_last(r->req, "X-Forwarded-For");
	size_t n = colon != NULL ? (size_t)(colon - source) : strlen(source);

	/* Only a proxy on this machine is believed. */
	if (api_limits(r->api)->behind_proxy && fwd != NULL &&
	    (strncmp(source, "127.", 4) == 0 || strncmp(source, "[::1]", 5) == 0)) {
		const char *last = strrchr(fwd, ',');
		last = last != NULL ? last + 1 : fwd;
		while (*last == ' ')
			last++;
		snprintf(out, len, "%.*s", (int)strcspn(last, " "), last);
		per_network(out, len);
		return;
	}
	snprintf(out, len, "%.*s", (int)n, source);
	per_network(out, len);
}

static void reply_json(struct api_req *r, int status, const char *headers, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);

	api_reply_with(r, status, headers, text);
	free(text);
	json_decref(j);
}

/* An account's failures are counted from each address apart: a stranger
 * who guesses wrong locks the account against themself, not against the
 * person it belongs to. */
static void account_key(const char *name, const char *host, char *out, size_t len)
{
	snprintf(out, len, "%s@%s", name, host);
}

static void sign_in_failed(struct api_req *r, const char *name, const char *host, time_t now)
{
	char key[AUTH_NAME_MAX + 64];
	struct fail *a, *ad;

	account_key(name, host, key, sizeof(key));
	a = fail_of(r->api->sessions->accounts, key, now, 1);
	ad = fail_of(r->api->sessions->addresses, host, now, 1);
	if (a == NULL || ad == NULL) {
		api_reply_error(r, 429, "too_many_attempts",
		                "too many failed sign-ins just now; wait a few minutes");
		return;
	}
	ad->count++;
	if (++a->count >= ACCOUNT_FAILS) {
		a->locked_until = now + LOCK_SECONDS;
		a->count = 0;
		log_warn("api: account %s locked for %d minutes against %s after %d failed "
		         "sign-ins from there",
		         name, LOCK_SECONDS / 60, host, ACCOUNT_FAILS);
	}
	api_reply_error(r, 401, "invalid_credentials", "the name or the password is wrong");
}

/* POST /v1/session {"name", "password"}: signs in, once a thread has
 * checked the password (signed_in answers). */
void api_session_start(struct api_req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *password = json_string_value(json_object_get(r->body, "password"));
	struct api_sessions *s = r->api->sessions;
	time_t now = time(NULL);
	struct check_job *job;
	struct fail *locked, *ad;
	char key[AUTH_NAME_MAX + 64];
	pthread_t thread;
	pthread_attr_t attr;
	int found, started;

	if (!json_is_object(r->body) || json_object_size(r->body) != 2 || name == NULL ||
	    password == NULL || strlen(password) > USERS_PASSWORD_MAX || !auth_valid_name(name)) {
		api_reply_error(r, 400, "invalid_request", "give the name and the password");
		return;
	}
	job = xcalloc(1, sizeof(*job));
	client_of(r, job->host, sizeof(job->host));
	account_key(name, job->host, key, sizeof(key));
	ad = fail_of(s->addresses, job->host, now, 0);
	locked = fail_of(s->accounts, key, now, 0);
	/* scrypt's work: at most a few sign-ins a second, from anyone. */
	if (s->second != now) {
		s->second = now;
		s->tries = 0;
	}
	if (++s->tries > SIGN_INS_PER_SECOND || s->checking >= CHECKING_MAX) {
		free(job);
		api_reply_error(r, 503, "busy", "too many sign-ins at once; retry in a second");
		return;
	}
	if (ad != NULL && ad->count >= ADDRESS_FAILS && now - ad->first <= ADDRESS_WINDOW) {
		free(job);
		api_reply_error(r, 429, "too_many_attempts",
		                "too many failed sign-ins from this address; wait %ld minutes",
		                (long)(ADDRESS_WINDOW - (now - ad->first)) / 60 + 1);
		return;
	}
	if (locked != NULL && locked->locked_until > now) {
		free(job);
		api_reply_error(
		    r, 429, "account_locked",
		    "this account is locked after failed sign-ins; wait %ld minutes, or "
		    "ask a coordinator",
		    (long)(locked->locked_until - now) / 60 + 1);
		return;
	}
	found = users_find(r->api->users_file, name, &job->account);
	if (found == -1) {
		free(job);
		log_error("api: cannot read the users file %s", r->api->users_file);
		api_reply_error(r, 500, "internal_error", "the accounts cannot be read");
		return;
	}
	/* An unknown name is checked all the same, against nothing, so that it
	 * costs what a wrong password does; its name is kept for the count. */
	if (found != 1)
		snprintf(job->account.name, sizeof(job->account.name), "%s", name);
	job->r = r;
	job->found = found == 1;
	job->done_fd = s->done[1];
	snprintf(job->password, sizeof(job->password), "%s", password);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&thread, &attr, check_password, job) == 0;
	pthread_attr_destroy(&attr);
	if (!started) {
		OPENSSL_cleanse(job, sizeof(*job));
		free(job);
		api_reply_error(r, 503, "busy",
		                "no thread to check the password; retry in a second");
		return;
	}
	s->checking++;
}

/* The thread has checked job's password: a session and its cookie, or a
 * failure counted. */
static void signed_in(struct check_job *job)
{
	struct api_req *r = job->r;
	struct api_sessions *s = r->api->sessions;
	struct users_account *account = &job->account;
	time_t now = time(NULL);
	struct session *se = &s->s[0];
	struct fail *locked;
	unsigned char id[32], csrf[32];
	char value[65], headers[256], key[AUTH_NAME_MAX + 64];
	int mine = 0;

	if (!job->ok) {
		sign_in_failed(r, account->name, job->host, now);
		OPENSSL_cleanse(job, sizeof(*job));
		free(job);
		return;
	}
	account_key(account->name, job->host, key, sizeof(key));
	if ((locked = fail_of(s->accounts, key, now, 0)) != NULL)
		memset(locked, 0, sizeof(*locked));
	/* A place: the account's own unused longest once it has its share, or
	 * a free one, or the one unused longest. */
	for (int i = 0; i < SESSIONS_MAX; i++)
		mine += s->s[i].used && strcmp(s->s[i].user, account->name) == 0;
	for (int i = 0, chosen = 0; i < SESSIONS_MAX; i++) {
		struct session *c = &s->s[i];
		if (mine >= SESSIONS_PER_USER) {
			if (c->used && strcmp(c->user, account->name) == 0 &&
			    (!chosen || c->seen < se->seen))
				se = c, chosen = 1;
		} else if (!c->used) {
			se = c;
			break;
		} else if (c->seen < se->seen) {
			se = c;
		}
	}
	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(csrf, sizeof(csrf)) != 1) {
		OPENSSL_cleanse(job, sizeof(*job));
		free(job);
		api_reply_error(r, 500, "internal_error", "no randomness available");
		return;
	}
	memset(se, 0, sizeof(*se));
	hex(id, sizeof(id), value);
	crypto_sha256((const uint8_t *)value, 64, se->id_hash);
	hex(csrf, sizeof(csrf), se->csrf);
	snprintf(se->user, sizeof(se->user), "%s", account->name);
	se->role = account->role;
	se->org = account->org;
	se->created = se->seen = now;
	se->used = 1;
	snprintf(headers, sizeof(headers),
	         "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s\r\n",
	         cookie_of(r), value, api_limits(r->api)->session_max,
	         cookie_of(r) == s->secure_cookie ? "; Secure" : "");
	log_info("api: %s signed in from %s", account->name, job->host);
	reply_json(r, 200, headers,
	           json_pack("{ss ss ss si si}", "user", account->name, "role",
	                     auth_role_name(account->role), "csrf_token", se->csrf, "idle_seconds",
	                     api_limits(r->api)->session_idle, "max_seconds",
	                     api_limits(r->api)->session_max));
	OPENSSL_cleanse(id, sizeof(id));
	OPENSSL_cleanse(csrf, sizeof(csrf));
	OPENSSL_cleanse(value, sizeof(value));
	OPENSSL_cleanse(headers, sizeof(headers));
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
}

/* GET /v1/session: who is signed in (also for a token: its name and role),
 * at which bank, and a session's CSRF token. */
void api_session_get(struct api_req *r)
{
	json_t *j = json_pack("{ss ss ss ss}", "user", r->actor, "role", auth_role_name(r->role),
	                      "bank", r->api->bank_id, "bank_name", r->api->bank_name);

	if (r->org != 0)
		json_object_set_new(j, "org", json_integer(r->org));
	/* The page that signed in reads it again after a reload: only this
	 * daemon's own pages can read the answer (no CORS), and the cookie
	 * alone cannot write. */
	if (r->csrf[0] != '\0')
		json_object_set_new(j, "csrf_token", json_string(r->csrf));
	reply_json(r, 200, "", j);
}

/* DELETE /v1/session: signs out. */
void api_session_end(struct api_req *r)
{
	const char *cookies = http_req_header(r->req, "Cookie");
	const char *name = cookie_of(r);
	char value[65], clear[192];
	struct session *se = NULL;

	if (cookies != NULL && cookie_value(name, cookies, value) == 0) {
		se = find_session(r->api->sessions, value);
		OPENSSL_cleanse(value, sizeof(value));
	}
	if (se != NULL) {
		log_info("api: %s signed out", se->user);
		OPENSSL_cleanse(se, sizeof(*se));
	}
	snprintf(clear, sizeof(clear),
	         "Set-Cookie: %s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s\r\n", name,
	         name == r->api->sessions->secure_cookie ? "; Secure" : "");
	reply_json(r, 200, clear, json_pack("{ss}", "state", "signed out"));
}

/* Ends every session of user (an account removed or reset), and forgets
 * the failed sign-ins counted against it. */
static void end_sessions_of(struct api_sessions *s, const char *user)
{
	size_t n = strlen(user);

	for (int i = 0; i < SESSIONS_MAX; i++)
		if (s->s[i].used && strcmp(s->s[i].user, user) == 0)
			OPENSSL_cleanse(&s->s[i], sizeof(s->s[i]));
	for (int i = 0; i < FAILS_MAX; i++)
		if (strncmp(s->accounts[i].key, user, n) == 0 && s->accounts[i].key[n] == '@')
			memset(&s->accounts[i], 0, sizeof(s->accounts[i]));
}

/* A users-file result as the API's answer; 0 when it went through. */
static int users_reply(struct api_req *r, enum users_result rc, const char *err)
{
	static const struct {
		enum users_result rc;
		int status;
		const char *code;
	} map[] = {
	    {USERS_BAD_NAME, 400, "invalid_user_name"},
	    {USERS_DUPLICATE, 409, "duplicate_user_name"},
	    {USERS_NOT_FOUND, 404, "user_not_found"},
	    {USERS_BAD_CODE, 403, "invalid_setup_code"},
	    {USERS_WEAK, 400, "weak_password"},
	    {USERS_BAD_ORG, 400, "invalid_org"},
	};

	if (rc == USERS_OK)
		return 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].rc == rc) {
			api_reply_error(r, map[i].status, map[i].code, "%s", err);
			return -1;
		}
	log_error("api: users file: %s", err);
	api_reply_error(r, 500, "internal_error", "the accounts could not be changed");
	return -1;
}

static void reply_code(struct api_req *r, int status, const char *name, const char *role,
                       const char *code)
{
	char path[160];

	/* In the fragment, which no server or log is sent. */
	snprintf(path, sizeof(path), "/console/setup#user=%s&code=%s", name, code);
	reply_json(r, status, "",
	           json_pack("{ss ss ss ss ss si}", "name", name, "role", role, "setup_code", code,
	                     "setup_path", path, "state", "waiting for its password",
	                     "code_valid_seconds", USERS_CODE_SECONDS));
}

/* POST /v1/users {"name", "role", "org"}: an account and its setup code. */
void api_user_add(struct api_req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *role_name = json_string_value(json_object_get(r->body, "role"));
	const json_t *org = json_object_get(r->body, "org");
	char code[USERS_CODE_LEN + 1], err[256];
	enum auth_role role;
	int64_t num = 0;

	if (!json_is_object(r->body) || json_object_size(r->body) != 2 + (org != NULL) ||
	    name == NULL || role_name == NULL || auth_role_parse(role_name, &role) == -1 ||
	    (org != NULL && req_member_number(org, &num) == -1)) {
		api_reply_error(
		    r, 400, "invalid_request",
		    "give name, role (coordinator, broker, viewer or referrer) and, for "
		    "a referrer, org");
		return;
	}
	if (users_reply(r,
	                users_add(r->api->users_file, r->api->token_file, name, role, num, 0,
	                          time(NULL), code, err, sizeof(err)),
	                err) == -1)
		return;
	log_info("api: %s account %s made by %s", role_name, name, r->actor);
	reply_code(r, 201, name, role_name, code);
	OPENSSL_cleanse(code, sizeof(code));
}

/* POST /v1/users/NAME/reset: a new setup code; the password and sessions go. */
void api_user_reset(struct api_req *r)
{
	struct users_account a;
	char code[USERS_CODE_LEN + 1], err[256];

	if (users_reply(r,
	                users_add(r->api->users_file, r->api->token_file, r->name, ROLE_VIEWER, 0,
	                          1, time(NULL), code, err, sizeof(err)),
	                err) == -1)
		return;
	end_sessions_of(r->api->sessions, r->name);
	log_info("api: account %s reset by %s", r->name, r->actor);
	if (users_find(r->api->users_file, r->name, &a) != 1)
		a.role = ROLE_VIEWER;
	reply_code(r, 200, r->name, auth_role_name(a.role), code);
	OPENSSL_cleanse(code, sizeof(code));
	OPENSSL_cleanse(&a, sizeof(a));
}

/* POST /v1/users/NAME/remove */
void api_user_remove(struct api_req *r)
{
	char err[256];

	if (users_reply(r, users_remove(r->api->users_file, r->name, err, sizeof(err)), err) == -1)
		return;
	end_sessions_of(r->api->sessions, r->name);
	log_info("api: account %s removed by %s", r->name, r->actor);
	reply_json(r, 200, "", json_pack("{ssss}", "name", r->name, "state", "removed"));
}

/* GET /v1/users */
void api_user_list(struct api_req *r)
{
	struct users_account *all;
	json_t *items;
	int n;

	if (users_list(r->api->users_file, &all, &n) == -1) {
		api_reply_error(r, 500, "internal_error", "the accounts cannot be read");
		return;
	}
	items = json_array();
	for (int i = 0; i < n; i++) {
		json_t *item = json_pack(
		    "{ss ss ss sb ss*}", "name", all[i].name, "role", auth_role_name(all[i].role),
		    "state", all[i].has_password ? "active" : "waiting for its password",
		    "has_password", all[i].has_password, "created",
		    all[i].created[0] ? all[i].created : NULL);
		if (all[i].org != 0)
			json_object_set_new(item, "org", json_integer(all[i].org));
		json_array_append_new(items, item);
	}
	if (all != NULL)
		OPENSSL_cleanse(all, (size_t)n * sizeof(*all));
	free(all);
	reply_json(r, 200, "", json_pack("{so}", "items", items));
}

/* POST /v1/users/setup {"name", "code", "password"}: no token; the code is
 * the secret, used once. */
void api_user_setup(struct api_req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *code = json_string_value(json_object_get(r->body, "code"));
	const char *password = json_string_value(json_object_get(r->body, "password"));
	char err[256], host[64];

	client_of(r, host, sizeof(host));
	if (!json_is_object(r->body) || json_object_size(r->body) != 3 || name == NULL ||
	    code == NULL || password == NULL || strlen(code) > 128 ||
	    strlen(password) > USERS_PASSWORD_MAX) {
		api_reply_error(r, 400, "invalid_request", "give name, code and password");
		return;
	}
	if (users_reply(r,
	                users_set_password(r->api->users_file, name, code, password, time(NULL),
	                                   err, sizeof(err)),
	                err) == -1)
		return;
	log_info("api: account %s set its password (from %s)", name, host);
	reply_json(r, 200, "", json_pack("{ssss}", "name", name, "state", "active"));
}
