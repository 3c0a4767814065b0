/* envelope: sealing and opening the signed messages of the federation link
 * (proto/federation.proto). Opening verifies the signature over the exact
 * signed bytes before parsing them, then checks sender and receiver.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_ENVELOPE_H
#define TB_ENVELOPE_H

#include "crypto.h"
#include "federation.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ENV_PROTOCOL_VERSION 1
/* Items one message may hold (proposals, answers, claims, contacts,
 * directory items); senders split longer lists (tb_fed_enqueue_items), and
 * a receiver refuses a message with more. */
#define ENV_MAX_ITEMS 1000
/* A directory page's items, at most: as many as a pull may ask for. */
#define ENV_MAX_DIR_ITEMS 2500
#define ENV_MAX_TEST_TEXT 200 /* bytes of a test message's text */

/* Each maps to one reason a message is refused, named in logs and metrics. */
enum env_result {
	ENV_OK,
	ENV_MALFORMED,      /* not an envelope, or its signed part does not parse */
	ENV_UNKNOWN_KEY,    /* signed with a key we do not hold for the sender */
	ENV_BAD_SIGNATURE,  /* the signature does not match the signed bytes */
	ENV_WRONG_SENDER,   /* signed part names another sender */
	ENV_WRONG_RECEIVER, /* addressed to another bank */
	ENV_NO_BODY,        /* no message inside */
};

/* An opened message. Owns sp; free with env_msg_clear. */
struct env_msg {
	Timebank__V1__SignedPart *sp;
	uint8_t hash[CRYPTO_HASH_LEN]; /* SHA-256 of the whole envelope */
	const char *key_id;            /* into keys[], which outlive the message */
};

/* Seals a message: serialises the signed part, signs it with key, and
 * serialises the envelope into *out (malloc'd, caller frees), with its hash.
 * prev is NULL (first message, or sequence 0) or CRYPTO_HASH_LEN bytes. */
int env_seal(const char *sender, const char *receiver, uint64_t seq, const uint8_t *prev,
             int64_t sent_ms, const Timebank__V1__Body *body, const struct crypto_key *key,
             uint8_t **out, size_t *out_len, uint8_t *hash) __attribute__((warn_unused_result));

/* Opens an envelope of len bytes (len already within the frame cap) from
 * sender to receiver, signed by one of keys[0..nkeys). */
enum env_result env_open(const uint8_t *buf, size_t len, struct crypto_key *const *keys, int nkeys,
                         const char *sender, const char *receiver, struct env_msg *out)
    __attribute__((warn_unused_result));
void env_msg_clear(struct env_msg *msg);
const char *env_result_name(enum env_result r);

/* 1 when body is a channel message (ordered, with a sequence, applied by
 * the ledger), 0 for a session message (hello, ack, ping, ...). */
int env_is_channel(const Timebank__V1__Body *body);

/* How many items body holds: its list's length, or 0 for a kind without one. */
size_t env_body_items(const Timebank__V1__Body *body);

/* How many items a message of body's kind may hold. */
size_t env_body_max_items(const Timebank__V1__Body *body);

/* A channel message's body as the ledger's JSON ({"kind": "test", ...}), or
 * NULL for a body that is not a channel message. Caller owns the result. */
json_t *env_body_to_json(const Timebank__V1__Body *body);
/* The reverse: fills body from JSON, allocating its parts (free them with
 * env_body_release); -1 for a kind that is not a channel message. Strings
 * stay borrowed from json. */
int env_body_from_json(const json_t *json, Timebank__V1__Body *body)
    __attribute__((warn_unused_result));
void env_body_release(Timebank__V1__Body *body);

/* Any message as JSON (keys are the proto field names; every field is
 * written), and back: env_msg_from_json allocates the message and its
 * parts, borrowing strings from json; free with env_msg_release. NULL when
 * json does not fit. */
json_t *env_msg_to_json(const ProtobufCMessage *m);
ProtobufCMessage *env_msg_from_json(const json_t *json, const ProtobufCMessageDescriptor *d);
void env_msg_release(ProtobufCMessage *m);

#endif
