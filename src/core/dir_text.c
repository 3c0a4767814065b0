/* Checks on what a shared directory item may say, and the normal forms of
 * its area and availability. Pure: no I/O. */
#include "dir_text.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Copies match m of text into what[len], trimmed. */
static void copy_match(const char *text, const regmatch_t *m, char *what, size_t len)
{
	size_t n = (size_t)(m->rm_eo - m->rm_so);

	if (n >= len)
		n = len - 1;
	memcpy(what, text + m->rm_so, n);
	what[n] = '\0';
}

static int count_digits(const char *s, size_t n)
{
	int d = 0;

	for (size_t i = 0; i < n; i++)
		d += isdigit((unsigned char)s[i]) != 0;
	return d;
}

/* ---- the text as a check should read it -------------------------------- */

/* Words that stand for digits or for an address's punctuation, as people
 * write them to slip past a check: "oh seven seven", "ann at example dot
 * org". */
static const struct {
	const char *word;
	const char *as;
} spoken[] = {
    {"zero", "0"},  {"oh", "0"},     {"nought", "0"}, {"one", "1"}, {"two", "2"},
    {"three", "3"}, {"four", "4"},   {"five", "5"},   {"six", "6"}, {"seven", "7"},
    {"eight", "8"}, {"nine", "9"},   {"at", "@"},     {"dot", "."}, {"underscore", "_"},
    {"dash", "-"},  {"hyphen", "-"}, {"plus", "+"},
};

static const char *spoken_as(const char *w, size_t n)
{
	for (size_t i = 0; i < sizeof(spoken) / sizeof(spoken[0]); i++)
		if (strlen(spoken[i].word) == n && strncmp(w, spoken[i].word, n) == 0)
			return spoken[i].as;
	return NULL;
}

static int is_digitish(unsigned char c)
{
	return isdigit(c) || c == 'o' || c == 'l' || c == 'i';
}

/* text in the form the patterns read: Unicode compatibility forms folded
 * (fullwidth digits, ligatures, non-breaking and other spaces), case
 * folded, marks and invisible characters dropped; every run of spaces,
 * tabs, slashes, underscores, dots, commas and dashes before a digit made
 * one space;
 * letters o, l and i among digits read as 0 and 1; digits and "at", "dot"
 * written as words turned back into what they stand for, and brackets
 * around them ("[at]") dropped. NULL when text is not UTF-8. */
