/* tbctl peers: the federation links of this daemon. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

static void show_peers(const json_t *body)
{
	const json_t *p;
	size_t i;

	printf("%s (%s)\n", tbctl_str(body, "bank"), tbctl_str(body, "role"));
	if (json_array_size(json_object_get(body, "peers")) == 0) {
		printf("no peers: this daemon has no [federation] links\n");
		return;
	}
	printf("%-14s %-9s %-12s %-20s %9s %9s %9s %7s %7s %-10s %-18s %s\n", "PEER", "KIND",
	       "STATE", "SINCE", "SENT", "ACKED", "RECEIVED", "OUTBOX", "REFUSED", "CHECKPOINT",
	       "DIRECTORY", "LAST ERROR");
	json_array_foreach(json_object_get(body, "peers"), i, p)
	{
		const char *checkpoint = json_is_true(json_object_get(p, "diverged"))
		                             ? "DIVERGED"
		                             : tbctl_str(p, "checkpoint");
		const json_t *dir = json_object_get(p, "directory");
		char directory[40] = "-";
		/* The peer's directory version we hold, and its item count. */
		if (json_is_object(dir))
			snprintf(directory, sizeof(directory), "v%lld, %lld item%s",
			         (long long)json_integer_value(json_object_get(dir, "version")),
			         (long long)json_integer_value(json_object_get(dir, "items")),
			         json_integer_value(json_object_get(dir, "items")) == 1 ? "" : "s");
		printf("%-14s %-9s %-12s %-20s %9lld %9lld %9lld %7lld %7lld %-10s %-18s %s\n",
		       tbctl_str(p, "peer"), tbctl_str(p, "kind"), tbctl_str(p, "state"),
		       tbctl_str(p, "since"),
		       (long long)json_integer_value(json_object_get(p, "sent")),
		       (long long)json_integer_value(json_object_get(p, "acked")),
		       (long long)json_integer_value(json_object_get(p, "received")),
		       (long long)json_integer_value(json_object_get(p, "outbox_depth")),
		       (long long)json_integer_value(json_object_get(p, "refused")), checkpoint,
		       directory, tbctl_str(p, "last_error"));
	}
}

int tbctl_peers(const struct tbctl *t, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "tbctl: peers takes no arguments\n");
		return TBCTL_USAGE;
	}
	return tbctl_call(t, "GET", "/v1/peers", NULL, show_peers);
}

static void show_queued(const json_t *body)
{
	printf("queued test messages %lld to %lld for %s\n",
	       (long long)json_integer_value(json_object_get(body, "first")),
	       (long long)json_integer_value(json_object_get(body, "last")),
	       tbctl_str(body, "peer"));
}

/* tbctl federation test PEER --count N [--text T]: messages that prove a
 * link end to end without touching either ledger. */
int tbctl_federation(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"count", "count"},
	    {"text", "text"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	int first, rc = TBCTL_USAGE;
	long long count;

	if (argc < 2 || strcmp(argv[1], "test") != 0 ||
	    tbctl_fields(argc - 1, argv + 1, fields, body, &first) == -1 || first != argc - 2 ||
	    sscanf(tbctl_str(body, "count")[0] ? tbctl_str(body, "count") : "1", "%lld", &count) !=
	        1) {
		fprintf(stderr, "tbctl: federation test PEER [--count N] [--text T]\n");
		json_decref(body);
		return rc;
	}
	json_object_set_new(body, "peer", json_string(argv[argc - 1]));
	json_object_set_new(body, "count", json_integer(count));
	rc = tbctl_call(t, "POST", "/v1/federation/test-messages", body, show_queued);
	json_decref(body);
	return rc;
}
