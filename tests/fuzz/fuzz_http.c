/* libFuzzer target: the admin API's request heads as a client sends them,
 * on arbitrary bytes, parsed in a buffer of exactly their size (so that
 * AddressSanitizer sees a read past it). A head taken must lie within the
 * input, and every string in it end within the head. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct http_head h;
	size_t used = 0;
	int rc;

	memcpy(buf, data, size);
	rc = http_parse_head(buf, size, 16384, &h, &used);
	if (rc == 0) {
		if (used > size || h.target[0] != '/' || (h.minor != 0 && h.minor != 1))
			abort();
		size_t n = strlen(h.method) + strlen(h.target);
		for (int i = 0; i < h.nheaders; i++)
			n += strlen(h.headers[i].name) + strlen(h.headers[i].value);
		if (n > used ||
		    (h.keep_alive && http_head_header(&h, "Connection") == NULL && h.minor == 0))
			abort();
	} else if (rc != 1 && rc != 400 && rc != 417 && rc != 431 && rc != 505) {
		abort();
	}
	free(buf);
	return 0;
}
