/* tbload: the load generator of make bench. Many keep-alive HTTP/1.1
 * connections to one timebankd, each recording exchanges one after the
 * other for a given time (POST /v1/exchanges, each with its own
 * idempotency key). Prints a JSON summary: requests, rate, latency
 * percentiles, refusals by status. With --xids FILE it also writes, for
 * each exchange recorded, its id and when it was sent (for measuring when
 * a cross-bank exchange settles). --earner-bank names the earners' bank,
 * or several, comma-separated, one picked at random for each exchange.
 * With --rate R the load is offered at R exchanges a second, whatever the
 * answers' pace (an open loop, as members' exchanges come), rather than as
 * fast as the connections are answered; one due while every connection
 * waits for an answer is counted as missed.
 *
 *   tbload --url http://127.0.0.1:8401 --token T [--connections 64]
 *          [--seconds 10] [--payers 1-100] [--earners 1-100]
 *          [--earner-bank westminster[,cheshire...]] [--rate R] [--xids FILE] */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define ANSWER_MAX (1 << 20)
#define TIMEOUT_S 60
#define TOKEN_MAX 512 /* so that every request fits in a client's out */
#define BANK_MAX 40
#define EARNER_BANKS_MAX 64

struct range {
	long lo, hi;
};

/* One keep-alive connection. It speaks HTTP/1.1 itself, over the socket:
 * a request is written with one send(), an answer read as it comes, and the
 * socket stays registered for reading throughout. libevent's HTTP client
 * cost this process about 20 µs per exchange under make bench's cross-bank
 * load, two thirds of it in the kernel (a write, two reads, an FIONREAD
 * and up to four epoll_ctl calls per request), on the same two cores as
 * the daemons it measures. */
struct client {
	struct load *load;
	int fd;
	struct event *ev;
	int id;
	unsigned long n;
	uint64_t sent_us;
	int busy; /* a request is out */
	unsigned seed;
	char out[2048];
	size_t out_len, out_off; /* what send() has not taken yet */
	char *in;                /* the answer read so far */
	size_t in_len, in_cap;
};

