/* tbctl exchange ...: record and look up exchanges of hours. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <string.h>

static void show_exchange(const json_t *x)
{
	const char *kind = tbctl_str(x, "kind"), *payer = tbctl_str(x, "payer_label");
	const char *earner = tbctl_str(x, "earner_label");
	const char *hours = tbctl_hours(json_integer_value(json_object_get(x, "minutes")));
	long long id = (long long)json_integer_value(json_object_get(x, "id"));

	/* The payer received help and pays; the earner gave it and earns. */
	if (json_is_true(json_object_get(x, "cross_bank"))) {
		printf("exchange %s %s: %s received %s of help from %s (%s) on %s\n",
		       tbctl_str(x, "id"), tbctl_str(x, "state"), payer, hours, earner,
		       tbctl_str(x, "category"), tbctl_str(x, "performed_on"));
		if (tbctl_str(x, "reason")[0] != '\0')
			printf("  refused by %s: %s\n", tbctl_str(x, "peer"),
			       tbctl_str(x, "reason"));
		return;
	}
	if (strcmp(kind, "grant") == 0)
		printf("grant %lld %s: %s granted %s from the %s (%s) on %s\n", id,
		       tbctl_str(x, "state"), earner, hours, payer, tbctl_str(x, "category"),
		       tbctl_str(x, "performed_on"));
	else if (strcmp(kind, "reversal") == 0)
		printf("reversal %lld %s: %s back from %s to %s (reverses %lld)\n", id,
		       tbctl_str(x, "state"), hours, payer, earner,
		       (long long)json_integer_value(json_object_get(x, "reverses")));
	else
		printf("exchange %lld %s: %s received %s of help from %s (%s) on %s\n", id,
		       tbctl_str(x, "state"), payer, hours, earner, tbctl_str(x, "category"),
		       tbctl_str(x, "performed_on"));
	if (tbctl_str(x, "description")[0] != '\0')
		printf("  %s\n", tbctl_str(x, "description"));
	if (tbctl_str(x, "reason")[0] != '\0')
		printf("  reason: %s\n", tbctl_str(x, "reason"));
	if (json_is_integer(json_object_get(x, "reversed_by")))
		printf("  reversed by %lld\n",
		       (long long)json_integer_value(json_object_get(x, "reversed_by")));
}

static void list_header(void)
{
	printf("%8s  %-10s  %-9s  %-18s  %-18s  %7s  %s\n", "ID", "DATE", "KIND", "PAYER", "EARNER",
	       "TIME", "CATEGORY");
}

static void list_row(const json_t *x)
{
	printf("%8lld  %-10s  %-9s  %-18.18s  %-18.18s  %7s  %s\n",
	       (long long)json_integer_value(json_object_get(x, "id")),
	       tbctl_str(x, "performed_on"), tbctl_str(x, "kind"), tbctl_str(x, "payer_label"),
	       tbctl_str(x, "earner_label"),
	       tbctl_hours(json_integer_value(json_object_get(x, "minutes"))),
	       tbctl_str(x, "category"));
}

static void show_group(const json_t *g)
{
	const json_t *x;
	size_t i;

	printf("group of %zu exchanges settled: %s in all\n",
	       json_array_size(json_object_get(g, "items")),
	       tbctl_hours(json_integer_value(json_object_get(g, "minutes"))));
	json_array_foreach(json_object_get(g, "items"), i, x) show_exchange(x);
}

/* "5:1h30m" (a member with their own hours), as against "westminster:204"
 * (a member of another bank). */
static int own_hours(const char *earner)
{
	const char *colon = strchr(earner, ':');

	if (colon == NULL || colon == earner)
		return 0;
	for (const char *c = earner; c < colon; c++)
		if (*c < '0' || *c > '9')
			return 0;
	return 1;
}

/* "--earner 5" or "--earner 5:1h30m" into a group's earner item. */
static json_t *group_earner(const char *text)
{
	const char *colon = strchr(text, ':');

	if (colon == NULL)
		return json_string(text);
	return json_pack("{s:s%, s:s}", "earner", text, (size_t)(colon - text), "hours", colon + 1);
}

static int exchange_record(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"payer", "payer"},
	    {"earner", "earner"},
	    {"contact", "contact"},
	    {"hours", "hours"},
	    {"category", "category"},
	    {"description", "description"},
	    {"date", "performed_on"},
	    {"key", "idempotency_key"},
	    {"override", "safeguarding_override"},
	    {NULL, NULL},
	};
	json_t *body = json_object(), *earner, *earners;
	const char *path = "/v1/exchanges";
	void (*show)(const json_t *) = show_exchange;
	size_t i;
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	earner = json_object_get(body, "earner");
	/* Several earners, or one with its own hours: one group activity. */
	if (json_is_array(earner) || own_hours(tbctl_str(body, "earner"))) {
		earners = json_array();
		if (json_is_array(earner)) {
			json_t *e;
			json_array_foreach(earner, i, e)
			    json_array_append_new(earners, group_earner(json_string_value(e)));
		} else {
			json_array_append_new(earners, group_earner(json_string_value(earner)));
		}
		json_object_del(body, "earner");
		json_object_set_new(body, "earners", earners);
		path = "/v1/exchanges/group";
		show = show_group;
	}
	rc = tbctl_send_once(t, path, body, show);
	json_decref(body);
	return rc;
}

static int exchange_reverse(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"reason", "reason"},
	    {"key", "idempotency_key"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	char path[64];
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    !tbctl_exchange_id(argv[first])) {
		fprintf(stderr, "tbctl: exchange reverse needs one exchange ID and --reason\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/exchanges/%s/reverse", argv[first]);
	rc = tbctl_send_once(t, path, body, show_exchange);
	json_decref(body);
	return rc;
}

int tbctl_grant(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"member", "member"},           {"hours", "hours"},
	    {"reason", "reason"},           {"category", "category"},
	    {"description", "description"}, {"date", "performed_on"},
	    {"key", "idempotency_key"},     {NULL, NULL},
	};
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	rc = tbctl_send_once(t, "/v1/grants", body, show_exchange);
	json_decref(body);
	return rc;
}

static int exchange_show(const struct tbctl *t, int argc, char **argv)
{
	char path[128];

	if (argc != 2 || !tbctl_exchange_id(argv[1])) {
		fprintf(stderr, "tbctl: exchange show needs one exchange ID\n");
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/exchanges/%s", argv[1]);
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
	return tbctl_list_command(t, argc, argv, fields, "/v1/exchanges", NULL, list_header,
	                          list_row);
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
	if (strcmp(sub, "reverse") == 0)
		return exchange_reverse(t, argc - 1, argv + 1);
	if (strcmp(sub, "claim") == 0)
		return tbctl_exchange_claim(t, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: exchange needs record, show, list, reverse or claim\n");
	return TBCTL_USAGE;
}
