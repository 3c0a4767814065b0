/* tbctl offer|request ..., directory ..., match and contact ...: members'
 * offers and requests, the shared directory across the federation, and
 * contact between members of two banks through their brokers. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <string.h>

static const struct tbctl_field item_fields[] = {
    {"member", "member"},
    {"category", "category"},
    {"text", "text"},
    {"area", "area"},
    {"availability", "availability"},
    {"visibility", "visibility"},
    {"expires", "expires_on"},
    {NULL, NULL},
};

/* What a broker approves: the version they read (tbctl offer show). */
static const struct tbctl_field approve_fields[] = {
    {"version", "version"},
    {NULL, NULL},
};

/* An active item waiting for a broker's approval shows as waiting. */
static const char *item_state(const json_t *i)
{
	if (strcmp(tbctl_str(i, "state"), "active") == 0 &&
	    strcmp(tbctl_str(i, "review"), "waiting") == 0)
		return "waiting";
	return tbctl_str(i, "state");
}

static void show_item(const json_t *i)
{
	printf("%s %lld (%s), %s: %s\n", tbctl_str(i, "kind"),
	       (long long)json_integer_value(json_object_get(i, "id")), item_state(i),
	       tbctl_str(i, "member_label"), tbctl_str(i, "text"));
	printf("  category %s", tbctl_str(i, "category"));
	if (tbctl_str(i, "area")[0] != '\0')
		printf(", area %s", tbctl_str(i, "area"));
	if (tbctl_str(i, "availability")[0] != '\0')
		printf(", %s", tbctl_str(i, "availability"));
	printf("\n  visibility %s%s, handle %s, until %s\n", tbctl_str(i, "visibility"),
	       json_is_true(json_object_get(i, "shared")) ? " (shared)" : "",
	       tbctl_str(i, "handle"), tbctl_str(i, "expires_on"));
	if (strcmp(tbctl_str(i, "review"), "waiting") == 0)
		printf("  waiting for a broker's approval before it is shared (tbctl %s approve "
		       "%lld --version %lld)\n",
		       tbctl_str(i, "kind"),
		       (long long)json_integer_value(json_object_get(i, "id")),
		       (long long)json_integer_value(json_object_get(i, "version")));
	else if (strcmp(tbctl_str(i, "review"), "approved") == 0)
		printf("  approved by %s\n", tbctl_str(i, "approved_by"));
}

static void item_header(void)
{
	printf("%6s  %-20s  %-16s  %-4s  %-10s  %-9s  %s\n", "ID", "MEMBER", "CATEGORY", "AREA",
	       "VISIBILITY", "STATE", "TEXT");
}

static void item_row(const json_t *i)
{
	printf("%6lld  %-20.20s  %-16.16s  %-4s  %-10s  %-9s  %s\n",
	       (long long)json_integer_value(json_object_get(i, "id")),
	       tbctl_str(i, "member_label"), tbctl_str(i, "category"), tbctl_str(i, "area"),
	       tbctl_str(i, "visibility"), item_state(i), tbctl_str(i, "text"));
}

/* An item id as the single positional argument, into path ("/v1/offers/7"
 * plus suffix). */
static int item_path(const char *kind, int argc, char **argv, int first, const char *suffix,
                     char *path, size_t len)
{
	int64_t id;

	if (first != argc - 1 || req_parse_int(argv[first], 1, INT64_MAX, &id) == -1) {
		fprintf(stderr, "tbctl: %s %s needs one %s ID\n", kind, argv[0], kind);
		return -1;
	}
	snprintf(path, len, "/v1/%ss/%lld%s", kind, (long long)id, suffix);
	return 0;
}

