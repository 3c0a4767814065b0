/* The shared directory over the link: each bank pulls its peers' changes
 * since the version it last applied, a page at a time, on session start,
 * when a peer says its directory changed, and when nothing was pulled for
 * FED_DIR_POLL_SECONDS (a notice lost, or a change no write announced). The
 * pages are session messages: one lost with its session is asked for
 * again, and applying a page twice changes nothing (src/sql/directory.sql).
 *
 * A page that says more follows is answered at once with the pull of the
 * next, so that the peer reads it while we apply this one: pages are
 * applied one at a time, in order, and one more waits at most. (Two
 * applied at once measured no faster on two cores: the one pull in flight
 * then sets the pace.) */
#include "internal.h"

#include "dir_text.h"
#include "log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_PAGE ENV_MAX_DIR_ITEMS
#define DIR_PULL_PATIENCE 30     /* seconds before a pull with no page is given up */
#define DIR_SERVES_PER_SECOND 20 /* pulls of ours one peer may have served */

/* The directory is shared between banks: the national body neither pulls
 * nor serves it, nor takes a page or a notice. */
static int shares_directory(const struct fed_peer *peer)
{
	return strcmp(peer->kind, "bank") == 0 && strcmp(peer->fed->role, "bank") == 0;
}

static void send_body(struct fed_peer *peer, Timebank__V1__Body *body)
{
	if (peer->session != NULL)
		fed_conn_send(peer->session, body);
}

/* Queues a statement whose callback takes a call on peer (and frees it),
 * the call carrying seq; -1, with nothing left behind, when it cannot be
 * queued. */
static int dir_query(struct fed_peer *peer, const char *sql, int n, const char *const *params,
                     db_cb cb, uint64_t seq)
{
	struct fed_call *c = fed_call_shared(peer);

	if (c == NULL)
		return -1;
	c->seq = seq;
	if (fed_query(peer->fed, sql, n, params, cb, c) == 0)
		return 0;
	fed_call_free(c);
	return -1;
}

static void send_pull(struct fed_peer *peer, uint64_t since)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__DirectoryPull pull = TIMEBANK__V1__DIRECTORY_PULL__INIT;

	pull.since = since;
	pull.limit = DIR_PAGE;
	peer->dir_asked = since;
	peer->dir_pulling = 1;
	peer->dir_pull_at = time(NULL);
	body.kind_case = TIMEBANK__V1__BODY__KIND_DIRECTORY_PULL;
	body.directory_pull = &pull;
	send_body(peer, &body);
}

static void on_cursor(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;

	if (!peer->fed->stopping && fed_call_current(c) && r->status == DB_OK &&
	    !PQgetisnull(r->res, 0, 0))
		send_pull(peer, strtoull(PQgetvalue(r->res, 0, 0), NULL, 10));
	else if (!peer->fed->stopping && fed_call_current(c))
		peer->dir_pulling = 0;
	fed_call_free(c);
}

void fed_dir_pull(struct fed_peer *peer)
{
	time_t now = time(NULL);
	const char *params[1] = {peer->id};

	if (peer->session == NULL || !shares_directory(peer))
		return;
	if (peer->dir_applying ||
	    (peer->dir_pulling && now - peer->dir_pull_at < DIR_PULL_PATIENCE)) {
		peer->dir_again = 1; /* once this pull is done */
		return;
	}
	peer->dir_pulling = 1;
	peer->dir_again = 0;
	peer->dir_pull_at = now;
	if (dir_query(peer, "SELECT tb_dir_cursor($1)", 1, params, on_cursor, 0) == -1)
		peer->dir_pulling = 0;
}

void fed_dir_poll(struct fed_peer *peer, time_t now)
{
	if (now - peer->dir_pull_at >=
	    (peer->dir_pulling ? DIR_PULL_PATIENCE : FED_DIR_POLL_SECONDS))
		fed_dir_pull(peer);
}

/* ---- serving a peer's pull -------------------------------------------- */

static void serve_held(struct fed_peer *peer);

static void on_page(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *page = peer->fed->stopping ? NULL : fed_db_answer(r, "reading directory", peer->id);
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;

	if (page != NULL && fed_call_current(c)) {
		body.directory_page = (Timebank__V1__DirectoryPage *)env_msg_from_json(
		    page, &timebank__v1__directory_page__descriptor);
		if (body.directory_page != NULL) {
			body.kind_case = TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE;
			send_body(peer, &body);
			peer->dir_served += body.directory_page->n_items;
			env_msg_release(&body.directory_page->base);
		}
	}
	json_decref(page);
	if (fed_call_current(c)) {
		peer->dir_serving = 0;
		serve_held(peer);
	}
	fed_call_free(c);
}

