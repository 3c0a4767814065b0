/* tbctl peers: the federation links of this daemon. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

/* A restored bank's recovery from one peer (recovery.sql's stages), and
 * what it could not bring back. */
static void show_recovery(const json_t *p)
{
	const json_t *r = json_object_get(p, "recovering"), *l;
	const char *peer = tbctl_str(p, "peer"),
	           *stage = json_is_object(r) ? tbctl_str(r, "stage") : "";
	long long from = json_integer_value(json_object_get(r, "from"));
	long long to = json_integer_value(json_object_get(r, "to"));
	size_t j;

	if (strcmp(stage, "waiting") == 0)
		printf(
		    "RECOVERING from %s since %s: this bank was restored; nothing new goes to it "
		    "until its hello says whether it applied more of ours than we hold\n",
		    peer, tbctl_str(r, "since"));
	else if (strcmp(stage, "fetching") == 0)
		printf("RECOVERING from %s since %s: it applied our messages %lld to %lld, which "
		       "this bank lost when it was put back to an earlier point; we hold them "
		       "again up to %lld. Nothing new goes to it, and nothing from it is applied, "
		       "until we hold them all\n",
		       peer, tbctl_str(r, "since"), from, to,
		       (long long)json_integer_value(json_object_get(r, "held")));
	else if (strcmp(stage, "agreeing") == 0)
		printf("RECOVERING from %s since %s: our messages %lld to %lld are held again; we "
		       "propose to it again once its checkpoint agrees\n",
		       peer, tbctl_str(r, "since"), from, to);
	if (json_is_string(json_object_get(p, "recovery_blocked")))
		printf("RECOVERY WAITS for %s: %s\n", peer, tbctl_str(p, "recovery_blocked"));
	json_array_foreach(json_object_get(p, "recovery_lost"), j, l)
	{
		long long lf = json_integer_value(json_object_get(l, "from"));
		long long lt = json_integer_value(json_object_get(l, "to"));
		if (lf == lt)
			printf("NOT RECOVERED from %s, our message %lld: %s\n", peer, lf,
			       tbctl_str(l, "what"));
		else
			printf("NOT RECOVERED from %s, our messages %lld to %lld: %s\n", peer, lf,
			       lt, tbctl_str(l, "what"));
	}
}

static void show_peers(const json_t *body)
{
	const json_t *p, *reg;
	size_t i;

	printf("%s (%s)\n", tbctl_str(body, "bank"), tbctl_str(body, "role"));
	if (tbctl_str(body, "crl_expires")[0] != '\0') {
		json_int_t days = json_integer_value(json_object_get(body, "crl_expires_in_days"));
		printf("%sCRL valid until %s (%lld days)%s\n", days <= 30 ? "WARNING: " : "",
		       tbctl_str(body, "crl_expires"), (long long)days,
		       days <= 30 ? ": ask the network CA for a new one and reload" : "");
	}
	reg = json_object_get(body, "register");
	if (json_is_object(reg)) {
		json_int_t serial = json_integer_value(json_object_get(reg, "serial"));
		json_int_t refused = json_integer_value(json_object_get(reg, "refused"));
		if (strcmp(tbctl_str(body, "role"), "observer") == 0)
			printf("register: serial %lld published; its banks are peers",
			       (long long)serial);
		else if (serial == 0)
			printf("register: none taken yet from the national body");
		else
			printf("register: serial %lld from the national body", (long long)serial);
		if (refused > 0)
			printf("; %lld refused since start (see the log)", (long long)refused);
		putchar('\n');
	}
	if (json_array_size(json_object_get(body, "peers")) == 0) {
		printf("no peers: this daemon has no [federation] links\n");
		return;
	}
	printf("%-14s %-9s %-8s %-12s %-20s %9s %9s %9s %7s %7s %-10s %-18s %s\n", "PEER", "KIND",
	       "SOURCE", "STATE", "SINCE", "SENT", "ACKED", "RECEIVED", "OUTBOX", "REFUSED",
	       "CHECKPOINT", "DIRECTORY", "LAST ERROR");
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
		/* SOURCE: named in the config, or listed in the network's register. */
		printf("%-14s %-9s %-8s %-12s %-20s %9lld %9lld %9lld %7lld %7lld %-10s %-18s %s\n",
		       tbctl_str(p, "peer"), tbctl_str(p, "kind"), tbctl_str(p, "source"),
		       tbctl_str(p, "state"), tbctl_str(p, "since"),
		       (long long)json_integer_value(json_object_get(p, "sent")),
		       (long long)json_integer_value(json_object_get(p, "acked")),
		       (long long)json_integer_value(json_object_get(p, "received")),
		       (long long)json_integer_value(json_object_get(p, "outbox_depth")),
		       (long long)json_integer_value(json_object_get(p, "refused")), checkpoint,
		       directory, tbctl_str(p, "last_error"));
	}
	json_array_foreach(json_object_get(body, "peers"), i, p)
	{
		show_recovery(p);
	}
}

/* Each peer's signing keys: pinned in the config, learned in a rotation,
 * or given by the register, and until when each is accepted. */
static void show_keys(const json_t *body)
{
	const json_t *p, *k;
	size_t i, j;

	printf("%-14s %-16s %-8s %-5s %-21s %-21s %s\n", "PEER", "KEY", "FROM", "GOOD", "GOOD FROM",
	       "REPLACED, GOOD UNTIL", "GOOD UNTIL");
	json_array_foreach(json_object_get(body, "peers"), i, p)
	{
		json_array_foreach(json_object_get(p, "keys"), j, k)
		{
			const char *replaced = tbctl_str(k, "replaced_until");
			const char *learned = tbctl_str(k, "learned_until");
			const char *from = tbctl_str(k, "valid_from");
			printf("%-14s %-16s %-8s %-5s %-21s %-21s %s\n", tbctl_str(p, "peer"),
			       tbctl_str(k, "key_id"), tbctl_str(k, "source"),
			       json_is_true(json_object_get(k, "good")) ? "yes" : "no",
			       from[0] ? from : "-", replaced[0] ? replaced : "-",
			       learned[0] ? learned : "-");
		}
	}
}

static void show_forgotten(const json_t *body)
{
	printf("key %s of %s forgotten: it is no longer accepted\n", tbctl_str(body, "key_id"),
	       tbctl_str(body, "peer"));
}

int tbctl_peers(const struct tbctl *t, int argc, char **argv)
{
	if (argc == 1)
		return tbctl_call(t, "GET", "/v1/peers", NULL, show_peers);
	if (argc == 2 && strcmp(argv[1], "keys") == 0)
		return tbctl_call(t, "GET", "/v1/peers", NULL, show_keys);
	if (argc == 4 && strcmp(argv[1], "forget-key") == 0) {
		char path[160];
		json_t *body = json_pack("{ss}", "key_id", argv[3]);
		int rc;
		snprintf(path, sizeof(path), "/v1/peers/%.64s/forget-key", argv[2]);
		rc = tbctl_call(t, "POST", path, body, show_forgotten);
		json_decref(body);
		return rc;
	}
	fprintf(stderr, "tbctl: peers [keys | forget-key PEER KEY_ID]\n");
	return TBCTL_USAGE;
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
