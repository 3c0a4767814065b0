#include "http.h"

#include "gate.h"
#include "log.h"
#include "mem.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_MAX_HEAD (16 * 1024)
/* A connection's read buffer starts at this, and grows to hold a request's
 * head and whole body; while a request is answered, at most a head's worth
 * of the next is read ahead. */
#define HTTP_IN_START 4096
/* How long a refused connection drains what the client still sends before
 * it closes (see refuse). */
#define HTTP_DISCARD_SECONDS 5
/* A TLS client has this long to finish its handshake, however its bytes
 * trickle in: a stranger cannot hold a connection for the full idle time
 * without one. */
#define HTTP_HANDSHAKE_SECONDS 10

/* ---- parsing a request's head ----------------------------------------- */

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The next line of [*p, lim), NUL-terminated in place without its CR LF or
 * LF; *p moves past it. The head's end was found first, so a LF ends every
 * line before lim. */
static char *next_line(char **p, char *lim)
{
	char *line = *p, *nl = memchr(line, '\n', (size_t)(lim - line));

	*p = nl + 1;
	if (nl > line && nl[-1] == '\r')
		nl--;
	*nl = '\0';
	return line;
}

/* Whether the comma-separated list v holds token t (any case). */
static int has_token(const char *v, const char *t)
{
	size_t n = strlen(t);

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *e = v;
		while (*e != '\0' && *e != ',')
			e++;
		const char *end = e;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - v) == n && strncasecmp(v, t, n) == 0)
			return 1;
		v = e;
	}
	return 0;
}

