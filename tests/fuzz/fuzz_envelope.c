/* libFuzzer target: the federation link's input path as a peer reaches it,
 * framing then envelope opening, on arbitrary bytes. Keys are made once;
 * the input is a byte stream of frames, as on the wire. */
#include "crypto.h"
#include "envelope.h"
#include "frame.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct crypto_key *keys[2];

static struct crypto_key *make_key(void)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t raw[CRYPTO_PUB_LEN];
	size_t len = sizeof(raw);
	struct crypto_key *k;

	EVP_PKEY_get_raw_public_key(pkey, raw, &len);
	k = crypto_key_from_raw(raw, len);
	EVP_PKEY_free(pkey);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env_msg msg;
	uint32_t len;

	if (keys[0] == NULL) {
		keys[0] = make_key();
		keys[1] = make_key();
	}
	while (size > 0) {
		enum frame_result r = frame_peek(data, size, FRAME_MAX, &len);
		if (r != FRAME_OK)
			break;
		if (env_open(data + FRAME_HEADER, len, keys, 2, "colchester", "westminster", &msg) ==
		    ENV_OK) {
			json_t *j = env_body_to_json(msg.sp->body);
			json_decref(j);
			env_msg_clear(&msg);
		}
		/* The whole buffer as one envelope too, unframed. */
		if (env_open(data, size, keys, 2, "colchester", "westminster", &msg) == ENV_OK)
			env_msg_clear(&msg);
		data += FRAME_HEADER + len;
		size -= FRAME_HEADER + len;
	}
	return 0;
}