static int items(const struct tbctl *t, const char *kind, int argc, char **argv)
{
	static const struct tbctl_field list_fields[] = {
	    {"member", "member"}, {"state", "state"}, {"limit", "limit"},
	    {"cursor", "cursor"}, {NULL, NULL},
	};
	const char *sub = argc > 1 ? argv[1] : "";
	char path[96];
	json_t *body;
	int first, rc;

	snprintf(path, sizeof(path), "/v1/%ss", kind);
	if (strcmp(sub, "list") == 0)
		return tbctl_list_command(t, argc - 1, argv + 1, list_fields, path, NULL,
		                          item_header, item_row);
	if (strcmp(sub, "add") != 0 && strcmp(sub, "update") != 0 && strcmp(sub, "show") != 0 &&
	    strcmp(sub, "withdraw") != 0 && strcmp(sub, "approve") != 0) {
		fprintf(stderr, "tbctl: %s needs add, list, show, update, approve or withdraw\n",
		        kind);
		return TBCTL_USAGE;
	}
	body = json_object();
	if (tbctl_fields(argc - 1, argv + 1,
	                 strcmp(sub, "approve") == 0 ? approve_fields : item_fields, body,
	                 &first) == -1) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	first++; /* counted from argv + 1 */
	if (strcmp(sub, "add") == 0) {
		rc = first != argc ? TBCTL_USAGE : tbctl_call(t, "POST", path, body, show_item);
	} else if (item_path(kind, argc - 1, argv + 1, first - 1,
	                     strcmp(sub, "withdraw") == 0  ? "/withdraw"
	                     : strcmp(sub, "approve") == 0 ? "/approve"
	                                                   : "",
	                     path, sizeof(path)) == -1) {
		rc = TBCTL_USAGE;
	} else if (strcmp(sub, "show") == 0) {
		rc = tbctl_call(t, "GET", path, NULL, show_item);
	} else if (strcmp(sub, "update") == 0) {
		rc = tbctl_call(t, "PATCH", path, body, show_item);
	} else if (strcmp(sub, "approve") == 0) {
		rc = tbctl_call(t, "POST", path, body, show_item);
	} else {
		rc = tbctl_call(t, "POST", path, NULL, show_item);
	}
	json_decref(body);
	return rc;
}

int tbctl_offer(const struct tbctl *t, int argc, char **argv)
{
	return items(t, "offer", argc, argv);
}

int tbctl_request(const struct tbctl *t, int argc, char **argv)
{
	return items(t, "request", argc, argv);
}

/* ---- search and matching ---------------------------------------------- */

static void found_header(void)
{
	printf("%-12s  %-12s  %-7s  %-16s  %-4s  %-24s  %s\n", "BANK", "HANDLE", "KIND", "CATEGORY",
	       "AREA", "AVAILABILITY", "TEXT");
}

static void found_row(const json_t *i)
{
	printf("%-12.12s  %-12s  %-7s  %-16.16s  %-4s  %-24.24s  %s", tbctl_str(i, "bank"),
	       tbctl_str(i, "handle"), tbctl_str(i, "kind"), tbctl_str(i, "category"),
	       tbctl_str(i, "area"), tbctl_str(i, "availability"), tbctl_str(i, "text"));
	if (json_is_integer(json_object_get(i, "member")))
		printf("  (member %lld)",
		       (long long)json_integer_value(json_object_get(i, "member")));
	putchar('\n');
}

static void category_row(const json_t *c)
{
	printf("%-18s %s\n", tbctl_str(c, "code"), tbctl_str(c, "label"));
}

static int directory_search(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"category", "category"}, {"area", "area"},     {"bank", "bank"}, {"kind", "kind"},
	    {"limit", "limit"},       {"cursor", "cursor"}, {NULL, NULL},
	};
	int all = tbctl_flag(&argc, argv, "--all"), first, rc;
	json_t *query = json_object();
	char q[256] = "";
	size_t n = 0;

	if (tbctl_fields(argc, argv, fields, query, &first) == -1) {
		json_decref(query);
		return TBCTL_USAGE;
	}
	for (int i = first; i < argc && n < sizeof(q); i++)
		n += (size_t)snprintf(q + n, sizeof(q) - n, "%s%s", n ? " " : "", argv[i]);
	if (q[0] != '\0')
		json_object_set_new(query, "q", json_string(q));
	rc = tbctl_list(t, "/v1/directory", query, all, found_header, found_row);
	json_decref(query);
	return rc;
}

int tbctl_directory(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "search") == 0)
		return directory_search(t, argc - 1, argv + 1);
	if (strcmp(sub, "categories") == 0 && argc == 2)
		return tbctl_list(t, "/v1/directory/categories", NULL, 0, NULL, category_row);
	fprintf(stderr, "tbctl: directory needs search [TEXT] [options] or categories\n");
	return TBCTL_USAGE;
}

int tbctl_match(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"limit", "limit"}, {"cursor", "cursor"}, {NULL, NULL}};
	int all = tbctl_flag(&argc, argv, "--all"), first, rc;
	json_t *query = json_object();
	char path[64];
	int64_t id;

	if (tbctl_fields(argc, argv, fields, query, &first) == -1 || first != argc - 1 ||
	    req_parse_int(argv[first], 1, INT64_MAX, &id) == -1) {
		fprintf(stderr, "tbctl: match needs one REQUEST_ID (tbctl request list)\n");
		json_decref(query);
		return TBCTL_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/requests/%lld/matches", (long long)id);
	rc = tbctl_list(t, path, query, all, found_header, found_row);
	json_decref(query);
	return rc;
}

