/* The admin API's view of the federation link: each peer's session and
 * channel, and test messages that prove a link without touching a ledger. */
#include "internal.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

static void on_state(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;
	json_t *db_state = NULL, *out;
	json_error_t err;
	char *text;

	/* The link's own state is shown even when the database is away. */
	if (res->status == DB_OK)
		db_state = json_loads(PQgetvalue(res->res, 0, 0), 0, &err);
	out = r->api->link.peers(r->api->link.arg, db_state);
	json_object_set_new(out, "database", json_boolean(db_state != NULL));
	text = json_dumps(out, JSON_COMPACT);
	api_reply_text(r, 200, text);
	free(text);
	json_decref(out);
	json_decref(db_state);
}

void api_peers(struct api_req *r)
{
	enum db_status st;

	if (r->api->link.peers == NULL) {
		json_t *j =
		    json_pack("{sssss[]}", "bank", api_bank_id(r->api), "role", "none", "peers");
		char *text = json_dumps(j, JSON_COMPACT);
		api_reply_text(r, 200, text);
		free(text);
		json_decref(j);
		return;
	}
	if (db_query(api_db(r->api), "SELECT tb_fed_state()::text", 0, NULL, on_state, r, &st) ==
	    -1) {
		struct db_result res = {.status = st};
		on_state(r, &res);
	}
}

void api_test_messages(struct api_req *r)
{
	const char *peer = json_string_value(json_object_get(r->body, "peer"));
	const json_t *count = json_object_get(r->body, "count");
	const char *text = json_string_value(json_object_get(r->body, "text"));
	char n[24];

	if (r->api->link.peers == NULL) {
		api_reply_error(r, 409, "federation_disabled", "this daemon has no [federation]");
		return;
	}
	if (peer == NULL || !json_is_integer(count) || json_integer_value(count) < 1 ||
	    json_integer_value(count) > 10000 || (text != NULL && strlen(text) > 200)) {
		api_reply_error(
		    r, 400, "invalid_request",
		    "give peer, count (1 to 10000) and optionally text (200 characters)");
		return;
	}
	const char *params[3] = {peer, API_I64(n, json_integer_value(count)), text ? text : ""};
	r->queues_messages = 1;
	api_sql(r, "SELECT tb_fed_test_enqueue($1, $2::int, $3)::text", 3, params);
}

/* POST /v1/peers/PEER/forget-key {"key_id": ...}: a key learned in a
 * rotation is no longer accepted, now and after restarts. */
void api_peer_forget_key(struct api_req *r)
{
	const char *key_id = json_string_value(json_object_get(r->body, "key_id"));
	const char *params[3] = {r->name, key_id, NULL};

	r->ok_status = 200;
	if (r->api->link.forget_key == NULL) {
		api_reply_error(r, 409, "federation_disabled", "this daemon has no [federation]");
		return;
	}
	if (!json_is_object(r->body) || json_object_size(r->body) != 1 || key_id == NULL ||
	    strlen(key_id) != 16 || strspn(key_id, "0123456789abcdef") != 16) {
		api_reply_error(r, 400, "invalid_request", "give the key_id: 16 hex digits");
		return;
	}
	params[2] =
	    r->api->link.forget_key(r->api->link.arg, r->name, key_id) == 0 ? "true" : "false";
	log_info("api: learned key %s of peer %s forgotten by %s", key_id, r->name, r->actor);
	api_sql(r, "SELECT tb_fed_key_forget($1, $2, $3::boolean)", 3, params);
}
