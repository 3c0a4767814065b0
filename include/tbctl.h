/* tbctl: the coordinator's command line over the admin API. Shared by the
 * files in src/tbctl/.
 * Layer: tbctl (src/tbctl/); includes core headers and its own. */
#ifndef TB_TBCTL_H
#define TB_TBCTL_H

#include <jansson.h>

/* Exit codes. */
enum {
	TBCTL_OK = 0,
	TBCTL_REFUSED = 1,     /* the API said no, or the audit failed */
	TBCTL_USAGE = 2,       /* the command line was wrong */
	TBCTL_UNAVAILABLE = 3, /* timebankd or its database could not be reached */
};

struct tbctl {
	const char *url;
	const char *token;
	int json; /* print the API's JSON */
};

struct tbctl_reply {
	int status;    /* HTTP status; 0 when nothing came back */
	json_t *body;  /* parsed reply, or NULL */
	char err[256]; /* why nothing came back */
};

/* One request; body may be NULL. 0 when a reply came back (any status), -1
 * with reply->err set when none did. The caller frees reply->body. */
int tbctl_http(const struct tbctl *t, const char *method, const char *path, const json_t *body,
               struct tbctl_reply *reply) __attribute__((warn_unused_result));

/* Prints the API's error (or the transport failure) to stderr and returns
 * the exit code for it. Frees reply->body. */
int tbctl_fail(const struct tbctl_reply *reply);

/* Requests, then prints the JSON (--json) or calls show(body); returns the
 * exit code. */
int tbctl_call(const struct tbctl *t, const char *method, const char *path, const json_t *body,
               void (*show)(const json_t *body)) __attribute__((warn_unused_result));

/* Prints minutes as hours ("1h30m") into a static buffer; for output only. */
const char *tbctl_hours(json_int_t minutes);
/* A string field or "" (never NULL). */
const char *tbctl_str(const json_t *obj, const char *key);

int tbctl_member(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_exchange(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_balance(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_history(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_audit(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));

/* Options that become fields of a JSON request body: "--NAME VALUE" sets
 * field (a string; the API parses numbers and hours). Given more than once,
 * the field becomes a list of strings. */
struct tbctl_field {
	const char *option;
	const char *field;
};

/* Parses argv (argv[0] is the command) into out for the given fields;
 * positional arguments, wherever they stood, are moved in order to
 * argv[*first_arg..argc). Returns 0, or -1 after printing the problem. */
int tbctl_fields(int argc, char **argv, const struct tbctl_field *fields, json_t *out,
                 int *first_arg) __attribute__((warn_unused_result));

/* GET path with the query's fields (strings, URL-encoded) and an optional
 * cursor. Like tbctl_http otherwise. */
int tbctl_get(const struct tbctl *t, const char *path, const json_t *query, const char *cursor,
              struct tbctl_reply *reply) __attribute__((warn_unused_result));

/* Removes a value-less flag (like "--all") from argv; returns 1 if it was
 * there. */
int tbctl_flag(int *argc, char **argv, const char *flag);

/* Lists path, with the query fields given, one page or (all) every page:
 * calls row() per item, or prints the JSON ({"items": [...]} when all).
 * Returns the exit code. */
int tbctl_list(const struct tbctl *t, const char *path, const json_t *query, int all,
               void (*header)(void), void (*row)(const json_t *item))
    __attribute__((warn_unused_result));

/* A list command: --all and the given query fields (added to preset, which
 * may be NULL), no other arguments. */
int tbctl_list_command(const struct tbctl *t, int argc, char **argv,
                       const struct tbctl_field *fields, const char *path, const json_t *preset,
                       void (*header)(void), void (*row)(const json_t *item))
    __attribute__((warn_unused_result));

/* POSTs a write with an idempotency key (made here unless given), retrying
 * while timebankd or its database is away: the key makes every retry safe,
 * so the write lands once. Prints the result with show(). */
int tbctl_send_once(const struct tbctl *t, const char *path, json_t *body,
                    void (*show)(const json_t *)) __attribute__((warn_unused_result));

/* token create / user add: --name, --role and, for a referrer, --org (a
 * member number), POSTed to path; what names the thing made, for the
 * usage message. */
int tbctl_create_named(const struct tbctl *t, int argc, char **argv, const char *what,
                       const char *path, void (*show)(const json_t *))
    __attribute__((warn_unused_result));

/* An exchange id as the user wrote it: local (12) or cross-bank
 * (colchester:12); claims too (westminster:c3). 1 when usable in a path. */
int tbctl_exchange_id(const char *text);

int tbctl_claim(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_referral(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_offer(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_request(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_directory(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_match(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_contact(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_exchange_claim(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_grant(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_org(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_statement(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_statements(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_report(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_network(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_register(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_token(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_peers(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_backup(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_federation(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_intake(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_member_checks(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_member_check_add(const struct tbctl *t, int argc, char **argv)
    __attribute__((warn_unused_result));
int tbctl_care(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_todo(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));
int tbctl_user(const struct tbctl *t, int argc, char **argv) __attribute__((warn_unused_result));

/* Output formats for statements and reports. */
enum tbctl_format { FORMAT_TEXT, FORMAT_CSV, FORMAT_JSON };

/* Reads --format's value (NULL: text); -1 after printing the problem. */
int tbctl_format(const char *value, enum tbctl_format *format) __attribute__((warn_unused_result));

/* Writes one CSV cell (RFC 4180 quoting; text starting with = + - @ gets a
 * leading ' so a spreadsheet shows it rather than running it). */
void tbctl_csv_text(FILE *out, const char *text, int last);
/* Writes minutes as decimal hours ("-1.50") for spreadsheets. */
void tbctl_csv_hours(FILE *out, json_int_t minutes, int last);

/* "YYYY-MM" to its first and last days (from[11], to[11]); 0 or -1. */
int tbctl_month(const char *month, char *from, char *to) __attribute__((warn_unused_result));

#endif
