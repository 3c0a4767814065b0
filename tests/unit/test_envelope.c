#include "crypto.h"
#include "envelope.h"
#include "frame.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* A fresh Ed25519 key pair, loaded the way the daemon loads keys (PEM). */
static struct crypto_key *new_key(struct crypto_key **pub)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char priv_path[] = "/tmp/tb-test-key-XXXXXX", pub_path[] = "/tmp/tb-test-pub-XXXXXX";
	char err[256];
	FILE *f;
	struct crypto_key *k;

	f = fdopen(mkstemp(priv_path), "w");
	PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	f = fdopen(mkstemp(pub_path), "w");
	PEM_write_PUBKEY(f, pkey);
	fclose(f);
	k = crypto_key_load(priv_path, 1, err, sizeof(err));
	*pub = crypto_key_load(pub_path, 0, err, sizeof(err));
	unlink(priv_path);
	unlink(pub_path);
	EVP_PKEY_free(pkey);
	assert_non_null(k);
	assert_non_null(*pub);
	return k;
}

static void test_frame_peek_checks_the_length_before_anything_else(void **state)
{
	uint8_t buf[16] = {0, 0, 0, 3, 'a', 'b', 'c'}, big[4], empty[4] = {0};
	uint32_t len = 0;

	(void)state;
	assert_int_equal(frame_peek(buf, 3, FRAME_MAX, &len), FRAME_NEED_MORE);
	assert_int_equal(frame_peek(buf, 6, FRAME_MAX, &len), FRAME_NEED_MORE);
	assert_int_equal(frame_peek(buf, 7, FRAME_MAX, &len), FRAME_OK);
	assert_int_equal(len, 3);
	frame_header(FRAME_MAX + 1, big);
	assert_int_equal(frame_peek(big, 4, FRAME_MAX, &len), FRAME_TOO_BIG);
	frame_header(0xffffffffu, big);
	assert_int_equal(frame_peek(big, 4, FRAME_MAX, &len), FRAME_TOO_BIG);
	assert_int_equal(frame_peek(empty, 4, FRAME_MAX, &len), FRAME_EMPTY);
	frame_header(FRAME_MAX, big);
	assert_int_equal(frame_peek(big, 4, FRAME_MAX, &len), FRAME_NEED_MORE);
}

static void seal_test(const struct crypto_key *key, const char *from, const char *to, uint64_t seq,
                      uint8_t **out, size_t *len, uint8_t *hash)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__TestMessage test = TIMEBANK__V1__TEST_MESSAGE__INIT;

	test.n = seq;
	test.text = "hello";
	body.kind_case = TIMEBANK__V1__BODY__KIND_TEST;
	body.test = &test;
	assert_int_equal(env_seal(from, to, seq, NULL, 1234, &body, key, out, len, hash), 0);
}

static void test_envelope_seal_then_open_round_trips(void **state)
{
	struct crypto_key *pub, *key = new_key(&pub);
	struct env_msg msg;
	uint8_t *buf, hash[CRYPTO_HASH_LEN];
	size_t len;
	json_t *j;

	(void)state;
	seal_test(key, "colchester", "westminster", 7, &buf, &len, hash);
	assert_int_equal(env_open(buf, len, &pub, 1, "colchester", "westminster", &msg), ENV_OK);
	assert_int_equal(msg.sp->sequence, 7);
	assert_int_equal(msg.sp->sent_unix_ms, 1234);
	assert_memory_equal(msg.hash, hash, CRYPTO_HASH_LEN);
	assert_string_equal(msg.key_id, crypto_key_id(pub));
	j = env_body_to_json(msg.sp->body);
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "test");
	assert_int_equal(json_integer_value(json_object_get(j, "n")), 7);
	json_decref(j);
	env_msg_clear(&msg);
	free(buf);
	crypto_key_free(key);
	crypto_key_free(pub);
}

/* Each ledger body the outbox holds as JSON goes onto the wire as protobuf
 * and comes back out as the same JSON. */
