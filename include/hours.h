/* hours: time amounts as integer minutes, parsed from and shown as hours.
 * Pure functions, no allocation.
 * Layer: core (src/core/); includes nothing. */
#ifndef TB_HOURS_H
#define TB_HOURS_H

#include <stddef.h>
#include <stdint.h>

/* Largest amount accepted anywhere: 1,000,000 hours. */
#define HOURS_LIMIT_MINUTES (1000000LL * 60)

/* Parses "2", "1.5", "1.5h", "1h30m", "1h30", "90m", "1:30", optionally
 * signed ("-10h"). Whole minutes only: "0.01" is refused. Returns 0 and sets
 * *minutes, or -1 on anything else (empty, junk, over the limit). */
int hours_parse(const char *text, int64_t *minutes) __attribute__((warn_unused_result));

/* Writes minutes as "2h", "1h30m", "45m", "-1h15m", "0h" into buf (NUL
 * terminated, truncated to len). Returns the length it wanted. */
size_t hours_format(int64_t minutes, char *buf, size_t len);

#endif
