/* tbctl user ...: the console's accounts, for people. A coordinator makes
 * one and gives its one-time setup code to the person, who sets their
 * password with it (tbctl user setup, or the console's setup page). */
#include "tbctl.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static void show_code(const json_t *u)
{
	printf("%s\n", tbctl_str(u, "setup_code"));
	fprintf(stderr,
	        "tbctl: %s account '%s' waits for its password; the setup code above is shown "
	        "once and sets it within 7 days: tbctl user setup %s --code CODE (the password "
	        "on standard input)\n",
	        tbctl_str(u, "role"), tbctl_str(u, "name"), tbctl_str(u, "name"));
}

static void list_header(void)
{
	printf("%-24s  %-12s  %-8s  %-26s  %s\n", "NAME", "ROLE", "ORG", "STATE", "CREATED");
}

static void list_row(const json_t *u)
{
	char org[24] = "-";

	if (json_is_integer(json_object_get(u, "org")))
		snprintf(org, sizeof(org), "%lld",
		         (long long)json_integer_value(json_object_get(u, "org")));
	printf("%-24s  %-12s  %-8s  %-26s  %s\n", tbctl_str(u, "name"), tbctl_str(u, "role"), org,
	       tbctl_str(u, "state"), tbctl_str(u, "created"));
}

static void show_state(const json_t *u)
{
	printf("user %s %s\n", tbctl_str(u, "name"), tbctl_str(u, "state"));
}

/* user setup NAME --code CODE: the password is read from standard input,
 * never from the command line, where other users of the machine see it. */
static int user_setup(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {{"code", "code"}, {NULL, NULL}};
	json_t *body = json_object();
	char password[300];
	int first, rc = TBCTL_USAGE;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    json_object_get(body, "code") == NULL) {
		fprintf(stderr,
		        "tbctl: user setup needs NAME and --code CODE; the password is read "
		        "from standard input\n");
		goto done;
	}
	if (fgets(password, sizeof(password), stdin) == NULL) {
		fprintf(stderr, "tbctl: no password on standard input\n");
		goto done;
	}
	password[strcspn(password, "\r\n")] = '\0';
	json_object_set_new(body, "name", json_string(argv[first]));
	json_object_set_new(body, "password", json_string(password));
	OPENSSL_cleanse(password, sizeof(password));
	rc = tbctl_call(t, "POST", "/v1/users/setup", body, show_state);
done:
	json_decref(body);
	return rc;
}

int tbctl_user(const struct tbctl *t, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	char path[128];

	if (strcmp(sub, "add") == 0)
		return tbctl_create_named(t, argc - 1, argv + 1, "user", "/v1/users", show_code);
	if (strcmp(sub, "list") == 0 && argc == 2)
		return tbctl_list(t, "/v1/users", NULL, 0, list_header, list_row);
	if (strcmp(sub, "setup") == 0)
		return user_setup(t, argc - 1, argv + 1);
	if ((strcmp(sub, "reset") == 0 || strcmp(sub, "remove") == 0) && argc == 3 &&
	    strchr(argv[2], '/') == NULL) {
		snprintf(path, sizeof(path), "/v1/users/%.64s/%s", argv[2], sub);
		return tbctl_call(t, "POST", path, NULL,
		                  strcmp(sub, "reset") == 0 ? show_code : show_state);
	}
	fprintf(stderr, "tbctl: user needs add --name N --role R, list, setup NAME --code C, "
	                "reset NAME or remove NAME\n");
	return TBCTL_USAGE;
}
