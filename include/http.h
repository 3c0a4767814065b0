/* http: the admin API's HTTP/1.1 server, on plain non-blocking sockets in the
 * libevent loop. Keep-alive, pipelining (one request answered at a time, in
 * order), HTTP/1.0, Expect: 100-continue and bodies sized by Content-Length;
 * a body in a transfer coding gets 411. Each connection's socket stays
 * registered for reading, and a reply is written at once, with one call,
 * when the socket takes it: per request one read and one write (the
 * README's Performance says why).
 * Layer: io (src/io/); includes core headers. */
#ifndef TB_HTTP_H
#define TB_HTTP_H

#include "gate.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define HTTP_MAX_HEADERS 64

/* A request's head, parsed in place: every string points into the buffer
 * parsed, NUL-terminated there. */
struct http_head {
	char *method; /* a token: "GET", "POST", ... */
	char *target; /* origin form: starts with '/' */
	int minor;    /* HTTP/1.<minor>: 0 or 1 */
	int nheaders;
	struct {
		char *name;
		char *value; /* without surrounding blanks */
	} headers[HTTP_MAX_HEADERS];
	int64_t content_length; /* -1: none given */
	int keep_alive;         /* the connection stays open after the reply */
	int expect_continue;    /* Expect: 100-continue */
	int transfer_coding;    /* a Transfer-Encoding header was given */
};

/* Parses the head at the start of buf[0..len): the request line and the
 * headers up to the empty line that ends them (CRLF or LF line ends). 0 with
 * *used set to the head's length; 1 when the head is not complete yet and
 * len is under max; or an HTTP status for a head that cannot be served: 400
 * malformed, 417 an Expect other than 100-continue, 431 a head over max or
 * with too many headers, 501 a method that is not a token of capitals, 505 a
 * version other than HTTP/1.0 and 1.1. Writes NULs into buf. */
int http_parse_head(char *buf, size_t len, size_t max, struct http_head *h, size_t *used)
    __attribute__((warn_unused_result));

/* The value of header name (any case) in h, or NULL. */
const char *http_head_header(const struct http_head *h, const char *name);

struct http_server;
struct http_req;

/* Called once per request whose head and body have arrived. The request is
 * then the callee's until it answers it with http_reply, which it must,
 * exactly once, even if the client has gone meanwhile. */
typedef void (*http_cb)(struct http_req *req, void *arg);
/* Called with each request's head, before its body is read or 100
 * Continue is sent: 0 lets it go on; an HTTP status (with *code and
 * *message for the JSON error) refuses it, and its connection closes. */
typedef int (*http_check_cb)(const struct http_head *h, void *arg, const char **code,
                             const char **message);

/* A TLS listener's certificate chain and private key, PEM files. */
struct http_tls {
	const char *cert;
	const char *key;
};

/* Listens on host:port, speaking TLS when tls is not NULL. A request with a body over max_body
 * bytes is refused 413 (JSON) before the body is read, and its connection closes once the client
 * stops sending. Connections idle (no request in progress) for timeout_s are closed; the time a
 * request has to arrive starts when the one before is answered, and what the client sends does not
 * extend it. Connections are capped by conns (see gate.h). NULL with the reason logged when it
 * cannot listen. */
struct http_server *http_server_new(struct event_base *base, const char *host, int port,
                                    size_t max_body, int timeout_s, struct gate_limits conns,
                                    const struct http_tls *tls, http_cb cb, void *arg);
void http_server_set_check(struct http_server *s, http_check_cb check);
/* The server's connection metrics (gate_metrics), onto out. */
void http_server_metrics(const struct http_server *s, struct evbuffer *out);
void http_server_set_max_body(struct http_server *s, size_t max_body);
/* Closes the listener and the connections waiting for a request; a
 * connection with a request in progress closes once it is answered. */
void http_server_stop_accepting(struct http_server *s);
/* Closes the listener and every connection. Requests not yet answered stay
 * valid until answered (their replies go nowhere). Accepts NULL. */
void http_server_free(struct http_server *s);

const char *http_req_method(const struct http_req *r);
const char *http_req_target(const struct http_req *r);
/* The value of a request header (any case), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* The value of the last header name (any case) gives, or NULL: what a
 * proxy appended after whatever the client sent. */
const char *http_req_header_last(const struct http_req *r, const char *name);
/* The client's address, "HOST:PORT" ("[V6]:PORT"), valid until the reply. */
const char *http_req_source(const struct http_req *r);
/* 1 when the request came over TLS. */
int http_req_tls(const struct http_req *r);
/* The body (len 0 when there is none); valid until the reply. */
const char *http_req_body(const struct http_req *r, size_t *len);

/* Answers r with status, the header lines headers ("Name: value\r\n" each,
 * or ""), Content-Length and the body's nbody parts (at most 6), then frees
 * r. */
void http_reply(struct http_req *r, int status, const char *headers, const struct iovec *body,
                int nbody);

#endif