/* Serves the pull held for the peer, when it may be: nothing of its own
 * being served, its output drained, and not too soon after the last. */
static void serve_held(struct fed_peer *peer)
{
	char since[24], limit[16];
	const char *params[3] = {peer->id, since, limit};
	int64_t now = fed_now_ms(), gap = 1000 / DIR_SERVES_PER_SECOND;

	if (!peer->dir_held || peer->dir_serving || peer->session == NULL ||
	    evbuffer_get_length(bufferevent_get_output(peer->session->bev)) > FED_SEND_BUFFER)
		return; /* a page served, or room in the output, brings it back */
	if (now - peer->dir_served_ms < gap && now >= peer->dir_served_ms) {
		struct timeval tv = {0, (suseconds_t)(gap - (now - peer->dir_served_ms)) * 1000};
		if (!evtimer_pending(peer->dir_timer, NULL))
			evtimer_add(peer->dir_timer, &tv);
		return;
	}
	snprintf(since, sizeof(since), "%llu", (unsigned long long)peer->dir_held_since);
	snprintf(limit, sizeof(limit), "%u", peer->dir_held_limit);
	if (dir_query(peer, "SELECT tb_dir_page($1, $2::bigint, $3::int)::text", 3, params, on_page,
	              0) == -1)
		return; /* dropped: the peer asks again */
	peer->dir_held = 0;
	peer->dir_serving = 1;
	peer->dir_served_ms = now;
}

void fed_dir_serve_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve_held(arg);
}

void fed_dir_writable(struct fed_peer *peer)
{
	serve_held(peer);
}

/* A pull waits its turn; a newer one from the peer replaces it. */
static void serve_pull(struct fed_peer *peer, const Timebank__V1__DirectoryPull *pull)
{
	if (!shares_directory(peer))
		return;
	peer->dir_held = 1;
	peer->dir_held_since = pull->since;
	peer->dir_held_limit = pull->limit > 0 && pull->limit < DIR_PAGE ? pull->limit : DIR_PAGE;
	serve_held(peer);
}

/* ---- applying a peer's page ------------------------------------------- */

static void start_apply(struct fed_peer *peer, struct fed_dir_page page);

static void on_applied(void *arg, const struct db_result *r)
{
	struct fed_call *c = arg;
	struct fed_peer *peer = c->peer;
	json_t *res = peer->fed->stopping ? NULL : fed_db_answer(r, "applying directory", peer->id);
	int refused = res != NULL && json_string_value(json_object_get(res, "refused")) != NULL;
	uint64_t cursor =
	    res != NULL ? (uint64_t)json_integer_value(json_object_get(res, "cursor")) : 0;
	/* The apply under way of this session's, not one let go before. */
	int ours = !peer->fed->stopping && fed_call_current(c) && peer->dir_applying &&
	           peer->dir_applying_next == c->seq;

	static struct log_limit dropped;

	if (ours && refused) {
		char why[120];
		snprintf(why, sizeof(why), "a directory page: %s",
		         json_string_value(json_object_get(res, "refused")));
		fed_conn_refuse(peer->session, why);
	}
	if (!peer->fed->stopping && res != NULL &&
	    json_integer_value(json_object_get(res, "dropped")) > 0)
		log_limited(&dropped, LOGL_WARN,
		            "fed: %lld directory items from %s not kept: it shares more than "
		            "[federation] max_directory_items lets one peer keep here",
		            (long long)json_integer_value(json_object_get(res, "dropped")),
		            peer->id);
	if (!peer->fed->stopping && res != NULL) {
		peer->dir_version = cursor;
		peer->dir_applied += (uint64_t)json_integer_value(json_object_get(res, "applied"));
	}
	if (ours) {
		peer->dir_applying = 0;
		if (res == NULL || cursor != c->seq) {
			/* Not applied as it came (a failure, or out of step with our
			 * cursor): what was asked ahead of it is let go, and the pull
			 * starts again from the cursor. */
			fed_dir_reset(peer);
			if (res != NULL && !refused)
				fed_dir_pull(peer);
		} else if (peer->dir_waiting.text != NULL) {
			struct fed_dir_page next = peer->dir_waiting;
			peer->dir_waiting.text = NULL;
			start_apply(peer, next);
		} else if (!peer->dir_pulling && peer->dir_again) {
			fed_dir_pull(peer);
		}
	}
	json_decref(res);
	fed_call_free(c);
}

