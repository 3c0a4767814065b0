#include "envelope.h"

#include "mem.h"

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
	signed_bytes = xmalloc(signed_len);
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
	*out = xmalloc(*out_len);
	timebank__v1__envelope__pack(&env, *out);
	free(signed_bytes);
	crypto_sha256(*out, *out_len, hash);
	return 0;
}

enum env_result env_open(const uint8_t *buf, size_t len, struct crypto_key *const *keys, int nkeys,
                         const char *sender, const char *receiver, struct env_msg *out)
{
	Timebank__V1__Envelope *env = timebank__v1__envelope__unpack(&mem_protobuf, len, buf);
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
	else if ((out->sp = timebank__v1__signed_part__unpack(&mem_protobuf, env->signed_part.len,
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
	timebank__v1__envelope__free_unpacked(env, &mem_protobuf);
	return r;
}

void env_msg_clear(struct env_msg *msg)
{
	if (msg->sp != NULL)
		timebank__v1__signed_part__free_unpacked(msg->sp, &mem_protobuf);
	memset(msg, 0, sizeof(*msg));
}

/* ---- bodies as the ledger's JSON ---------------------------------------
 *
 * The ledger keeps each channel message's body as JSON ({"kind": "xb_propose",
 * "items": [...]}) and the wire carries protobuf. The two are converted
 * field by field from protobuf-c's descriptors: JSON keys are the proto
 * field names, and every field is written, defaults included. A proto2
 * optional field (report.proto) has presence: absent on the wire is null
 * in JSON, and null or missing in JSON is absent on the wire. */

static const struct {
	const char *kind;
	Timebank__V1__Body__KindCase field;
} channel_kinds[] = {
    {"test", TIMEBANK__V1__BODY__KIND_TEST},
    {"xb_propose", TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS},
    {"xb_answer", TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS},
    {"xb_claim", TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS},
    {"xb_claim_answer", TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS},
    {"dir_contact", TIMEBANK__V1__BODY__KIND_CONTACT_REQUESTS},
    {"dir_contact_answer", TIMEBANK__V1__BODY__KIND_CONTACT_ANSWERS},
    {"erasure", TIMEBANK__V1__BODY__KIND_ERASURES},
    {"activity_report", TIMEBANK__V1__BODY__KIND_ACTIVITY_REPORT},
    {"report_answer", TIMEBANK__V1__BODY__KIND_REPORT_ANSWERS},
    {"referral", TIMEBANK__V1__BODY__KIND_REFERRALS},
    {"referral_answer", TIMEBANK__V1__BODY__KIND_REFERRAL_ANSWERS},
    {"referral_withdraw", TIMEBANK__V1__BODY__KIND_REFERRAL_WITHDRAWALS},
};
#define NKINDS (sizeof(channel_kinds) / sizeof(channel_kinds[0]))

size_t env_body_max_items(const Timebank__V1__Body *body)
{
	return body->kind_case == TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE ? ENV_MAX_DIR_ITEMS
	                                                                  : ENV_MAX_ITEMS;
}

size_t env_body_items(const Timebank__V1__Body *body)
{
	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_PROPOSALS:
		return body->exchange_proposals->n_items;
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_ANSWERS:
		return body->exchange_answers->n_items;
	case TIMEBANK__V1__BODY__KIND_EXCHANGE_CLAIMS:
		return body->exchange_claims->n_items;
	case TIMEBANK__V1__BODY__KIND_CLAIM_ANSWERS:
		return body->claim_answers->n_items;
	case TIMEBANK__V1__BODY__KIND_CONTACT_REQUESTS:
		return body->contact_requests->n_items;
	case TIMEBANK__V1__BODY__KIND_CONTACT_ANSWERS:
		return body->contact_answers->n_items;
	case TIMEBANK__V1__BODY__KIND_ERASURES:
		return body->erasures->n_items;
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE:
		return body->directory_page->n_items;
	case TIMEBANK__V1__BODY__KIND_REPORT_ANSWERS:
		return body->report_answers->n_items;
	case TIMEBANK__V1__BODY__KIND_REFERRALS:
		return body->referrals->n_items;
	case TIMEBANK__V1__BODY__KIND_REFERRAL_ANSWERS:
		return body->referral_answers->n_items;
	case TIMEBANK__V1__BODY__KIND_REFERRAL_WITHDRAWALS:
		return body->referral_withdrawals->n_items;
	case TIMEBANK__V1__BODY__KIND_ACTIVITY_REPORT:
		/* One report: its lists (a bank's peers, categories, areas) are
		 * held to the frame, and the observer refuses one over 256 KiB. */
		return 1;
	default:
		return 0;
	}
}

int env_is_channel(const Timebank__V1__Body *body)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (channel_kinds[i].field == body->kind_case)
			return 1;
	return 0;
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)v;
		return json_string(s != NULL ? s : "");
	}
	case PROTOBUF_C_TYPE_UINT64:
		return json_integer((json_int_t) * (const uint64_t *)v);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		return json_integer((json_int_t) * (const int64_t *)v);
	case PROTOBUF_C_TYPE_UINT32:
		return json_integer((json_int_t) * (const uint32_t *)v);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)v);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)v;
		return m != NULL ? env_msg_to_json(m) : json_null();
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = v;
		char *hex = xmalloc(2 * b->len + 1);
		json_t *out;
		crypto_hex(b->data, b->len, hex);
		out = json_string(hex);
		free(hex);
		return out;
	}
	default:
		return json_null();
	}
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_UINT32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return sizeof(void *);
	}
}

