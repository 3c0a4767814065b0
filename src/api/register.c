/* The admin API's register routes, at the national body: banks added,
 * removed, revoked and their keys rotated (the rules keep each change and
 * its history), and the register published: the draft the rules make,
 * with the CA's CRL, as a Register (proto/register.proto), signed with the
 * register key and kept as it goes out. */
#include "internal.h"

#include "crypto.h"
#include "envelope.h"
#include "frame.h"
#include "mem.h"
#include "register.pb-c.h"
#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRL_MAX (512 * 1024) /* the register, banks and all, must fit one frame */
/* What an envelope adds to the signed register it carries, at the most. */
#define ENVELOPE_ROOM 4096
#define NEXT_UPDATE_DAYS 30 /* a published register's next update, by default */

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

/* The draft, signed: a SignedRegister's bytes as hex, or NULL. */
static char *sign_draft(const struct api *api, json_t *draft)
{
	Timebank__V1__SignedRegister sr = TIMEBANK__V1__SIGNED_REGISTER__INIT;
	ProtobufCMessage *m = env_msg_from_json(draft, &timebank__v1__register__descriptor);
	uint8_t sig[CRYPTO_SIG_LEN], *bytes, *out;
	size_t len, out_len;
	char *hex = NULL;

	if (m == NULL)
		return NULL;
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

static void on_draft(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;
	json_t *draft, *kept;
	char why[160], *crl, *signed_hex, *kept_text, serial[24];

	if (res->status != DB_OK || PQntuples(res->res) != 1) {
		api_reply_failure(r, res);
		return;
	}
	draft = json_loads(PQgetvalue(res->res, 0, 0), 0, NULL);
	crl = crl_hex(r->api->crl_path, why, sizeof(why));
	if (draft == NULL || crl == NULL) {
		json_decref(draft);
		free(crl);
		api_reply_error(r, 500, "internal_error", "%s; nothing was published",
		                crl == NULL ? why : "the draft could not be read");
		return;
	}
	/* What is kept to show and compare: the draft without the CRL, which
	 * the signed bytes hold. */
	kept = json_deep_copy(draft);
	json_object_set_new(draft, "crl", json_string(crl));
	signed_hex = sign_draft(r->api, draft);
	free(crl);
	if (signed_hex == NULL) {
		json_decref(draft);
		json_decref(kept);
		api_reply_error(r, 500, "internal_error",
		                "the register could not be signed; nothing was published");
		return;
	}
	if (strlen(signed_hex) / 2 > FRAME_MAX - ENVELOPE_ROOM) {
		free(signed_hex);
		json_decref(draft);
		json_decref(kept);
		api_reply_error(r, 422, "register_too_large",
		                "the register would not fit one frame on the channel; nothing was "
		                "published");
		return;
	}
	snprintf(serial, sizeof(serial), "%lld",
	         (long long)json_integer_value(json_object_get(draft, "serial")));
	kept_text = json_dumps(kept, JSON_COMPACT);
	const char *params[4] = {serial, kept_text, signed_hex, r->actor};
	r->ok_status = 200;
	r->register_serial = (uint64_t)json_integer_value(json_object_get(draft, "serial"));
	api_sql(r, "SELECT tb_register_store($1::bigint, $2::jsonb, $3, $4)::text", 4, params);
	free(kept_text);
	free(signed_hex);
	json_decref(kept);
	json_decref(draft);
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