static int parse_request_line(char *line, struct http_head *h)
{
	char *sp1 = strchr(line, ' '), *sp2;

	if (sp1 == NULL || sp1 == line || sp1 - line > 20)
		return 400;
	*sp1 = '\0';
	for (char *c = line; *c != '\0'; c++)
		if (!is_tchar((unsigned char)*c))
			return 400;
	h->method = line;
	h->target = sp1 + 1;
	sp2 = strchr(h->target, ' ');
	if (sp2 == NULL || h->target[0] != '/')
		return 400;
	*sp2 = '\0';
	for (unsigned char *c = (unsigned char *)h->target; *c != '\0'; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return 400;
	const char *v = sp2 + 1;
	if (strcmp(v, "HTTP/1.1") == 0 || strcmp(v, "HTTP/1.0") == 0) {
		h->minor = v[7] - '0';
		return 0;
	}
	if (strncmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	    v[7] >= '0' && v[7] <= '9' && v[8] == '\0')
		return 505;
	return 400;
}

/* One header line into h: 0, or the status refusing the head. */
static int parse_header(char *line, struct http_head *h, int *hosts, int *close, int *keep_alive)
{
	char *colon = strchr(line, ':'), *v, *end;

	if (colon == NULL || colon == line)
		return 400;
	*colon = '\0';
	for (char *c = line; *c != '\0'; c++)
		if (!is_tchar((unsigned char)*c))
			return 400; /* whitespace before the colon, or a line folded on */
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	for (unsigned char *c = (unsigned char *)v; *c != '\0'; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return 400;
	if (h->nheaders == HTTP_MAX_HEADERS)
		return 431;
	h->headers[h->nheaders].name = line;
	h->headers[h->nheaders].value = v;
	h->nheaders++;
	if (strcasecmp(line, "Content-Length") == 0) {
		int64_t n = 0;
		size_t digits = strlen(v);
		if (digits == 0 || digits > 18 || strspn(v, "0123456789") != digits)
			return 400;
		for (const char *c = v; *c != '\0'; c++)
			n = n * 10 + (*c - '0');
		if (h->content_length >= 0 && h->content_length != n)
			return 400;
		h->content_length = n;
	} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
		h->transfer_coding = 1;
	} else if (strcasecmp(line, "Host") == 0) {
		(*hosts)++;
	} else if (strcasecmp(line, "Connection") == 0) {
		*close |= has_token(v, "close");
		*keep_alive |= has_token(v, "keep-alive");
	} else if (strcasecmp(line, "Expect") == 0) {
		if (strcasecmp(v, "100-continue") != 0)
			return 417;
		h->expect_continue = 1;
	}
	return 0;
}

int http_parse_head(char *buf, size_t len, size_t max, struct http_head *h, size_t *used)
{
	size_t start = 0, end = 0;
	int rc, hosts = 0, close = 0, keep_alive = 0;

	/* Blank lines before a request are skipped (RFC 9112, 2.2). */
	while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
		start++;
	for (size_t i = start; i < len && end == 0; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			end = i + 2;
		else if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			end = i + 3;
	}
	if (end == 0)
		return len >= max ? 431 : 1;
	if (end > max)
		return 431;
	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	char *p = buf + start, *lim = buf + end;
	if ((rc = parse_request_line(next_line(&p, lim), h)) != 0)
		return rc;
	for (;;) {
		char *line = next_line(&p, lim);
		if (*line == '\0')
			break;
		if ((rc = parse_header(line, h, &hosts, &close, &keep_alive)) != 0)
			return rc;
	}
	if (h->transfer_coding && h->content_length >= 0)
		return 400; /* both: which one frames the body is ambiguous */
	if (hosts > 1 || (h->minor == 1 && hosts == 0))
		return 400;
	h->keep_alive = !close && (h->minor == 1 || keep_alive);
	*used = end;
	return 0;
}

const char *http_head_header(const struct http_head *h, const char *name)
{
	for (int i = 0; i < h->nheaders; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

/* ---- connections ------------------------------------------------------ */

struct http_req {
	struct http_conn *conn;
	struct http_head head;
	const char *body;
	size_t body_len;
};

enum conn_state {
	READING,    /* waiting for (the rest of) a request */
	ANSWERING,  /* a request is with the callback, or its reply is being sent */
	DISCARDING, /* refused; draining what the client sends, then closing */
};

struct http_conn {
	struct http_server *srv; /* NULL once the server is freed */
	evutil_socket_t fd;      /* -1 once closed */
	struct event *rev, *wev, *timer;
	char *in;
	size_t in_len, in_cap;
	char *out; /* what a reply could not write at once */
	size_t out_len, out_off;
	enum conn_state state;
	struct http_req req;
	size_t head_len;      /* READING: the head parsed so far, or 0 */
	int close_after;      /* close once the reply is out */
	int processing;       /* inside process(): a reply made there goes on from there */
	int dead;             /* to be freed once process() returns */
	int read_paused;      /* read ahead is full until the request is answered */
	int ticket;           /* its place at the gate */
	char source[64];      /* the client's address, as the gate saw it */
	SSL *ssl;             /* on a TLS listener */
	int read_wants_write; /* TLS: a read waits for the socket to take a write */
	int write_wants_read; /* TLS: a write waits for bytes from the client */
	int handshaking;      /* TLS: HTTP_HANDSHAKE_SECONDS to finish it */
	struct http_conn *prev, *next;
};

struct http_server {
	struct event_base *base;
	struct gate *gate;
	size_t max_body;
	int timeout_s;
	int stopping;
	http_cb cb;
	http_check_cb check;
	void *arg;
	struct http_conn *conns;
	SSL_CTX *tls; /* a TLS listener's, or NULL */
};

static void process(struct http_conn *c);

static void unlink_conn(struct http_conn *c)
{
	if (c->srv == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->srv = NULL;
}

/* Closes the socket; the connection itself stays while a request on it is
 * being answered. */
static void close_socket(struct http_conn *c)
{
	if (c->fd < 0)
		return;
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->timer);
	c->rev = c->wev = c->timer = NULL;
	SSL_free(c->ssl);
	c->ssl = NULL;
	close(c->fd);
	c->fd = -1;
	if (c->srv != NULL)
		gate_leave(c->srv->gate, c->ticket);
	c->ticket = -1;
}

/* Frees c, or, inside process(), has process() free it on its way out. */
static void conn_free(struct http_conn *c)
{
	close_socket(c);
	unlink_conn(c);
	if (c->processing) {
		c->dead = 1;
		return;
	}
	free(c->in);
	free(c->out);
	free(c);
}

static void arm_timer(struct http_conn *c, int seconds)
{
	struct timeval tv = {seconds, 0};

	if (c->timer != NULL)
		evtimer_add(c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	/* Idle, stalled mid-request, done discarding, or not reading its reply;
	 * a request with the callback has no timer. */
	conn_free(c);
}

/* TLS may hold decrypted bytes the socket no longer signals: read them. */
static void read_held(struct http_conn *c)
{
	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		event_active(c->rev, EV_READ, 0);
}

/* The request answered, its reply out: on to the next, or closed. */
static void reply_done(struct http_conn *c)
{
	size_t used = c->req.conn != NULL ? (size_t)(c->req.body - c->in) + c->req.body_len : 0;

	c->req.body = NULL;
	if (c->fd < 0) {
		conn_free(c);
		return;
	}
	if (c->close_after) {
		if (c->state == DISCARDING) {
			shutdown(c->fd, SHUT_WR);
			c->in_len = 0;
			arm_timer(c, HTTP_DISCARD_SECONDS);
			return;
		}
		conn_free(c);
		return;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	c->req.conn = NULL;
	c->state = READING;
	c->head_len = 0;
	arm_timer(c, c->srv->timeout_s);
	if (c->read_paused) {
		c->read_paused = 0;
		event_add(c->rev, NULL);
		read_held(c);
	}
	if (!c->processing && c->in_len > 0)
		process(c);
}

/* TLS's answer to a read or write that did not complete: -1 with errno
 * EAGAIN when it waits for the socket (for the other direction, flagged
 * in want), 0 when the client closed, else -1 (errno EPROTO). */
static ssize_t tls_stalled(struct http_conn *c, int ret, int *want, short other)
{
	int e = SSL_get_error(c->ssl, ret);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		/* A read that must write first (a handshake's flight, an answer
		 * to a KeyUpdate) waits for the socket to take it, and no longer
		 * for bytes, which would wake it over and over; a write that
		 * must read first, the other way round. */
		if ((e == SSL_ERROR_WANT_WRITE) == (other == EV_WRITE)) {
			*want = 1;
			event_add(other == EV_WRITE ? c->wev : c->rev, NULL);
			event_del(other == EV_WRITE ? c->rev : c->wev);
		}
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (!SSL_is_init_finished(c->ssl))
		log_debug("api: a TLS handshake from %s failed: %s", c->source,
		          ERR_reason_error_string(ERR_peek_last_error()) != NULL
		              ? ERR_reason_error_string(ERR_peek_last_error())
		              : "the connection closed");
	ERR_clear_error();
	errno = EPROTO;
	return -1;
}

/* recv(), or SSL_read() on a TLS listener: bytes, 0 at the client's end,
 * or -1 (errno EAGAIN: nothing yet). */
static ssize_t conn_read(struct http_conn *c, void *buf, size_t n)
{
	int r;

	if (c->ssl == NULL)
		return recv(c->fd, buf, n, 0);
	ERR_clear_error();
	r = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	if (c->handshaking && SSL_is_init_finished(c->ssl)) {
		c->handshaking = 0; /* from now on, the time a request has */
		if (c->srv != NULL)
			arm_timer(c, c->srv->timeout_s);
	}
	return r > 0 ? r : tls_stalled(c, r, &c->read_wants_write, EV_WRITE);
}

/* send(), or SSL_write() on a TLS listener (which may write part). */
static ssize_t conn_write(struct http_conn *c, const void *buf, size_t n)
{
	int r;

	if (c->ssl == NULL)
		return send(c->fd, buf, n, MSG_NOSIGNAL);
	ERR_clear_error();
	r = SSL_write(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	return r > 0 ? r : tls_stalled(c, r, &c->write_wants_read, EV_READ);
}

/* What of iov TLS takes now, part by part. */
static ssize_t tls_writev(struct http_conn *c, const struct iovec *iov, int n)
{
	ssize_t total = 0, w;

	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len == 0)
			continue;
		w = conn_write(c, iov[i].iov_base, iov[i].iov_len);
		if (w < 0)
			return total > 0 && errno == EAGAIN ? total : w;
		total += w;
		if ((size_t)w < iov[i].iov_len)
			break;
	}
	return total;
}

/* Writes as much of iov as the socket takes now; keeps the rest to write on
 * EV_WRITE. 0, or -1 when the connection failed (it is then closed). */
static int send_or_keep(struct http_conn *c, struct iovec *iov, int n)
{
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	size_t total = 0;
	ssize_t w;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	do
		w = c->ssl != NULL ? tls_writev(c, iov, n) : sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return -1;
	if (w < 0)
		w = 0;
	if ((size_t)w == total)
		return 0;
	c->out = xmalloc(total - (size_t)w);
	c->out_len = 0;
	c->out_off = 0;
	for (int i = 0; i < n; i++) {
		size_t skip = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
		w -= (ssize_t)skip;
		memcpy(c->out + c->out_len, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
		c->out_len += iov[i].iov_len - skip;
	}
	event_add(c->wev, NULL);
	if (c->state != DISCARDING)
		arm_timer(c, c->srv->timeout_s); /* a client that stops reading is dropped */
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg);

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	ssize_t w;

	(void)what;
	if (c->read_wants_write) {
		c->read_wants_write = 0;
		if (c->out == NULL)
			event_del(c->wev);
		if (!c->read_paused)
			event_add(c->rev, NULL);
		on_read(fd, EV_READ, c);
		return;
	}
	if (c->out == NULL) {
		event_del(c->wev);
		return;
	}
	w = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (w <= 0) {
		conn_free(c);
		return;
	}
	c->out_off += (size_t)w;
	if (c->out_off < c->out_len)
		return;
	event_del(c->wev);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	reply_done(c);
}

static const char *reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 500 ? "Client Error" : "Server Error";
	}
}

/* Sends a reply on c: the status line, headers, Content-Length and body
 * (none for HEAD). */
static void send_reply(struct http_conn *c, int status, const char *headers,
                       const struct iovec *body, int nbody, int head_only, int minor,
                       int keep_alive)
{
	char head[1024], length[48] = "";
	struct iovec iov[8];
	size_t len = 0;
	int n = 0, hn;

	if (nbody > 6)
		nbody = 6;
	for (int i = 0; i < nbody; i++)
		len += body[i].iov_len;
	if (!keep_alive || (c->srv != NULL && c->srv->stopping))
		c->close_after = 1;
	/* A 304 has no body, and says nothing of the one it stands for. */
	if (status != 304)
		snprintf(length, sizeof(length), "Content-Length: %zu\r\n", len);
	hn = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%s\r\n", status, reason(status),
	              headers, length,
	              c->close_after ? "Connection: close\r\n"
	              : minor == 0   ? "Connection: keep-alive\r\n"
	                             : "");
	if (hn < 0 || (size_t)hn >= sizeof(head)) {
		log_error("api: a reply's headers are too long; connection closed");
		c->close_after = 1;
		reply_done(c);
		return;
	}
	iov[n++] = (struct iovec){head, (size_t)hn};
	for (int i = 0; i < nbody && !head_only; i++)
		iov[n++] = body[i];
	if (send_or_keep(c, iov, n) == -1) {
		close_socket(c);
		reply_done(c);
		return;
	}
	if (c->out_len == 0)
		reply_done(c);
}

/* A reply the server makes itself, as the API writes its errors. The
 * connection closes after it, in two steps: the server stops sending, then
 * drains what the client still sends until it stops too; closing with data
 * unread would reset the connection, and the client might lose the answer. */
static void refuse(struct http_conn *c, int status, const char *code, const char *message)
{
	char json[256];
	int n = snprintf(json, sizeof(json), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
	                 code, message);
	struct iovec body = {json, (size_t)n};

	c->state = DISCARDING;
	c->req.conn = NULL;
	c->close_after = 1;
	send_reply(c, status, "Content-Type: application/json\r\n", &body, 1, 0, 1, 0);
}

static void refuse_head(struct http_conn *c, int status)
{
	switch (status) {
	case 431:
		refuse(c, 431, "headers_too_large", "the request's headers are over 16 KiB");
		break;
	case 417:
		refuse(c, 417, "expectation_failed", "the only expectation met is 100-continue");
		break;
	case 505:
		refuse(c, 505, "http_version_not_supported", "this server speaks HTTP/1.1 and 1.0");
		break;
	default:
		refuse(c, 400, "bad_request", "the request is not well-formed HTTP/1.1");
		break;
	}
}

/* The buffer moved (realloc): the parsed head's pointers follow it. */
static void rebase(struct http_head *h, const char *old, char *now)
{
#define REBASE(p) ((p) = now + ((p)-old))
	REBASE(h->method);
	REBASE(h->target);
	for (int i = 0; i < h->nheaders; i++) {
		REBASE(h->headers[i].name);
		REBASE(h->headers[i].value);
	}
#undef REBASE
}

/* Makes room for need bytes in c->in; -1 when it cannot. A parsed head's
 * strings and the body follow the buffer to where it moves. */
static int reserve(struct http_conn *c, size_t need)
{
	size_t cap = c->in_cap ? c->in_cap : HTTP_IN_START;
	char *now;

	if (need <= c->in_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	now = xmalloc(cap);
	if (c->in != NULL) {
		memcpy(now, c->in, c->in_len);
		if (c->head_len > 0) {
			rebase(&c->req.head, c->in, now);
			if (c->req.body != NULL)
				c->req.body = now + (c->req.body - c->in);
		}
		free(c->in);
	}
	c->in = now;
	c->in_cap = cap;
	return 0;
}

/* Takes the next request from the buffer when it is all there: to the
 * callback, or refused. */
static void process(struct http_conn *c)
{
	c->processing = 1;
	while (c->fd >= 0 && c->state == READING && c->in_len > 0) {
		struct http_head *h = &c->req.head;
		if (c->head_len == 0) {
			int rc = http_parse_head(c->in, c->in_len, HTTP_MAX_HEAD, h, &c->head_len);
			if (rc == 1)
				break;
			if (rc != 0) {
				c->head_len = 0;
				refuse_head(c, rc);
				break;
			}
			if (h->transfer_coding) {
				refuse(c, 411, "length_required",
				       "send the body with a Content-Length, not in a transfer "
				       "coding");
				break;
			}
			if (h->content_length > (int64_t)c->srv->max_body) {
				refuse(c, 413, "body_too_large",
				       "the request body is far too large");
				break;
			}
			/* Whether the request may be sent at all, before its body
			 * is read or asked for with 100 Continue. */
			const char *code = NULL, *message = NULL;
			int status = c->srv->check != NULL
			                 ? c->srv->check(h, c->srv->arg, &code, &message)
			                 : 0;
			if (status != 0) {
				refuse(c, status, code, message);
				break;
			}
			size_t body = h->content_length > 0 ? (size_t)h->content_length : 0;
			if (reserve(c, c->head_len + body) == -1) {
				conn_free(c);
				break;
			}
			if (h->expect_continue && c->in_len < c->head_len + body) {
				static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
				if (conn_write(c, cont, sizeof(cont) - 1) !=
				    (ssize_t)sizeof(cont) - 1) {
					conn_free(c);
					break;
				}
			}
		}
		size_t body = h->content_length > 0 ? (size_t)h->content_length : 0;
		if (c->in_len < c->head_len + body)
			break;
		c->state = ANSWERING;
		c->req.conn = c;
		c->req.body = c->in + c->head_len;
		c->req.body_len = body;
		evtimer_del(c->timer);
		c->srv->cb(&c->req, c->srv->arg);
	}
	c->processing = 0;
	if (c->dead)
		conn_free(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	size_t room;
	ssize_t n;

	(void)what;
	if (c->write_wants_read) {
		c->write_wants_read = 0;
		event_add(c->wev, NULL);
		if (c->read_paused)
			event_del(c->rev);
		on_write(fd, EV_WRITE, c);
		return;
	}
	if (c->state == DISCARDING) {
		char sink[4096];
		n = conn_read(c, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_free(c);
		return;
	}
	if (c->in_len == c->in_cap && reserve(c, c->in_cap + 1) == -1) {
		conn_free(c);
		return;
	}
	room = c->in_cap - c->in_len;
	n = conn_read(c, c->in + c->in_len, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->state != ANSWERING) {
			conn_free(c); /* the client is gone */
			return;
		}
		/* Gone, or only done sending: the request is answered all the
		 * same, and the connection closed after. */
		event_del(c->rev);
		c->read_paused = 0;
		c->close_after = 1;
		return;
	}
	c->in_len += (size_t)n;
	read_held(c);
	if (c->state == READING) {
		process(c);
		return;
	}
	/* A request is being answered: what follows waits, up to a head's worth. */
	if (c->in_len >= (size_t)(c->req.body - c->in) + c->req.body_len + HTTP_MAX_HEAD) {
		event_del(c->rev);
		c->read_paused = 1;
	}
}

static void on_accept(evutil_socket_t fd, int ticket, const char *addr, void *arg)
{
	struct http_server *s = arg;
	struct http_conn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	snprintf(c->source, sizeof(c->source), "%s", addr != NULL ? addr : "");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->fd = fd;
	c->ticket = ticket;
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	c->timer = evtimer_new(s->base, on_timer, c);
	if (s->tls != NULL && ((c->ssl = SSL_new(s->tls)) == NULL || SSL_set_fd(c->ssl, fd) != 1)) {
		log_error("api: no memory for a TLS connection");
		ERR_clear_error();
		close_socket(c);
		free(c);
		return;
	}
	if (c->ssl != NULL)
		SSL_set_accept_state(c->ssl);
	c->handshaking = c->ssl != NULL;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	event_add(c->rev, NULL);
	arm_timer(c, c->handshaking ? HTTP_HANDSHAKE_SECONDS : s->timeout_s);
}

/* ---- the server ------------------------------------------------------- */

/* A TLS server's context, of the certificate chain and key in PEM files:
 * TLS 1.2 and up, no renegotiation, and no session tickets (a read may
 * still need to write: tls_stalled). NULL with why logged. */
static SSL_CTX *tls_context(const struct http_tls *tls)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, tls->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, tls->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_set_num_tickets(ctx, 0) != 1) {
		unsigned long e = ERR_peek_last_error();
		log_error("api: cannot serve TLS with %s and %s: %s", tls->cert, tls->key,
		          e != 0 ? ERR_reason_error_string(e) : "no memory");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

struct http_server *http_server_new(struct event_base *base, const char *host, int port,
                                    size_t max_body, int timeout_s, struct gate_limits conns,
                                    const struct http_tls *tls, http_cb cb, void *arg)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char service[16];
	int rc;

	s->base = base;
	s->max_body = max_body;
	s->timeout_s = timeout_s;
	s->cb = cb;
	s->arg = arg;
	if (tls != NULL && (s->tls = tls_context(tls)) == NULL) {
		free(s);
		return NULL;
	}
	snprintf(service, sizeof(service), "%d", port);
	if ((rc = getaddrinfo(host, service, &hints, &ai)) != 0) {
		log_error("api: cannot resolve %s: %s", host, gai_strerror(rc));
		SSL_CTX_free(s->tls);
		free(s);
		return NULL;
	}
	for (struct addrinfo *a = ai; a != NULL && s->gate == NULL; a = a->ai_next)
		s->gate = gate_listen(base, a->ai_addr, (int)a->ai_addrlen,
		                      tls != NULL ? "api_tls" : "api", conns, on_accept, s);
	freeaddrinfo(ai);
	if (s->gate == NULL) {
		SSL_CTX_free(s->tls);
		free(s);
		return NULL;
	}
	return s;
}

void http_server_set_check(struct http_server *s, http_check_cb check)
{
	s->check = check;
}

void http_server_metrics(const struct http_server *s, struct evbuffer *out)
{
	gate_metrics(s->gate, out);
}

void http_server_set_max_body(struct http_server *s, size_t max_body)
{
	s->max_body = max_body;
}

void http_server_stop_accepting(struct http_server *s)
{
	struct http_conn *c = s->conns, *next;

	gate_stop(s->gate);
	s->stopping = 1;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->state == READING && c->in_len == 0)
			conn_free(c);
	}
}