/* ---- contact through brokers ------------------------------------------ */

static void show_contact(const json_t *c)
{
	const json_t *item = json_object_get(c, "item"), *x;
	const char *state = tbctl_str(c, "state");
	size_t i;

	if (strcmp(tbctl_str(c, "side"), "requester") == 0)
		printf("contact %s %s: for %s, about %s's %s: %s\n", tbctl_str(c, "id"), state,
		       tbctl_str(c, "member_label"), tbctl_str(c, "peer"), tbctl_str(item, "kind"),
		       tbctl_str(item, "text"));
	else
		printf("contact %s %s: from %s, about %s's %s: %s\n", tbctl_str(c, "id"), state,
		       tbctl_str(c, "peer"), tbctl_str(c, "member_label"), tbctl_str(item, "kind"),
		       tbctl_str(item, "text"));
	printf("  asked: %s\n", tbctl_str(c, "message"));
	if (strcmp(state, "open") != 0) {
		printf("  %s", state);
		if (tbctl_str(c, "reason")[0] != '\0' && strcmp(tbctl_str(c, "reason"), "declined"))
			printf(" (%s)", tbctl_str(c, "reason"));
		if (tbctl_str(c, "answer")[0] != '\0')
			printf(": %s", tbctl_str(c, "answer"));
		putchar('\n');
	}
	json_array_foreach(json_object_get(c, "exchanges"), i, x)
	    printf("  exchange %s %s\n", tbctl_str(x, "id"), tbctl_str(x, "state"));
}

static void contact_header(void)
{
	printf("%-18s  %-8s  %-12s  %-20s  %-7s  %s\n", "CONTACT", "STATE", "BANK", "MEMBER",
	       "ITEM", "TEXT");
}

static void contact_row(const json_t *c)
{
	const json_t *item = json_object_get(c, "item");

	printf("%-18s  %-8s  %-12.12s  %-20.20s  %-7s  %s\n", tbctl_str(c, "id"),
	       tbctl_str(c, "state"), tbctl_str(c, "peer"), tbctl_str(c, "member_label"),
	       tbctl_str(item, "kind"), tbctl_str(item, "text"));
}

static int contact_request(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"for", "for"},
	                                            {"message", "message"},
	                                            {"bank", "bank"},
	                                            {"override", "safeguarding_override"},
	                                            {NULL, NULL}};
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1) {
		fprintf(stderr, "tbctl: contact request needs one HANDLE, --for and --message\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	json_object_set_new(body, "handle", json_string(argv[first]));
	rc = tbctl_call(t, "POST", "/v1/contacts", body, show_contact);
	json_decref(body);
	return rc;
}

int tbctl_contact(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field list_fields[] = {
	    {"state", "state"}, {"limit", "limit"}, {"cursor", "cursor"}, {NULL, NULL}};
	static const struct tbctl_field answer_fields[] = {
	    {"message", "message"}, {"override", "safeguarding_override"}, {NULL, NULL}};
	const char *sub = argc > 1 ? argv[1] : "";
	json_t *body;
	char path[128];
	int first, rc;

	if (strcmp(sub, "request") == 0)
		return contact_request(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0) {
		json_t *preset =
		    json_pack("{ss}", "direction",
		              tbctl_flag(&argc, argv, "--outgoing") ? "outgoing" : "incoming");
		rc = tbctl_list_command(t, argc - 1, argv + 1, list_fields, "/v1/contacts", preset,
		                        contact_header, contact_row);
		json_decref(preset);
		return rc;
	}
	if (strcmp(sub, "show") != 0 && strcmp(sub, "accept") != 0 && strcmp(sub, "decline") != 0) {
		fprintf(stderr, "tbctl: contact needs request, list, show, accept or decline\n");
		return TBCTL_USAGE;
	}
	body = json_object();
	if (tbctl_fields(argc - 1, argv + 1, answer_fields, body, &first) == -1 ||
	    first != argc - 2 || !tbctl_exchange_id(argv[first + 1]) ||
	    (strcmp(sub, "accept") == 0 && json_object_get(body, "message") == NULL)) {
		fprintf(stderr, "tbctl: contact %s needs one contact ID%s\n", sub,
		        strcmp(sub, "accept") == 0 ? " and --message (how the members will meet)"
		                                   : "");
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/contacts/%s", argv[first + 1]);
		rc = tbctl_call(t, "GET", path, NULL, show_contact);
	} else {
		snprintf(path, sizeof(path), "/v1/contacts/%s/%s", argv[first + 1], sub);
		rc = tbctl_call(t, "POST", path, body, show_contact);
	}
	json_decref(body);
	return rc;
}
