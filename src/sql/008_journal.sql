-- Migration 8: the journal's entries are its transfers' own two sides.
--
-- Every transfer was written with exactly two entries: its payer's debit
-- and its earner's credit, never anything else, and neither can change
-- (transfers are append-only, their parties and amounts above all). The
-- entries said again what each transfer row says, and writing them cost
-- two more rows and six more index entries per exchange at each bank.
-- Counted with callgrind (make profile), per exchange: a local exchange
-- 393,113 instructions with the entries table, 332,685 without; at the
-- payer's bank 824,708 and 749,331; at the earner's 535,450 and 475,700.
--
-- The journal is now read from the transfers: entries is a view, two rows
-- for each transfer, in the same order as before (an entry's id is its
-- transfer's twice, less one for the debit), so every balance is still
-- the replay of its journal (invariant 2), and a transfer's entries sum to
-- zero by construction. The cached balances are posted by a trigger on the
-- transfers, as the entries' trigger did. Nothing writes the journal but a
-- transfer: writing to entries is refused like any change to it.
--
-- A database whose entries do not match its transfers exactly is not
-- migrated: the migration fails and the daemon does not start, so that
-- nothing is lost; tbctl audit on the previous version shows where.
DO $$
BEGIN
    IF EXISTS (
        (SELECT transfer_id, account_id, minutes FROM entries
         EXCEPT ALL
         (SELECT id, payer_account, -minutes FROM transfers
          UNION ALL
          SELECT id, earner_account, minutes FROM transfers))
        UNION ALL
        ((SELECT id, payer_account, -minutes FROM transfers
          UNION ALL
          SELECT id, earner_account, minutes FROM transfers)
         EXCEPT ALL
         SELECT transfer_id, account_id, minutes FROM entries)) THEN
        RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_mismatch',
            DETAIL = 'the journal''s entries are not exactly its transfers'' debits and '
                     'credits; tbctl audit shows where';
    END IF;
END $$;

DROP TABLE entries;
DROP FUNCTION tb_post_entries();
DROP FUNCTION tb_post_entry();

CREATE VIEW entries (id, transfer_id, account_id, minutes, created_at) AS
    SELECT t.id * 2 - 1, t.id, t.payer_account, -t.minutes, t.created_at FROM transfers t
    UNION ALL
    SELECT t.id * 2, t.id, t.earner_account, t.minutes, t.created_at FROM transfers t;
CREATE TRIGGER entries_append_only INSTEAD OF INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION tb_refuse_change();

-- Keeps the cached balances in step with every transfer written: one
-- update per account a statement's transfers touch, at its end. Unless the
-- function writing them posts their balances itself (tb.balances_posted),
-- as settling a message of answers does, with the accounts locked.
CREATE FUNCTION tb_post_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tb.balances_posted', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE accounts a SET balance_minutes = a.balance_minutes + s.change
      FROM (SELECT l.account_id, sum(l.change) AS change
              FROM added, LATERAL (VALUES (added.payer_account, -added.minutes),
                                          (added.earner_account, added.minutes))
                          AS l(account_id, change)
             GROUP BY l.account_id) s
     WHERE a.id = s.account_id;
    RETURN NULL;
END $$;
CREATE TRIGGER transfers_post AFTER INSERT ON transfers REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tb_post_transfers();

-- The functions that wrote entries, as they were without them.

-- Posts one transfer: checks the payer's floor and writes the transfer,
-- whose trigger posts its balances. The caller has locked both accounts.
CREATE OR REPLACE FUNCTION tb_post(kind text, payer bigint, earner bigint, minutes bigint, category text,
                        description text, performed_on date, actor text, key text, fp text,
                        reverses bigint, reason text, group_key text,
                        default_floor bigint, community_floor bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    pa accounts;
    fl bigint;
    tid bigint;
BEGIN
    SELECT * INTO pa FROM accounts WHERE id = payer;
    fl := tb_floor_of(pa, default_floor, community_floor);
    IF pa.balance_minutes - pa.pending_minutes - minutes < fl THEN
        PERFORM tb_raise('below_floor', format(
            '%s has %s to spend above the floor of %s; this needs %s',
            tb_account_label(payer),
            tb_hours(greatest(pa.balance_minutes - pa.pending_minutes - fl, 0)),
            tb_hours(fl), tb_hours(minutes)));
    END IF;
    INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, description,
                           performed_on, recorded_by, idempotency_key, fingerprint, reverses,
                           reason, group_key)
         VALUES (kind, payer, earner, minutes, category, description,
                 coalesce(performed_on, current_date), actor, key, fp, reverses, reason,
                 group_key)
      RETURNING id INTO tid;
    RETURN tid;
END $$;

CREATE OR REPLACE FUNCTION tb_exchange_batch_local(items jsonb, default_floor bigint) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
    -- Per item, in order: found once while checking, used by what follows.
    payers bigint[];
    earners bigint[];
    payer_accounts bigint[];
    earner_accounts bigint[];
    payer_labels text[];
    earner_labels text[];
    -- Every transfer's created_at: the transaction's start (the default).
    created text := to_json(now())::text;
    result text[];
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) i
                WHERE (i->>'xb')::boolean OR i->'p'->>'idempotency_key' IS NULL) THEN
        RETURN NULL;
    END IF;
    -- tb_exchange_batch, the caller, holds every key's lock already.
    WITH it AS (
        SELECT n, (x->'p'->>'payer')::bigint AS payer, (x->'p'->>'earner')::bigint AS earner,
               (x->'p'->>'minutes')::bigint AS minutes, x->'p'->>'idempotency_key' AS key,
               (x->'p'->>'performed_on')::date AS performed_on
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    m AS (
        SELECT it.*, pm.account_id AS pa, pm.status AS ps, em.account_id AS ea,
               em.status AS es,
               CASE WHEN pm.kind = 'organisation' THEN 'organisation ' ELSE 'member ' END
               || it.payer AS pl,
               CASE WHEN em.kind = 'organisation' THEN 'organisation ' ELSE 'member ' END
               || it.earner AS el
          FROM it LEFT JOIN members pm ON pm.number = it.payer
                  LEFT JOIN members em ON em.number = it.earner),
    need AS (SELECT pa, sum(minutes) AS total FROM m GROUP BY pa)
    -- A member not found is NULL here: bool_and skips NULLs, so each is
    -- made false first.
    SELECT coalesce(bool_and(coalesce(ps = 'active' AND es = 'active'
                                      AND (performed_on IS NULL
                                           OR performed_on <= current_date), false)), false)
           AND count(DISTINCT key) = count(*)
           AND NOT EXISTS (SELECT 1 FROM transfers t
                            WHERE t.idempotency_key = ANY (ARRAY(SELECT key FROM it)))
           AND NOT EXISTS (SELECT 1 FROM need JOIN accounts a ON a.id = need.pa
                            WHERE a.balance_minutes - a.pending_minutes - need.total
                                  < coalesce(a.floor_minutes, default_floor)),
           array_agg(payer ORDER BY n), array_agg(earner ORDER BY n),
           array_agg(pa ORDER BY n), array_agg(ea ORDER BY n),
           array_agg(pl ORDER BY n), array_agg(el ORDER BY n)
      INTO ok, payers, earners, payer_accounts, earner_accounts, payer_labels, earner_labels
      FROM m;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    WITH it AS (
        SELECT n, x->>'actor' AS actor, (x->'p'->>'minutes')::bigint AS minutes,
               x->'p'->>'category' AS category, x->'p'->>'description' AS description,
               (x->'p'->>'performed_on')::date AS performed_on,
               x->'p'->>'idempotency_key' AS key, md5(((x->'p') - 'idempotency_key')::text) AS fp
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    ins AS (
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint)
        SELECT 'exchange', payer_accounts[it.n], earner_accounts[it.n], it.minutes, it.category,
               it.description, coalesce(it.performed_on, current_date), it.actor, it.key, it.fp
          FROM it ORDER BY it.n
        RETURNING *),
    -- The transfers' ids rise in the items' order, in which they were written.
    done AS (SELECT ins.*, row_number() OVER (ORDER BY ins.id) AS n FROM ins)
    -- The answers as JSON text, sent to the clients as they are: the same
    -- object as tb_exchange_json's, written out here because building it
    -- with json_build_object looks up every value's type again for every
    -- exchange: 7% of the batch's work (counted with callgrind).
    SELECT array_agg('{"id":' || d.id || ',"kind":"exchange","state":"settled","payer":'
                     || payers[d.n] || ',"earner":' || earners[d.n]
                     || ',"payer_label":"' || payer_labels[d.n]
                     || '","earner_label":"' || earner_labels[d.n]
                     || '","minutes":' || d.minutes
                     || ',"category":' || to_json(d.category)::text
                     || ',"description":' || coalesce(to_json(d.description)::text, 'null')
                     || ',"performed_on":' || to_json(d.performed_on)::text
                     || ',"recorded_by":' || to_json(d.recorded_by)::text
                     || ',"idempotency_key":' || to_json(d.idempotency_key)::text
                     || ',"created_at":' || created
                     || ',"reverses":null,"reason":null,"group_key":null,"reversed_by":null}'
                     ORDER BY d.n)
      INTO result
      FROM done d;
    RETURN result;
END $$;

CREATE OR REPLACE FUNCTION tb_xb_on_propose(from_peer text, item jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    orig xb_exchanges;
    claimed xb_claims;
    proposed record;
    em members;
    clearing accounts;
    -- What a peer sends must never raise here: a number too big is no number.
    minutes bigint := CASE WHEN item->>'minutes' ~ '^[0-9]{1,12}$'
                           THEN (item->>'minutes')::bigint END;
    reason text;
    tid bigint;
    xid_id bigint;
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    -- A peer names its own exchanges only; one it sent before gets the same
    -- answer again; a malformed one is refused without being recorded.
    IF coalesce(item->>'xid', '') !~ ('^' || from_peer || ':[0-9]{1,18}$') THEN
        RETURN jsonb_build_object('xid', left(coalesce(item->>'xid', ''), 80),
                                  'accepted', false, 'reason', 'invalid_request');
    END IF;
    SELECT * INTO orig FROM xb_exchanges WHERE xid = item->>'xid';
    IF FOUND THEN
        RETURN jsonb_build_object('xid', orig.xid, 'accepted', orig.state = 'settled',
                                  'reason', coalesce(orig.reason, ''));
    END IF;
    orig := NULL;
    IF tb_safe_date(item->>'performed_on') IS NULL OR tb_safe_date(item->>'performed_on') > current_date + 1
       OR coalesce(item->>'category', '') !~ '^[^[:cntrl:]]{1,40}$' THEN
        RETURN jsonb_build_object('xid', item->>'xid', 'accepted', false,
                                  'reason', 'invalid_request');
    END IF;
    IF coalesce(item->>'reverses', '') <> '' THEN
        -- A reversal: the earner is the payer of the exchange it reverses.
        SELECT * INTO orig FROM xb_exchanges
         WHERE xid = item->>'reverses' AND side = 'payer' AND xb_exchanges.peer = from_peer;
        SELECT * INTO em FROM members WHERE account_id = orig.member_account;
        IF orig.id IS NULL OR orig.state <> 'settled' THEN
            reason := 'exchange_not_found';
        ELSIF EXISTS (SELECT 1 FROM xb_exchanges WHERE reverses = orig.xid) THEN
            reason := 'already_reversed';
        END IF;
    ELSE
        proposed := tb_xb_proposed_earner(from_peer, item);
        em := proposed.em;
        claimed := proposed.claimed;
        reason := proposed.reason;
    END IF;
    IF reason IS NOT NULL THEN
        NULL;
    ELSIF peer.kind <> 'bank' OR peer.clearing_account IS NULL THEN
        reason := 'unknown_bank';
    ELSIF em.number IS NULL OR em.erased_at IS NOT NULL THEN
        reason := 'member_not_found';
    ELSIF minutes IS NULL OR minutes <= 0 THEN
        reason := 'invalid_hours';
    ELSE
        PERFORM tb_lock_accounts(ARRAY[peer.clearing_account, em.account_id]);
        SELECT * INTO em FROM members WHERE number = em.number;
        SELECT * INTO clearing FROM accounts WHERE id = peer.clearing_account;
        -- Reversals are corrections: the member's status does not matter.
        IF em.status <> 'active' AND coalesce(item->>'reverses', '') = '' THEN
            reason := 'member_inactive';
        ELSIF clearing.balance_minutes - minutes < clearing.floor_minutes THEN
            reason := 'exposure_limit';
        END IF;
    END IF;
    xid_id := nextval('xb_exchanges_id_seq');
    IF reason IS NULL THEN
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
             VALUES ('exchange', peer.clearing_account, em.account_id, minutes,
                     item->>'category', 'from a ' || from_peer || ' member',
                     (item->>'performed_on')::date, 'federation:' || from_peer,
                     'xb:' || (item->>'xid'), md5(item::text), xid_id)
          RETURNING id INTO tid;
    END IF;
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, minutes, category,
                              description, performed_on, state, reason, transfer_id,
                              answer_seq, recorded_by, decided_at, reverses, claim)
         VALUES (xid_id, item->>'xid', 'earner', from_peer, em.account_id, greatest(minutes, 1),
                 item->>'category', 'from a ' || from_peer || ' member',
                 coalesce((item->>'performed_on')::date, current_date),
                 CASE WHEN reason IS NULL THEN 'settled' ELSE 'rejected' END, reason, tid,
                 answer_seq, 'federation:' || from_peer, now(),
                 CASE WHEN reason IS NULL THEN nullif(item->>'reverses', '') END,
                 claimed.claim_id);
    IF claimed.id IS NOT NULL AND reason IS DISTINCT FROM 'claim_not_found' THEN
        UPDATE xb_claims SET state = 'approved', xid = item->>'xid',
                             decided_by = 'federation:' || from_peer, decided_at = now()
         WHERE id = claimed.id;
    END IF;
    RETURN jsonb_build_object('xid', item->>'xid', 'accepted', reason IS NULL,
                              'reason', coalesce(reason, ''));
END $$;

CREATE OR REPLACE FUNCTION tb_xb_on_answer(from_peer text, item jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    x xb_exchanges;
    peer fed_peers;
    tid bigint;
BEGIN
    SELECT * INTO x FROM xb_exchanges WHERE xid = item->>'xid' AND side = 'payer'
                                         AND xb_exchanges.peer = from_peer FOR UPDATE;
    IF NOT FOUND OR x.state <> 'pending' THEN
        RETURN; -- not ours, or decided already: nothing to do
    END IF;
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    PERFORM tb_lock_accounts(ARRAY[x.member_account, peer.clearing_account]);
    UPDATE accounts SET pending_minutes = pending_minutes - x.minutes
     WHERE id = x.member_account;
    IF (item->>'accepted')::boolean THEN
        -- Reserved at recording, so the floor was checked then: post as is.
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
             VALUES ('exchange', x.member_account, peer.clearing_account, x.minutes,
                     x.category, x.description, x.performed_on, x.recorded_by,
                     'xb:' || x.xid, x.fingerprint, x.id)
          RETURNING id INTO tid;
        UPDATE xb_exchanges SET state = 'settled', transfer_id = tid, decided_at = now()
         WHERE id = x.id;
    ELSE
        UPDATE xb_exchanges SET state = 'rejected', reason = left(nullif(item->>'reason', ''), 100),
                                decided_at = now()
         WHERE id = x.id;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tb_xb_propose_batch(from_peer text, items jsonb, answer_seq bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    ok boolean;
    -- Each item's earner's account, in order: found once while checking.
    earners bigint[];
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    IF peer.kind <> 'bank' OR peer.clearing_account IS NULL
       OR jsonb_typeof(items) <> 'array' OR jsonb_array_length(items) = 0 THEN
        RETURN NULL;
    END IF;
    WITH it AS (
        SELECT n, x->>'xid' AS xid, x->>'earner' AS earner, x->>'minutes' AS minutes,
               x->>'category' AS category, x->>'performed_on' AS performed_on,
               coalesce(x->>'reverses', '') AS reverses, coalesce(x->>'claim', '') AS claim,
               coalesce(x->>'contact', '') AS contact
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    m AS (
        -- What a peer sent must never raise: casts only behind CASE. The
        -- tests are the cheap forms of the single proposal's (a bounded
        -- regular expression costs its bound again in states).
        SELECT it.*, em.status, em.erased_at, em.number, em.account_id,
               CASE WHEN length(it.minutes) <= 12 AND it.minutes ~ '^[0-9]+$'
                    THEN it.minutes::bigint END AS mins
          FROM it LEFT JOIN members em
            ON em.number = CASE WHEN length(it.earner) <= 18 AND it.earner ~ '^[0-9]+$'
                                THEN it.earner::bigint END)
    SELECT coalesce(bool_and(coalesce(
               left(xid, length(from_peer) + 1) = from_peer || ':'
               AND length(xid) - length(from_peer) BETWEEN 2 AND 19
               AND substr(xid, length(from_peer) + 2) !~ '[^0-9]'
               AND reverses = '' AND claim = '' AND contact = ''
               AND mins > 0
               AND tb_safe_date(performed_on) <= current_date + 1
               AND length(category) BETWEEN 1 AND 40 AND category !~ '[[:cntrl:]]'
               AND number IS NOT NULL AND erased_at IS NULL AND status = 'active', false)), false)
           AND count(DISTINCT xid) = count(*)
           AND NOT EXISTS (SELECT 1 FROM xb_exchanges x
                            WHERE x.xid = ANY (ARRAY(SELECT xid FROM it)))
           AND (SELECT a.balance_minutes - sum(m.mins) >= a.floor_minutes
                  FROM accounts a WHERE a.id = peer.clearing_account),
           array_agg(account_id ORDER BY n)
      INTO ok, earners FROM m;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    WITH it AS (
        SELECT n, nextval('xb_exchanges_id_seq') AS id, x->>'xid' AS xid, x AS item,
               (x->>'minutes')::bigint AS minutes, x->>'category' AS category,
               (x->>'performed_on')::date AS performed_on, earners[n] AS earner
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    tr AS (
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
        SELECT 'exchange', peer.clearing_account, it.earner, it.minutes, it.category,
               'from a ' || from_peer || ' member', it.performed_on, 'federation:' || from_peer,
               'xb:' || it.xid, md5(it.item::text), it.id
          FROM it ORDER BY it.n
        RETURNING id, xb_id, payer_account, earner_account, minutes, category, description,
                  performed_on, recorded_by, idempotency_key)
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, minutes, category,
                              description, performed_on, state, transfer_id, answer_seq,
                              recorded_by, decided_at)
    SELECT tr.xb_id, substr(tr.idempotency_key, 4), 'earner', from_peer, tr.earner_account,
           tr.minutes, tr.category, tr.description, tr.performed_on, 'settled', tr.id,
           answer_seq, tr.recorded_by, now()
      FROM tr ORDER BY tr.id;
    -- The answers written out and read once: jsonb_build_object looks up
    -- its arguments' types again for every item. Each xid was checked
    -- above to be the peer's id, a colon and digits: nothing to escape.
    RETURN (SELECT ('[' || string_agg('{"xid":"' || (x->>'xid')
                                      || '","accepted":true,"reason":""}', ',' ORDER BY n)
                    || ']')::jsonb
              FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n));
END $$;

CREATE OR REPLACE FUNCTION tb_xb_answer_settle(from_peer text, items jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    ok boolean;
    ids bigint[];
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    IF peer.clearing_account IS NULL OR jsonb_typeof(items) <> 'array'
       OR jsonb_array_length(items) = 0 THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(bool_and(coalesce(x.state = 'pending' AND x.side = 'payer'
                                      AND x.peer = from_peer, false)), false)
           AND count(DISTINCT i->>'xid') = count(*),
           array_agg(x.id ORDER BY n)
      INTO ok, ids
      FROM jsonb_array_elements(items) WITH ORDINALITY AS t(i, n)
           LEFT JOIN xb_exchanges x ON x.xid = i->>'xid';
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    -- Each answer beside its exchange's id, in one pass over both; an
    -- accepted one's transfer id drawn here, so that nothing joins the
    -- transfers written back to the exchanges. Their balances are posted
    -- by tb_xb_answer_post, with the accounts locked, not as they are
    -- written (tb_post_transfers).
    PERFORM set_config('tb.balances_posted', 'on', true);
    WITH d AS (
        SELECT x.*, t.a->>'accepted' = 'true' AS accepted, t.a->>'reason' AS why,
               CASE WHEN t.a->>'accepted' = 'true' THEN nextval('transfers_id_seq') END AS tid
          FROM ROWS FROM (jsonb_array_elements(items), unnest(ids)) WITH ORDINALITY
               AS t(a, id, n)
          JOIN xb_exchanges x ON x.id = t.id
         ORDER BY t.n),
    tr AS (
        INSERT INTO transfers (id, kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
        SELECT d.tid, 'exchange', d.member_account, peer.clearing_account, d.minutes,
               d.category, d.description, d.performed_on, d.recorded_by, 'xb:' || d.xid,
               d.fingerprint, d.id
          FROM d WHERE d.accepted)
    UPDATE xb_exchanges x
       SET state = CASE WHEN d.accepted THEN 'settled' ELSE 'rejected' END,
           transfer_id = d.tid,
           reason = CASE WHEN NOT d.accepted THEN left(nullif(d.why, ''), 100) END,
           decided_at = now()
      FROM d WHERE x.id = d.id;
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
CREATE OR REPLACE FUNCTION tb_xb_answer_post(from_peer text, ids bigint[], lock boolean) RETURNS void
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
