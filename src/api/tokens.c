/* The admin API's token management: tokens live hashed in the token file
 * (see auth.h); after each change the daemon reads the file again. */
#include "internal.h"

#include "log.h"
#include "mem.h"
#include "users.h"

#include <stdlib.h>
#include <openssl/crypto.h>
#include <string.h>

/* Re-reads the token file after a change. 0, or -1 with err. */
static int reload_tokens(struct api *api, char *err, size_t errlen)
{
	struct auth *auth = auth_load(api->token_file, err, errlen);

	if (auth == NULL) {
		/* Whatever else is wrong with the file, a token revoked is gone. */
		api_set_auth(api, auth_still_listed(api->auth, api->token_file));
		return -1;
	}
	api_set_auth(api, auth);
	log_info("api: %d tokens in force", auth_count(auth));
	return 0;
}

static void reply_json(struct api_req *r, int status, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);

	api_reply_text(r, status, text);
	free(text);
	json_decref(j);
}

void api_token_list(struct api_req *r)
{
	char err[512];
	struct auth *auth = auth_load(api_token_file(r->api), err, sizeof(err));
	json_t *items;

	if (auth == NULL) {
		log_error("api: cannot read the token file: %s", err);
		api_reply_error(r, 500, "internal_error", "the token file cannot be read");
		return;
	}
	items = json_array();
	for (int i = 0; i < auth_count(auth); i++) {
		const struct auth_token *t = auth_get(auth, i);
		json_t *item =
		    json_pack("{ssssss*}", "name", t->name, "role", auth_role_name(t->role),
		              "created", t->created[0] ? t->created : NULL);
		if (t->org != 0)
			json_object_set_new(item, "org", json_integer(t->org));
		json_array_append_new(items, item);
	}
	auth_free(auth);
	reply_json(r, 200, json_pack("{so}", "items", items));
}

/* Maps a token-file result onto the API's answer; 0 when it went through. */
static int token_result(struct api_req *r, enum auth_result rc, const char *err)
{
	switch (rc) {
	case AUTH_OK:
		return 0;
	case AUTH_BAD_NAME:
		api_reply_error(r, 400, "invalid_token_name", "%s", err);
		break;
	case AUTH_DUPLICATE:
		api_reply_error(r, 409, "duplicate_token_name", "%s", err);
		break;
	case AUTH_NOT_FOUND:
		api_reply_error(r, 404, "token_not_found", "%s", err);
		break;
	case AUTH_LAST_COORDINATOR:
		api_reply_error(r, 409, "last_coordinator", "%s", err);
		break;
	case AUTH_BAD_ORG:
		api_reply_error(r, 400, "invalid_org", "%s", err);
		break;
	case AUTH_FAILED:
		log_error("api: token file: %s", err);
		api_reply_error(r, 500, "internal_error", "the token file could not be changed");
		break;
	}
	return -1;
}

/* Makes the token the request asks for, org its organisation (0: none). */
static void token_make(struct api_req *r, long long org)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *role_name = json_string_value(json_object_get(r->body, "role"));
	char token[AUTH_TOKEN_LEN + 1], err[512];
	enum auth_role role = ROLE_VIEWER;
	struct users_account user;
	json_t *answer;

	/* Tokens and the console's accounts record writes by name: one each. */
	int taken = users_find(r->api->users_file, name, &user);

	OPENSSL_cleanse(&user, sizeof(user));
	if (taken != 0) {
		if (taken == 1)
			api_reply_error(r, 409, "duplicate_token_name",
			                "%s is already the name of a user", name);
		else
			api_reply_error(r, 500, "internal_error", "the accounts cannot be read");
		return;
	}
	if (auth_role_parse(role_name, &role) == -1 ||
	    token_result(
	        r, auth_add_token(api_token_file(r->api), name, role, org, token, err, sizeof(err)),
	        err) == -1)
		return;
	if (reload_tokens(r->api, err, sizeof(err)) == -1)
		log_error("api: token %s made but the token file cannot be read: %s", name, err);
	log_info("api: %s token %s made by %s", role_name, name, r->actor);
	answer = json_pack("{ssssss}", "name", name, "role", role_name, "token", token);
	if (org != 0)
		json_object_set_new(answer, "org", json_integer(org));
	reply_json(r, 201, answer);
	OPENSSL_cleanse(token, sizeof(token));
}

/* A referrer's organisation is one of this bank's: tb_intake_org says. */
static void on_org(void *arg, const struct db_result *res)
{
	struct api_req *r = arg;

	if (res->status != DB_OK || PQntuples(res->res) != 1 || PQgetisnull(res->res, 0, 0)) {
		api_reply_failure(r, res);
		return;
	}
	token_make(r, strtoll(PQgetvalue(res->res, 0, 0), NULL, 10));
}

void api_token_create(struct api_req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *role_name = json_string_value(json_object_get(r->body, "role"));
	const json_t *org = json_object_get(r->body, "org");
	enum auth_role role;
	int64_t num;
	enum db_status st;
	char text[24];

	if (!json_is_object(r->body) || json_object_size(r->body) != 2 + (org != NULL) ||
	    name == NULL) {
		api_reply_error(r, 400, "invalid_request",
		                "give a name and a role, and for a referrer its org");
		return;
	}
	if (role_name == NULL || auth_role_parse(role_name, &role) == -1) {
		api_reply_error(r, 400, "invalid_role",
		                "role must be coordinator, broker, viewer or referrer");
		return;
	}
	if ((role == ROLE_REFERRER) != (org != NULL) ||
	    (org != NULL && req_member_number(org, &num) == -1)) {
		api_reply_error(r, 400, "invalid_org",
		                "a referrer's token names its organisation (org, a member number), "
		                "and no other token does");
		return;
	}
	if (org == NULL) {
		token_make(r, 0);
		return;
	}
	const char *params[1] = {API_I64(text, num)};
	if (db_query(api_db(r->api), "SELECT (tb_intake_org($1::bigint)).number", 1, params, on_org,
	             r, &st) == -1) {
		struct db_result res = {.status = st};
		api_reply_failure(r, &res);
	}
}

void api_token_revoke(struct api_req *r)
{
	char err[512];

	r->ok_status = 200;
	if (token_result(r, auth_revoke(api_token_file(r->api), r->name, err, sizeof(err)), err) ==
	    -1)
		return;
	if (reload_tokens(r->api, err, sizeof(err)) == -1)
		log_error("api: token %s revoked but the token file cannot be read: %s", r->name,
		          err);
	log_info("api: token %s revoked by %s", r->name, r->actor);
	reply_json(r, 200, json_pack("{ssss}", "name", r->name, "state", "revoked"));
}