/* Applies a page (taking its text), and asks for the next when it says
 * more follows: the peer reads that one while this one is applied. */
static void start_apply(struct fed_peer *peer, struct fed_dir_page page)
{
	const char *params[2] = {peer->id, page.text};

	peer->dir_applying = 1;
	peer->dir_applying_next = page.next;
	if (dir_query(peer, "SELECT tb_dir_apply($1, $2::jsonb)::text", 2, params, on_applied,
	              page.next) == -1) {
		fed_dir_reset(peer); /* the poll asks again */
	} else if (page.more && !peer->dir_pulling) {
		peer->dir_again = 0;
		send_pull(peer, page.next);
	}
	free(page.text);
}

void fed_dir_reset(struct fed_peer *peer)
{
	peer->dir_pulling = 0;
	peer->dir_applying = 0;
	free(peer->dir_waiting.text);
	peer->dir_waiting.text = NULL;
}

/* A peer's item is held to the check our own are: one whose text or
 * availability holds a way to reach a person is not kept. */
static void drop_personal_details(const struct fed_peer *peer, json_t *page)
{
	static struct log_limit dropped;
	json_t *items = json_object_get(page, "items");
	char what[80];

	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *item = json_array_get(items, i);
		const char *fields[] = {"text", "availability"};
		for (int f = 0; f < 2; f++) {
			const char *t = json_string_value(json_object_get(item, fields[f]));
			enum dir_detail d =
			    t != NULL ? dir_personal_detail(t, what, sizeof(what)) : DIR_CLEAN;
			if (d == DIR_CLEAN)
				continue;
			log_limited(&dropped, LOGL_WARN,
			            "fed: peer %s shared an item whose %s holds %s; not kept",
			            peer->id, fields[f], dir_detail_name(d));
			/* As a withdrawal: any copy we hold goes, and the page's
			 * cursor still follows its items. */
			json_array_set_new(
			    items, i,
			    json_pack("{sOsbsO}", "handle", json_object_get(item, "handle"),
			              "withdrawn", 1, "version", json_object_get(item, "version")));
			break;
		}
	}
}

static void apply_page(struct fed_peer *peer, const Timebank__V1__DirectoryPage *page)
{
	static struct log_limit unasked;
	json_t *json;

	if (!shares_directory(peer))
		return;
	if (!peer->dir_pulling || page->since != peer->dir_asked) {
		/* Refused, but not held against the peer: a page can come late,
		 * after a pull given up and asked again. */
		log_limited(&unasked, LOGL_WARN,
		            "fed: refused a message from %s: a directory page nobody asked for",
		            peer->id);
		peer->refused++;
		return;
	}
	peer->dir_pulling = 0;
	json = env_msg_to_json(&page->base);
	drop_personal_details(peer, json);
	/* More follows only when the page moved the cursor on. */
	struct fed_dir_page come = {json_dumps(json, JSON_COMPACT), page->next,
	                            page->more && page->next > page->since};
	json_decref(json);
	if (come.text == NULL || peer->dir_waiting.text != NULL) {
		free(come.text); /* (none is asked for while one waits) */
		fed_dir_reset(peer);
	} else if (peer->dir_applying) {
		peer->dir_waiting = come; /* once the page before is applied */
	} else {
		start_apply(peer, come);
	}
}

void fed_dir_received(struct fed_peer *peer, const Timebank__V1__Body *body)
{
	switch (body->kind_case) {
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_PULL:
		serve_pull(peer, body->directory_pull);
		break;
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_PAGE:
		apply_page(peer, body->directory_page);
		break;
	case TIMEBANK__V1__BODY__KIND_DIRECTORY_NOTICE:
		fed_dir_pull(peer);
		break;
	default:
		break;
	}
}

void fed_dir_changed(struct fed *fed)
{
	Timebank__V1__Body body = TIMEBANK__V1__BODY__INIT;
	Timebank__V1__DirectoryNotice notice = TIMEBANK__V1__DIRECTORY_NOTICE__INIT;

	if (fed == NULL)
		return;
	body.kind_case = TIMEBANK__V1__BODY__KIND_DIRECTORY_NOTICE;
	body.directory_notice = &notice;
	for (int i = 0; i < fed->npeers; i++)
		if (shares_directory(fed->peers[i]))
			send_body(fed->peers[i], &body);
}
