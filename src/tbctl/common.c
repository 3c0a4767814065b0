/* tbctl: what every command shares: errors, output, calling the API. */
#include "tbctl.h"

#include "hours.h"
#include "req.h"

#include <ctype.h>
#include <event2/http.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tbctl_hours(json_int_t minutes)
{
	static char buf[4][32];
	static int next;
	char *b = buf[next++ % 4];

	hours_format((int64_t)minutes, b, sizeof(buf[0]));
	return b;
}

const char *tbctl_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

int tbctl_fail(const struct tbctl_reply *reply)
{
	const json_t *err = json_object_get(reply->body, "error");
	int status = reply->status;

	if (status == 0) {
		fprintf(stderr, "tbctl: %s\n", reply->err);
		return TBCTL_UNAVAILABLE;
	}
	if (err != NULL)
		fprintf(stderr, "tbctl: %s (%s)\n", tbctl_str(err, "message"),
		        tbctl_str(err, "code"));
	else
		fprintf(stderr, "tbctl: timebankd answered HTTP %d\n", status);
	json_decref(reply->body);
	return status == 503 ? TBCTL_UNAVAILABLE : TBCTL_REFUSED;
}

int tbctl_call(const struct tbctl *t, const char *method, const char *path, const json_t *body,
               void (*show)(const json_t *body))
{
	struct tbctl_reply reply;

	if (tbctl_http(t, method, path, body, &reply) == -1 || reply.status >= 300)
		return tbctl_fail(&reply);
	if (t->json || show == NULL)
		json_dumpf(reply.body, stdout, JSON_INDENT(2)), putchar('\n');
	else
		show(reply.body);
	json_decref(reply.body);
	return TBCTL_OK;
}

int tbctl_fields(int argc, char **argv, const struct tbctl_field *fields, json_t *out,
                 int *first_arg)
{
	char *pos[64];
	int npos = 0, only_args = 0;

	for (int i = 1; i < argc; i++) {
		const char *name = argv[i] + 2, *value, *eq = strchr(name, '=');
		size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		const struct tbctl_field *f = fields;

		if (only_args || strncmp(argv[i], "--", 2) != 0) {
			if (npos == 64) {
				fprintf(stderr, "tbctl: %s: too many arguments\n", argv[0]);
				return -1;
			}
			pos[npos++] = argv[i];
			continue;
		}
		if (len == 0) { /* "--" ends the options */
			only_args = 1;
			continue;
		}
		while (f->option != NULL &&
		       (strlen(f->option) != len || strncmp(f->option, name, len)))
			f++;
		if (f->option == NULL) {
			fprintf(stderr, "tbctl: %s: unknown option --%.*s\n", argv[0], (int)len,
			        name);
			return -1;
		}
		if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			fprintf(stderr, "tbctl: %s: --%s needs a value\n", argv[0], f->option);
			return -1;
		}
		/* Given twice (--earner 4 --earner 5), an option becomes a list. */
		json_t *had = json_object_get(out, f->field);
		if (had == NULL) {
			json_object_set_new(out, f->field, json_string(value));
		} else {
			json_t *list =
			    json_is_array(had) ? json_incref(had) : json_pack("[O]", had);
			json_array_append_new(list, json_string(value));
			json_object_set_new(out, f->field, list);
		}
	}
	/* Positional arguments go to the end, in order, wherever they were. */
	for (int i = 0; i < npos; i++)
		argv[argc - npos + i] = pos[i];
	*first_arg = argc - npos;
	return 0;
}

int tbctl_flag(int *argc, char **argv, const char *flag)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) == 0) {
			memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i) * sizeof(char *));
			(*argc)--;
			return 1;
		}
	}
	return 0;
}

/* path?k=v&... with values URL-encoded. */
static void build_target(char *out, size_t len, const char *path, const json_t *query,
                         const char *cursor)
{
	const char *key;
	json_t *v;
	size_t n = (size_t)snprintf(out, len, "%s", path);
	char sep = '?';

	json_object_foreach((json_t *)query, key, v)
	{
		if (strcmp(key, "cursor") == 0 && cursor != NULL)
			continue;
		char *enc = evhttp_uriencode(json_string_value(v), -1, 0);
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%c%s=%s", sep, key, enc);
		free(enc);
		sep = '&';
	}
	if (cursor != NULL)
		snprintf(out + n, n < len ? len - n : 0, "%ccursor=%s", sep, cursor);
}

int tbctl_get(const struct tbctl *t, const char *path, const json_t *query, const char *cursor,
              struct tbctl_reply *reply)
{
	char target[2048];

	build_target(target, sizeof(target), path, query, cursor);
	return tbctl_http(t, "GET", target, NULL, reply);
}

/* A search that matched more than it ranked says so (the directory's). */
static void broad_hint(int broad)
{
	if (broad)
		printf("(more items match these words than were ranked: add a word, --category "
		       "or --area)\n");
}

