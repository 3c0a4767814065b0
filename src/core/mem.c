#include "mem.h"

#include "log.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
	log_error("out of memory allocating %zu bytes; aborting", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		out_of_memory(n);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count != 0 ? count : 1, size != 0 ? size : 1);

	if (p == NULL)
		out_of_memory(count * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n != 0 ? n : 1);

	if (q == NULL)
		out_of_memory(n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *out;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0)
		out_of_memory(strlen(fmt));
	return out;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return xmalloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return xrealloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

static void *pb_alloc(void *data, size_t n)
{
	(void)data;
	return xmalloc(n);
}

static void pb_free(void *data, void *p)
{
	(void)data;
	free(p);
}

ProtobufCAllocator mem_protobuf = {pb_alloc, pb_free, NULL};

void mem_install(void)
{
	json_set_alloc_funcs(xmalloc, free);
	event_set_mem_functions(xmalloc, xrealloc, free);
	/* Refused only once OpenSSL has allocated, which nothing has yet. */
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
