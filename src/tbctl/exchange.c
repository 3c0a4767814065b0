/* tbctl exchange ...: record and look up exchanges of hours. */
#include "tbctl.h"

#include "req.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Tries over about 15 s, so a database restart does not fail the command. */
#define RECORD_TRIES 6

static void show_exchange(const json_t *x)
{
	printf("exchange %lld %s: member %lld received %s from member %lld (%s) on %s\n",
	       (long long)json_integer_value(json_object_get(x, "id")), tbctl_str(x, "state"),
	       (long long)json_integer_value(json_object_get(x, "payer")),
	       tbctl_hours(json_integer_value(json_object_get(x, "minutes"))),
	       (long long)json_integer_value(json_object_get(x, "earner")),
	       tbctl_str(x, "category"), tbctl_str(x, "performed_on"));
	if (tbctl_str(x, "description")[0] != '\0')
		printf("  %s\n", tbctl_str(x, "description"));
}

static void list_header(void)
{
	printf("%8s  %-10s  %8s  %8s  %7s  %s\n", "ID", "DATE", "PAYER", "EARNER", "TIME",
	       "CATEGORY");
}

static void list_row(const json_t *x)
{
	printf("%8lld  %-10s  %8lld  %8lld  %7s  %s\n",
	       (long long)json_integer_value(json_object_get(x, "id")),
	       tbctl_str(x, "performed_on"),
	       (long long)json_integer_value(json_object_get(x, "payer")),
	       (long long)json_integer_value(json_object_get(x, "earner")),
	       tbctl_hours(json_integer_value(json_object_get(x, "minutes"))),
	       tbctl_str(x, "category"));
}

/* Records with an idempotency key, retrying while timebankd or its database
 * is away: the key makes every retry safe, so the exchange lands once. */
static int exchange_record(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"payer", "payer"},
	    {"earner", "earner"},
	    {"hours", "hours"},
	    {"category", "category"},
	    {"description", "description"},
	    {"date", "performed_on"},
	    {"key", "idempotency_key"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	struct tbctl_reply reply;
	unsigned char raw[16];
	char key[48];
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (json_object_get(body, "idempotency_key") == NULL) {
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			fprintf(stderr, "tbctl: no randomness for an idempotency key\n");
			json_decref(body);
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
		rc = tbctl_http(t, "POST", "/v1/exchanges", body, &reply);
		if (rc == 0 && reply.status != 503)
			break;
		json_decref(reply.body);
		reply.body = NULL;
	}
	json_decref(body);
	if (reply.status == 0 || reply.status == 503) {
		rc = tbctl_fail(&reply);
		fprintf(stderr,
		        "tbctl: the exchange may or may not be recorded; run the same command "
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
		show_exchange(reply.body);
	}
	json_decref(reply.body);
	return TBCTL_OK;
}

static int exchange_show(const struct tbctl *t, int argc, char **argv)
{
	char path[64];
	int64_t id;

	if (argc != 2 || req_parse_int(argv[1], 1, INT64_MAX, &id) == -1) {
		fprintf(stderr, "tbctl: exchange show needs one exchange ID\n");
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/exchanges/%lld", (long long)id);
	return tbctl_call(t, "GET", path, NULL, show_exchange);
}

static int exchange_list(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"member", "member"},
	    {"limit", "limit"},
	    {"cursor", "cursor"},
	    {NULL, NULL},
	};
	return tbctl_list_command(t, argc, argv, fields, "/v1/exchanges", list_header, list_row);
}

int tbctl_exchange(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "record") == 0)
		return exchange_record(t, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return exchange_show(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return exchange_list(t, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: exchange needs record, show or list\n");
	return TBCTL_USAGE;
}
