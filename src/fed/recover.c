/* A bank restored from a backup takes back from a peer the messages it
 * sent it after the restored point, from the peer's record of what it
 * applied; and a peer gives them back when asked (RecoverRequest and
 * RecoverPage in proto/federation.proto; what is done with them:
 * src/sql/recovery.sql). What comes back is held to be ours before it is
 * kept: signed with our key, from us to that peer, under the number it
 * says. */
#include "internal.h"

#include "failpoint.h"
#include "frame.h"
#include "log.h"
#include "mem.h"

#include <event2/buffer.h>

#include <stdlib.h>
#include <string.h>

#define RECOVER_PAGE 200                /* messages asked for at once */
#define RECOVER_PAGE_BYTES (640 * 1024) /* ...and envelopes' bytes a page holds, past its first */
/* An envelope that fits a frame with the page, its envelope and signature around it. */
#define RECOVER_ENVELOPE_MAX (FRAME_MAX - 4096)

/* ---- asking --------------------------------------------------------------- */

void fed_recover_ask(struct fed_peer *peer)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__RecoverRequest req = TIMEBANK__V1__RECOVER_REQUEST__INIT;

	if (peer->session == NULL || peer->recover_asking || peer->recovering != RECOVER_HELD)
		return;
	if (!peer->session->serves_recovery) {
		if (!peer->recover_warned)
			log_error(
			    "fed: %s cannot give our messages back: it runs a timebankd "
			    "without recovery (its hello does not offer it). Nothing new goes "
			    "to it until it is upgraded and has given them back",
			    peer->id);
		peer->recover_warned = 1;
		return;
	}
	peer->recover_warned = 0;
	req.after = peer->sealed;
	req.limit = RECOVER_PAGE;
	body.kind_case = TIMEBANK__V1__BODY__KIND_RECOVER_REQUEST;
	body.recover_request = &req;
	peer->recover_asked = peer->sealed;
	peer->recover_asking = 1;
	fed_conn_send(peer->session, &body);
}

/* Our notes in our proposals (chan.c seal_notes), opened: {xid: note}. A
 * note that does not open (a key since replaced) is left out. */
static json_t *open_notes(const struct fed *fed, const json_t *body)
{
	const struct crypto_key *keys[2] = {fed->sign_key, fed->previous_key};
	json_t *notes = json_object(), *item;
	size_t i;

	json_array_foreach(json_object_get(body, "items"), i, item)
	{
		const char *xid = json_string_value(json_object_get(item, "xid"));
		size_t len, text_len;
		uint8_t *sealed =
		    crypto_unhex_new(json_string_value(json_object_get(item, "sender_note")), &len);
		uint8_t *text = NULL;

		for (int k = 0; k < 2 && sealed != NULL && xid != NULL && text == NULL; k++)
			if (keys[k] != NULL)
				text = crypto_note_open(keys[k], xid, sealed, len, &text_len);
		if (text != NULL) {
			json_t *note = json_loads((const char *)text, 0, NULL);
			if (json_is_object(note))
				json_object_set_new(notes, xid, note);
			else
				json_decref(note);
		}
		free(text);
		free(sealed);
	}
	return notes;
}

/* One message given back, as tb_fed_recover takes it; NULL (why in err)
 * when it is not ours. */
static json_t *given_back(const struct fed_peer *peer, const Timebank__V1__RecoveredMessage *m,
                          char *err, size_t errlen)
{
	struct fed *fed = peer->fed;
	struct crypto_key *keys[2];
	char hash[2 * CRYPTO_HASH_LEN + 1], prev[2 * CRYPTO_HASH_LEN + 1];
	struct env_msg msg;
	enum env_result r;
	json_t *item, *body;
	char *env;
	int nkeys = 0;

	if (m->hash.len != CRYPTO_HASH_LEN) {
		snprintf(err, errlen, "message %llu has no hash", (unsigned long long)m->sequence);
		return NULL;
	}
	crypto_hex(m->hash.data, m->hash.len, hash);
	item = json_pack("{sIss}", "seq", (json_int_t)m->sequence, "hash", hash);
	if (m->envelope.len == 0)
		return item; /* redacted there by an erasure */
	keys[nkeys++] = fed->sign_key;
	if (fed->previous_key != NULL)
		keys[nkeys++] = fed->previous_key;
	r = env_open(m->envelope.data, m->envelope.len, keys, nkeys, fed->bank_id, peer->id, &msg);
	if (r == ENV_UNKNOWN_KEY) {
		json_object_set_new(item, "why",
		                    json_string("signed with a key this bank no longer holds: what "
		                                "it carried is not known here"));
		return item;
	}
	if (r != ENV_OK) {
		snprintf(err, errlen, "message %llu is not ours (%s)",
		         (unsigned long long)m->sequence, env_result_name(r));
		json_decref(item);
		return NULL;
	}
	body = env_body_to_json(msg.sp->body);
	if (msg.sp->sequence != m->sequence ||
	    memcmp(msg.hash, m->hash.data, CRYPTO_HASH_LEN) != 0 || body == NULL ||
	    (msg.sp->prev_hash.len != 0 && msg.sp->prev_hash.len != CRYPTO_HASH_LEN)) {
		snprintf(err, errlen, "message %llu is not what it says it is",
		         (unsigned long long)m->sequence);
		json_decref(body);
		json_decref(item);
		env_msg_clear(&msg);
		return NULL;
	}
	crypto_hex(msg.sp->prev_hash.data, msg.sp->prev_hash.len, prev);
	env = xmalloc(2 * m->envelope.len + 1);
	crypto_hex(m->envelope.data, m->envelope.len, env);
	json_object_set_new(item, "envelope", json_string(env));
	json_object_set_new(item, "prev", json_string(prev));
	json_object_set_new(item, "notes", open_notes(fed, body));
	json_object_set_new(item, "body", body);
	free(env);
	env_msg_clear(&msg);
	return item;
}

