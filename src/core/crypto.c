#include "crypto.h"

#include "mem.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crypto_key {
	EVP_PKEY *pkey;
	int private_key;
	uint8_t raw[CRYPTO_PUB_LEN];
	char id[CRYPTO_KEY_ID_LEN + 1];
};

void crypto_hex(const uint8_t *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * len] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long crypto_unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

uint8_t *crypto_unhex_new(const char *hex, size_t *len)
{
	size_t max = hex != NULL ? strlen(hex) / 2 : 0;
	uint8_t *bytes = max > 0 ? xmalloc(max) : NULL;
	long n = bytes != NULL ? crypto_unhex(hex, bytes, max) : -1;

	if (n <= 0) {
		free(bytes);
		return NULL;
	}
	*len = (size_t)n;
	return bytes;
}

/* SHA-256 fetched from the provider once: EVP_sha256() is fetched again at
 * every digest, a lookup that cost more than hashing an API token. */
void crypto_sha256(const uint8_t *msg, size_t len, uint8_t *out)
{
	static EVP_MD *md;
	unsigned int n = CRYPTO_HASH_LEN;

	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	EVP_Digest(msg, len, out, &n, md != NULL ? md : EVP_sha256(), NULL);
}

/* Fills raw and id from pkey; -1 unless it is an Ed25519 key. */
static int key_finish(struct crypto_key *k)
{
	uint8_t h[CRYPTO_HASH_LEN];
	size_t len = CRYPTO_PUB_LEN;

	if (EVP_PKEY_get_id(k->pkey) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(k->pkey, k->raw, &len) != 1 || len != CRYPTO_PUB_LEN)
		return -1;
	crypto_sha256(k->raw, CRYPTO_PUB_LEN, h);
	crypto_hex(h, CRYPTO_KEY_ID_LEN / 2, k->id);
	return 0;
}

struct crypto_key *crypto_key_load(const char *path, int private_key, char *err, size_t errlen)
{
	struct crypto_key *k = xcalloc(1, sizeof(*k));
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open", path);
		free(k);
		return NULL;
	}
	k->private_key = private_key;
	k->pkey = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
	                      : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (k->pkey == NULL || key_finish(k) == -1) {
		snprintf(err, errlen, "%s: not a PEM Ed25519 %s key", path,
		         private_key ? "private" : "public");
		crypto_key_free(k);
		return NULL;
	}
	return k;
}

struct crypto_key *crypto_key_from_raw(const uint8_t *raw, size_t len)
{
	struct crypto_key *k;

	if (len != CRYPTO_PUB_LEN)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
	if (k->pkey == NULL || key_finish(k) == -1) {
		crypto_key_free(k);
		return NULL;
	}
	return k;
}

void crypto_key_free(struct crypto_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

const char *crypto_key_id(const struct crypto_key *key)
{
	return key->id;
}

const uint8_t *crypto_key_raw(const struct crypto_key *key)
{
	return key->raw;
}

int crypto_sign(const struct crypto_key *key, const uint8_t *msg, size_t len, uint8_t *sig)
{
	EVP_MD_CTX *ctx;
	size_t sig_len = CRYPTO_SIG_LEN;
	int ok;

	if (!key->private_key)
		return -1;
	ctx = EVP_MD_CTX_new();
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &sig_len, msg, len) == 1 && sig_len == CRYPTO_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int crypto_verify(const struct crypto_key *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t sig_len)
{
	EVP_MD_CTX *ctx;
	int ok;

	if (sig_len != CRYPTO_SIG_LEN)
		return -1;
	ctx = EVP_MD_CTX_new();
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int crypto_cert_sha256(const char *path, char *hex, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	X509 *cert = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int ok;

	if (f != NULL)
		fclose(f);
	if (cert == NULL) {
		snprintf(err, errlen, "%s: %s", path,
		         f == NULL ? strerror(errno) : "not a PEM certificate");
		return -1;
	}
	ok = X509_digest(cert, EVP_sha256(), md, &n) == 1 && n == CRYPTO_HASH_LEN;
	X509_free(cert);
	if (!ok) {
		snprintf(err, errlen, "%s: its digest could not be taken", path);
		return -1;
	}
	crypto_hex(md, n, hex);
	return 0;
}

/* The note key: SHA-256 over a label and the 32-byte private key, so that
 * it is tied to the signing key and says nothing of it. */
static int note_key(const struct crypto_key *key, uint8_t *out)
{
	static const char label[] = "timebankd sender note v1";
	uint8_t buf[sizeof(label) + 32];
	size_t len = 32;

	if (!key->private_key ||
	    EVP_PKEY_get_raw_private_key(key->pkey, buf + sizeof(label), &len) != 1 || len != 32)
		return -1;
	memcpy(buf, label, sizeof(label));
	crypto_sha256(buf, sizeof(buf), out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* One pass of ChaCha20-Poly1305 over in, into out; tag written (seal) or
 * checked (open). 0 or -1. */
static int note_cipher(const struct crypto_key *key, int seal, const uint8_t *nonce, const char *ad,
                       const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	uint8_t k[CRYPTO_HASH_LEN];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, rc = -1;

	if (ctx == NULL || note_key(key, k) == -1 || len > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, k, nonce, seal) != 1 ||
	    (!seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1) ||
	    EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)ad, (int)strlen(ad)) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    EVP_CipherFinal_ex(ctx, out + n, &n) != 1 ||
	    (seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1))
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(k, sizeof(k));
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int crypto_note_seal(const struct crypto_key *key, const char *ad, const uint8_t *text, size_t len,
                     uint8_t **out, size_t *out_len)
{
	uint8_t *note = xmalloc(len + CRYPTO_NOTE_OVERHEAD);

	note[0] = 1;
	if (RAND_bytes(note + 1, 12) != 1 ||
	    note_cipher(key, 1, note + 1, ad, text, len, note + 13, note + 13 + len) == -1) {
		free(note);
		return -1;
	}
	*out = note;
	*out_len = len + CRYPTO_NOTE_OVERHEAD;
	return 0;
}

uint8_t *crypto_note_open(const struct crypto_key *key, const char *ad, const uint8_t *note,
                          size_t note_len, size_t *len)
{
	uint8_t tag[16], *text;
	size_t n;

	if (note_len < CRYPTO_NOTE_OVERHEAD || note[0] != 1)
		return NULL;
	n = note_len - CRYPTO_NOTE_OVERHEAD;
	memcpy(tag, note + 13 + n, sizeof(tag));
	text = xmalloc(n + 1);
	if (note_cipher(key, 0, note + 1, ad, note + 13, n, text, tag) == -1) {
		free(text);
		return NULL;
	}
	text[n] = '\0';
	*len = n;
	return text;
}
