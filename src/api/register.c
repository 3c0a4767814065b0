/* The admin API's register routes, at the national body: banks added,
 * removed, revoked and their keys rotated (the rules keep each change and
 * its history), and the register published: the draft the rules make,
 * with the CA's CRL, as a Register (proto/register.proto), signed with the
 * register key and kept as it goes out. */
#include "internal.h"

#include "crypto.h"
#include "envelope.h"
#include "frame.h"
#include "log.h"
#include "mem.h"
#include "register.pb-c.h"
#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRL_MAX (512 * 1024) /* the register, banks and all, must fit one frame */
/* What an envelope adds to the signed register it carries, at the most. */
#define ENVELOPE_ROOM 4096
#define NEXT_UPDATE_DAYS 90 /* a published register's next update, by default */
/* The last register published is published again, as the next serial,
 * when its next update is this near (banks warn from 30 days). */
#define REFRESH_WITHIN_DAYS 45

/* 0, or -1 after answering 409 where this daemon holds no register key. */
static int has_register(struct api_req *r)
{
	if (r->api->register_key != NULL)
		return 0;
	api_reply_error(r, 409, "no_register_key",
	                "this daemon keeps no register: the national body's observer does, with "
	                "register_signing_key in [federation]");
	return -1;
}

void api_register_show(struct api_req *r)
{
	if (has_register(r) == 0)
		api_sql(r, "SELECT tb_register_show()::text", 0, NULL);
}

void api_register_diff(struct api_req *r)
{
	if (has_register(r) == 0)
		api_sql(r, "SELECT tb_register_diff()::text", 0, NULL);
}

void api_register_history(struct api_req *r)
{
	struct api_page page;

	if (has_register(r) == -1 || api_query_page(r, &page) == -1)
		return;
	const char *params[1] = {page.limit};
	api_sql(r, "SELECT jsonb_build_object('items', tb_register_history($1::int))::text", 1,
	        params);
}

void api_register_add(struct api_req *r)
{
	struct req_error err;
	const char *extra[1] = {r->actor};

	if (has_register(r) == -1)
		return;
	r->ok_status = 201;
	api_sql_body(r, "SELECT tb_register_add($1::jsonb, $2)::text",
	             req_register_bank(r->body, &err), &err, 1, extra);
}

static void remove_bank(struct api_req *r, const char *revoke)
{
	const char *params[3] = {r->name, revoke, r->actor};

	if (has_register(r) == -1)
		return;
	r->ok_status = 200;
	api_sql(r, "SELECT tb_register_remove($1, $2::boolean, $3)::text", 3, params);
}

void api_register_remove(struct api_req *r)
{
	remove_bank(r, "false");
}

void api_register_revoke(struct api_req *r)
{
	remove_bank(r, "true");
}

void api_register_rotate(struct api_req *r)
{
	struct req_error err;
	const char *extra[2] = {r->name, r->actor};

	if (has_register(r) == -1)
		return;
	r->ok_status = 200;
	api_sql_body(r,
	             "SELECT tb_register_rotate($2, $1::jsonb->>'signing_pub', "
	             "($1::jsonb->>'grace_days')::int, $3)::text",
	             req_register_rotate(r->body, &err), &err, 2, extra);
}

/* The CA's CRL as hex, or NULL with the reason in why. */
static char *crl_hex(const char *path, char *why, size_t len)
{
	FILE *f = path != NULL ? fopen(path, "rb") : NULL;
	uint8_t *buf;
	size_t n;
	char *hex;

	if (f == NULL) {
		snprintf(why, len, "the CRL %s cannot be read", path != NULL ? path : "(none set)");
		return NULL;
	}
	buf = xmalloc(CRL_MAX);
	n = fread(buf, 1, CRL_MAX, f);
	fclose(f);
	if (n == 0 || n == CRL_MAX) {
		snprintf(why, len, "the CRL %s is empty or over 512 KiB", path);
		free(buf);
		return NULL;
	}
	hex = xmalloc(2 * n + 1);
	crypto_hex(buf, n, hex);
	free(buf);
	return hex;
}

