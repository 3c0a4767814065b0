/* The console's files: GET / leads to /console/, /console/assets/NAME is one
 * embedded file, and every other path under /console/ is the page that
 * loads the console, which reads the path itself. And the API's OpenAPI
 * document, at /v1/openapi.json. Nothing here reads the
 * ledger: the page asks the API, with the user's own session. */
#include "internal.h"

#include "console.h"
#include "http.h"

#include <string.h>
#include <sys/uio.h>

#define ASSETS "/console/assets/"
#define SHELL "console.html"

/* What every console reply carries: the page may load only its own files
 * and speak only to this daemon; it is never framed nor sniffed. */
#define SECURITY_HEADERS                                                                           \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "       \
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "          \
	"frame-ancestors 'none'\r\n"                                                               \
	"X-Content-Type-Options: nosniff\r\n"                                                      \
	"X-Frame-Options: DENY\r\n"                                                                \
	"Referrer-Policy: same-origin\r\n"                                                         \
	"Cache-Control: no-cache\r\n"

static const struct console_file *find_file(const char *name)
{
	for (const struct console_file *f = console_files; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static int read_only(struct api_req *r)
{
	if (strcmp(http_req_method(r->req), "GET") == 0 ||
	    strcmp(http_req_method(r->req), "HEAD") == 0)
		return 1;
	api_reply_error(r, 405, "method_not_allowed", "this is read with GET");
	return 0;
}

/* Answers with f, or 304 when the client holds it already. */
static void serve(struct api_req *r, const struct console_file *f)
{
	const char *seen = http_req_header(r->req, "If-None-Match");
	char head[1024];
	struct iovec body[1];

	if (seen != NULL && strcmp(seen, f->etag) == 0) {
		snprintf(head, sizeof(head), "ETag: %s\r\n" SECURITY_HEADERS, f->etag);
		api_reply_parts(r, 304, head, NULL, 0);
		return;
	}
	snprintf(head, sizeof(head), "Content-Type: %s\r\nETag: %s\r\n" SECURITY_HEADERS, f->type,
	         f->etag);
	body[0].iov_base = (void *)f->data;
	body[0].iov_len = f->len;
	api_reply_parts(r, 200, head, body, 1);
}

void api_console(struct api_req *r, const char *path)
{
	const struct console_file *f;

	if (!read_only(r))
		return;
	if (strcmp(path, "/") == 0) {
		api_reply_parts(r, 303, "Location: /console/\r\nContent-Type: text/plain\r\n", NULL,
		                0);
		return;
	}
	f = strncmp(path, ASSETS, strlen(ASSETS)) == 0 ? find_file(path + strlen(ASSETS))
	                                               : find_file(SHELL);
	if (f == NULL || strcmp(path, ASSETS SHELL) == 0) {
		api_reply_error(r, 404, "not_found", "no such file: %s", path);
		return;
	}
	serve(r, f);
}

void api_openapi(struct api_req *r)
{
	if (read_only(r))
		serve(r, find_file("openapi.json"));
}