static void test_ledger_bodies_round_trip_through_protobuf(void **state)
{
	static const char *const bodies[] = {
	    "{\"kind\": \"xb_propose\", \"items\": [{\"xid\": \"colchester:7\", \"earner\": 204, "
	    "\"minutes\": 120, \"category\": \"lifts\", \"performed_on\": \"2026-11-20\", "
	    "\"reverses\": \"\", \"claim\": \"\", \"contact\": \"\", \"sender_note\": \"\"}, "
	    "{\"xid\": \"colchester:8\", \"earner\": 0, \"minutes\": 60, \"category\": \"diy\", "
	    "\"performed_on\": \"2026-11-21\", \"reverses\": \"\", \"claim\": \"westminster:c3\", "
	    "\"contact\": \"\", \"sender_note\": \"01a2b3\"}]}",
	    "{\"kind\": \"xb_answer\", \"items\": [{\"xid\": \"colchester:7\", \"accepted\": "
	    "false, \"reason\": \"exposure_limit\", \"proposal\": \"9f2c\"}]}",
	    "{\"kind\": \"xb_claim\", \"items\": [{\"claim_id\": \"westminster:c3\", \"payer\": "
	    "17, \"earner\": 204, \"minutes\": 90, \"category\": \"gardening\", \"performed_on\": "
	    "\"2026-11-19\", \"message\": \"hedge at the allotment\"}]}",
	    "{\"kind\": \"xb_claim_answer\", \"items\": [{\"claim_id\": \"westminster:c3\", "
	    "\"reason\": \"declined\", \"message\": \"no record of this\"}]}",
	    "{\"kind\": \"dir_contact\", \"items\": [{\"contact_id\": \"cheshire:k2\", \"handle\": "
	    "\"3f9a0c21b7d4\", \"message\": \"Ann needs a lift\\non Tuesday\"}]}",
	    "{\"kind\": \"dir_contact_answer\", \"items\": [{\"contact_id\": \"cheshire:k2\", "
	    "\"accepted\": true, \"reason\": \"\", \"message\": \"Wendy will ring Ann\"}]}",
	    "{\"kind\": \"erasure\", \"items\": [{\"record\": \"claim\", \"id\": "
	    "\"colchester:c4\"}, {\"record\": \"exchange\", \"id\": \"colchester:9\"}]}",
	    "{\"kind\": \"test\", \"n\": 5, \"text\": \"hello\"}",
	    "{\"kind\": \"referral\", \"items\": [{\"referral_id\": \"colchester:r3\", \"kind\": "
	    "\"move\", \"member\": 17, \"reason\": \"moved to Pimlico\", \"shared\": [\"name\", "
	    "\"phone\", \"record\"], \"consent_how\": \"in person\", \"consent_notes\": false, "
	    "\"consent_by\": \"brenda\", \"consent_at\": \"2026-12-01T10:02:11Z\", \"name\": "
	    "\"Ann Baker\", \"email\": \"\", \"phone\": \"01206 500100\", \"address\": \"\", "
	    "\"skills\": \"\", \"needs\": \"\", \"availability\": \"\", \"district\": \"\", "
	    "\"notes\": \"\", \"record\": {\"joined_on\": \"2026-10-01\", \"exchanges_given\": 2, "
	    "\"exchanges_received\": 1, \"minutes_given\": 210, \"minutes_received\": 45}, "
	    "\"balance_minutes\": -165}]}",
	    "{\"kind\": \"referral_answer\", \"items\": [{\"referral_id\": \"colchester:r3\", "
	    "\"state\": \"accepted\", \"member\": 31, \"reason\": \"\", \"message\": \"welcome\", "
	    "\"decided_on\": \"2026-12-02\"}]}",
	    "{\"kind\": \"referral_withdraw\", \"items\": [{\"referral_id\": \"colchester:r3\"}]}",
	};
	struct crypto_key *pub, *key = new_key(&pub);

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
		json_t *in = json_loads(bodies[i], 0, NULL), *out;
		struct env_msg msg;
		uint8_t *buf, hash[CRYPTO_HASH_LEN];
		size_t len;

		assert_non_null(in);
		assert_int_equal(env_body_from_json(in, &body), 0);
		assert_int_equal(
		    env_seal("colchester", "westminster", 1, NULL, 1, &body, key, &buf, &len, hash),
		    0);
		env_body_release(&body);
		assert_int_equal(env_open(buf, len, &pub, 1, "colchester", "westminster", &msg),
		                 ENV_OK);
		out = env_body_to_json(msg.sp->body);
		assert_true(json_equal(in, out));
		json_decref(in);
		json_decref(out);
		env_msg_clear(&msg);
		free(buf);
	}
	crypto_key_free(key);
	crypto_key_free(pub);
}

/* A directory page as tb_dir_page writes it survives the trip to protobuf
 * and back; JSON that does not fit the message is refused. */