void http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	gate_stop(s->gate);
	while (s->conns != NULL) {
		struct http_conn *c = s->conns;
		unlink_conn(c);
		if (c->state == ANSWERING && c->req.conn != NULL && c->out == NULL)
			close_socket(c); /* the callback has the request: freed by its reply */
		else
			conn_free(c);
	}
	gate_free(s->gate);
	SSL_CTX_free(s->tls);
	free(s);
}

/* ---- requests --------------------------------------------------------- */

const char *http_req_method(const struct http_req *r)
{
	return r->head.method;
}

const char *http_req_target(const struct http_req *r)
{
	return r->head.target;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	return http_head_header(&r->head, name);
}

const char *http_req_header_last(const struct http_req *r, const char *name)
{
	const char *last = NULL;

	for (int i = 0; i < r->head.nheaders; i++)
		if (strcasecmp(r->head.headers[i].name, name) == 0)
			last = r->head.headers[i].value;
	return last;
}

const char *http_req_source(const struct http_req *r)
{
	return r->conn->source;
}

int http_req_tls(const struct http_req *r)
{
	return r->conn->ssl != NULL;
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body;
}

void http_reply(struct http_req *r, int status, const char *headers, const struct iovec *body,
                int nbody)
{
	struct http_conn *c = r->conn;

	if (c->fd < 0) {
		conn_free(c); /* the client went, or the server stopped */
		return;
	}
	send_reply(c, status, headers, body, nbody, strcmp(r->head.method, "HEAD") == 0,
	           r->head.minor, r->head.keep_alive);
}
