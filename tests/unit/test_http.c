#include "http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* Parses text (copied: the parser writes into its buffer) with the admin
 * API's cap; returns what http_parse_head returned. */
static int parse(const char *text, struct http_head *h, size_t *used)
{
	static char buf[20000];
	size_t len = strlen(text);

	assert_true(len < sizeof(buf));
	memcpy(buf, text, len + 1);
	return http_parse_head(buf, len, 16384, h, used);
}

static void test_http_parses_a_request_with_its_headers(void **state)
{
	const char *text =
	    "POST /v1/exchanges?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
	    "Authorization:  Bearer abc \r\nContent-Length: 12\r\n\r\n{\"payer\": 1}";
	struct http_head h;
	size_t used = 0;

	(void)state;
	assert_int_equal(parse(text, &h, &used), 0);
	assert_int_equal(used, strlen(text) - 12);
	assert_string_equal(h.method, "POST");
	assert_string_equal(h.target, "/v1/exchanges?x=1");
	assert_int_equal(h.minor, 1);
	assert_int_equal(h.content_length, 12);
	assert_true(h.keep_alive);
	assert_false(h.expect_continue);
	assert_string_equal(http_head_header(&h, "authorization"), "Bearer abc");
	assert_string_equal(http_head_header(&h, "HOST"), "127.0.0.1:8080");
	assert_null(http_head_header(&h, "Cookie"));
}

static void test_http_waits_for_the_end_of_the_head(void **state)
{
	struct http_head h;
	size_t used = 0;

	(void)state;
	assert_int_equal(parse("GET /v1/health HTTP/1.1\r\nHost: x\r\n", &h, &used), 1);
	assert_int_equal(parse("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r", &h, &used), 1);
	assert_int_equal(parse("", &h, &used), 1);
	/* Blank lines before a request are skipped; bare LF ends lines too. */
	assert_int_equal(parse("\r\n\nGET / HTTP/1.1\nHost: x\n\n", &h, &used), 0);
	assert_string_equal(h.target, "/");
}

static void test_http_keep_alive_follows_version_and_connection(void **state)
{
	struct http_head h;
	size_t used;

	(void)state;
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &h, &used), 0);
	assert_false(h.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &used), 0);
	assert_true(h.keep_alive);
	assert_int_equal(
	    parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: te, close\r\n\r\n", &h, &used), 0);
	assert_false(h.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
	                       "Content-Length: 5\r\n\r\n",
	                       &h, &used),
	                 0);
	assert_true(h.expect_continue);
}

static void test_http_refuses_malformed_heads(void **state)
{
	static const struct {
		const char *text;
		int status;
	} cases[] = {
	    {"GET /\r\n\r\n", 400},
	    {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	    {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	    {"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	    {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
	    {"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\n\r\n", 400},                               /* no Host */
	    {"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},         /* two */
	    {"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400},     /* space */
	    {"GET / HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n", 400},        /* before : */
	    {"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n", 400}, /* obs-fold */
	    {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n",
	     400},
	    {"POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", 417},
	};
	struct http_head h;
	size_t used;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].text, &h, &used);
		if (rc != cases[i].status)
			fail_msg("case %zu: %d, expected %d", i, rc, cases[i].status);
	}
	/* The same length twice is one length; a transfer coding alone is
	 * parsed, for the server to refuse (411). */
	assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
	                       "Content-Length: 2\r\n\r\n",
	                       &h, &used),
	                 0);
	assert_int_equal(h.content_length, 2);
	assert_int_equal(
	    parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &used),
	    0);
	assert_true(h.transfer_coding);
}

static void test_http_caps_the_head(void **state)
{
	static char text[20000];
	struct http_head h;
	size_t used, n;

	(void)state;
	/* Over the cap with no end in sight, and ending past the cap. */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
	memset(text + n, 'a', 16500);
	text[n + 16500] = '\0';
	assert_int_equal(parse(text, &h, &used), 431);
	memcpy(text + n + 16500, "\r\n\r\n", 5);
	assert_int_equal(parse(text, &h, &used), 431);
	/* More headers than it keeps. */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: v\r\n", i);
	snprintf(text + n, sizeof(text) - n, "\r\n");
	assert_int_equal(parse(text, &h, &used), 431);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_parses_a_request_with_its_headers),
	    cmocka_unit_test(test_http_waits_for_the_end_of_the_head),
	    cmocka_unit_test(test_http_keep_alive_follows_version_and_connection),
	    cmocka_unit_test(test_http_refuses_malformed_heads),
	    cmocka_unit_test(test_http_caps_the_head),
	};
	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
