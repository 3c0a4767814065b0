#include "gate.h"

#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define PAUSE_MS 1000

/* One source address holding tickets; free when count is 0. */
struct source {
	unsigned char addr[16]; /* IPv4 as its IPv6-mapped form; IPv6 as its /64 */
	int count;
};

struct gate {
	struct evconnlistener *listener;
	gate_cb cb;
	void *arg;
	struct event *resume;
	char what[16];
	struct gate_limits limits;
	struct source *sources; /* limits.total of them: a ticket is an index */
	int held;
	unsigned long long refused, paused;
	struct log_limit full_log, accept_log;
};

/* Caps that fit the descriptor limit: each gated listener may take a
 * quarter of it, so that strangers can never take what the database,
 * the peers and the operator need. */
static struct gate_limits fit(const char *what, struct gate_limits l)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		int most = (int)(rl.rlim_cur / 4) > 8 ? (int)(rl.rlim_cur / 4) : 8;
		if (l.total > most) {
			log_warn("%s: at most %d connections not yet proven, not %d: a quarter of "
			         "the descriptor limit (%lu)",
			         what, most, l.total, (unsigned long)rl.rlim_cur);
			l.total = most;
		}
	}
	if (l.total < 1)
		l.total = 1;
	if (l.per_source < 1)
		l.per_source = 1;
	if (l.per_source > l.total)
		l.per_source = l.total;
	return l;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct gate *g = arg;

	(void)fd;
	(void)what;
	if (g->listener != NULL)
		evconnlistener_enable(g->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct gate *g = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = {PAUSE_MS / 1000, (PAUSE_MS % 1000) * 1000};

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_limited(&g->accept_log, LOGL_WARN, "%s: accepting a connection failed: %s",
		            g->what, strerror(err));
		return;
	}
	/* The connection waits in the backlog; accepting again at once would
	 * fail again, as fast as the loop turns. */
	evconnlistener_disable(l);
	evtimer_add(g->resume, &pause);
	g->paused++;
	log_limited(&g->accept_log, LOGL_WARN,
	            "%s: cannot accept a connection: %s; not accepting for %d ms", g->what,
	            strerror(err), PAUSE_MS);
}

void gate_stop(struct gate *g)
{
	if (g->listener != NULL)
		evconnlistener_free(g->listener);
	g->listener = NULL;
	evtimer_del(g->resume);
}

void gate_free(struct gate *g)
{
	if (g == NULL)
		return;
	gate_stop(g);
	event_free(g->resume);
	free(g->sources);
	free(g);
}

/* The source's address as 16 bytes, and "host:port" in addr. */
static void address_of(const struct sockaddr *sa, unsigned char key[16], char *addr, size_t addrlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(addr, addrlen, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		/* One source is a /64: anyone given one holds all of it. A mapped
		 * IPv4 address stays whole. */
		memcpy(key, &in6->sin6_addr, 16);
		if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			memset(key + 8, 0, 8);
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(addr, addrlen, "[%s]:%d", host, port);
	} else {
		snprintf(addr, addrlen, "?");
	}
}

/* A ticket for a connection from sa, or -1 when a cap is full. */
static int admit(struct gate *g, const struct sockaddr *sa, char *addr, size_t addrlen)
{
	unsigned char key[16];
	int same = -1, unused = -1;

	address_of(sa, key, addr, addrlen);
	for (int i = 0; i < g->limits.total && same == -1; i++) {
		if (g->sources[i].count == 0) {
			if (unused == -1)
				unused = i;
		} else if (memcmp(g->sources[i].addr, key, 16) == 0) {
			same = i;
		}
	}
	if (g->held == g->limits.total ||
	    (same != -1 && g->sources[same].count == g->limits.per_source)) {
		g->refused++;
		log_limited(&g->full_log, LOGL_WARN,
		            "%s: refused a connection from %s: %d connections not yet proven%s",
		            g->what, addr,
		            same != -1 && g->held < g->limits.total ? g->limits.per_source
		                                                    : g->limits.total,
		            same != -1 && g->held < g->limits.total ? " from that address"
		                                                    : " in all");
		return -1;
	}
	if (same == -1) {
		same = unused;
		memcpy(g->sources[same].addr, key, 16);
	}
	g->sources[same].count++;
	g->held++;
	return same;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	struct gate *g = arg;
	char addr[64];
	int ticket = admit(g, sa, addr, sizeof(addr));

	(void)l;
	(void)socklen;
	if (ticket == -1) {
		evutil_closesocket(fd);
		return;
	}
	g->cb(fd, ticket, addr, g->arg);
}

struct gate *gate_listen(struct event_base *base, const struct sockaddr *sa, int socklen,
                         const char *what, struct gate_limits limits, gate_cb cb, void *arg)
{
	struct gate *g = xcalloc(1, sizeof(*g));

	snprintf(g->what, sizeof(g->what), "%s", what);
	g->cb = cb;
	g->arg = arg;
	g->listener = evconnlistener_new_bind(
	    base, on_accept, g, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    -1, sa, socklen);
	if (g->listener == NULL) {
		free(g);
		return NULL;
	}
	g->limits = fit(what, limits);
	g->sources = xcalloc((size_t)g->limits.total, sizeof(*g->sources));
	g->resume = evtimer_new(base, on_resume, g);
	evconnlistener_set_error_cb(g->listener, on_accept_error);
	return g;
}

void gate_leave(struct gate *g, int ticket)
{
	if (ticket < 0 || ticket >= g->limits.total || g->sources[ticket].count == 0)
		return;
	g->sources[ticket].count--;
	g->held--;
}

void gate_metrics(const struct gate *g, struct evbuffer *out)
{
	const char *w = g->what;

	evbuffer_add_printf(out,
	                    "# HELP timebankd_%s_connections_unproven Connections held that have "
	                    "not yet proven who they are.\n"
	                    "# TYPE timebankd_%s_connections_unproven gauge\n"
	                    "timebankd_%s_connections_unproven %d\n"
	                    "# HELP timebankd_%s_connections_cap The cap on those, in all.\n"
	                    "# TYPE timebankd_%s_connections_cap gauge\n"
	                    "timebankd_%s_connections_cap %d\n"
	                    "# HELP timebankd_%s_connections_refused_total Connections closed on "
	                    "arrival because a cap was full.\n"
	                    "# TYPE timebankd_%s_connections_refused_total counter\n"
	                    "timebankd_%s_connections_refused_total %llu\n"
	                    "# HELP timebankd_%s_accept_paused_total Times the listener paused, "
	                    "out of descriptors or memory.\n"
	                    "# TYPE timebankd_%s_accept_paused_total counter\n"
	                    "timebankd_%s_accept_paused_total %llu\n",
	                    w, w, w, g->held, w, w, w, g->limits.total, w, w, w, g->refused, w, w,
	                    w, g->paused);
}