/* The draft, signed: a SignedRegister's bytes as hex, or NULL with why
 * (*invalid when a bank would refuse it: it names the bank). */
static char *sign_draft(const struct api *api, json_t *draft, char *why, size_t why_len,
                        int *invalid)
{
	Timebank__V1__SignedRegister sr = TIMEBANK__V1__SIGNED_REGISTER__INIT;
	ProtobufCMessage *m = env_msg_from_json(draft, &timebank__v1__register__descriptor);
	uint8_t sig[CRYPTO_SIG_LEN], *bytes, *out;
	size_t len, out_len;
	char *hex = NULL;

	snprintf(why, why_len, "the register could not be signed");
	if (m == NULL)
		return NULL;
	/* What every bank would refuse is not signed. */
	if (req_register_bad((const Timebank__V1__Register *)m, why, why_len) == -1) {
		*invalid = 1;
		env_msg_release(m);
		return NULL;
	}
	len = protobuf_c_message_get_packed_size(m);
	bytes = xmalloc(len > 0 ? len : 1);
	protobuf_c_message_pack(m, bytes);
	env_msg_release(m);
	if (crypto_sign(api->register_key, bytes, len, sig) == 0) {
		sr.register_.data = bytes;
		sr.register_.len = len;
		sr.key_id = (char *)crypto_key_id(api->register_key);
		sr.signature.data = sig;
		sr.signature.len = sizeof(sig);
		out_len = timebank__v1__signed_register__get_packed_size(&sr);
		out = xmalloc(out_len);
		timebank__v1__signed_register__pack(&sr, out);
		hex = xmalloc(2 * out_len + 1);
		crypto_hex(out, out_len, hex);
		free(out);
	}
	free(bytes);
	return hex;
}

/* A draft of the rules made ready to store: without its CRL as JSON to
 * show (*kept_text), and with the CA's CRL, signed (*signed_hex). 0, or an
 * HTTP status and its error code, with the reason in why. */
static int prepare(const struct api *api, json_t *draft, char **kept_text, char **signed_hex,
                   char *why, size_t len, const char **code)
{
	char *crl = crl_hex(api->crl_path, why, len);
	int invalid = 0;

	*code = "internal_error";
	if (crl == NULL)
		return 500;
	/* What is kept to show and compare: the draft without the CRL, which
	 * the signed bytes hold. */
	*kept_text = json_dumps(draft, JSON_COMPACT);
	json_object_set_new(draft, "crl", json_string(crl));
	free(crl);
	*signed_hex = sign_draft(api, draft, why, len, &invalid);
	if (*signed_hex == NULL) {
		*code = invalid ? "register_invalid" : "internal_error";
	} else if (strlen(*signed_hex) / 2 > FRAME_MAX - ENVELOPE_ROOM) {
		snprintf(why, len, "the register would not fit one frame on the channel");
		free(*signed_hex);
		*signed_hex = NULL;
		*code = "register_too_large";
	} else {
		return 0;
	}
	free(*kept_text);
	return strcmp(*code, "internal_error") == 0 ? 500 : 422;
}

static void on_draft(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;
	json_t *draft;
	char why[160], *kept_text, *signed_hex, serial[24];
	const char *code;
	int status;

	if (res->status != DB_OK || PQntuples(res->res) != 1) {
		api_reply_failure(r, res);
		return;
	}
	draft = json_loads(PQgetvalue(res->res, 0, 0), 0, NULL);
	if (draft == NULL) {
		api_reply_error(r, 500, "internal_error",
		                "the draft could not be read; nothing was published");
		return;
	}
	status = prepare(r->api, draft, &kept_text, &signed_hex, why, sizeof(why), &code);
	if (status != 0) {
		api_reply_error(r, status, code, "%s; nothing was published", why);
		json_decref(draft);
		return;
	}
	snprintf(serial, sizeof(serial), "%lld",
	         (long long)json_integer_value(json_object_get(draft, "serial")));
	const char *params[4] = {serial, kept_text, signed_hex, r->actor};
	r->ok_status = 200;
	r->register_serial = (uint64_t)json_integer_value(json_object_get(draft, "serial"));
	api_sql(r, "SELECT tb_register_store($1::bigint, $2::jsonb, $3, $4)::text", 4, params);
	free(kept_text);
	free(signed_hex);
	json_decref(draft);
}

