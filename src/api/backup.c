/* The managed cluster's backups, as the operator sees them: GET /v1/backup
 * (tbctl backup status) and the figures in /metrics. The backups
 * themselves are PostgreSQL's and the managed cluster's (pgm.h). */
#include "internal.h"

#include "pgm.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The newest point a restore reaches: the last WAL segment archived, or
 * the newest base backup before any was; 0 for none. */
static time_t restorable(const struct pgm_backup *b)
{
	return b->last_wal_at > b->newest_base_at ? b->last_wal_at : b->newest_base_at;
}

static json_t *text_or_null(const char *s)
{
	return s[0] != '\0' ? json_string(s) : json_null();
}

/* GET /v1/backup: the last base backup, the last WAL archived, failures,
 * size and retention. */
void api_backup_status(struct api_req *r)
{
	struct pgm_backup b;
	time_t now = time(NULL), point;
	json_t *j;
	char *text;

	pgm_backup_state(r->api->pgm, &b);
	if (!b.enabled) {
		j = json_pack("{sb sb ss}", "enabled", 0, "managed", r->api->pgm != NULL, "advice",
		              r->api->pgm != NULL
		                  ? "backups are off ([backup] enabled = no)"
		                  : "the database is the operator's: back it up with its own tools "
		                    "(continuous archiving, or pg_dump of the whole database)");
	} else {
		point = restorable(&b);
		j = json_pack("{sb sb ss si si si}", "enabled", 1, "managed", 1, "dir", b.dir,
		              "keep_days", b.keep_days, "base_every_days", b.base_every_days,
		              "bases", b.bases);
		json_object_set_new(j, "oldest_base", text_or_null(b.oldest_base));
		json_object_set_new(j, "newest_base", text_or_null(b.newest_base));
		json_object_set_new(j, "newest_base_at", req_time_json(b.newest_base_at));
		json_object_set_new(j, "newest_base_bytes", json_integer(b.newest_base_bytes));
		json_object_set_new(j, "base_running", json_boolean(b.base_running));
		json_object_set_new(j, "last_wal", text_or_null(b.last_wal));
		json_object_set_new(j, "last_wal_at", req_time_json(b.last_wal_at));
		json_object_set_new(j, "newest_restorable_at", req_time_json(point));
		json_object_set_new(j, "newest_restorable_age_seconds",
		                    point != 0 ? json_integer(now - point) : json_null());
		json_object_set_new(j, "archive_failures", json_integer(b.failed));
		json_object_set_new(j, "last_failed_wal", text_or_null(b.last_failed_wal));
		json_object_set_new(j, "last_failed_at", req_time_json(b.last_failed_at));
		json_object_set_new(j, "bytes", json_integer(b.bytes));
	}
	text = json_dumps(j, JSON_COMPACT);
	api_reply_text(r, 200, text);
	free(text);
	json_decref(j);
}

void api_backup_metrics(const struct api *api, struct evbuffer *buf)
{
	struct pgm_backup b;
	char age[32] = "NaN";
	time_t point;

	pgm_backup_state(api->pgm, &b);
	if (!b.enabled)
		return;
	point = restorable(&b);
	if (point != 0)
		snprintf(age, sizeof(age), "%lld", (long long)(time(NULL) - point));
	evbuffer_add_printf(
	    buf,
	    "# HELP timebankd_backup_restorable_age_seconds Age of the newest point a restore "
	    "reaches (the last WAL archived); NaN before the first base backup.\n"
	    "# TYPE timebankd_backup_restorable_age_seconds gauge\n"
	    "timebankd_backup_restorable_age_seconds %s\n"
	    "# HELP timebankd_backup_archive_failures_total Failed WAL archive attempts since the "
	    "cluster started.\n# TYPE timebankd_backup_archive_failures_total counter\n"
	    "timebankd_backup_archive_failures_total %lld\n"
	    "# HELP timebankd_backup_bases Base backups kept.\n# TYPE timebankd_backup_bases "
	    "gauge\n"
	    "timebankd_backup_bases %d\n"
	    "# HELP timebankd_backup_bytes Bytes in the backup directory.\n"
	    "# TYPE timebankd_backup_bytes gauge\ntimebankd_backup_bytes %lld\n",
	    age, b.failed, b.bases, b.bytes);
}