/* A scalar with a has_ flag: a proto2 optional number or boolean. */
static int has_presence(const ProtobufCFieldDescriptor *f)
{
	return f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
	       f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING;
}

json_t *env_msg_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *out = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *at = (const char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *items = *(char *const *)at;
			json_t *list = json_array();
			for (size_t j = 0; j < n; j++)
				json_array_append_new(list,
				                      value_to_json(f, items + j * value_size(f)));
			json_object_set_new(out, f->name, list);
		} else if (has_presence(f) &&
		           !*(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset)) {
			json_object_set_new(out, f->name, json_null());
		} else {
			json_object_set_new(out, f->name, value_to_json(f, at));
		}
	}
	return out;
}

static int value_from_json(const ProtobufCFieldDescriptor *f, const json_t *j, void *v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = json_string_value(j);
		*(char **)v = (char *)(s != NULL ? s : "");
		return 0;
	}
	case PROTOBUF_C_TYPE_UINT64:
		*(uint64_t *)v = (uint64_t)json_integer_value(j);
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		*(int64_t *)v = (int64_t)json_integer_value(j);
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
		*(uint32_t *)v = (uint32_t)json_integer_value(j);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)v = json_is_true(j);
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)v = env_msg_from_json(j, f->descriptor);
		return *(ProtobufCMessage **)v != NULL ? 0 : -1;
	case PROTOBUF_C_TYPE_BYTES: {
		/* Bytes are hex in JSON. */
		ProtobufCBinaryData *b = v;
		const char *hex = json_string_value(j);
		size_t max = hex != NULL ? strlen(hex) / 2 : 0;
		long n;
		b->data = xmalloc(max > 0 ? max : 1);
		n = hex != NULL ? crypto_unhex(hex, b->data, max) : 0;
		b->len = n > 0 ? (size_t)n : 0;
		/* Missing is empty; anything but hex text is refused. */
		return (j != NULL && hex == NULL) || n < 0 ? -1 : 0;
	}
	default:
		return -1;
	}
}

