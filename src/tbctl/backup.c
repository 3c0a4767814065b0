/* tbctl backup status: where the managed cluster's backups stand. */
#include "tbctl.h"

#include <stdio.h>
#include <string.h>

static const char *or_none(const char *s)
{
	return s[0] != '\0' ? s : "none yet";
}

static void show_backup(const json_t *b)
{
	const json_t *age = json_object_get(b, "newest_restorable_age_seconds");
	json_int_t failures = json_integer_value(json_object_get(b, "archive_failures"));

	if (!json_is_true(json_object_get(b, "enabled"))) {
		printf("backups: %s\n", tbctl_str(b, "advice"));
		return;
	}
	printf("backups in %s, kept %lld days, a base backup every %lld days\n",
	       tbctl_str(b, "dir"), (long long)json_integer_value(json_object_get(b, "keep_days")),
	       (long long)json_integer_value(json_object_get(b, "base_every_days")));
	printf("  base backups  %lld kept, oldest %s, newest %s (%.1f MiB)%s\n",
	       (long long)json_integer_value(json_object_get(b, "bases")),
	       or_none(tbctl_str(b, "oldest_base")), or_none(tbctl_str(b, "newest_base")),
	       (double)json_integer_value(json_object_get(b, "newest_base_bytes")) / 1048576.0,
	       json_is_true(json_object_get(b, "base_running")) ? "; one is being made" : "");
	printf("  last WAL      %s at %s\n", or_none(tbctl_str(b, "last_wal")),
	       or_none(tbctl_str(b, "last_wal_at")));
	if (json_is_integer(age))
		printf("  restorable    to %s (%lld s ago)\n", tbctl_str(b, "newest_restorable_at"),
		       (long long)json_integer_value(age));
	else
		printf("  restorable    not yet: the first base backup is being made\n");
	printf("  size          %.1f MiB in all\n",
	       (double)json_integer_value(json_object_get(b, "bytes")) / 1048576.0);
	if (failures > 0)
		printf("  WARNING: archiving failed %lld times, last %s at %s: see the cluster's "
		       "log (DATA_DIR/postgres.log)\n",
		       (long long)failures, tbctl_str(b, "last_failed_wal"),
		       tbctl_str(b, "last_failed_at"));
}

int tbctl_backup(const struct tbctl *t, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return tbctl_call(t, "GET", "/v1/backup", NULL, show_backup);
	fprintf(stderr, "usage: tbctl backup status\n");
	return TBCTL_USAGE;
}
