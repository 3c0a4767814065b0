-- A cross-bank exchange at the payer's bank: recorded and reserved,
-- proposed to the earner's bank, settled or released by its answer, and
-- reversed.

-- A cross-bank request already made under this key, or NULL when the key is
-- new; the same key for a different request is idempotency_conflict.
CREATE FUNCTION tb_xb_replay(key text, fp text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    done xb_exchanges;
BEGIN
    -- Same key, one at a time: a retry waits for the first try and sees it.
    PERFORM pg_advisory_xact_lock(hashtext(key));
    SELECT * INTO done FROM xb_exchanges WHERE idempotency_key = key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM tb_same_request(key, done.fingerprint, fp, 'a cross-bank exchange');
    RETURN tb_xb_json(done);
END $$;

-- A bank the payer's bank proposes to is a linked bank, not the national
-- body, whose books still agree with ours.
CREATE FUNCTION tb_rule_peer(kind text, clearing bigint, exchanges boolean,
                             diverged_at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(tb_rule_bank(kind, clearing, exchanges),
                    CASE WHEN diverged_at IS NOT NULL THEN 'peer_diverged' END)
$$;

-- Reserves minutes on a member's account: a pending debit, counted against
-- the floor from the moment it is made.
CREATE FUNCTION tb_xb_reserve(acct bigint, minutes bigint, default_floor bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pa accounts;
    fl bigint;
BEGIN
    SELECT * INTO pa FROM accounts WHERE id = acct FOR UPDATE;
    fl := coalesce(pa.floor_minutes, default_floor);
    IF tb_rule_floor(pa.balance_minutes - pa.pending_minutes, minutes, fl) IS NOT NULL THEN
        PERFORM tb_raise('below_floor', format(
            '%s has %s to spend above the floor of %s; this needs %s',
            tb_account_label(pa.id),
            tb_hours(greatest(pa.balance_minutes - pa.pending_minutes - fl, 0)),
            tb_hours(fl), tb_hours(minutes)));
    END IF;
    UPDATE accounts SET pending_minutes = pending_minutes + minutes WHERE id = acct;
END $$;

-- At the payer's bank: reserve the minutes and propose, in one transaction.
CREATE FUNCTION tb_xb_record(p jsonb, actor text, default_floor bigint, own_bank text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    minutes bigint := (p->>'minutes')::bigint;
    answer jsonb := tb_xb_replay(key, fp);
    peer fed_peers;
    pm members;
    xid_id bigint;
    x xb_exchanges;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = p->>'bank';
    CASE tb_rule_peer(peer.kind, peer.clearing_account, peer.exchanges, peer.diverged_at)
    WHEN 'unknown_bank' THEN
        PERFORM tb_raise('unknown_bank', format('%s is not a bank this bank is linked to',
                                                p->>'bank'));
    WHEN 'not_exchanging' THEN
        PERFORM tb_raise('not_exchanging', tb_not_exchanging_text(peer.peer));
    WHEN 'peer_diverged' THEN
        PERFORM tb_raise('peer_diverged', format(
            'the books with %s have diverged; no new exchanges go there until it is resolved',
            peer.peer));
    ELSE
    END CASE;
    IF tb_rule_date((p->>'performed_on')::date) IS NOT NULL THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    pm := tb_find_member((p->>'payer')::bigint);
    PERFORM 1 FROM accounts WHERE id = pm.account_id FOR UPDATE;
    pm := tb_active_member(pm.number, 'payer');
    PERFORM tb_xb_reserve(pm.account_id, minutes, default_floor);
    xid_id := nextval('xb_exchanges_id_seq');
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, remote_member, minutes,
                              category, description, performed_on, state, recorded_by,
                              idempotency_key, fingerprint)
         VALUES (xid_id, own_bank || ':' || xid_id, 'payer', peer.peer, pm.account_id,
                 (p->>'earner')::bigint, minutes, p->>'category', p->>'description',
                 coalesce((p->>'performed_on')::date, current_date), 'pending', actor, key, fp)
      RETURNING * INTO x;
    -- Proposed by the next tb_xb_batch, with whatever else is waiting.
    RETURN tb_xb_json(x);
END $$;

-- An exchange from an accepted contact, recorded at the payer's bank: the
-- requesting bank when the item was an offer (its member was helped), the
-- providing bank when it was a request. No one is retyped: the proposal
-- names the contact, and the other bank knows its own member from it.
CREATE FUNCTION tb_xb_record_contact(p jsonb, actor text, default_floor bigint, own_bank text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    c dir_contacts := tb_contact_find(p->>'contact');
    payer_account bigint;
    x jsonb;
BEGIN
    IF c.state <> 'accepted' THEN
        PERFORM tb_raise('contact_not_accepted', format(
            'contact %s is %s; an exchange needs an accepted contact', c.contact_id, c.state));
    END IF;
    IF (c.side = 'requester') <> (c.item_kind = 'offer') THEN
        PERFORM tb_raise('wrong_bank', format(
            'record this exchange at %s, the bank of the member who received the help',
            c.peer));
    END IF;
    payer_account := CASE WHEN c.side = 'requester' THEN c.member_account
                          ELSE (SELECT member_account FROM dir_items WHERE handle = c.handle) END;
    x := tb_xb_record(jsonb_build_object(
             'bank', c.peer,
             'payer', (SELECT number FROM members WHERE account_id = payer_account),
             'minutes', (p->>'minutes')::bigint,
             'category', coalesce(p->>'category', c.item_category),
             'description', coalesce(p->>'description', c.item_text),
             'performed_on', p->>'performed_on', 'contact', c.contact_id,
             'idempotency_key', key),
         actor, default_floor, own_bank);
    UPDATE xb_exchanges SET contact = c.contact_id WHERE xid = x->>'id' AND contact IS NULL;
    RETURN x || jsonb_build_object('contact', c.contact_id);
END $$;

-- The same for a batch of cross-bank exchanges recorded at the payer's
-- bank: each reserved against its payer's floor, as tb_xb_record does one
-- at a time, and proposed at once: one message to each peer, queued in
-- the same transaction (what tb_xb_batch would send next, saved a
-- transaction and a second write of every row). Enqueueing takes the
-- peer's row after the accounts, the order channel applies keep too.
--
-- The payers' accounts are locked here, not by the caller, and only once
-- everything that needs no lock is done: the members and peers looked
-- up, the keys checked (the caller holds each key's lock), the ids drawn,
-- the proposals and the answers written out. Runs of answers from the
-- peer lock the same members' accounts to post, and under make bench's
-- cross-bank load each waited on the other for much of its time. What
-- follows the lock is what must: the members still active and every
-- payer's floor enough, then the reservations, the messages and the rows.
-- NULL when the batch is not that simple, having changed nothing (ids
-- drawn are left unused); the caller then locks and goes item by item.
CREATE FUNCTION tb_xb_batch_record(items jsonb, default_floor bigint, own_bank text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
    -- Per item, in order: found once while checking, used by what follows.
    payers bigint[];
    payer_accounts bigint[];
    need_accounts bigint[];
    need_totals bigint[];
    ids bigint[];
    -- Each peer's message of proposals, in the peers' order.
    banks text[];
    bodies json[];
    seqs jsonb := '{}';
    result text[];
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) i
                WHERE NOT (i->>'xb')::boolean OR i->'p'->>'idempotency_key' IS NULL) THEN
        RETURN NULL;
    END IF;
    ids := ARRAY(SELECT nextval('xb_exchanges_id_seq')
                   FROM generate_series(1, jsonb_array_length(items)));
    WITH it AS (
        SELECT n, ids[n] AS id, x->>'actor' AS actor,
               (x->'p'->>'payer')::bigint AS payer, x->'p'->>'bank' AS bank,
               (x->'p'->>'earner')::bigint AS earner, (x->'p'->>'minutes')::bigint AS minutes,
               x->'p'->>'category' AS category, x->'p'->>'description' AS description,
               coalesce((x->'p'->>'performed_on')::date, current_date) AS performed_on,
               x->'p'->>'idempotency_key' AS key
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    m AS (
        SELECT it.*, pm.account_id AS pa, fp.peer AS peer, fp.kind AS peer_kind,
               fp.clearing_account AS clearing, fp.exchanges, fp.diverged_at, tb_member_label(pm.kind, pm.number, pm.erased_at) AS pl
          FROM it LEFT JOIN members pm ON pm.number = it.payer
                  LEFT JOIN fed_peers fp ON fp.peer = it.bank)
    -- Each item's answer, as tb_xb_json gives a new pending exchange, in the
    -- items' order; created_at is the transaction's start, the row's default.
    SELECT coalesce(bool_and(coalesce(pa IS NOT NULL
                                      AND tb_rule_peer(peer_kind, clearing, exchanges, diverged_at) IS NULL
                                      AND tb_rule_date(performed_on) IS NULL, false)),
                    false)
           AND count(DISTINCT key) = count(*)
           AND NOT EXISTS (SELECT 1 FROM xb_exchanges x
                            WHERE x.idempotency_key = ANY (ARRAY(SELECT key FROM it))),
           array_agg(pa ORDER BY n),
           array_agg(tb_xb_text(own_bank || ':' || id, 'pending', NULL, bank, 'payer', payer,
                                NULL, pl, tb_remote_label(bank, earner), minutes, category,
                                description, performed_on, actor, key, now(), NULL, NULL,
                                NULL, NULL, NULL, NULL)
                     ORDER BY n),
           array_agg(payer ORDER BY n)
      INTO ok, payer_accounts, result, payers FROM m;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    -- Each peer's message of proposals, written out before any lock too,
    -- as arrays: an object of them was parsed again for its keys and then
    -- for each peer's message (json is text).
    SELECT array_agg(q.bank ORDER BY q.bank), array_agg(q.body ORDER BY q.bank)
      INTO banks, bodies
      FROM (SELECT x->'p'->>'bank' AS bank,
                   json_build_object('kind', 'xb_propose', 'items', json_agg(tb_xb_proposal(
                       own_bank || ':' || ids[n], (x->'p'->>'earner')::bigint,
                       (x->'p'->>'minutes')::bigint, x->'p'->>'category',
                       coalesce((x->'p'->>'performed_on')::date, current_date),
                       NULL, NULL, NULL, (x->'p'->>'payer')::bigint, x->>'actor')
                       ORDER BY n)) AS body
              FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)
             GROUP BY x->'p'->>'bank') q;
    PERFORM 1 FROM accounts WHERE id = ANY (payer_accounts) ORDER BY id FOR UPDATE;
    -- What each payer's account needs for the whole batch, found once.
    SELECT array_agg(g.pa ORDER BY g.pa), array_agg(g.total ORDER BY g.pa)
      INTO need_accounts, need_totals
      FROM (SELECT u.pa, sum((u.x->'p'->>'minutes')::bigint) AS total
              FROM ROWS FROM (jsonb_array_elements(items), unnest(payer_accounts)) AS u(x, pa)
             GROUP BY u.pa) g;
    -- The rules that need the lock: each payer's floor for all it reserves
    -- in the batch, and the payers still active (a member's status changes
    -- under their account's lock).
    SELECT NOT EXISTS (SELECT 1 FROM unnest(need_accounts, need_totals) AS need(pa, total)
                         JOIN accounts a ON a.id = need.pa
                        WHERE tb_rule_floor(a.balance_minutes - a.pending_minutes, need.total,
                                            coalesce(a.floor_minutes, default_floor))
                              IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM members pm
                            WHERE pm.number = ANY (payers)
                              AND tb_rule_active(pm.status) IS NOT NULL)
      INTO ok;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    -- Which path a batch took, for the tests that prove each runs.
    PERFORM set_config('tb.batch_path', 'set-wise', true);
    UPDATE accounts a SET pending_minutes = a.pending_minutes + need.total
      FROM unnest(need_accounts, need_totals) AS need(pa, total)
     WHERE a.id = need.pa;
    FOR i IN 1 .. cardinality(banks) LOOP
        seqs := seqs || jsonb_build_object(banks[i], tb_fed_enqueue(banks[i], bodies[i]));
    END LOOP;
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, remote_member, minutes,
                              category, description, performed_on, state, recorded_by,
                              idempotency_key, fingerprint, proposed_seq)
    SELECT ids[n], own_bank || ':' || ids[n], 'payer', x->'p'->>'bank', payer_accounts[n],
           (x->'p'->>'earner')::bigint, (x->'p'->>'minutes')::bigint, x->'p'->>'category',
           x->'p'->>'description', coalesce((x->'p'->>'performed_on')::date, current_date),
           'pending', x->>'actor', x->'p'->>'idempotency_key',
           md5(((x->'p') - 'idempotency_key')::text), (seqs->>(x->'p'->>'bank'))::bigint
      FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)
     ORDER BY n;
    RETURN result;
END $$;

-- One proposal as it travels, read by the earner's bank (tb_xb_on_propose).
-- Written out as JSON text (json, kept as written) rather than built as
-- jsonb, which looks up every value's type for every row.
CREATE FUNCTION tb_xb_proposal(xid text, earner bigint, minutes bigint, category text,
                               performed_on date, reverses text, claim text, contact text,
                               payer bigint, recorded_by text)
RETURNS json LANGUAGE sql STABLE AS $$
    -- note: what a restore would need of our side (the payer's number, who
    -- recorded it), which the daemon seals to itself as the proposal's
    -- sender_note (federation.proto) and takes out; the peer never reads
    -- it. The coordinator's words stay here.
    SELECT ('{"xid":' || to_json(xid)::text || ',"earner":' || coalesce(earner, 0)
            || ',"minutes":' || minutes || ',"category":' || to_json(category)::text
            || ',"performed_on":"' || performed_on::text
            || '","reverses":' || to_json(coalesce(reverses, ''))::text
            || ',"claim":' || to_json(coalesce(claim, ''))::text
            || ',"contact":' || to_json(coalesce(contact, ''))::text
            || ',"note":{"payer":' || coalesce(payer, 0)
            || ',"recorded_by":' || to_json(coalesce(recorded_by, ''))::text || '}}')::json
$$;

-- Claims waiting to go, and reservations not yet proposed (naming the
-- claim or contact they come from): one message of each kind per peer, in
-- one transaction. Messages are applied by tb_fed_apply. Plans: see tb_fed_apply.
CREATE FUNCTION tb_xb_batch(lim int) RETURNS int LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET random_page_cost = 1.1 SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    to_peer text;
    items jsonb;
    part jsonb;
    proposals json;
    ids bigint[];
    s bigint;
    n int := 0;
BEGIN
    FOR to_peer IN SELECT DISTINCT peer FROM xb_claims
                    WHERE side = 'earner' AND state = 'open' AND sent_seq IS NULL LOOP
        SELECT jsonb_agg(jsonb_build_object(
                   'claim_id', claim_id, 'payer', remote_member,
                   'earner', (SELECT number FROM members WHERE account_id = member_account),
                   'minutes', minutes,
                   'category', category, 'performed_on', performed_on::text,
                   'message', coalesce(message, '')) ORDER BY id),
               array_agg(id)
          INTO items, ids
          FROM (SELECT * FROM xb_claims
                 WHERE peer = to_peer AND side = 'earner' AND state = 'open'
                   AND sent_seq IS NULL
                 ORDER BY id LIMIT lim FOR UPDATE SKIP LOCKED) q;
        CONTINUE WHEN ids IS NULL;
        -- A claim's message can be long: the claims go in as many messages
        -- as fit the frame.
        FOR s, part IN SELECT * FROM tb_fed_enqueue_items(to_peer, 'xb_claim', items) LOOP
            UPDATE xb_claims SET sent_seq = s
             WHERE claim_id IN (SELECT a->>'claim_id' FROM jsonb_array_elements(part) a);
        END LOOP;
        n := n + cardinality(ids);
    END LOOP;
    FOR to_peer IN SELECT DISTINCT peer FROM xb_exchanges
                    WHERE side = 'payer' AND state = 'pending' AND proposed_seq IS NULL LOOP
        SELECT json_agg(tb_xb_proposal(xid, remote_member, minutes, category, performed_on,
                                       reverses, claim, contact,
                                       (SELECT number FROM members m
                                         WHERE m.account_id = q.member_account),
                                       recorded_by) ORDER BY id),
               array_agg(id)
          INTO proposals, ids
          FROM (SELECT * FROM xb_exchanges
                 WHERE peer = to_peer AND side = 'payer' AND state = 'pending'
                   AND proposed_seq IS NULL
                 ORDER BY id LIMIT lim FOR UPDATE SKIP LOCKED) q;
        CONTINUE WHEN ids IS NULL;
        s := tb_fed_enqueue(to_peer, json_build_object('kind', 'xb_propose', 'items', proposals));
        UPDATE xb_exchanges SET proposed_seq = s WHERE id = ANY (ids);
        n := n + cardinality(ids);
    END LOOP;
    RETURN n;
END $$;

-- The earner's bank's answers to our proposals, as one message or a run of
-- them: settled (tb_xb_answer_settle), then posted (tb_xb_answer_post).
-- tb_fed_apply calls the two itself for a run of answers only, to post the
-- whole run at its end.
CREATE FUNCTION tb_on_xb_answer(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tb_xb_answer_post(from_peer, tb_xb_answer_settle(from_peer, body->'items'), false);
    RETURN '{}';
END $$;

-- Decides our exchanges the answers name: the first answer to each of our
-- exchanges still waiting on this peer settles or rejects it; any other
-- answer (not ours, decided already, said twice) changes nothing. Returns
-- the ids of the exchanges it decided. An accepted one's transfer id is
-- drawn here, so that nothing joins the transfers written back to the
-- exchanges. Their balances are posted by tb_xb_answer_post, with the
-- accounts locked, not as they are written (tb_post_transfers). Answers
-- from one peer are applied one run at a time (tb_fed_apply's lock), and
-- nothing else decides a waiting exchange, so what is read here stays so.
CREATE FUNCTION tb_xb_answer_settle(from_peer text, items jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    clearing bigint := (SELECT clearing_account FROM fed_peers WHERE peer = from_peer);
    ids bigint[];
BEGIN
    IF clearing IS NULL OR jsonb_typeof(items) IS DISTINCT FROM 'array' THEN
        RETURN '{}';
    END IF;
    PERFORM set_config('tb.balances_posted', 'on', true);
    -- Each answer looks up its exchange by the xid's index: a lateral
    -- lookup (LIMIT 1 keeps it one) is never turned round into a scan of
    -- the table for the answers, which a plan made while the table was
    -- small would choose.
    WITH first AS (
        SELECT DISTINCT ON (t.a->>'xid') x.*,
               coalesce(t.a->>'accepted' = 'true', false) AS accepted,
               t.a->>'reason' AS why, t.n
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(a, n)
         CROSS JOIN LATERAL (SELECT * FROM xb_exchanges x
                              WHERE x.xid = t.a->>'xid' LIMIT 1) x
         WHERE x.side = 'payer' AND x.peer = from_peer AND x.state = 'pending'
         ORDER BY t.a->>'xid', t.n),
    d AS (
        SELECT first.*, CASE WHEN accepted THEN nextval('transfers_id_seq') END AS tid
          FROM first ORDER BY n),
    tr AS (
        INSERT INTO transfers (id, kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
        SELECT d.tid, 'exchange', d.member_account, clearing, d.minutes,
               d.category, d.description, d.performed_on, d.recorded_by, 'xb:' || d.xid,
               d.fingerprint, d.id
          FROM d WHERE d.accepted),
    u AS (
        UPDATE xb_exchanges x
           SET state = CASE WHEN d.accepted THEN 'settled' ELSE 'rejected' END,
               transfer_id = d.tid,
               reason = CASE WHEN NOT d.accepted THEN left(nullif(d.why, ''), 100) END,
               decided_at = now()
          FROM d WHERE x.id = d.id
        RETURNING x.id)
    SELECT coalesce(array_agg(id), '{}') INTO ids FROM u;
    PERFORM set_config('tb.balances_posted', 'off', true);
    RETURN ids;
END $$;

-- Posts what settling decided (ids: the exchanges tb_xb_answer_settle
-- returned): each accepted exchange's debit and credit on the balances,
-- and every reservation released. Each account changes once, its balance
-- and what it has pending together. The exchanges' rows are read once,
-- into arrays. The accounts are locked in order (lock; unless the caller
-- holds them already, as tb_fed_prelock does) and changed, the only part
-- an exchange batch reserving against the same members waits for.
CREATE FUNCTION tb_xb_answer_post(from_peer text, ids bigint[], lock boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    clearing bigint := (SELECT clearing_account FROM fed_peers WHERE peer = from_peer);
    -- The exchanges' member accounts, minutes and whether each was
    -- settled, in one order.
    accts bigint[];
    amounts bigint[];
    settled boolean[];
BEGIN
    SELECT array_agg(x.member_account), array_agg(x.minutes), array_agg(x.state = 'settled')
      INTO accts, amounts, settled
      FROM unnest(ids) AS u(id) JOIN xb_exchanges x ON x.id = u.id;
    IF lock THEN
        PERFORM 1 FROM accounts
         WHERE id = ANY (array_append(accts, clearing)) ORDER BY id FOR UPDATE;
    END IF;
    WITH d AS (SELECT * FROM unnest(accts, amounts, settled) AS d(acct, amount, posted)),
    s AS (
        SELECT d.acct AS account_id,
               sum(CASE WHEN d.posted THEN -d.amount ELSE 0 END) AS change,
               sum(d.amount) AS released
          FROM d GROUP BY d.acct
        UNION ALL
        SELECT clearing, sum(d.amount), 0 FROM d WHERE d.posted HAVING count(*) > 0)
    UPDATE accounts a SET balance_minutes = a.balance_minutes + s.change,
                          pending_minutes = a.pending_minutes - s.released
      FROM s WHERE a.id = s.account_id;
END $$;

-- Reverses a settled cross-bank exchange: proposed by the bank whose member
-- earned it (that member pays the hours back), decided by the other bank.
-- The original never changes; an exchange is reversed at most once.
CREATE FUNCTION tb_xb_reverse(want text, p jsonb, actor text, default_floor bigint,
                              own_bank text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p || jsonb_build_object('reverses', want) - 'idempotency_key')::text);
    answer jsonb := tb_xb_replay(key, fp);
    orig xb_exchanges;
    xid_id bigint;
    x xb_exchanges;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    SELECT * INTO orig FROM xb_exchanges WHERE xid = want;
    IF NOT FOUND OR orig.state <> 'settled' THEN
        PERFORM tb_raise('exchange_not_found', format('there is no settled exchange %s', want));
    END IF;
    IF orig.side = 'payer' THEN
        PERFORM tb_raise('not_reversible', format(
            'reverse %s at %s, where the hours were earned: that bank proposes the reversal',
            want, orig.peer));
    END IF;
    IF orig.reverses IS NOT NULL THEN
        PERFORM tb_raise('not_reversible', format(
            '%s is itself a reversal; record a new exchange instead', want));
    END IF;
    IF EXISTS (SELECT 1 FROM xb_exchanges WHERE reverses = want) THEN
        PERFORM tb_raise('already_reversed', format('exchange %s was already reversed', want));
    END IF;
    PERFORM 1 FROM accounts WHERE id = orig.member_account FOR UPDATE;
    PERFORM tb_check_not_moving(ARRAY[orig.member_account]);
    PERFORM tb_xb_reserve(orig.member_account, orig.minutes, default_floor);
    xid_id := nextval('xb_exchanges_id_seq');
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, minutes, category,
                              description, performed_on, state, reason, recorded_by,
                              idempotency_key, fingerprint, reverses)
         VALUES (xid_id, own_bank || ':' || xid_id, 'payer', orig.peer, orig.member_account,
                 orig.minutes,
                 orig.category, 'reversal of ' || want, current_date, 'pending',
                 p->>'reason', actor, key, fp, want)
      RETURNING * INTO x;
    RETURN tb_xb_json(x);
END $$;
