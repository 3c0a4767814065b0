/* tbctl: output formats shared by statements and reports. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tbctl_format(const char *value, enum tbctl_format *format)
{
	if (value == NULL || strcmp(value, "text") == 0)
		*format = FORMAT_TEXT;
	else if (strcmp(value, "csv") == 0)
		*format = FORMAT_CSV;
	else if (strcmp(value, "json") == 0)
		*format = FORMAT_JSON;
	else {
		fprintf(stderr, "tbctl: --format must be text, csv or json\n");
		return -1;
	}
	return 0;
}

void tbctl_csv_text(FILE *out, const char *text, int last)
{
	/* A spreadsheet reads a cell starting with one of these as a formula. */
	int formula = text[0] != '\0' && strchr("=+-@\t\r", text[0]) != NULL;
	int quote = formula || strpbrk(text, ",\"\r\n") != NULL;

	if (quote) {
		fputc('"', out);
		if (formula)
			fputc('\'', out);
		for (const char *c = text; *c; c++) {
			if (*c == '"')
				fputc('"', out);
			fputc(*c, out);
		}
		fputc('"', out);
	} else {
		fputs(text, out);
	}
	fputs(last ? "\r\n" : ",", out);
}

void tbctl_csv_hours(FILE *out, json_int_t minutes, int last)
{
	json_int_t m = minutes < 0 ? -minutes : minutes;
	/* Hundredths of an hour, rounded half up, from whole minutes. */
	json_int_t hundredths = (m * 100 + 30) / 60;

	fprintf(out, "%s%lld.%02lld%s", minutes < 0 ? "-" : "", (long long)(hundredths / 100),
	        (long long)(hundredths % 100), last ? "\r\n" : ",");
}

int tbctl_month(const char *month, char *from, char *to)
{
	static const char *const last_days[] = {"31", "30", "29", "28"};
	char probe[11];

	if (strlen(month) != 7)
		return -1;
	snprintf(from, 11, "%s-01", month);
	if (!req_valid_date(from))
		return -1;
	/* The last day is the largest of 31, 30, 29, 28 that is a real date. */
	for (int i = 0; i < 4; i++) {
		snprintf(probe, sizeof(probe), "%s-%s", month, last_days[i]);
		if (req_valid_date(probe)) {
			snprintf(to, 11, "%s", probe);
			return 0;
		}
	}
	return -1;
}
