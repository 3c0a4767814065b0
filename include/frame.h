/* frame: the federation link's framing, a 4-byte big-endian length and
 * then that many bytes. Pure.
 * Layer: core (src/core/); includes nothing. */
#ifndef TB_FRAME_H
#define TB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_MAX (1024 * 1024)

enum frame_result {
	FRAME_OK,        /* a whole frame is there: *len payload bytes after the header */
	FRAME_NEED_MORE, /* not yet */
	FRAME_TOO_BIG,   /* the length is over the cap: drop the connection */
	FRAME_EMPTY,     /* a zero length: not a message, drop the connection */
};

/* Looks at the first avail bytes of a stream, checking the length against
 * max before anything is allocated. */
enum frame_result frame_peek(const uint8_t *buf, size_t avail, size_t max, uint32_t *len)
    __attribute__((warn_unused_result));

void frame_header(uint32_t len, uint8_t *out);

#endif
