/* mem: the one out-of-memory policy. Every allocation of timebankd and tbctl
 * goes through these, or through the libraries' hooks that mem_install
 * points at them (jansson, libevent, OpenSSL, protobuf-c): one that fails
 * logs the size asked for and aborts. No caller checks for NULL. libpq
 * allocates for itself; its failures come back as failed results.
 * Layer: core (src/core/); includes none of ours (the C library's and
 * protobuf-c's only). */
#ifndef TB_MEM_H
#define TB_MEM_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));

/* Points the libraries' allocators at the above. Call first in main(),
 * before any library allocates. */
void mem_install(void);

/* For protobuf-c's unpack calls. */
extern ProtobufCAllocator mem_protobuf;

#endif
