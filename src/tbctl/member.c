/* tbctl member ...: register members and keep their details. */
#include "tbctl.h"

#include "req.h"

#include <stdio.h>
#include <string.h>

static const struct tbctl_field member_fields[] = {
    {"name", "name"},
    {"number", "number"},
    {"email", "email"},
    {"phone", "phone"},
    {"address", "address"},
    {"skills", "skills"},
    {"needs", "needs"},
    {"availability", "availability"},
    {"notes", "notes"},
    {"floor", "floor"},
    {"joined", "joined_on"},
    {"status", "status"},
    {"kind", "kind"},
    {"referred-by", "referred_by"},
    {"district", "district"},
    {"org-kind", "org_kind"},
    {"needs-care", "needs_care"},
    {NULL, NULL},
};

/* --needs-care yes|no as the API's boolean; anything else is left for the
 * API to refuse. */
static void care_flag(json_t *body)
{
	const char *v = json_string_value(json_object_get(body, "needs_care"));

	if (v != NULL && (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0))
		json_object_set_new(body, "needs_care", json_boolean(strcmp(v, "yes") == 0));
}

static const char *kind_word(const json_t *m)
{
	return strcmp(tbctl_str(m, "kind"), "organisation") == 0 ? "organisation" : "member";
}

static void show_member(const json_t *m)
{
	static const char *const fields[] = {"email",    "phone",  "address",      "district",
	                                     "skills",   "needs",  "availability", "notes",
	                                     "org_kind", "left_on"};
	const json_t *floor = json_object_get(m, "floor_minutes");
	const json_t *ref;
	size_t n;

	printf("%s %lld: %s (%s)\n", kind_word(m),
	       (long long)json_integer_value(json_object_get(m, "number")),
	       json_is_true(json_object_get(m, "erased")) ? "former member (erased)"
	                                                  : tbctl_str(m, "name"),
	       tbctl_str(m, "status"));
	printf("  %-13s %s\n", "joined", tbctl_str(m, "joined_on"));
	if (json_is_integer(json_object_get(m, "referred_by")))
		printf("  %-13s organisation %lld\n", "referred by",
		       (long long)json_integer_value(json_object_get(m, "referred_by")));
	json_array_foreach(json_object_get(m, "referrals"), n, ref)
	{
		printf("  %-13s %s (referral %s)\n", "referral", tbctl_str(ref, "text"),
		       tbctl_str(ref, "referral"));
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (tbctl_str(m, fields[i])[0] != '\0')
			printf("  %-13s %s\n", fields[i], tbctl_str(m, fields[i]));
	if (json_is_true(json_object_get(m, "needs_care")))
		printf("  %-13s yes (their exchanges are listed for a broker's review)\n",
		       "needs care");
	printf("  %-13s %s (pending %s, floor %s)\n", "balance",
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(m, "pending_minutes"))),
	       json_is_integer(floor) ? tbctl_hours(json_integer_value(floor)) : "bank default");
}

static void show_added(const json_t *m)
{
	printf("added %s %lld: %s\n", kind_word(m),
	       (long long)json_integer_value(json_object_get(m, "number")), tbctl_str(m, "name"));
}

static void list_header(void)
{
	printf("%8s  %-12s  %-9s  %9s  %s\n", "NUMBER", "KIND", "STATUS", "BALANCE", "NAME");
}

static void list_row(const json_t *m)
{
	printf("%8lld  %-12s  %-9s  %9s  %s\n",
	       (long long)json_integer_value(json_object_get(m, "number")), tbctl_str(m, "kind"),
	       tbctl_str(m, "status"),
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))),
	       json_is_true(json_object_get(m, "erased")) ? "former member" : tbctl_str(m, "name"));
}

/* The NUMBER argument of show/update/suspend/activate; 0 or -1 printed. */
static int member_number(int argc, char **argv, int first, const char *cmd, long long *number)
{
	int64_t n;

	if (first != argc - 1 || req_parse_int(argv[first], 1, 999999999, &n) == -1) {
		fprintf(stderr, "tbctl: member %s needs one member NUMBER\n", cmd);
		return -1;
	}
	*number = (long long)n;
	return 0;
}

