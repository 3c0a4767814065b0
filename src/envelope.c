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

int env_is_channel(const Timebank__V1__Body *body)
{
	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_TEST:
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS:
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS:
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS:
	case TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS:
		return 1;
	default:
		return 0;
	}
}

json_t *env_body_to_json(const Timebank__V1__Body *body)
{
	json_t *items;

	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_TEST:
		return json_pack("{sssIss}", "kind", "test", "n", (json_int_t)body->test->n, "text",
		                 body->test->text != NULL ? body->test->text : "");
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS:
		items = json_array();
		for (size_t i = 0; i < body->exchange_proposals->n_items; i++) {
			const Timebank__V1__ExchangeProposal *x =
			    body->exchange_proposals->items[i];
			json_t *item =
			    json_pack("{sssIsIssss}", "xid", x->xid, "earner",
			              (json_int_t)x->earner, "minutes", (json_int_t)x->minutes,
			              "category", x->category, "performed_on", x->performed_on);
			if (x->reverses != NULL && x->reverses[0] != '\0')
				json_object_set_new(item, "reverses", json_string(x->reverses));
			if (x->claim != NULL && x->claim[0] != '\0')
				json_object_set_new(item, "claim", json_string(x->claim));
			json_array_append_new(items, item);
		}
		return json_pack("{ssso}", "kind", "xb_propose", "items", items);
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS:
		items = json_array();
		for (size_t i = 0; i < body->exchange_answers->n_items; i++) {
			const Timebank__V1__ExchangeAnswer *a = body->exchange_answers->items[i];
			json_array_append_new(items, json_pack("{sssbss}", "xid", a->xid,
			                                       "accepted", a->accepted, "reason",
			                                       a->reason != NULL ? a->reason : ""));
		}
		return json_pack("{ssso}", "kind", "xb_answer", "items", items);
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS:
		items = json_array();
		for (size_t i = 0; i < body->exchange_claims->n_items; i++) {
			const Timebank__V1__ExchangeClaim *c = body->exchange_claims->items[i];
			json_array_append_new(
			    items, json_pack("{sssIsIsIssssss}", "claim_id", c->claim_id, "payer",
			                     (json_int_t)c->payer, "earner", (json_int_t)c->earner,
			                     "minutes", (json_int_t)c->minutes, "category",
			                     c->category, "performed_on", c->performed_on,
			                     "message", c->message != NULL ? c->message : ""));
		}
		return json_pack("{ssso}", "kind", "xb_claim", "items", items);
	case TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS:
		items = json_array();
		for (size_t i = 0; i < body->claim_answers->n_items; i++) {
			const Timebank__V1__ClaimAnswer *a = body->claim_answers->items[i];
			json_array_append_new(items,
			                      json_pack("{ssssss}", "claim_id", a->claim_id,
			                                "reason", a->reason, "message",
			                                a->message != NULL ? a->message : ""));
		}
		return json_pack("{ssso}", "kind", "xb_claim_answer", "items", items);
	default:
		return NULL;
	}
}

static char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return (char *)(s != NULL ? s : "");
}

static int proposals_from_json(const json_t *items, Timebank__V1__Body *body)
{
	Timebank__V1__ExchangeProposals *p = malloc(sizeof(*p));
	size_t n = json_array_size(items);

	timebank__v1__exchange_proposals__init(p);
	p->n_items = n;
	p->items = calloc(n > 0 ? n : 1, sizeof(*p->items));
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_array_get(items, i);
		Timebank__V1__ExchangeProposal *x = malloc(sizeof(*x));
		timebank__v1__exchange_proposal__init(x);
		x->xid = str(it, "xid");
		x->earner = (uint64_t)json_integer_value(json_object_get(it, "earner"));
		x->minutes = (uint64_t)json_integer_value(json_object_get(it, "minutes"));
		x->category = str(it, "category");
		x->performed_on = str(it, "performed_on");
		x->reverses = str(it, "reverses");
		x->claim = str(it, "claim");
		p->items[i] = x;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS;
	body->exchange_proposals = p;
	return 0;
}

