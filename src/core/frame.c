#include "frame.h"

enum frame_result frame_peek(const uint8_t *buf, size_t avail, size_t max, uint32_t *len)
{
	uint32_t n;

	if (avail < FRAME_HEADER)
		return FRAME_NEED_MORE;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (n == 0)
		return FRAME_EMPTY;
	if (n > max)
		return FRAME_TOO_BIG;
	if (avail - FRAME_HEADER < n)
		return FRAME_NEED_MORE;
	*len = n;
	return FRAME_OK;
}

void frame_header(uint32_t len, uint8_t *out)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}