/* ---- refreshed before it goes stale -------------------------------------- */

static void on_refreshed(void *arg, const struct db_result *res)
{
	struct api *api = arg;
	json_t *out;

	if (res->status != DB_OK) {
		log_warn(
		    "register: the refreshed register was not kept: %s; trying again in an hour",
		    db_result_why(res));
		return;
	}
	out = json_loads(PQgetvalue(res->res, 0, 0), 0, NULL);
	uint64_t serial = (uint64_t)json_integer_value(
	    json_object_get(json_object_get(out, "published"), "serial"));
	log_info("register: refreshed as serial %llu, before the banks would hold a stale one",
	         (unsigned long long)serial);
	if (api->link.register_published != NULL)
		api->link.register_published(api->link.arg, serial);
	json_decref(out);
}

static void on_refresh_due(void *arg, const struct db_result *res)
{
	struct api *api = arg;
	json_t *draft;
	char why[160], *kept_text, *signed_hex, serial[24];
	const char *code;
	enum db_status st;

	if (res->status != DB_OK || PQgetisnull(res->res, 0, 0))
		return; /* nothing due (or the database away: again in an hour) */
	draft = json_loads(PQgetvalue(res->res, 0, 0), 0, NULL);
	if (draft == NULL)
		return;
	if (prepare(api, draft, &kept_text, &signed_hex, why, sizeof(why), &code) != 0) {
		log_error("register: it is due for its next update, and could not be refreshed: %s",
		          why);
		json_decref(draft);
		return;
	}
	snprintf(serial, sizeof(serial), "%lld",
	         (long long)json_integer_value(json_object_get(draft, "serial")));
	const char *params[4] = {serial, kept_text, signed_hex, "timebankd (refresh)"};
	if (db_query(api_db(api), "SELECT tb_register_store($1::bigint, $2::jsonb, $3, $4)::text",
	             4, params, on_refreshed, api, &st) == -1)
		log_warn("register: the database is away; the refresh waits an hour");
	free(kept_text);
	free(signed_hex);
	json_decref(draft);
}

void api_register_refresh(struct api *api)
{
	char within[16], days[16];
	const char *params[2] = {within, days};
	enum db_status st;

	if (api->register_key == NULL)
		return;
	snprintf(within, sizeof(within), "%d", REFRESH_WITHIN_DAYS);
	snprintf(days, sizeof(days), "%d", NEXT_UPDATE_DAYS);
	if (db_query(api_db(api), "SELECT tb_register_refresh_due($1::int, $2::int)::text", 2,
	             params, on_refresh_due, api, &st) == -1)
		log_warn("register: the database is away; the refresh check waits an hour");
}

/* POST /v1/register/publish {"next_update_days": N}: the register as it
 * stands goes out as the next serial. */
void api_register_publish(struct api_req *r)
{
	const json_t *days = json_object_get(r->body, "next_update_days");
	int64_t n = NEXT_UPDATE_DAYS;
	char text[24];
	enum db_status st;

	if (has_register(r) == -1)
		return;
	if (days != NULL &&
	    !(json_is_integer(days) && (n = json_integer_value(days)) >= 1 && n <= 366)) {
		api_reply_error(r, 400, "invalid_field", "next_update_days must be 1 to 366");
		return;
	}
	snprintf(text, sizeof(text), "%lld", (long long)n);
	const char *params[1] = {text};
	if (db_query(api_db(r->api), "SELECT tb_register_draft($1::int)::text", 1, params, on_draft,
	             r, &st) == -1)
		api_reply_error(r, 503, st == DB_BUSY ? "busy" : "database_unavailable",
		                "the ledger database is unavailable; retry");
}
