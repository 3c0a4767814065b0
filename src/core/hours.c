#include "hours.h"

#include <ctype.h>
#include <stdio.h>

/* Reads an unsigned decimal integer; returns -1 when none or over limit. */
static int read_uint(const char **p, int64_t limit, int64_t *out)
{
	const char *s = *p;
	int64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (*s - '0');
		if (v > limit)
			return -1;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

static void skip_spaces(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* "1.5" or "1.5h": hours with an optional fraction that must come to whole
 * minutes. s points after the integer part. */
static int parse_decimal(const char *s, int64_t whole, int64_t *minutes)
{
	int64_t frac = 0, scale = 1;

	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s)) {
			if (scale >= 1000000)
				return -1;
			frac = frac * 10 + (*s - '0');
			scale *= 10;
			s++;
		}
	}
	skip_spaces(&s);
	if (*s == 'h' || *s == 'H')
		s++;
	skip_spaces(&s);
	if (*s != '\0' || (frac * 60) % scale != 0)
		return -1;
	*minutes = whole * 60 + frac * 60 / scale;
	return 0;
}

int hours_parse(const char *text, int64_t *minutes)
{
	const char *s = text;
	int64_t sign = 1, first, rest = 0, total;

	if (s == NULL)
		return -1;
	skip_spaces(&s);
	if (*s == '-' || *s == '+') {
		sign = *s == '-' ? -1 : 1;
		s++;
	}
	if (read_uint(&s, HOURS_LIMIT_MINUTES, &first) == -1)
		return -1;

	if (*s == 'm' || *s == 'M') { /* "90m" */
		s++;
		total = first;
	} else if (*s == ':') { /* "1:30" */
		s++;
		if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
			return -1;
		if (read_uint(&s, 59, &rest) == -1)
			return -1;
		total = first * 60 + rest;
	} else if (*s == 'h' || *s == 'H') { /* "2h", "1h30m", "1h 30" */
		s++;
		skip_spaces(&s);
		if (*s != '\0') {
			if (read_uint(&s, 59, &rest) == -1)
				return -1;
			if (*s == 'm' || *s == 'M')
				s++;
		}
		total = first * 60 + rest;
	} else {
		if (parse_decimal(s, first, &total) == -1)
			return -1;
		s = "";
	}
	skip_spaces(&s);
	if (*s != '\0' || total > HOURS_LIMIT_MINUTES)
		return -1;
	*minutes = sign * total;
	return 0;
}

size_t hours_format(int64_t minutes, char *buf, size_t len)
{
	const char *sign = minutes < 0 ? "-" : "";
	uint64_t m = minutes < 0 ? (uint64_t)0 - (uint64_t)minutes : (uint64_t)minutes;
	uint64_t h = m / 60, r = m % 60;
	int n;

	if (h > 0 && r > 0)
		n = snprintf(buf, len, "%s%lluh%02llum", sign, (unsigned long long)h,
		             (unsigned long long)r);
	else if (r > 0)
		n = snprintf(buf, len, "%s%llum", sign, (unsigned long long)r);
	else
		n = snprintf(buf, len, "%s%lluh", sign, (unsigned long long)h);
	return n < 0 ? 0 : (size_t)n;
}
