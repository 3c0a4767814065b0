/* tbctl's HTTP client: one request at a time over libevent's evhttp. */
#include "tbctl.h"

#include "mem.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TBCTL_TIMEOUT_SECONDS 60

struct pending {
	struct event_base *base;
	struct tbctl_reply *reply;
	int error;
};

static void on_error(enum evhttp_request_error error, void *arg)
{
	struct pending *p = arg;

	p->error = (int)error + 1;
}

/* A string with no control character a terminal would act on: C0 but a
 * line break or tab, DEL and C1 become visible escapes (\x1b, \u009b).
 * The daemon refuses them on input, but a peer's words, or a daemon that
 * is not ours, could carry them. NULL when s has none. */
static char *defanged(const char *s, size_t len)
{
	size_t need = 0;
	char *out, *o;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			need += 3;
		else if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		         (unsigned char)s[i + 1] <= 0x9f)
			need += 4;
	}
	if (need == 0)
		return NULL;
	o = out = xmalloc(len + need + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
			o += sprintf(o, "\\x%02x", c);
		} else if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		           (unsigned char)s[i + 1] <= 0x9f) {
			o += sprintf(o, "\\u%04x", (unsigned char)s[++i]);
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

/* Every string in j, defanged, so that nothing tbctl prints can move the
 * cursor, clear the screen or retitle the terminal. */
static void defang(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;
	void *tmp;

	if (json_is_string(j)) {
		char *safe = defanged(json_string_value(j), json_string_length(j));
		if (safe != NULL)
			json_string_set(j, safe);
		free(safe);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) defang(v);
	} else if (json_is_object(j)) {
		json_object_foreach_safe(j, tmp, key, v) defang(v);
	}
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct pending *p = arg;
	struct evbuffer *in;
	json_error_t jerr;

	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		snprintf(p->reply->err, sizeof(p->reply->err), "%s",
		         p->error == EVREQ_HTTP_TIMEOUT + 1 ? "timed out" : "connection failed");
		event_base_loopexit(p->base, NULL);
		return;
	}
	p->reply->status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_buffer(req);
	p->reply->body =
	    json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0, &jerr);
	defang(p->reply->body);
	event_base_loopexit(p->base, NULL);
}

int tbctl_http(const struct tbctl *t, const char *method, const char *path, const json_t *body,
               struct tbctl_reply *reply)
{
	struct evhttp_uri *uri = evhttp_uri_parse(t->url);
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct pending p = {0};
	enum evhttp_cmd_type cmd;
	char auth[512], target[2048], hostport[300];
	const char *host, *prefix;
	int port;

	memset(reply, 0, sizeof(*reply));
	if (uri == NULL || evhttp_uri_get_host(uri) == NULL || evhttp_uri_get_scheme(uri) == NULL ||
	    strcmp(evhttp_uri_get_scheme(uri), "http") != 0) {
		snprintf(reply->err, sizeof(reply->err), "the URL %s is not http://HOST:PORT",
		         t->url);
		evhttp_uri_free(uri);
		return -1;
	}
	host = evhttp_uri_get_host(uri);
	port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
	prefix = evhttp_uri_get_path(uri) != NULL ? evhttp_uri_get_path(uri) : "";
	if (prefix[0] != '\0' && prefix[strlen(prefix) - 1] == '/')
		snprintf(target, sizeof(target), "%.*s%s", (int)strlen(prefix) - 1, prefix, path);
	else
		snprintf(target, sizeof(target), "%s%s", prefix, path);
	cmd = strcmp(method, "POST") == 0    ? EVHTTP_REQ_POST
	      : strcmp(method, "PATCH") == 0 ? EVHTTP_REQ_PATCH
	                                     : EVHTTP_REQ_GET;

	p.base = event_base_new();
	p.reply = reply;
	conn = evhttp_connection_base_new(p.base, NULL, host, (ev_uint16_t)port);
	evhttp_connection_set_timeout(conn, TBCTL_TIMEOUT_SECONDS);
	req = evhttp_request_new(on_done, &p);
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	evhttp_add_header(h, "Host", hostport);
	evhttp_add_header(h, "Connection", "close");
	if (t->token != NULL) {
		snprintf(auth, sizeof(auth), "Bearer %s", t->token);
		evhttp_add_header(h, "Authorization", auth);
	}
	if (body != NULL) {
		char *text = json_dumps(body, JSON_COMPACT), length[32];
		/* evhttp adds Content-Length for POST and PUT only, not PATCH. */
		snprintf(length, sizeof(length), "%zu", strlen(text));
		evhttp_add_header(h, "Content-Length", length);
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
		free(text);
	}
	if (evhttp_make_request(conn, req, cmd, target) == 0)
		event_base_dispatch(p.base);
	else
		snprintf(reply->err, sizeof(reply->err), "could not send the request");
	evhttp_connection_free(conn);
	event_base_free(p.base);
	evhttp_uri_free(uri);
	if (reply->status == 0) {
		char tmp[64];
		snprintf(tmp, sizeof(tmp), "%.60s", reply->err[0] ? reply->err : "no reply");
		snprintf(reply->err, sizeof(reply->err), "cannot reach timebankd at %.150s: %s",
		         t->url, tmp);
		return -1;
	}
	return 0;
}