int tbctl_list(const struct tbctl *t, const char *path, const json_t *query, int all,
               void (*header)(void), void (*row)(const json_t *item))
{
	json_t *items = json_array(), *next;
	char cursor[64] = "";
	struct tbctl_reply reply;
	size_t i;
	json_t *item;
	int broad = 0;

	for (;;) {
		if (tbctl_get(t, path, query, cursor[0] ? cursor : NULL, &reply) == -1 ||
		    reply.status >= 300) {
			json_decref(items);
			return tbctl_fail(&reply);
		}
		if (!all) {
			json_decref(items);
			items = NULL;
			if (t->json) {
				json_dumpf(reply.body, stdout, JSON_INDENT(2));
				putchar('\n');
			} else {
				if (header != NULL)
					header();
				json_array_foreach(json_object_get(reply.body, "items"), i, item)
				    row(item);
				broad_hint(json_is_true(json_object_get(reply.body, "broad")));
				if (json_is_string(json_object_get(reply.body, "next_cursor")))
					printf("(more: --cursor %s, or --all)\n",
					       tbctl_str(reply.body, "next_cursor"));
			}
			json_decref(reply.body);
			return TBCTL_OK;
		}
		json_array_extend(items, json_object_get(reply.body, "items"));
		broad |= json_is_true(json_object_get(reply.body, "broad"));
		next = json_object_get(reply.body, "next_cursor");
		snprintf(cursor, sizeof(cursor), "%s",
		         json_is_string(next) ? json_string_value(next) : "");
		json_decref(reply.body);
		if (cursor[0] == '\0')
			break;
	}
	if (t->json) {
		json_t *out = json_pack("{so}", "items", items);
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(out);
		return TBCTL_OK;
	}
	if (header != NULL)
		header();
	json_array_foreach(items, i, item) row(item);
	broad_hint(broad);
	json_decref(items);
	return TBCTL_OK;
}

int tbctl_list_command(const struct tbctl *t, int argc, char **argv,
                       const struct tbctl_field *fields, const char *path, const json_t *preset,
                       void (*header)(void), void (*row)(const json_t *item))
{
	int all = tbctl_flag(&argc, argv, "--all"), first, rc;
	json_t *query = preset != NULL ? json_deep_copy(preset) : json_object();

	if (tbctl_fields(argc, argv, fields, query, &first) == -1 || first != argc) {
		if (first != argc)
			fprintf(stderr, "tbctl: %s takes options only\n", argv[0]);
		json_decref(query);
		return TBCTL_USAGE;
	}
	rc = tbctl_list(t, path, query, all, header, row);
	json_decref(query);
	return rc;
}

/* Tries over about 15 s, so a database restart does not fail the command. */
#define RECORD_TRIES 6

int tbctl_send_once(const struct tbctl *t, const char *path, json_t *body,
                    void (*show)(const json_t *))
{
	struct tbctl_reply reply;
	unsigned char raw[16];
	char key[48];
	int rc;

	if (json_object_get(body, "idempotency_key") == NULL) {
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			fprintf(stderr, "tbctl: no randomness for an idempotency key\n");
			return TBCTL_UNAVAILABLE;
		}
		strcpy(key, "tbctl-");
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(key + 6 + 2 * i, 3, "%02x", raw[i]);
		json_object_set_new(body, "idempotency_key", json_string(key));
	}
	snprintf(key, sizeof(key), "%s", tbctl_str(body, "idempotency_key"));
	for (int i = 0; i < RECORD_TRIES; i++) {
		if (i > 0)
			sleep(i < 3 ? 1U << (i - 1) : 4);
		rc = tbctl_http(t, "POST", path, body, &reply);
		if (rc == 0 && reply.status != 503)
			break;
		json_decref(reply.body);
		reply.body = NULL;
	}
	if (reply.status == 0 || reply.status == 503) {
		rc = tbctl_fail(&reply);
		fprintf(stderr,
		        "tbctl: it may or may not be recorded; run the same command "
		        "with --key %s to record it exactly once\n",
		        key);
		return rc;
	}
	if (reply.status >= 300)
		return tbctl_fail(&reply);
	if (t->json) {
		json_dumpf(reply.body, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		show(reply.body);
	}
	json_decref(reply.body);
	return TBCTL_OK;
}

int tbctl_exchange_id(const char *text)
{
	int64_t id;
	size_t n = strlen(text);

	if (req_parse_int(text, 1, INT64_MAX, &id) == 0)
		return 1;
	if (strchr(text, ':') == NULL || n > 60)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)text[i]) && text[i] != ':' && text[i] != '-')
			return 0;
	return 1;
}

int tbctl_create_named(const struct tbctl *t, int argc, char **argv, const char *what,
                       const char *path, void (*show)(const json_t *))
{
	static const struct tbctl_field fields[] = {
	    {"name", "name"}, {"role", "role"}, {"org", "org"}, {NULL, NULL}};
	json_t *body = json_object();
	const char *org;
	int64_t n = 0;
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc ||
	    json_object_get(body, "name") == NULL || json_object_get(body, "role") == NULL ||
	    ((org = json_string_value(json_object_get(body, "org"))) != NULL &&
	     req_parse_int(org, 1, 999999999, &n) == -1)) {
		fprintf(stderr,
		        "tbctl: %s %s needs --name NAME and --role ROLE (and --org N, an "
		        "organisation's member number, for a referrer)\n",
		        what, argv[0]);
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (n != 0)
		json_object_set_new(body, "org", json_integer((json_int_t)n));
	rc = tbctl_call(t, "POST", path, body, show);
	json_decref(body);
	return rc;
}
