/* Database calls the channel and the directory make about a peer: each
 * carries the session it was made for, so that an answer for a session
 * gone since is dropped. */
#include "internal.h"

#include "log.h"
#include "mem.h"

struct fed_call *fed_call_new(struct fed_peer *peer, uint64_t seq)
{
	struct fed_call *c = xmalloc(sizeof(*c));

	c->peer = peer;
	c->generation = peer->generation;
	c->seq = seq;
	c->shared = 0;
	return c;
}

void fed_call_free(struct fed_call *c)
{
	if (c == NULL)
		return;
	if (c->shared)
		c->peer->db_calls--;
	free(c);
}

int fed_call_current(const struct fed_call *c)
{
	return c->peer->session != NULL && c->peer->generation == c->generation;
}

struct fed_call *fed_call_shared(struct fed_peer *peer)
{
	static struct log_limit busy;
	struct fed_call *c;

	if (peer->db_calls >= FED_PEER_DB_SHARE) {
		log_limited(&busy, LOGL_WARN,
		            "fed: peer %s has %d database calls waiting, its share; what it asked "
		            "for now is dropped",
		            peer->id, peer->db_calls);
		return NULL;
	}
	c = fed_call_new(peer, 0);
	c->shared = 1;
	peer->db_calls++;
	return c;
}

json_t *fed_db_answer(const struct db_result *r, const char *what, const char *peer)
{
	json_error_t err;
	json_t *j;

	if (r->status != DB_OK) {
		log_warn("fed: %s%s%s: the database said no: %s", what, peer ? " for " : "",
		         peer ? peer : "",
		         r->status == DB_ERROR && r->message ? r->message : "unavailable");
		return NULL;
	}
	j = json_loads(PQgetvalue(r->res, 0, 0), 0, &err);
	return j;
}

int fed_query(struct fed *fed, const char *sql, int n, const char *const *params, db_cb cb,
              void *arg)
{
	enum db_status st;

	return db_query(fed->db, sql, n, params, cb, arg, &st);
}