static int answers_from_json(const json_t *items, Timebank__V1__Body *body)
{
	Timebank__V1__ExchangeAnswers *a = malloc(sizeof(*a));
	size_t n = json_array_size(items);

	timebank__v1__exchange_answers__init(a);
	a->n_items = n;
	a->items = calloc(n > 0 ? n : 1, sizeof(*a->items));
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_array_get(items, i);
		Timebank__V1__ExchangeAnswer *x = malloc(sizeof(*x));
		timebank__v1__exchange_answer__init(x);
		x->xid = str(it, "xid");
		x->accepted = json_is_true(json_object_get(it, "accepted"));
		x->reason = str(it, "reason");
		a->items[i] = x;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS;
	body->exchange_answers = a;
	return 0;
}

static int claims_from_json(const json_t *items, Timebank__V1__Body *body)
{
	Timebank__V1__ExchangeClaims *c = malloc(sizeof(*c));
	size_t n = json_array_size(items);

	timebank__v1__exchange_claims__init(c);
	c->n_items = n;
	c->items = calloc(n > 0 ? n : 1, sizeof(*c->items));
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_array_get(items, i);
		Timebank__V1__ExchangeClaim *x = malloc(sizeof(*x));
		timebank__v1__exchange_claim__init(x);
		x->claim_id = str(it, "claim_id");
		x->payer = (uint64_t)json_integer_value(json_object_get(it, "payer"));
		x->earner = (uint64_t)json_integer_value(json_object_get(it, "earner"));
		x->minutes = (uint64_t)json_integer_value(json_object_get(it, "minutes"));
		x->category = str(it, "category");
		x->performed_on = str(it, "performed_on");
		x->message = str(it, "message");
		c->items[i] = x;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS;
	body->exchange_claims = c;
	return 0;
}

static int claim_answers_from_json(const json_t *items, Timebank__V1__Body *body)
{
	Timebank__V1__ClaimAnswers *a = malloc(sizeof(*a));
	size_t n = json_array_size(items);

	timebank__v1__claim_answers__init(a);
	a->n_items = n;
	a->items = calloc(n > 0 ? n : 1, sizeof(*a->items));
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_array_get(items, i);
		Timebank__V1__ClaimAnswer *x = malloc(sizeof(*x));
		timebank__v1__claim_answer__init(x);
		x->claim_id = str(it, "claim_id");
		x->reason = str(it, "reason");
		x->message = str(it, "message");
		a->items[i] = x;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS;
	body->claim_answers = a;
	return 0;
}

int env_body_from_json(const json_t *json, Timebank__V1__Body *body)
{
	const char *kind = json_string_value(json_object_get(json, "kind"));

	if (kind == NULL)
		return -1;
	if (strcmp(kind, "test") == 0) {
		Timebank__V1__TestMessage *test = malloc(sizeof(*test));
		timebank__v1__test_message__init(test);
		test->n = (uint64_t)json_integer_value(json_object_get(json, "n"));
		test->text = str(json, "text");
		body->kind_case = TIMEBANK__V1__BODY__KIND_TEST;
		body->test = test;
		return 0;
	}
	if (strcmp(kind, "xb_propose") == 0)
		return proposals_from_json(json_object_get(json, "items"), body);
	if (strcmp(kind, "xb_answer") == 0)
		return answers_from_json(json_object_get(json, "items"), body);
	if (strcmp(kind, "xb_claim") == 0)
		return claims_from_json(json_object_get(json, "items"), body);
	if (strcmp(kind, "xb_claim_answer") == 0)
		return claim_answers_from_json(json_object_get(json, "items"), body);
	return -1;
}

void env_body_release(Timebank__V1__Body *body)
{
	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_TEST:
		free(body->test);
		break;
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS:
		for (size_t i = 0; i < body->exchange_proposals->n_items; i++)
			free(body->exchange_proposals->items[i]);
		free(body->exchange_proposals->items);
		free(body->exchange_proposals);
		break;
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS:
		for (size_t i = 0; i < body->exchange_answers->n_items; i++)
			free(body->exchange_answers->items[i]);
		free(body->exchange_answers->items);
		free(body->exchange_answers);
		break;
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS:
		for (size_t i = 0; i < body->exchange_claims->n_items; i++)
			free(body->exchange_claims->items[i]);
		free(body->exchange_claims->items);
		free(body->exchange_claims);
		break;
	case TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS:
		for (size_t i = 0; i < body->claim_answers->n_items; i++)
			free(body->claim_answers->items[i]);
		free(body->claim_answers->items);
		free(body->claim_answers);
		break;
	default:
		break;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND__NOT_SET;
}
