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
    {NULL, NULL},
};

static void show_member(const json_t *m)
{
	static const char *const fields[] = {"email", "phone",        "address", "skills",
	                                     "needs", "availability", "notes"};
	const json_t *floor = json_object_get(m, "floor_minutes");

	printf("member %lld: %s (%s)\n",
	       (long long)json_integer_value(json_object_get(m, "number")), tbctl_str(m, "name"),
	       tbctl_str(m, "status"));
	printf("  %-13s %s\n", "joined", tbctl_str(m, "joined_on"));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (tbctl_str(m, fields[i])[0] != '\0')
			printf("  %-13s %s\n", fields[i], tbctl_str(m, fields[i]));
	printf("  %-13s %s (pending %s, floor %s)\n", "balance",
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))),
	       tbctl_hours(json_integer_value(json_object_get(m, "pending_minutes"))),
	       json_is_integer(floor) ? tbctl_hours(json_integer_value(floor)) : "bank default");
}

static void show_added(const json_t *m)
{
	printf("added member %lld: %s\n",
	       (long long)json_integer_value(json_object_get(m, "number")), tbctl_str(m, "name"));
}

static void list_header(void)
{
	printf("%8s  %-9s  %9s  %s\n", "NUMBER", "STATUS", "BALANCE", "NAME");
}

static void list_row(const json_t *m)
{
	printf("%8lld  %-9s  %9s  %s\n",
	       (long long)json_integer_value(json_object_get(m, "number")), tbctl_str(m, "status"),
	       tbctl_hours(json_integer_value(json_object_get(m, "balance_minutes"))),
	       tbctl_str(m, "name"));
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

static int member_add(const struct tbctl *t, int argc, char **argv)
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
	    {"status", "status"}, {"search", "q"}, {"limit", "limit"},
	    {"cursor", "cursor"}, {NULL, NULL},
	};
	return tbctl_list_command(t, argc, argv, fields, "/v1/members", list_header, list_row);
}

int tbctl_member(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return member_add(t, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return member_show(t, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return member_list(t, argc - 1, argv + 1);
	if (strcmp(sub, "update") == 0)
		return member_update(t, argc - 1, argv + 1, NULL);
	if (strcmp(sub, "suspend") == 0)
		return member_update(t, argc - 1, argv + 1, "suspend");
	if (strcmp(sub, "activate") == 0)
		return member_update(t, argc - 1, argv + 1, "activate");
	fprintf(stderr, "tbctl: member needs add, show, list, update, suspend or activate\n");
	return TBCTL_USAGE;
}
