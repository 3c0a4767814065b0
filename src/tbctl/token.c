/* tbctl token ...: API tokens, made and revoked by a coordinator. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

static void show_created(const json_t *t)
{
	printf("%s\n", tbctl_str(t, "token"));
	fprintf(stderr,
	        "tbctl: %s token '%s' made; it is shown once, above, and stored only as a hash\n",
	        tbctl_str(t, "role"), tbctl_str(t, "name"));
}

static void list_header(void)
{
	printf("%-24s  %-12s  %-8s  %s\n", "NAME", "ROLE", "ORG", "CREATED");
}

static void list_row(const json_t *t)
{
	char org[24] = "-";

	if (json_is_integer(json_object_get(t, "org")))
		snprintf(org, sizeof(org), "%lld",
		         (long long)json_integer_value(json_object_get(t, "org")));
	printf("%-24s  %-12s  %-8s  %s\n", tbctl_str(t, "name"), tbctl_str(t, "role"), org,
	       tbctl_str(t, "created"));
}

static void show_revoked(const json_t *t)
{
	printf("token %s revoked\n", tbctl_str(t, "name"));
}

int tbctl_token(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field no_fields[] = {{NULL, NULL}};
	const char *sub = argc > 1 ? argv[1] : "";
	char path[128];

	if (strcmp(sub, "create") == 0)
		return tbctl_create_named(t, argc - 1, argv + 1, "token", "/v1/tokens",
		                          show_created);
	if (strcmp(sub, "list") == 0)
		return tbctl_list_command(t, argc - 1, argv + 1, no_fields, "/v1/tokens", NULL,
		                          list_header, list_row);
	if (strcmp(sub, "revoke") == 0 && argc == 3 && strchr(argv[2], '/') == NULL) {
		snprintf(path, sizeof(path), "/v1/tokens/%.64s/revoke", argv[2]);
		return tbctl_call(t, "POST", path, NULL, show_revoked);
	}
	fprintf(stderr, "tbctl: token needs create --name N --role R, list, or revoke NAME\n");
	return TBCTL_USAGE;
}