struct load {
	struct event_base *base;
	char host[128];
	int port;
	const char *token;
	char *earner_banks[EARNER_BANKS_MAX];
	int nbanks;
	struct range payers, earners;
	double rate; /* offered exchanges a second; 0: as fast as answered */
	unsigned long missed;
	unsigned seed;
	int connections, in_flight, stopping, failed;
	FILE *xids;
	uint32_t *latencies; /* microseconds, one per answered request */
	size_t nlat, caplat;
	unsigned long requests, ok, by_status[600];
	uint64_t start_us, end_us;
	struct addrinfo *addr;
	struct client clients[MAX_CONNECTIONS];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t wall_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

static long pick(struct range r, unsigned *seed)
{
	return r.lo + (long)(rand_r(seed) % (unsigned)(r.hi - r.lo + 1));
}

static void send_one(struct client *c);

/* The recorded exchange's id and when it was sent (wall clock, µs). The
 * ledger writes each answer with its id first, so that is read in place;
 * parsing all of every answer cost this process a quarter of its CPU. Any
 * other shape is parsed whole. */
static void write_xid(FILE *out, const char *body, size_t len, uint64_t sent)
{
	static const char head[] = "{\"id\":\"";
	const char *end;

	if (len > sizeof(head) - 1 && memcmp(body, head, sizeof(head) - 1) == 0 &&
	    (end = memchr(body + sizeof(head) - 1, '"', len - (sizeof(head) - 1))) != NULL &&
	    memchr(body, '\\', (size_t)(end - body)) == NULL) {
		fprintf(out, "%.*s %" PRIu64 "\n", (int)(end - body - (sizeof(head) - 1)),
		        body + sizeof(head) - 1, sent);
		return;
	}
	json_t *answer = json_loadb(body, len, 0, NULL);
	const char *id = json_string_value(json_object_get(answer, "id"));
	if (id != NULL)
		fprintf(out, "%s %" PRIu64 "\n", id, sent);
	json_decref(answer);
}

static void on_socket(evutil_socket_t fd, short what, void *arg);

static void resend(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (!((struct client *)arg)->load->stopping)
		send_one(arg);
}

static void hang_up(struct client *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	c->ev = NULL;
	c->fd = -1;
	c->in_len = 0;
}

/* The socket registered for what (EV_READ, with EV_WRITE while a request
 * is only partly sent); no answer within TIMEOUT_S is none. */
static void watch(struct client *c, short what)
{
	struct timeval tv = {TIMEOUT_S, 0};

	if (c->ev == NULL)
		c->ev = event_new(c->load->base, c->fd, what | EV_PERSIST, on_socket, c);
	else {
		event_del(c->ev);
		event_assign(c->ev, c->load->base, c->fd, what | EV_PERSIST, on_socket, c);
	}
	event_add(c->ev, &tv);
}

/* A connected socket, registered for reading (and for writing while a
 * request is only partly sent). -1 when the daemon cannot be reached. */
static int dial(struct client *c)
{
	struct load *l = c->load;
	int one = 1;

	c->fd = socket(l->addr->ai_family, l->addr->ai_socktype, l->addr->ai_protocol);
	if (c->fd < 0 || connect(c->fd, l->addr->ai_addr, l->addr->ai_addrlen) == -1) {
		int e = errno;
		hang_up(c);
		errno = e;
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(c->fd);
	watch(c, EV_READ);
	return 0;
}

/* The answer to the request in flight has come (status 100-599), or none
 * will (0); the next request goes on the same connection, or a new one. */
static void answered(struct client *c, int status, const char *body, size_t len, int keep)
{
	struct load *l = c->load;
	uint64_t took = now_us() - c->sent_us;

	l->in_flight--;
	c->busy = 0;
	l->requests++;
	l->by_status[status]++; /* 0: no answer */
	if (l->nlat == l->caplat) {
		l->caplat = l->caplat ? l->caplat * 2 : 65536;
		l->latencies = realloc(l->latencies, l->caplat * sizeof(*l->latencies));
	}
	l->latencies[l->nlat++] = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
	if (status == 201) {
		l->ok++;
		if (l->xids != NULL)
			write_xid(l->xids, body, len, wall_us() - took);
	}
	if (!keep)
		hang_up(c);
	else
		c->in_len = 0;
	if (l->stopping) {
		if (l->in_flight == 0)
			event_base_loopexit(l->base, NULL);
		return;
	}
	if (l->rate > 0)
		return;    /* the next goes when it is due (offer) */
	if (status == 0) { /* again on a new connection, after a pause */
		struct timeval pause = {0, 10000};
		event_base_once(l->base, -1, EV_TIMEOUT, resend, c, &pause);
		return;
	}
	send_one(c);
}

/* A header's value in a header block (name with its colon, any case), or
 * NULL. */
static const char *header(const char *head, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = memchr(head, '\n', (size_t)(end - head)); p != NULL && p + 1 < end;
	     p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
		if ((size_t)(end - p - 1) > n && strncasecmp(p + 1, name, n) == 0) {
			const char *v = p + 1 + n;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			return v;
		}
	}
	return NULL;
}

/* What has been read holds a whole answer: status, headers and a body of
 * Content-Length bytes. Returns 1 and answers it, 0 to read on, -1 when it
 * is not HTTP this can read. */
static int take_answer(struct client *c)
{
	char *end = c->in_len >= 4 ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
	const char *v;
	int status, keep;
	long length;

	if (end == NULL)
		return c->in_len > ANSWER_MAX ? -1 : 0;
	if (sscanf(c->in, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
		return -1;
	v = header(c->in, end + 2, "Content-Length:");
	if (v == NULL || (length = strtol(v, NULL, 10)) < 0 || length > ANSWER_MAX)
		return -1; /* the daemon always says how long its answers are */
	if ((size_t)(end + 4 - c->in) + (size_t)length > c->in_len)
		return 0;
	if ((size_t)(end + 4 - c->in) + (size_t)length < c->in_len)
		return -1; /* more than was asked for */
	v = header(c->in, end + 2, "Connection:");
	keep = v == NULL || strncasecmp(v, "close", 5) != 0;
	answered(c, status, end + 4, (size_t)length, keep);
	return 1;
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	ssize_t got;

	if (what & EV_WRITE) {
		got = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (got < 0 && errno != EAGAIN && errno != EINTR) {
			answered(c, 0, NULL, 0, 0);
			return;
		}
		if (got > 0 && (c->out_off += (size_t)got) == c->out_len)
			watch(c, EV_READ);
	}
	if (what & EV_TIMEOUT) {
		answered(c, 0, NULL, 0, 0);
		return;
	}
	if (!(what & EV_READ))
		return;
	if (c->in_cap - c->in_len < 4096) {
		c->in_cap = c->in_cap ? 2 * c->in_cap : 8192;
		c->in = realloc(c->in, c->in_cap);
	}
	got = recv(fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		answered(c, 0, NULL, 0, 0); /* closed, or failed, with no whole answer */
		return;
	}
	c->in_len += (size_t)got;
	c->in[c->in_len] = '\0';
	if (take_answer(c) == -1) {
		fprintf(stderr, "tbload: an answer that is not HTTP/1.1 with a Content-Length\n");
		answered(c, 0, NULL, 0, 0);
	}
}

static void send_one(struct client *c)
{
	struct load *l = c->load;
	char body[256], earner[80];
	long payer = pick(l->payers, &c->seed), who = pick(l->earners, &c->seed);
	ssize_t sent;
	int n;

	if (l->nbanks == 0 && who == payer)
		who = who < l->earners.hi ? who + 1 : l->earners.lo;
	if (l->nbanks > 0)
		snprintf(earner, sizeof(earner), "\"%s:%ld\"",
		         l->earner_banks[rand_r(&c->seed) % (unsigned)l->nbanks], who);
	else
		snprintf(earner, sizeof(earner), "%ld", who);
	n = snprintf(body, sizeof(body),
	             "{\"payer\": %ld, \"earner\": %s, \"minutes\": %d, \"category\": \"bench\", "
	             "\"idempotency_key\": \"ld-%d-%d-%lu\"}",
	             payer, earner, 15 + 15 * (rand_r(&c->seed) % 4), (int)getpid(), c->id, c->n++);
	c->out_len = (size_t)snprintf(c->out, sizeof(c->out),
	                              "POST /v1/exchanges HTTP/1.1\r\nHost: %s:%d\r\n"
	                              "Authorization: Bearer %s\r\n"
	                              "Content-Type: application/json\r\n"
	                              "Content-Length: %d\r\n\r\n%s",
	                              l->host, l->port, l->token, n, body);
	c->out_off = 0;
	c->sent_us = now_us();
	c->busy = 1;
	l->in_flight++;
	if (c->fd < 0 && dial(c) == -1) {
		if (!l->failed)
			fprintf(stderr, "tbload: cannot connect to %s:%d: %s\n", l->host, l->port,
			        strerror(errno));
		l->failed = 1;
		l->in_flight--;
		event_base_loopexit(l->base, NULL);
		return;
	}
	sent = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	if (sent < 0 && errno != EAGAIN && errno != EINTR) {
		answered(c, 0, NULL, 0, 0);
		return;
	}
	c->out_off = sent > 0 ? (size_t)sent : 0;
	if (c->out_off < c->out_len) /* the rest when the socket has room */
		watch(c, EV_READ | EV_WRITE);
}

/* An exchange is due (--rate): it goes on a connection with none out. */
static void offer(evutil_socket_t fd, short what, void *arg)
{
	struct load *l = arg;
	int start = (int)(rand_r(&l->seed) % (unsigned)l->connections);

	(void)fd;
	(void)what;
	if (l->stopping)
		return;
	for (int i = 0; i < l->connections; i++) {
		struct client *c = &l->clients[(start + i) % l->connections];
		if (!c->busy) {
			send_one(c);
			return;
		}
	}
	l->missed++;
}

/* The earners' banks, comma-separated; -1 when one is empty or too long. */
static int parse_banks(char *s, struct load *l)
{
	for (char *b = strtok(s, ","); b != NULL; b = strtok(NULL, ",")) {
		if (strlen(b) > BANK_MAX || l->nbanks == EARNER_BANKS_MAX)
			return -1;
		l->earner_banks[l->nbanks++] = b;
	}
	return l->nbanks > 0 ? 0 : -1;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct load *l = arg;

	(void)fd;
	(void)what;
	l->stopping = 1;
	l->end_us = now_us();
	if (l->in_flight == 0)
		event_base_loopexit(l->base, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double percentile_ms(const struct load *l, double p)
{
	size_t i;

	if (l->nlat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)l->nlat);
	return (i >= l->nlat ? l->latencies[l->nlat - 1] : l->latencies[i]) / 1000.0;
}

static int parse_range(const char *s, struct range *r)
{
	return sscanf(s, "%ld-%ld", &r->lo, &r->hi) == 2 && r->lo >= 1 && r->hi >= r->lo ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: tbload --url http://HOST:PORT --token T [--connections N] "
	                "[--seconds S] [--payers A-B] [--earners A-B] [--earner-bank B[,B...]] "
	                "[--rate R] [--xids FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct load l;
	const char *url = NULL, *xids = NULL;
	double seconds = 10;
	struct timeval tv;
	json_t *out, *errors;

	l.connections = 64;
	l.payers = (struct range){1, 100};
	l.earners = (struct range){1, 100};
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			usage();
		if (strcmp(argv[i], "--url") == 0)
			url = v;
		else if (strcmp(argv[i], "--token") == 0)
			l.token = v;
		else if (strcmp(argv[i], "--connections") == 0)
			l.connections = atoi(v);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(v);
		else if (strcmp(argv[i], "--payers") == 0 && parse_range(v, &l.payers) == 0)
			;
		else if (strcmp(argv[i], "--earners") == 0 && parse_range(v, &l.earners) == 0)
			;
		else if (strcmp(argv[i], "--earner-bank") == 0 && parse_banks(argv[i + 1], &l) == 0)
			;
		else if (strcmp(argv[i], "--rate") == 0 && (l.rate = atof(v)) > 0)
			;
		else if (strcmp(argv[i], "--xids") == 0)
			xids = v;
		else
			usage();
		i++;
	}
	if (url == NULL || l.token == NULL || strlen(l.token) > TOKEN_MAX || l.connections < 1 ||
	    l.connections > MAX_CONNECTIONS || seconds <= 0 ||
	    sscanf(url, "http://%127[^:]:%d", l.host, &l.port) != 2)
		usage();
	if (xids != NULL && (l.xids = fopen(xids, "w")) == NULL) {
		perror(xids);
		return 1;
	}
	{
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		char port[16];
		int e;
		snprintf(port, sizeof(port), "%d", l.port);
		if ((e = getaddrinfo(l.host, port, &hints, &l.addr)) != 0) {
			fprintf(stderr, "tbload: %s: %s\n", l.host, gai_strerror(e));
			return 1;
		}
	}
	l.base = event_base_new();
	for (int i = 0; i < l.connections; i++) {
		struct client *c = &l.clients[i];
		c->load = &l;
		c->id = i;
		c->seed = (unsigned)(i * 7919 + 17);
		c->fd = -1;
	}
	tv.tv_sec = (long)seconds;
	tv.tv_usec = (long)((seconds - (double)tv.tv_sec) * 1e6);
	event_base_once(l.base, -1, EV_TIMEOUT, on_stop, &l, &tv);
	l.start_us = now_us();
	l.seed = (unsigned)getpid();
	if (l.rate > 0) {
		double gap = 1.0 / l.rate;
		struct timeval every = {(long)gap, (long)((gap - (double)(long)gap) * 1e6)};
		struct event *due = event_new(l.base, -1, EV_PERSIST, offer, &l);
		event_add(due, &every);
		event_base_dispatch(l.base);
		event_free(due);
	} else {
		for (int i = 0; i < l.connections; i++)
			send_one(&l.clients[i]);
		event_base_dispatch(l.base);
	}
	if (l.failed)
		return 1;
	qsort(l.latencies, l.nlat, sizeof(*l.latencies), cmp_u32);
	errors = json_object();
	for (int s = 0; s < 600; s++)
		if (l.by_status[s] > 0 && s != 201) {
			char k[12];
			snprintf(k, sizeof(k), "%d", s);
			json_object_set_new(errors, s == 0 ? "no answer" : k,
			                    json_integer((json_int_t)l.by_status[s]));
		}
	out = json_pack("{sisIsIsIsfsfsfsfso}", "connections", l.connections, "requests",
	                (json_int_t)l.requests, "recorded", (json_int_t)l.ok, "missed",
	                (json_int_t)l.missed, "seconds", (double)(l.end_us - l.start_us) / 1e6,
	                "rate", (double)l.ok / ((double)(l.end_us - l.start_us) / 1e6), "p50_ms",
	                percentile_ms(&l, 50), "p99_ms", percentile_ms(&l, 99), "errors", errors);
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	if (l.xids != NULL)
		fclose(l.xids);
	for (int i = 0; i < l.connections; i++) {
		hang_up(&l.clients[i]);
		free(l.clients[i].in);
	}
	freeaddrinfo(l.addr);
	free(l.latencies);
	event_base_free(l.base);
	return 0;
}
