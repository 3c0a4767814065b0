/* console: the coordinator's console and the national body's dashboard,
 * HTML, CSS and JavaScript shipped inside the binary (src/web/, turned into
 * this table by src/web/embed.sh at build time). The pages call the admin
 * API as any client does; they hold no rule of their own.
 * Layer: api (src/api/console.c serves them). */
#ifndef TB_CONSOLE_H
#define TB_CONSOLE_H

#include <stddef.h>

struct console_file {
	const char *name; /* "console.js": served as /console/assets/console.js */
	const char *type; /* its media type */
	const char *etag; /* "\"HEX\"": from the file's SHA-256 */
	const unsigned char *data;
	size_t len;
};

/* Ends with a NULL name. */
extern const struct console_file console_files[];

#endif
