/* crypto: Ed25519 message signatures and SHA-256, over OpenSSL. A key is
 * known by its id: the first 8 bytes of the SHA-256 of its raw public key,
 * in hex.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_CRYPTO_H
#define TB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SIG_LEN 64
#define CRYPTO_PUB_LEN 32
#define CRYPTO_HASH_LEN 32
#define CRYPTO_KEY_ID_LEN 16 /* hex characters */

struct crypto_key;

/* Loads a PEM Ed25519 private key (can sign) or public key (can verify).
 * NULL with a reason in err. */
struct crypto_key *crypto_key_load(const char *path, int private_key, char *err, size_t errlen);
/* A public key from its 32 raw bytes, or NULL. */
struct crypto_key *crypto_key_from_raw(const uint8_t *raw, size_t len);
void crypto_key_free(struct crypto_key *key); /* accepts NULL */

const char *crypto_key_id(const struct crypto_key *key);
const uint8_t *crypto_key_raw(const struct crypto_key *key); /* CRYPTO_PUB_LEN bytes */

/* Signs msg into sig (CRYPTO_SIG_LEN bytes) with a private key. 0 or -1. */
int crypto_sign(const struct crypto_key *key, const uint8_t *msg, size_t len, uint8_t *sig)
    __attribute__((warn_unused_result));
/* 0 when sig is key's signature over msg, -1 otherwise. */
int crypto_verify(const struct crypto_key *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t sig_len) __attribute__((warn_unused_result));

void crypto_sha256(const uint8_t *msg, size_t len, uint8_t *out);

/* A note sealed to oneself: ChaCha20-Poly1305 under a key derived from a
 * private signing key, bound to ad (what it is about), so that whoever
 * holds the note cannot read or alter it. *out is malloc'd, *out_len
 * bytes: a version byte, the nonce, the ciphertext and the tag. 0 or -1. */
#define CRYPTO_NOTE_OVERHEAD (1 + 12 + 16)
int crypto_note_seal(const struct crypto_key *key, const char *ad, const uint8_t *text, size_t len,
                     uint8_t **out, size_t *out_len) __attribute__((warn_unused_result));
/* The reverse: the text (malloc'd and NUL-terminated, *len bytes before
 * the NUL), or NULL when key did not seal it for ad, or it was altered. */
uint8_t *crypto_note_open(const struct crypto_key *key, const char *ad, const uint8_t *note,
                          size_t note_len, size_t *len);
/* The SHA-256 of a PEM certificate's DER, as hex into hex (65 bytes): 0,
 * or -1 with the reason in err. */
int crypto_cert_sha256(const char *path, char *hex, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void crypto_hex(const uint8_t *bytes, size_t len, char *out);
/* Hex into bytes; returns the number of bytes, or -1. */
long crypto_unhex(const char *hex, uint8_t *out, size_t max);
/* Hex into new bytes (freed by the caller), their number in *len; NULL
 * when hex is NULL, empty or not hex. */
uint8_t *crypto_unhex_new(const char *hex, size_t *len);

#endif