static char *normalised(const char *text)
{
	utf8proc_uint8_t *folded = NULL;
	size_t n, o = 0;
	char *out;

	if (utf8proc_map((const utf8proc_uint8_t *)text, 0, &folded,
	                 UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
	                     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE | UTF8PROC_STRIPMARK |
	                     UTF8PROC_STRIPCC | UTF8PROC_LUMP) < 0)
		return NULL;
	n = strlen((char *)folded);
	out = malloc(2 * n + 2);
	if (out == NULL) {
		free(folded);
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		const char *w = (const char *)folded + i;
		size_t wl = 0;
		while (i + wl < n && isalpha((unsigned char)w[wl]))
			wl++;
		if (wl > 0) {
			const char *as = spoken_as(w, wl);
			/* Letters o, l and i right after digits are digits ("9OO"). */
			size_t k = 0;
			while (k < wl && is_digitish((unsigned char)w[k]))
				k++;
			if (k == wl && o > 0 &&
			    (isdigit((unsigned char)out[o - 1]) ||
			     (o > 1 && out[o - 1] == ' ' && isdigit((unsigned char)out[o - 2])))) {
				for (k = 0; k < wl; k++)
					out[o++] = w[k] == 'o' ? '0' : '1';
				i += wl;
				continue;
			}
			if (as != NULL) {
				int joins = as[0] == '@' || as[0] == '.';
				/* "( at )", "[dot]": the brackets go with the word, and
				 * an address's punctuation takes no spaces around it */
				while (o > 0 && (out[o - 1] == '(' || out[o - 1] == '[' ||
				                 (joins && out[o - 1] == ' ')))
					o--;
				memcpy(out + o, as, strlen(as));
				o += strlen(as);
				i += wl;
				while (i < n && (folded[i] == ')' || folded[i] == ']' ||
				                 (joins && folded[i] == ' ')))
					i++;
				continue;
			}
			memcpy(out + o, w, wl);
			o += wl;
			i += wl;
			continue;
		}
		unsigned char c = folded[i++];
		if (c == ' ' || c == '\t' || c == '/' || c == '\\' || c == '_' || c == '-' ||
		    c == '.' || c == ',' || c == '|') {
			/* Separators between digits, in runs, become one space. */
			size_t j = i;
			while (j < n && strchr(" \t/\\_-.,|", folded[j]) != NULL)
				j++;
			int digits = o > 0 && isalnum((unsigned char)out[o - 1]) && j < n &&
			             (isdigit(folded[j]) || (isdigit((unsigned char)out[o - 1]) &&
			                                     is_digitish(folded[j])));
			if (digits) {
				out[o++] = ' ';
				i = j;
				continue;
			}
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	free(folded);
	return out;
}

#define NPATTERNS 4

static enum dir_detail dir_detail_in(const char *text, char *what, size_t len);

enum dir_detail dir_personal_detail(const char *text, char *what, size_t len)
{
	char *norm = normalised(text);
	enum dir_detail found;

	if (norm == NULL) {
		snprintf(what, len, "text that is not UTF-8");
		return DIR_EMAIL; /* cannot check: refuse rather than leak */
	}
	found = dir_detail_in(norm, what, len);
	/* Shown as postcodes are written. */
	for (char *c = what; found == DIR_POSTCODE && *c != '\0'; c++)
		*c = (char)toupper((unsigned char)*c);
	free(norm);
	return found;
}

static enum dir_detail dir_detail_in(const char *text, char *what, size_t len)
{
	static const char *const patterns[NPATTERNS] = {
	    /* an e-mail address, also written with spaces around the @ */
	    "[a-z0-9._%+-]+ ?@ ?[a-z0-9-]+(\\.[a-z0-9-]+)*\\.[a-z]{2,}",
	    /* a phone number: a run of digits, spaces, dots, dashes and brackets,
	     * checked below for at least 9 digits */
	    "\\+?[0-9(][0-9 ().-]{7,}[0-9]",
	    /* an e-mail address whose dot was left out or spoken: "ann@examplecom" */
	    "[a-z0-9._%+-]+ ?@ ?[a-z0-9-]{2,}(com|org|net|uk|gov|nhs|me|info)([^a-z]|$)",
	    /* a full UK postcode: outward code, space optional, inward code */
	    "(^|[^a-z0-9])([a-z]{1,2}[0-9][a-z0-9]? *[0-9][abd-hjlnp-uw-z]{2})($|[^a-z0-9])",
	};
	static const enum dir_detail kinds[NPATTERNS] = {DIR_EMAIL, DIR_PHONE, DIR_EMAIL,
	                                                 DIR_POSTCODE};
	static regex_t compiled[NPATTERNS]; /* compiled once, kept for the process */
	static int ready = -1;              /* -1 not yet, 0 failed, 1 ready */
	enum dir_detail found = DIR_CLEAN;

	if (ready == -1) {
		ready = 1;
		for (size_t i = 0; i < NPATTERNS; i++)
			if (regcomp(&compiled[i], patterns[i], REG_EXTENDED | REG_ICASE) != 0)
				ready = 0;
	}
	if (!ready)
		return DIR_EMAIL; /* cannot check: refuse rather than leak */
	for (size_t i = 0; i < NPATTERNS && found == DIR_CLEAN; i++) {
		regmatch_t m[3];
		const char *at = text;

		while (found == DIR_CLEAN &&
		       regexec(&compiled[i], at, 3, m, at == text ? 0 : REG_NOTBOL) == 0) {
			const regmatch_t *hit = kinds[i] == DIR_POSTCODE ? &m[2] : &m[0];
			if (kinds[i] != DIR_PHONE ||
			    count_digits(at + hit->rm_so, (size_t)(hit->rm_eo - hit->rm_so)) >= 9) {
				copy_match(at, hit, what, len);
				found = kinds[i];
			}
			at += m[0].rm_eo > 0 ? m[0].rm_eo : 1;
			if (*at == '\0')
				break;
		}
	}
	return found;
}

const char *dir_detail_name(enum dir_detail d)
{
	switch (d) {
	case DIR_EMAIL:
		return "an e-mail address";
	case DIR_PHONE:
		return "a phone number";
	case DIR_POSTCODE:
		return "a full postcode";
	default:
		return "nothing personal";
	}
}

int dir_area(const char *in, char *out, size_t len)
{
	size_t n = strlen(in), i = 0, letters = 0;

	if (n < 2 || n > 4 || len < n + 1)
		return -1;
	while (i < n && isalpha((unsigned char)in[i]))
		i++, letters++;
	if (letters < 1 || letters > 2 || i >= n || !isdigit((unsigned char)in[i]))
		return -1;
	for (i++; i < n; i++)
		if (!isalnum((unsigned char)in[i]))
			return -1;
	for (i = 0; i <= n; i++)
		out[i] = (char)toupper((unsigned char)in[i]);
	return 0;
}

static const struct {
	const char *word;
	const char *day;
} day_words[] = {
    {"mon", "monday"},       {"tue", "tuesday"},  {"tues", "tuesday"},    {"wed", "wednesday"},
    {"weds", "wednesday"},   {"thu", "thursday"}, {"thur", "thursday"},   {"thurs", "thursday"},
    {"fri", "friday"},       {"sat", "saturday"}, {"sun", "sunday"},      {"weekday", "weekdays"},
    {"weekend", "weekends"}, {"any", "any day"},  {"anytime", "any day"}, {"daily", "any day"},
};

static const struct {
	const char *word;
	const char *part;
} part_words[] = {
    {"am", "morning"},  {"morning", "morning"}, {"pm", "afternoon"},  {"afternoon", "afternoon"},
    {"eve", "evening"}, {"evening", "evening"}, {"night", "evening"},
};

/* One word, lower case and without a plural s, into its normal form. */
static const char *day_or_part(const char *word, int *is_day)
{
	char w[16];
	size_t n = strlen(word);

	if (n == 0 || n >= sizeof(w))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		w[i] = (char)tolower((unsigned char)word[i]);
	for (int pass = 0; pass < 2; pass++) {
		static const char *const full[] = {"monday", "tuesday",  "wednesday", "thursday",
		                                   "friday", "saturday", "sunday"};
		for (size_t i = 0; i < sizeof(full) / sizeof(full[0]); i++)
			if (strcmp(w, full[i]) == 0)
				return *is_day = 1, full[i];
		for (size_t i = 0; i < sizeof(day_words) / sizeof(day_words[0]); i++)
			if (strcmp(w, day_words[i].word) == 0)
				return *is_day = 1, day_words[i].day;
		for (size_t i = 0; i < sizeof(part_words) / sizeof(part_words[0]); i++)
			if (strcmp(w, part_words[i].word) == 0)
				return *is_day = 0, part_words[i].part;
		if (n > 1 && w[n - 1] == 's') /* "tuesdays", "mornings" */
			w[--n] = '\0';
		else
			break;
	}
	return NULL;
}

int dir_availability(const char *in, char *out, size_t len, char *bad, size_t badlen)
{
	char buf[DIR_AVAILABILITY_MAX + 1], *save = NULL;
	size_t o = 0;

	if (strlen(in) > DIR_AVAILABILITY_MAX) {
		snprintf(bad, badlen, "%.20s...", in);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", in);
	out[0] = '\0';
	for (char *slot = strtok_r(buf, ",;", &save); slot != NULL;
	     slot = strtok_r(NULL, ",;", &save)) {
		char *wsave = NULL;
		const char *day = NULL, *part = NULL;
		for (char *word = strtok_r(slot, " \t/", &wsave); word != NULL;
		     word = strtok_r(NULL, " \t/", &wsave)) {
			int is_day;
			const char *norm = day_or_part(word, &is_day);
			if (norm == NULL || (is_day && day != NULL) || (!is_day && part != NULL)) {
				snprintf(bad, badlen, "%s", word);
				return -1;
			}
			if (is_day)
				day = norm;
			else
				part = norm;
		}
		if (day == NULL && part == NULL)
			continue;
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s%s%s", o ? ", " : "",
		                      day != NULL ? day : "any day", part != NULL ? " " : "",
		                      part != NULL ? part : "");
		if (o >= len) {
			snprintf(bad, badlen, "%.20s...", in);
			return -1;
		}
	}
	return 0;
}
