/* gate: what a listening socket lets in before anyone has proved who they
 * are. Connections not yet proven are counted, in total and per source
 * address; one over either cap is closed as soon as it is accepted, which
 * costs a stranger nothing to hold and the daemon nothing to refuse. When
 * accept fails for want of descriptors or memory, the listener pauses for
 * a second instead of spinning on a socket that stays readable. Refusals
 * are logged at most LOG_BURST times a minute, and counted.
 * Layer: io (src/io/); includes core headers. */
#ifndef TB_GATE_H
#define TB_GATE_H

#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>

/* Caps, as configured; gate_new lowers them to fit the descriptor limit. */
struct gate_limits {
	int total;
	int per_source;
};

struct gate;

/* An admitted connection: its socket, the ticket to give back with
 * gate_leave once it is proven or closed, and "host:port". */
typedef void (*gate_cb)(evutil_socket_t fd, int ticket, const char *addr, void *arg);

/* Listens on sa and hands cb each connection admitted; those over a cap
 * are closed at once. what names the listener in the log ("fed", "api").
 * NULL when it cannot listen. */
struct gate *gate_listen(struct event_base *base, const struct sockaddr *sa, int socklen,
                         const char *what, struct gate_limits limits, gate_cb cb, void *arg);
/* Stops listening; tickets may still be given back. */
void gate_stop(struct gate *g);
/* Stops listening and frees the gate; tickets not given back are
 * forgotten. Accepts NULL. */
void gate_free(struct gate *g);
/* Gives a ticket back; -1 is ignored. */
void gate_leave(struct gate *g, int ticket);

struct evbuffer;
/* The caps in force, what is held now, what was refused and how often
 * accepting paused, as Prometheus metrics named timebankd_<what>_..., onto out. */
void gate_metrics(const struct gate *g, struct evbuffer *out);

#endif