ProtobufCMessage *env_msg_from_json(const json_t *json, const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m;

	if (!json_is_object(json))
		return NULL;
	m = xcalloc(1, d->sizeof_message);
	d->message_init(m);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const json_t *j = json_object_get(json, f->name);
		char *at = (char *)m + f->offset;
		int bad = 0;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = json_array_size(j);
			char *items = xcalloc(n > 0 ? n : 1, value_size(f));
			*(size_t *)((char *)m + f->quantifier_offset) = n;
			*(char **)at = items;
			for (size_t k = 0; k < n && !bad; k++)
				bad = value_from_json(f, json_array_get(j, k),
				                      items + k * value_size(f));
		} else if ((f->type == PROTOBUF_C_TYPE_MESSAGE || has_presence(f)) &&
		           (j == NULL || json_is_null(j))) {
			continue; /* absent stays absent */
		} else if (has_presence(f)) {
			/* A figure that is there must be a number (or a boolean). */
			if (f->type == PROTOBUF_C_TYPE_BOOL ? !json_is_boolean(j)
			                                    : !json_is_integer(j))
				bad = 1;
			else
				bad = value_from_json(f, j, at);
			*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = !bad;
		} else {
			bad = value_from_json(f, j, at);
		}
		if (bad) {
			env_msg_release(m);
			return NULL;
		}
	}
	return m;
}

void env_msg_release(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d;

	if (m == NULL)
		return;
	d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *at = (char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(size_t *)((char *)m + f->quantifier_offset);
			ProtobufCMessage **items = *(ProtobufCMessage ***)at;
			ProtobufCBinaryData *blobs = *(ProtobufCBinaryData **)at;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE && items != NULL)
				for (size_t k = 0; k < n; k++)
					env_msg_release(items[k]);
			if (f->type == PROTOBUF_C_TYPE_BYTES && blobs != NULL)
				for (size_t k = 0; k < n; k++)
					free(blobs[k].data);
			free(*(void **)at);
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			env_msg_release(*(ProtobufCMessage **)at);
		} else if (f->type == PROTOBUF_C_TYPE_BYTES) {
			free(((ProtobufCBinaryData *)at)->data);
		}
	}
	free(m);
}

/* The body's one field: its descriptor, and where its message pointer is. */
static const ProtobufCFieldDescriptor *body_field(Timebank__V1__Body__KindCase kind)
{
	return protobuf_c_message_descriptor_get_field(&timebank__v1__body__descriptor,
	                                               (unsigned)kind);
}

json_t *env_body_to_json(const Timebank__V1__Body *body)
{
	for (size_t i = 0; i < NKINDS; i++) {
		const ProtobufCFieldDescriptor *f;
		json_t *out;
		if (channel_kinds[i].field != body->kind_case)
			continue;
		f = body_field(body->kind_case);
		out = env_msg_to_json(*(ProtobufCMessage *const *)((const char *)body + f->offset));
		json_object_set_new(out, "kind", json_string(channel_kinds[i].kind));
		return out;
	}
	return NULL;
}

int env_body_from_json(const json_t *json, Timebank__V1__Body *body)
{
	const char *kind = json_string_value(json_object_get(json, "kind"));

	for (size_t i = 0; kind != NULL && i < NKINDS; i++) {
		const ProtobufCFieldDescriptor *f;
		ProtobufCMessage *m;
		if (strcmp(channel_kinds[i].kind, kind) != 0)
			continue;
		f = body_field(channel_kinds[i].field);
		m = env_msg_from_json(json, f->descriptor);
		if (m == NULL)
			return -1;
		body->kind_case = channel_kinds[i].field;
		*(ProtobufCMessage **)((char *)body + f->offset) = m;
		return 0;
	}
	return -1;
}

void env_body_release(Timebank__V1__Body *body)
{
	if (body->kind_case != TIMEBANK__V1__BODY__KIND__NOT_SET) {
		const ProtobufCFieldDescriptor *f = body_field(body->kind_case);
		ProtobufCMessage **m = (ProtobufCMessage **)((char *)body + f->offset);
		env_msg_release(*m);
		*m = NULL;
	}
	body->kind_case = TIMEBANK__V1__BODY__KIND__NOT_SET;
}