static int member_add(const struct tbctl *t, int argc, char **argv, const char *kind)
{
	json_t *body = json_object();
	int first, rc;

	if (tbctl_fields(argc, argv, member_fields, body, &first) == -1 || first != argc) {
		if (first != argc)
			fprintf(stderr, "tbctl: member add takes options only (--name ...)\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	json_object_del(body, "status");
	care_flag(body);
	if (kind != NULL)
		json_object_set_new(body, "kind", json_string(kind));
	rc = tbctl_call(t, "POST", "/v1/members", body, show_added);
	json_decref(body);
	return rc;
}

static int member_update(const struct tbctl *t, int argc, char **argv, const char *action)
{
	json_t *body = json_object();
	char path[64];
	long long n;
	int first, rc;

	static const struct tbctl_field no_fields[] = {{NULL, NULL}};

	if (tbctl_fields(argc, argv, action == NULL ? member_fields : no_fields, body, &first) ==
	        -1 ||
	    member_number(argc, argv, first, argv[0], &n) == -1) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	care_flag(body);
	if (strcmp(tbctl_str(body, "floor"), "default") == 0)
		json_object_set_new(body, "floor", json_null());
	json_object_del(body, "number");
	if (action != NULL) {
		snprintf(path, sizeof(path), "/v1/members/%lld/%s", n, action);
		rc = tbctl_call(t, "POST", path, NULL, show_member);
	} else {
		snprintf(path, sizeof(path), "/v1/members/%lld", n);
		rc = tbctl_call(t, "PATCH", path, body, show_member);
	}
	json_decref(body);
	return rc;
}

static int member_show(const struct tbctl *t, int argc, char **argv)
{
	char path[64];
	long long n;

	if (member_number(argc, argv, 1, "show", &n) == -1)
		return TBCTL_USAGE;
	snprintf(path, sizeof(path), "/v1/members/%lld", n);
	return tbctl_call(t, "GET", path, NULL, show_member);
}

static int member_list(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"status", "status"}, {"kind", "kind"},     {"search", "q"},
	    {"limit", "limit"},   {"cursor", "cursor"}, {NULL, NULL},
	};
	return tbctl_list_command(t, argc, argv, fields, "/v1/members", NULL, list_header,
	                          list_row);
}

/* Everything held about a member, as the API's JSON. */
static int member_export(const struct tbctl *t, int argc, char **argv)
{
	struct tbctl t_json = *t;
	char path[64];
	long long n;

	if (member_number(argc, argv, 1, "export", &n) == -1)
		return TBCTL_USAGE;
	snprintf(path, sizeof(path), "/v1/members/%lld/export", n);
	t_json.json = 1;
	return tbctl_call(&t_json, "GET", path, NULL, NULL);
}

static void show_erased(const json_t *m)
{
	const json_t *told = json_object_get(m, "peers_told"), *peer;
	size_t i;

	printf("member %lld erased: personal details cleared, balance %s kept on the ledger\n",
	       (long long)json_integer_value(json_object_get(m, "number")),
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))));
	if (json_array_size(told) == 0)
		return;
	printf("banks told to clear what they hold of the member's claims, contacts and "
	       "exchanges:");
	json_array_foreach(told, i, peer)
	{
		printf(" %s", json_string_value(peer));
	}
	printf("\n");
}

static int member_erase(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"reason", "reason"}, {NULL, NULL}};
	int force = tbctl_flag(&argc, argv, "--force"), first, rc;
	json_t *body = json_object();
	char path[64];
	long long n;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 ||
	    member_number(argc, argv, first, "erase", &n) == -1) {
		json_decref(body);
		return TBCTL_USAGE;
	}
	if (force && json_object_get(body, "reason") == NULL) {
		fprintf(stderr, "tbctl: member erase --force needs --reason\n");
		json_decref(body);
		return TBCTL_USAGE;
	}
	json_object_set_new(body, "force", json_boolean(force));
	snprintf(path, sizeof(path), "/v1/members/%lld/erase", n);
	rc = tbctl_call(t, "POST", path, body, show_erased);
	json_decref(body);
	return rc;
}

/* tbctl org add|list: organisations are members of kind organisation. */
int tbctl_org(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return member_add(t, argc - 1, argv + 1, "organisation");
	if (strcmp(sub, "list") == 0) {
		static const struct tbctl_field fields[] = {
		    {"status", "status"},
		    {"limit", "limit"},
		    {"cursor", "cursor"},
		    {NULL, NULL},
		};
		json_t *preset = json_pack("{ss}", "kind", "organisation");
		int rc = tbctl_list_command(t, argc - 1, argv + 1, fields, "/v1/members", preset,
		                            list_header, list_row);
		json_decref(preset);
		return rc;
	}
	fprintf(stderr, "tbctl: org needs add or list\n");
	return TBCTL_USAGE;
}

int tbctl_member(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return member_add(t, argc - 1, argv + 1, NULL);
	if (strcmp(sub, "export") == 0)
		return member_export(t, argc - 1, argv + 1);
	if (strcmp(sub, "erase") == 0)
		return member_erase(t, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return member_show(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return member_list(t, argc - 1, argv + 1);
	if (strcmp(sub, "update") == 0)
		return member_update(t, argc - 1, argv + 1, NULL);
	if (strcmp(sub, "checks") == 0)
		return tbctl_member_checks(t, argc - 1, argv + 1);
	if (strcmp(sub, "check-add") == 0)
		return tbctl_member_check_add(t, argc - 1, argv + 1);
	if (strcmp(sub, "suspend") == 0)
		return member_update(t, argc - 1, argv + 1, "suspend");
	if (strcmp(sub, "activate") == 0)
		return member_update(t, argc - 1, argv + 1, "activate");
	fprintf(stderr, "tbctl: member needs add, show, list, update, suspend, activate, export, "
	                "erase, checks or check-add\n");
	return TBCTL_USAGE;
}