static void on_recovered(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *res, *lost;
	size_t i;

	if (peer->fed->stopping) {
		fed_call_free(c);
		return;
	}
	if (r->status != DB_OK) {
		log_error(
		    "fed: recovery from %s stopped: %s; it is asked again on the next session",
		    peer->id, db_result_why(r));
		fed_call_free(c);
		return;
	}
	if ((res = fed_db_answer(r, "holding our messages again", peer->id)) == NULL) {
		fed_call_free(c);
		return;
	}
	failpoint("recover_after");
	uint64_t before = peer->sealed;
	peer->sealed = (uint64_t)json_integer_value(json_object_get(res, "held"));
	if (peer->acked < peer->sealed)
		peer->acked = peer->sealed;
	json_array_foreach(json_object_get(res, "lost"), i, lost)
	{
		long long from = json_integer_value(json_object_get(lost, "from"));
		long long to = json_integer_value(json_object_get(lost, "to"));
		if (from == to)
			log_error("fed: recovery from %s, our message %lld: %s", peer->id, from,
			          json_string_value(json_object_get(lost, "what")));
		else
			log_error("fed: recovery from %s, our messages %lld to %lld: %s", peer->id,
			          from, to, json_string_value(json_object_get(lost, "what")));
	}
	if (json_is_true(json_object_get(res, "done"))) {
		peer->recovering = RECOVER_AGREEING;
		log_info(
		    "fed: our messages to %s up to %llu are held again; we propose to it again "
		    "once its checkpoint agrees with what we applied",
		    peer->id, (unsigned long long)peer->sealed);
		/* What it sent while we were held comes again on a new session. */
		if (peer->recover_dropped && fed_call_current(c))
			fed_conn_close(peer->session, "our messages are held again; the session "
			                              "starts afresh for what it sent meanwhile");
	} else if (peer->sealed == before) {
		log_error("fed: %s gave back none of our messages after %llu that we could hold; "
		          "recovery from it waits for the next session",
		          peer->id, (unsigned long long)before);
	} else if (fed_call_current(c)) {
		fed_recover_ask(peer);
	}
	json_decref(res);
	fed_call_free(c);
}

void fed_recover_page(struct fed_conn *conn, const Timebank__V1__RecoverPage *page)
{
	struct fed_peer *peer = conn->peer;
	json_t *items;
	uint64_t last = page->after;
	char err[160], *text;
	struct fed_call *c;

	if (!peer->recover_asking || page->after != peer->recover_asked) {
		fed_conn_refuse(conn, "a recovery page not asked for");
		return;
	}
	if (page->n_messages > RECOVER_PAGE) {
		fed_conn_refuse(conn, "a recovery page of more messages than were asked for");
		return;
	}
	peer->recover_asking = 0;
	if (page->n_messages == 0) {
		log_error("fed: %s gave back none of our messages after %llu, though it applied "
		          "them up to %llu; recovery from it waits",
		          peer->id, (unsigned long long)page->after,
		          (unsigned long long)page->applied);
		return;
	}
	items = json_array();
	for (size_t i = 0; i < page->n_messages; i++) {
		const Timebank__V1__RecoveredMessage *m = page->messages[i];
		json_t *item;
		if (m->sequence <= last || m->sequence > peer->recover_to) {
			snprintf(err, sizeof(err),
			         "message %llu, out of order or past the %llu it "
			         "said it applied",
			         (unsigned long long)m->sequence,
			         (unsigned long long)peer->recover_to);
			item = NULL;
		} else {
			item = given_back(peer, m, err, sizeof(err));
		}
		if (item == NULL) {
			log_error("fed: %s gave back %s; recovery from it stops", peer->id, err);
			json_decref(items);
			fed_conn_refuse(conn, "a recovery page that is not ours");
			return;
		}
		last = m->sequence;
		json_array_append_new(items, item);
	}
	text = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	failpoint("recover_before");
	const char *params[2] = {peer->id, text};
	c = fed_call_new(peer, last);
	if (fed_query(peer->fed, "SELECT tb_fed_recover($1, $2::jsonb)::text", 2, params,
	              on_recovered, c) == -1)
		fed_call_free(c);
	free(text);
}

