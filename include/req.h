/* req: validates API request bodies and turns them into the normalised JSON
 * the ledger's SQL functions take. Pure: no I/O, no database.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_REQ_H
#define TB_REQ_H

#include <jansson.h>
#include <stdint.h>

struct req_error {
	const char *code; /* stable API error code, e.g. "invalid_hours" */
	char message[200];
};

/* Member fields for "add" (name required) or "update" (at least one field).
 * Returns a new object the caller owns, or NULL with err set. */
json_t *req_member(const json_t *body, int for_update, struct req_error *err);

/* An exchange between two members of this bank. max_minutes is the bank's
 * configured maximum per exchange. Returns a new object or NULL with err. */
json_t *req_exchange(const json_t *body, int64_t max_minutes, struct req_error *err);

/* A claim from this bank's member (earner, a number) on another bank's
 * member (payer, BANK:NUMBER): the exchange fields and an optional message
 * for that bank's broker. Adds "bank". */
json_t *req_claim(const json_t *body, int64_t max_minutes, struct req_error *err);

/* A group exchange: one payer, several earners, all posted or none. Each
 * earner is a number (taking the request's hours) or {"earner": N, "hours"
 * or "minutes"}. Returns a new object with earners as [{earner, minutes}]. */
json_t *req_group(const json_t *body, int64_t max_minutes, struct req_error *err);

/* Hours granted from the community account to a member. */
json_t *req_grant(const json_t *body, int64_t max_minutes, struct req_error *err);

/* A reversal: a reason (required) and an optional idempotency key. */
json_t *req_reverse(const json_t *body, struct req_error *err);
/* A broker's decline of a claim: a reversal's reason, which goes to the
 * claiming bank, so with no way to reach a person in it. */
json_t *req_decline(const json_t *body, struct req_error *err);

/* A directory offer or request: member, category, text (checked for
 * personal details), area, availability (normalised), visibility,
 * expires_on. For an update, any of them but member. */
#define DIR_TEXT_MAX 280
json_t *req_dir_item(const json_t *body, int for_update, struct req_error *err);

/* A broker's approval of a shared item: version (optional), the item's
 * version the broker read, so that one changed since is not approved. */
json_t *req_dir_approve(const json_t *body, struct req_error *err);
/* The national body's register: a bank to add (id, name, address, kind,
 * signing_pub, cert_sha256), and a key rotation (signing_pub, grace_days). */
json_t *req_register_bank(const json_t *body, struct req_error *err);
/* A bank id: 2 to 32 of a-z, 0-9 and '-', from a letter. */
int req_valid_bank_id(const char *s);
/* IP:PORT: an IPv4 address, or IPv6 in brackets, and a port of 1 to 65535
 * with no leading zero. */
int req_valid_address(const char *s);
json_t *req_register_rotate(const json_t *body, struct req_error *err);
/* A register's banks and CRL as a bank takes them (and the national body
 * signs them): at most REQ_REGISTER_MAX_BANKS banks, each with a good id,
 * an IP:PORT address, a kind, 1 to REQ_REGISTER_MAX_KEYS 32-byte keys and
 * an empty or 64-hex-digit certificate hash, none twice; and a CRL of at
 * most REQ_REGISTER_MAX_CRL bytes. 0, or -1 with why, naming the bank. */
#define REQ_REGISTER_MAX_BANKS 1000
#define REQ_REGISTER_MAX_KEYS 4
#define REQ_REGISTER_MAX_CRL (1024 * 1024)
struct Timebank__V1__Register;
int req_register_bad(const struct Timebank__V1__Register *reg, char *why, size_t len);

/* A contact request for a shared item: handle, bank (optional), for (the
 * member asking), message (checked like an item's text). */
json_t *req_contact(const json_t *body, struct req_error *err);
/* A broker's answer to a contact request: message (required to accept). */
json_t *req_contact_answer(const json_t *body, int required, struct req_error *err);
/* An exchange from an accepted contact: contact, hours or minutes, and the
 * exchange fields (category defaults to the item's). */
json_t *req_exchange_contact(const json_t *body, int64_t max_minutes, struct req_error *err);

/* A referral of a member to another bank: member, bank, kind (move or
 * introduce), reason, share (the fields the member consented to, a list or
 * "name,phone,..."; contact is email, phone and address; name is needed),
 * consent (in person, by phone, in writing), consent_notes (needed to share
 * notes). Out: share as a list of field names. */
json_t *req_referral(const json_t *body, struct req_error *err);
/* Accepting a referral: number (optional), message for the referring bank. */
json_t *req_referral_accept(const json_t *body, struct req_error *err);

/* An erasure: force (boolean) needs a reason. */
json_t *req_erase(const json_t *body, struct req_error *err);

/* Reads a member number from JSON (integer or digit string). 0 or -1. */
int req_member_number(const json_t *value, int64_t *number) __attribute__((warn_unused_result));

/* Parses a decimal number in [min, max] from text (query strings). 0 or -1. */
int req_parse_int(const char *text, int64_t min, int64_t max, int64_t *out)
    __attribute__((warn_unused_result));

/* 1 if text is a real calendar date written YYYY-MM-DD. */
int req_valid_date(const char *text);

#endif
