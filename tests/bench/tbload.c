/* tbload: the load generator of make bench. Many keep-alive HTTP/1.1
 * connections to one timebankd, each recording exchanges one after the
 * other for a given time (POST /v1/exchanges, each with its own
 * idempotency key). Prints a JSON summary: requests, rate, latency
 * percentiles, refusals by status. With --xids FILE it also writes, for
 * each exchange recorded, its id and when it was sent (for measuring when
 * a cross-bank exchange settles).
 *
 *   tbload --url http://127.0.0.1:8401 --token T [--connections 64]
 *          [--seconds 10] [--payers 1-100] [--earners 1-100]
 *          [--earner-bank westminster] [--xids FILE] */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024

struct range {
	long lo, hi;
};

struct client {
	struct load *load;
	struct evhttp_connection *conn;
	int id;
	unsigned long n;
	uint64_t sent_us;
	unsigned seed;
};

struct load {
	struct event_base *base;
	char host[128];
	int port;
	const char *token;
	const char *earner_bank;
	struct range payers, earners;
	int connections, in_flight, stopping;
	FILE *xids;
	uint32_t *latencies; /* microseconds, one per answered request */
	size_t nlat, caplat;
	unsigned long requests, ok, by_status[600];
	uint64_t start_us, end_us;
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
static void write_xid(FILE *out, struct evbuffer *in, uint64_t sent)
{
	static const char head[] = "{\"id\":\"";
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
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

static void on_done(struct evhttp_request *req, void *arg)
{
	struct client *c = arg;
	struct load *l = c->load;
	int status = req != NULL ? evhttp_request_get_response_code(req) : 0;
	uint64_t took = now_us() - c->sent_us;

	l->in_flight--;
	l->requests++;
	if (status >= 0 && status < 600)
		l->by_status[status]++; /* 0: no answer */
	if (l->nlat == l->caplat) {
		l->caplat = l->caplat ? l->caplat * 2 : 65536;
		l->latencies = realloc(l->latencies, l->caplat * sizeof(*l->latencies));
	}
	l->latencies[l->nlat++] = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
	if (status == 201) {
		l->ok++;
		if (l->xids != NULL)
			write_xid(l->xids, evhttp_request_get_input_buffer(req),
			          wall_us() - (now_us() - c->sent_us));
	}
	if (l->stopping) {
		if (l->in_flight == 0)
			event_base_loopexit(l->base, NULL);
		return;
	}
	send_one(c);
}

static void send_one(struct client *c)
{
	struct load *l = c->load;
	struct evhttp_request *req = evhttp_request_new(on_done, c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char body[256], auth[256], earner[80];
	long payer = pick(l->payers, &c->seed), who = pick(l->earners, &c->seed);

	if (l->earner_bank == NULL && who == payer)
		who = who < l->earners.hi ? who + 1 : l->earners.lo;
	if (l->earner_bank != NULL)
		snprintf(earner, sizeof(earner), "\"%s:%ld\"", l->earner_bank, who);
	else
		snprintf(earner, sizeof(earner), "%ld", who);
	snprintf(body, sizeof(body),
	         "{\"payer\": %ld, \"earner\": %s, \"minutes\": %d, \"category\": \"bench\", "
	         "\"idempotency_key\": \"ld-%d-%d-%lu\"}",
	         payer, earner, 15 + 15 * (rand_r(&c->seed) % 4), (int)getpid(), c->id, c->n++);
	snprintf(auth, sizeof(auth), "Bearer %s", l->token);
	evhttp_add_header(h, "Host", l->host);
	evhttp_add_header(h, "Authorization", auth);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	c->sent_us = now_us();
	l->in_flight++;
	if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, "/v1/exchanges") == -1) {
		l->in_flight--;
		fprintf(stderr, "tbload: cannot send a request\n");
		event_base_loopexit(l->base, NULL);
	}
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
	                "[--seconds S] [--payers A-B] [--earners A-B] [--earner-bank B] "
	                "[--xids FILE]\n");
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
		else if (strcmp(argv[i], "--earner-bank") == 0)
			l.earner_bank = v;
		else if (strcmp(argv[i], "--xids") == 0)
			xids = v;
		else
			usage();
		i++;
	}
	if (url == NULL || l.token == NULL || l.connections < 1 ||
	    l.connections > MAX_CONNECTIONS || seconds <= 0 ||
	    sscanf(url, "http://%127[^:]:%d", l.host, &l.port) != 2)
		usage();
	if (xids != NULL && (l.xids = fopen(xids, "w")) == NULL) {
		perror(xids);
		return 1;
	}
	l.base = event_base_new();
	for (int i = 0; i < l.connections; i++) {
		struct client *c = &l.clients[i];
		c->load = &l;
		c->id = i;
		c->seed = (unsigned)(i * 7919 + 17);
		c->conn = evhttp_connection_base_new(l.base, NULL, l.host, (unsigned short)l.port);
		evhttp_connection_set_timeout(c->conn, 60);
	}
	tv.tv_sec = (long)seconds;
	tv.tv_usec = (long)((seconds - (double)tv.tv_sec) * 1e6);
	event_base_once(l.base, -1, EV_TIMEOUT, on_stop, &l, &tv);
	l.start_us = now_us();
	for (int i = 0; i < l.connections; i++)
		send_one(&l.clients[i]);
	event_base_dispatch(l.base);
	qsort(l.latencies, l.nlat, sizeof(*l.latencies), cmp_u32);
	errors = json_object();
	for (int s = 0; s < 600; s++)
		if (l.by_status[s] > 0 && s != 201) {
			char k[12];
			snprintf(k, sizeof(k), "%d", s);
			json_object_set_new(errors, s == 0 ? "no answer" : k,
			                    json_integer((json_int_t)l.by_status[s]));
		}
	out = json_pack("{sisIsIsfsfsfsfso}", "connections", l.connections, "requests",
	                (json_int_t)l.requests, "recorded", (json_int_t)l.ok, "seconds",
	                (double)(l.end_us - l.start_us) / 1e6, "rate",
	                (double)l.ok / ((double)(l.end_us - l.start_us) / 1e6), "p50_ms",
	                percentile_ms(&l, 50), "p99_ms", percentile_ms(&l, 99), "errors",
	                errors);
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	if (l.xids != NULL)
		fclose(l.xids);
	for (int i = 0; i < l.connections; i++)
		evhttp_connection_free(l.clients[i].conn);
	free(l.latencies);
	event_base_free(l.base);
	return 0;
}