/* ---- giving back ----------------------------------------------------------- */

static void on_page_read(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__RecoverPage page = TIMEBANK__V1__RECOVER_PAGE__INIT;
	json_t *res, *msgs, *m;
	size_t i, n = 0, bytes = 0;

	peer->recover_serving = 0;
	if (peer->fed->stopping ||
	    (res = fed_db_answer(r, "reading a peer's messages to give back", peer->id)) == NULL) {
		fed_call_free(c);
		return;
	}
	msgs = json_object_get(res, "messages");
	page.after = c->seq;
	page.applied = (uint64_t)json_integer_value(json_object_get(res, "applied"));
	page.messages = xcalloc(json_array_size(msgs) + 1, sizeof(*page.messages));
	json_array_foreach(msgs, i, m)
	{
		Timebank__V1__RecoveredMessage *rm = xmalloc(sizeof(*rm));
		timebank__v1__recovered_message__init(rm);
		rm->sequence = (uint64_t)json_integer_value(json_object_get(m, "seq"));
		rm->hash.data =
		    crypto_unhex_new(json_string_value(json_object_get(m, "hash")), &rm->hash.len);
		rm->envelope.data = crypto_unhex_new(
		    json_string_value(json_object_get(m, "envelope")), &rm->envelope.len);
		/* One that could not go in a frame with its page (only a peer that
		 * sent us such envelopes could ask for one) goes as redacted. */
		if (rm->envelope.data == NULL || rm->envelope.len > RECOVER_ENVELOPE_MAX) {
			free(rm->envelope.data);
			rm->envelope.data = NULL;
			rm->envelope.len = 0;
		}
		if (rm->hash.data == NULL)
			rm->hash.len = 0;
		if (n > 0 && bytes + rm->envelope.len > RECOVER_PAGE_BYTES) {
			free(rm->hash.data);
			free(rm->envelope.data);
			free(rm);
			break;
		}
		bytes += rm->envelope.len;
		page.messages[n++] = rm;
	}
	page.n_messages = n;
	page.more = n > 0 && page.messages[n - 1]->sequence < page.applied;
	body.kind_case = TIMEBANK__V1__BODY__KIND_RECOVER_PAGE;
	body.recover_page = &page;
	if (fed_call_current(c)) {
		fed_conn_send(peer->session, &body);
		log_info("fed: gave %s back %zu of its messages after %llu", peer->id, n,
		         (unsigned long long)c->seq);
	}
	for (i = 0; i < n; i++) {
		free(page.messages[i]->hash.data);
		free(page.messages[i]->envelope.data);
		free(page.messages[i]);
	}
	free(page.messages);
	json_decref(res);
	fed_call_free(c);
}

void fed_recover_serve(struct fed_peer *peer, const Timebank__V1__RecoverRequest *req)
{
	char after[24], lim[16];
	const char *params[3] = {peer->id, after, lim};
	struct fed_call *c;

	static struct log_limit busy;

	/* One page at a time, as an asker waits for each; and a peer that asks
	 * and does not read is not given more to hold. */
	if (peer->recover_serving || peer->session == NULL ||
	    evbuffer_get_length(bufferevent_get_output(peer->session->bev)) > FED_SEND_BUFFER) {
		log_limited(&busy, LOGL_WARN,
		            "fed: %s asks for its messages back before it has read the last "
		            "page; not answered",
		            peer->id);
		return;
	}
	if ((c = fed_call_shared(peer)) == NULL)
		return;
	peer->recover_serving = 1;
	c->seq = req->after <= INT64_MAX ? req->after : (uint64_t)INT64_MAX;
	snprintf(after, sizeof(after), "%llu", (unsigned long long)c->seq);
	snprintf(lim, sizeof(lim), "%u", req->limit < RECOVER_PAGE ? req->limit : RECOVER_PAGE);
	if (fed_query(peer->fed, "SELECT tb_fed_recover_page($1, $2::bigint, $3::int)::text", 3,
	              params, on_page_read, c) == -1) {
		peer->recover_serving = 0;
		fed_call_free(c);
	}
}
