#include "envelope.h"

#include <stdlib.h>
#include <string.h>

static const char *const result_names[] = {
    "ok", "malformed", "unknown_key", "bad_signature", "wrong_sender", "wrong_receiver", "no_body",
};

const char *env_result_name(enum env_result r)
{
	return result_names[r];
}

int env_seal(const char *sender, const char *receiver, uint64_t seq, const uint8_t *prev,
             int64_t sent_ms, const Timebank__V1__Body *body, const struct crypto_key *key,
             uint8_t **out, size_t *out_len, uint8_t *hash)
{
	Timebank__V1__SignedPart sp = TIMEBANK__V1__SIGNED_PART__INIT;
	Timebank__V1__Envelope env = TIMEBANK__V1__ENVELOPE__INIT;
	uint8_t sig[CRYPTO_SIG_LEN], *signed_bytes;
	size_t signed_len;

	sp.sender = (char *)sender;
	sp.receiver = (char *)receiver;
	sp.sequence = seq;
	sp.prev_hash.data = (uint8_t *)prev;
	sp.prev_hash.len = prev != NULL ? CRYPTO_HASH_LEN : 0;
	sp.sent_unix_ms = sent_ms;
	sp.body = (Timebank__V1__Body *)body;
	signed_len = timebank__v1__signed_part__get_packed_size(&sp);
	signed_bytes = malloc(signed_len);
	timebank__v1__signed_part__pack(&sp, signed_bytes);
	if (crypto_sign(key, signed_bytes, signed_len, sig) == -1) {
		free(signed_bytes);
		return -1;
	}
	env.signed_part.data = signed_bytes;
	env.signed_part.len = signed_len;
	env.key_id = (char *)crypto_key_id(key);
	env.signature.data = sig;
	env.signature.len = sizeof(sig);
	*out_len = timebank__v1__envelope__get_packed_size(&env);
	*out = malloc(*out_len);
	timebank__v1__envelope__pack(&env, *out);
	free(signed_bytes);
	crypto_sha256(*out, *out_len, hash);
	return 0;
}

enum env_result env_open(const uint8_t *buf, size_t len, struct crypto_key *const *keys, int nkeys,
                         const char *sender, const char *receiver, struct env_msg *out)
{
	Timebank__V1__Envelope *env = timebank__v1__envelope__unpack(NULL, len, buf);
	const struct crypto_key *key = NULL;
	enum env_result r = ENV_OK;

	memset(out, 0, sizeof(*out));
	if (env == NULL)
		return ENV_MALFORMED;
	for (int i = 0; i < nkeys && key == NULL; i++)
		if (keys[i] != NULL && strcmp(crypto_key_id(keys[i]), env->key_id) == 0)
			key = keys[i];
	if (key == NULL)
		r = ENV_UNKNOWN_KEY;
	else if (crypto_verify(key, env->signed_part.data, env->signed_part.len,
	                       env->signature.data, env->signature.len) == -1)
		r = ENV_BAD_SIGNATURE;
	/* Only now, with the signature good, is the signed part parsed. */
	else if ((out->sp = timebank__v1__signed_part__unpack(NULL, env->signed_part.len,
	                                                      env->signed_part.data)) == NULL)
		r = ENV_MALFORMED;
	else if (out->sp->prev_hash.len != 0 && out->sp->prev_hash.len != CRYPTO_HASH_LEN)
		r = ENV_MALFORMED;
	else if (strcmp(out->sp->sender, sender) != 0)
		r = ENV_WRONG_SENDER;
	else if (strcmp(out->sp->receiver, receiver) != 0)
		r = ENV_WRONG_RECEIVER;
	else if (out->sp->body == NULL ||
	         out->sp->body->kind_case == TIMEBANK__V1__BODY__KIND__NOT_SET)
		r = ENV_NO_BODY;
	if (r == ENV_OK) {
		crypto_sha256(buf, len, out->hash);
		out->key_id = crypto_key_id(key);
	} else {
		env_msg_clear(out);
	}
	timebank__v1__envelope__free_unpacked(env, NULL);
	return r;
}

void env_msg_clear(struct env_msg *msg)
{
	if (msg->sp != NULL)
		timebank__v1__signed_part__free_unpacked(msg->sp, NULL);
	memset(msg, 0, sizeof(*msg));
}

json_t *env_body_to_json(const Timebank__V1__Body *body)
{
	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_TEST:
		return json_pack("{sssIss}", "kind", "test", "n", (json_int_t)body->test->n, "text",
		                 body->test->text != NULL ? body->test->text : "");
	default:
		return NULL;
	}
}

int env_body_from_json(const json_t *json, Timebank__V1__Body *body,
                       Timebank__V1__TestMessage *test)
{
	const char *kind = json_string_value(json_object_get(json, "kind"));

	if (kind != NULL && strcmp(kind, "test") == 0) {
		timebank__v1__test_message__init(test);
		test->n = (uint64_t)json_integer_value(json_object_get(json, "n"));
		test->text = (char *)json_string_value(json_object_get(json, "text"));
		if (test->text == NULL)
			test->text = "";
		body->kind_case = TIMEBANK__V1__BODY__KIND_TEST;
		body->test = test;
		return 0;
	}
	return -1;
}