static void test_directory_page_round_trips_and_misfits_are_refused(void **state)
{
	const char *text =
	    "{\"since\": 10, \"next\": 12, \"more\": false, \"items\": [{\"handle\": "
	    "\"3f9a0c21b7d4\", \"withdrawn\": false, \"kind\": \"offer\", \"category\": \"lifts\", "
	    "\"text\": \"Lifts to the surgery\", \"area\": \"CO1\", \"availability\": \"tuesday "
	    "morning\", \"expires_on\": \"2027-05-22\", \"version\": 11}, {\"handle\": "
	    "\"aa11bb22cc33\", \"withdrawn\": true, \"kind\": \"\", \"category\": \"\", \"text\": "
	    "\"\", \"area\": \"\", \"availability\": \"\", \"expires_on\": \"\", \"version\": "
	    "12}]}";
	json_t *in = json_loads(text, 0, NULL), *out, *bad;
	ProtobufCMessage *m = env_msg_from_json(in, &timebank__v1__directory_page__descriptor);
	uint8_t buf[1024];
	size_t len;
	Timebank__V1__DirectoryPage *back;

	(void)state;
	assert_non_null(m);
	len = protobuf_c_message_pack(m, buf);
	back = timebank__v1__directory_page__unpack(NULL, len, buf);
	assert_non_null(back);
	assert_int_equal(back->n_items, 2);
	out = env_msg_to_json(&back->base);
	assert_true(json_equal(in, out));
	json_decref(out);
	timebank__v1__directory_page__free_unpacked(back, NULL);
	env_msg_release(m);
	bad = json_loads("{\"since\": 1, \"items\": [\"not an object\"]}", 0, NULL);
	assert_null(env_msg_from_json(bad, &timebank__v1__directory_page__descriptor));
	json_decref(bad);
	json_decref(in);
}

/* An activity report keeps the difference between a suppressed figure
 * (null: absent on the wire) and zero; a figure that is not a number is
 * refused rather than sent as zero. */
static void test_a_report_keeps_suppressed_apart_from_zero(void **state)
{
	const char *text =
	    "{\"month\": \"2026-11\", \"revision\": 2, \"final\": true, \"from\": "
	    "\"2026-11-01\", \"to\": \"2026-11-30\", \"rule\": {\"suppress_below\": 8, "
	    "\"round_to\": 5}, \"members\": {\"person\": {\"total\": 45, \"active\": null, "
	    "\"new\": 0, \"left\": null}, \"organisation\": null}, \"hours\": {\"within\": "
	    "{\"members\": null, \"minutes\": null}, \"grants\": {\"members\": 0, \"minutes\": "
	    "0}, \"peers\": [], \"categories\": [{\"category\": \"lifts\", \"members\": 10, "
	    "\"minutes\": 765}], \"areas\": []}, \"referrals\": [], \"clearing\": [{\"bank\": "
	    "\"westminster\", \"position_minutes\": -45, \"in_flight\": 0, \"applied_seq\": 3, "
	    "\"acked_seq\": 4}], \"moves\": null, \"intake\": {\"received\": 10, \"contacted\": "
	    "null, \"joined\": 0, \"declined\": null, \"unreachable\": 0, \"withdrawn\": 0, "
	    "\"reached_3_months\": null, \"active_3_months\": null, \"reached_6_months\": 0, "
	    "\"active_6_months\": 0}}";
	json_t *in = json_loads(text, 0, NULL), *out, *bad;
	ProtobufCMessage *m = env_msg_from_json(in, &timebank__v1__activity_report__descriptor);
	uint8_t buf[2048];
	size_t len;
	Timebank__V1__ActivityReport *back;

	(void)state;
	assert_non_null(m);
	len = protobuf_c_message_pack(m, buf);
	back = timebank__v1__activity_report__unpack(NULL, len, buf);
	assert_non_null(back);
	assert_false(back->members->person->has_active);
	assert_true(back->members->person->has_new_);
	assert_int_equal(back->members->person->new_, 0);
	out = env_msg_to_json(&back->base);
	assert_true(json_equal(in, out));
	json_decref(out);
	timebank__v1__activity_report__free_unpacked(back, NULL);
	env_msg_release(m);
	bad = json_loads("{\"month\": \"2026-11\", \"revision\": \"2\"}", 0, NULL);
	assert_null(env_msg_from_json(bad, &timebank__v1__activity_report__descriptor));
	json_decref(bad);
	json_decref(in);
}

