/* req: validates API request bodies and turns them into the normalised JSON
 * the ledger's SQL functions take. Pure: no I/O, no database.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_REQ_H
#define TB_REQ_H

#include <jansson.h>
#include <time.h>
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

/* A person referred in by an organisation of this bank (intake): org, name,
 * phone, email, address, reasons (a list, or "isolation,low-mood"; each
 * from REQ_INTAKE_REASONS), referrer_name, referrer_role,
 * referrer_contact, notes, consent_contact, consent_outcomes,
 * idempotency_key. Out: reasons as a list, the consents as booleans. */
#define REQ_INTAKE_REASONS                                                                         \
	"isolation, low-mood, long-term-condition, carer, bereavement, recently-discharged or "    \
	"other"
json_t *req_intake(const json_t *body, struct req_error *err);
/* A referral's next state: "joined" takes member (optional), "declined"
 * a reason (required); the others nothing. body may be NULL. */
json_t *req_intake_move(const json_t *body, const char *state, struct req_error *err);
/* A safeguarding check: kind (dbs-basic, dbs-standard, dbs-enhanced,
 * dbs-enhanced-barred, pvg, other), reference, checked_on and expires_on
 * (dates YYYY-MM-DD), all required. */
json_t *req_check(const json_t *body, struct req_error *err);

/* The shared readers of the req files. Each returns 0, or -1 with err set
 * (req_fail always NULL, having set err). */
json_t *req_fail(struct req_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Text a person typed: at most max bytes, no control characters but, when
 * allowed, newlines and tabs. 1 when it is. */
int req_valid_text(const char *s, size_t max, int allow_newlines);
/* -1 when body is not an object or has a field not in allowed. */
int req_only_fields(const json_t *body, const char *const *allowed, struct req_error *err);
/* The body's idempotency_key, when it has one, into out. */
int req_key_of(const json_t *body, json_t *out, struct req_error *err);
/* The body's member number under key, when it has one (not null), into
 * out as an integer; what, the sentence for a bad one. */
int req_optional_member(const json_t *body, const char *key, json_t *out, const char *what,
                        struct req_error *err);
/* The body's reason (1 to 500 characters), needed when required, into out. */
int req_reason_of(const json_t *body, json_t *out, int required, struct req_error *err);

/* A time as the API writes it, "2026-12-04T09:30:00Z"; null for 0. */
json_t *req_time_json(time_t t);

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