static void test_envelope_refuses_tampering_strangers_and_misdirection(void **state)
{
	struct crypto_key *pub, *key = new_key(&pub), *other_pub, *other = new_key(&other_pub);
	struct env_msg msg;
	uint8_t *buf, hash[CRYPTO_HASH_LEN], junk[64];
	size_t len;

	(void)state;
	seal_test(key, "colchester", "westminster", 1, &buf, &len, hash);
	assert_int_equal(env_open(buf, len, &pub, 1, "colchester", "cheshire", &msg),
	                 ENV_WRONG_RECEIVER);
	assert_int_equal(env_open(buf, len, &pub, 1, "cheshire", "westminster", &msg),
	                 ENV_WRONG_SENDER);
	assert_int_equal(env_open(buf, len, &other_pub, 1, "colchester", "westminster", &msg),
	                 ENV_UNKNOWN_KEY);
	/* Every single flipped byte is refused, whichever part it lands in. */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x40;
		assert_int_not_equal(env_open(buf, len, &pub, 1, "colchester", "westminster", &msg),
		                     ENV_OK);
		buf[i] ^= 0x40;
	}
	assert_int_equal(env_open(buf, len, &pub, 1, "colchester", "westminster", &msg), ENV_OK);
	env_msg_clear(&msg);
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(env_open(junk, sizeof(junk), &pub, 1, "a", "b", &msg), ENV_MALFORMED);
	free(buf);
	/* Signed by a key the receiver does not hold for that sender. */
	seal_test(other, "colchester", "westminster", 1, &buf, &len, hash);
	assert_int_equal(env_open(buf, len, &pub, 1, "colchester", "westminster", &msg),
	                 ENV_UNKNOWN_KEY);
	free(buf);
	crypto_key_free(key);
	crypto_key_free(pub);
	crypto_key_free(other);
	crypto_key_free(other_pub);
}

static void test_crypto_hex_round_trips(void **state)
{
	uint8_t bytes[4] = {0, 0x7f, 0x80, 0xff}, back[4];
	char hex[9];

	(void)state;
	crypto_hex(bytes, 4, hex);
	assert_string_equal(hex, "007f80ff");
	assert_int_equal(crypto_unhex(hex, back, sizeof(back)), 4);
	assert_memory_equal(back, bytes, 4);
	assert_int_equal(crypto_unhex("abc", back, sizeof(back)), -1);
	assert_int_equal(crypto_unhex("zz", back, sizeof(back)), -1);
	assert_int_equal(crypto_unhex("0011223344", back, sizeof(back)), -1);
}

/* A sender's note opens only with the key that sealed it, for what it
 * was sealed for, and not once a byte of it is changed. */
static void test_a_sender_note_opens_only_for_its_sealer(void **state)
{
	struct crypto_key *pub, *other_pub;
	struct crypto_key *key = new_key(&pub), *other = new_key(&other_pub);
	const char *text = "{\"payer\":12,\"description\":\"a lift\"}";
	uint8_t *note, *back;
	size_t len, back_len;

	(void)state;
	assert_int_equal(
	    crypto_note_seal(key, "colchester:7", (const uint8_t *)text, strlen(text), &note, &len),
	    0);
	assert_int_equal(len, strlen(text) + CRYPTO_NOTE_OVERHEAD);
	assert_null(memmem(note, len, "payer", 5)); /* the holder reads nothing */
	back = crypto_note_open(key, "colchester:7", note, len, &back_len);
	assert_non_null(back);
	assert_int_equal(back_len, strlen(text));
	assert_string_equal((char *)back, text);
	free(back);
	assert_null(crypto_note_open(other, "colchester:7", note, len, &back_len));
	assert_null(crypto_note_open(key, "colchester:8", note, len, &back_len));
	assert_null(crypto_note_open(pub, "colchester:7", note, len, &back_len));
	note[len / 2] ^= 1;
	assert_null(crypto_note_open(key, "colchester:7", note, len, &back_len));
	assert_null(crypto_note_open(key, "colchester:7", note, 10, &back_len));
	assert_int_equal(crypto_note_seal(pub, "x", (const uint8_t *)"y", 1, &back, &back_len), -1);
	free(note);
	crypto_key_free(key);
	crypto_key_free(pub);
	crypto_key_free(other);
	crypto_key_free(other_pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_peek_checks_the_length_before_anything_else),
	    cmocka_unit_test(test_envelope_seal_then_open_round_trips),
	    cmocka_unit_test(test_ledger_bodies_round_trip_through_protobuf),
	    cmocka_unit_test(test_directory_page_round_trips_and_misfits_are_refused),
	    cmocka_unit_test(test_a_report_keeps_suppressed_apart_from_zero),
	    cmocka_unit_test(test_envelope_refuses_tampering_strangers_and_misdirection),
	    cmocka_unit_test(test_crypto_hex_round_trips),
	    cmocka_unit_test(test_a_sender_note_opens_only_for_its_sealer),
	};
	return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
