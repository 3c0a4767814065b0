-- Migration 4: cross-bank exchanges. A member of this bank (the payer)
-- received help from a member of a peer bank (the earner), or the other way
-- round. The payer's bank reserves the minutes and proposes; the earner's
-- bank decides, posts and answers, and its answer is final; the payer's
-- bank follows. Every step is applied once, through the channel.

-- One clearing account per peer bank. Its floor is the exposure limit this
-- bank set for that peer: how many hours that bank's members may owe ours.
ALTER TABLE fed_peers ADD COLUMN kind text NOT NULL DEFAULT 'bank'
    CHECK (kind IN ('bank', 'observer'));
ALTER TABLE fed_peers ADD COLUMN clearing_account bigint REFERENCES accounts (id);
-- The peer's last signed checkpoint of its clearing balance for us.
ALTER TABLE fed_peers ADD COLUMN peer_clearing bigint;
ALTER TABLE fed_peers ADD COLUMN peer_clearing_at timestamptz;

ALTER TABLE transfers ADD COLUMN xb_id bigint;

CREATE TABLE xb_exchanges (
    id             bigserial PRIMARY KEY,
    xid            text NOT NULL UNIQUE,       -- "<payer bank>:<id there>"
    side           text NOT NULL CHECK (side IN ('payer', 'earner')),
    peer           text NOT NULL REFERENCES fed_peers (peer),
    member_account bigint REFERENCES accounts (id),  -- our member, when known
    remote_member  bigint,        -- payer side: the earner's number at the peer
    minutes        bigint NOT NULL CHECK (minutes > 0),
    category       text NOT NULL,
    description    text,          -- ours only: never sent
    performed_on   date NOT NULL,
    state          text NOT NULL CHECK (state IN ('pending', 'settled', 'rejected')),
    reason         text,
    transfer_id    bigint REFERENCES transfers (id),
    answer_seq     bigint,        -- earner side: the channel sequence of our answer
    proposed_seq   bigint,        -- payer side: the message that carried it; NULL: not yet
    reverses       text UNIQUE,   -- the settled exchange this reverses (at most once)
    recorded_by    text NOT NULL,
    idempotency_key text UNIQUE,
    fingerprint    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz
);
CREATE INDEX xb_pending ON xb_exchanges (peer) WHERE state = 'pending';
CREATE INDEX xb_member ON xb_exchanges (member_account, id);

-- Once decided, a cross-bank exchange never changes.
CREATE FUNCTION tb_xb_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = 'pending' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = 'a decided cross-bank exchange cannot change';
END $$;
CREATE TRIGGER xb_decided BEFORE UPDATE OR DELETE ON xb_exchanges
    FOR EACH ROW EXECUTE FUNCTION tb_xb_guard();

-- The peers from the config: kinds, exposure limits, clearing accounts.
DROP FUNCTION tb_fed_peers(text[]);
CREATE FUNCTION tb_fed_peers(ids text[], kinds text[], limits bigint[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    acct bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        INSERT INTO fed_peers (peer, kind) VALUES (ids[i], kinds[i])
        ON CONFLICT (peer) DO UPDATE SET kind = EXCLUDED.kind;
        IF kinds[i] = 'bank' THEN
            SELECT clearing_account INTO acct FROM fed_peers WHERE peer = ids[i];
            IF acct IS NULL THEN
                INSERT INTO accounts (kind) VALUES ('clearing') RETURNING id INTO acct;
                UPDATE fed_peers SET clearing_account = acct WHERE peer = ids[i];
            END IF;
            UPDATE accounts SET floor_minutes = -limits[i] WHERE id = acct;
        END IF;
    END LOOP;
    RETURN coalesce((SELECT jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer) FROM fed_peers p
                      WHERE p.peer = ANY (ids)), '[]');
END $$;

CREATE OR REPLACE FUNCTION tb_account_label(acct bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE WHEN erased_at IS NOT NULL THEN 'former member'
                     WHEN kind = 'organisation' THEN 'organisation ' || number
                     ELSE 'member ' || number END
           FROM members WHERE account_id = acct),
        (SELECT peer || ' clearing account' FROM fed_peers WHERE clearing_account = acct),
        (SELECT CASE kind WHEN 'community' THEN 'community account'
                          ELSE kind || ' account ' || id END
           FROM accounts WHERE id = acct))
$$;

CREATE FUNCTION tb_xb_json(x xb_exchanges) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', x.xid, 'cross_bank', true, 'state', x.state, 'reason', x.reason,
        'peer', x.peer, 'side', x.side,
        'payer', CASE WHEN x.side = 'payer'
                      THEN (SELECT number FROM members WHERE account_id = x.member_account) END,
        'earner', CASE WHEN x.side = 'earner'
                       THEN (SELECT number FROM members WHERE account_id = x.member_account) END,
        'payer_label', CASE WHEN x.side = 'payer' THEN tb_account_label(x.member_account)
                            ELSE x.peer || ' member' END,
        'earner_label', CASE WHEN x.side = 'earner' THEN tb_account_label(x.member_account)
                             WHEN x.remote_member IS NULL THEN 'a ' || x.peer || ' member'
                             ELSE x.peer || ' member ' || x.remote_member END,
        'minutes', x.minutes, 'category', x.category, 'description', x.description,
        'performed_on', x.performed_on, 'recorded_by', x.recorded_by,
        'idempotency_key', x.idempotency_key, 'created_at', x.created_at,
        'decided_at', x.decided_at, 'transfer', x.transfer_id, 'reverses', x.reverses,
        'reversed_by', (SELECT r.xid FROM xb_exchanges r WHERE r.reverses = x.xid))
$$;

CREATE FUNCTION tb_xb_get(want text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    x xb_exchanges;
BEGIN
    SELECT * INTO x FROM xb_exchanges WHERE xid = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', want));
    END IF;
    RETURN tb_xb_json(x);
END $$;

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
    IF done.fingerprint <> fp THEN
        PERFORM tb_raise('idempotency_conflict', format(
            'idempotency key %s was already used for a different request', key));
    END IF;
    RETURN tb_xb_json(done);
END $$;

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
    IF pa.balance_minutes - pa.pending_minutes - minutes < fl THEN
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
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = p->>'bank' AND kind = 'bank';
    IF NOT FOUND THEN
        PERFORM tb_raise('unknown_bank', format('%s is not a bank this bank is linked to',
                                                p->>'bank'));
    END IF;
    IF peer.diverged_at IS NOT NULL THEN
        PERFORM tb_raise('peer_diverged', format(
            'the books with %s have diverged; no new exchanges go there until it is resolved',
            peer.peer));
    END IF;
    IF (p->>'performed_on')::date > current_date THEN
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

-- Turns every reservation not yet proposed into one proposal message per
-- peer, in one transaction: many exchanges travel, and are decided, together.
CREATE FUNCTION tb_xb_batch(lim int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    to_peer text;
    items jsonb;
    ids bigint[];
    s bigint;
    n int := 0;
BEGIN
    FOR to_peer IN SELECT DISTINCT peer FROM xb_exchanges
                    WHERE side = 'payer' AND state = 'pending' AND proposed_seq IS NULL LOOP
        SELECT jsonb_agg(jsonb_build_object(
                   'xid', xid, 'earner', coalesce(remote_member, 0), 'minutes', minutes,
                   'category', category, 'performed_on', performed_on::text,
                   'reverses', coalesce(reverses, '')) ORDER BY id),
               array_agg(id)
          INTO items, ids
          FROM (SELECT * FROM xb_exchanges
                 WHERE peer = to_peer AND side = 'payer' AND state = 'pending'
                   AND proposed_seq IS NULL
                 ORDER BY id LIMIT lim FOR UPDATE SKIP LOCKED) q;
        CONTINUE WHEN ids IS NULL;
        s := tb_fed_enqueue(to_peer, jsonb_build_object('kind', 'xb_propose', 'items', items));
        UPDATE xb_exchanges SET proposed_seq = s WHERE id = ANY (ids);
        n := n + cardinality(ids);
    END LOOP;
    RETURN n;
END $$;

-- A date from a peer, or NULL: what a peer sends must never raise inside
-- tb_fed_apply, or one bad message would hold up the channel for good.
CREATE FUNCTION tb_safe_date(t text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    RETURN t::date;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- At the earner's bank, inside tb_fed_apply: decide one proposal. Returns
-- the answer {xid, accepted, reason}.
CREATE FUNCTION tb_xb_on_propose(from_peer text, item jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    orig xb_exchanges;
    em members;
    clearing accounts;
    minutes bigint := (item->>'minutes')::bigint;
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
        SELECT * INTO em FROM members WHERE number = (item->>'earner')::bigint;
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
        INSERT INTO entries (transfer_id, account_id, minutes)
             VALUES (tid, peer.clearing_account, -minutes), (tid, em.account_id, minutes);
    END IF;
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, minutes, category,
                              description, performed_on, state, reason, transfer_id,
                              answer_seq, recorded_by, decided_at, reverses)
         VALUES (xid_id, item->>'xid', 'earner', from_peer, em.account_id, greatest(minutes, 1),
                 item->>'category', 'from a ' || from_peer || ' member',
                 coalesce((item->>'performed_on')::date, current_date),
                 CASE WHEN reason IS NULL THEN 'settled' ELSE 'rejected' END, reason, tid,
                 answer_seq, 'federation:' || from_peer, now(),
                 CASE WHEN reason IS NULL THEN nullif(item->>'reverses', '') END);
    RETURN jsonb_build_object('xid', item->>'xid', 'accepted', reason IS NULL,
                              'reason', coalesce(reason, ''));
END $$;

-- At the payer's bank, inside tb_fed_apply: follow the earner's bank.
CREATE FUNCTION tb_xb_on_answer(from_peer text, item jsonb) RETURNS void
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
        INSERT INTO entries (transfer_id, account_id, minutes)
             VALUES (tid, x.member_account, -x.minutes), (tid, peer.clearing_account, x.minutes);
        UPDATE xb_exchanges SET state = 'settled', transfer_id = tid, decided_at = now()
         WHERE id = x.id;
    ELSE
        UPDATE xb_exchanges SET state = 'rejected', reason = left(nullif(item->>'reason', ''), 100),
                                decided_at = now()
         WHERE id = x.id;
    END IF;
END $$;

-- tb_fed_apply, now also for exchange proposals and answers. The answers to
-- every proposal in one batch go back as one message.
CREATE OR REPLACE FUNCTION tb_fed_apply(from_peer text, items jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    item jsonb;
    x jsonb;
    s bigint;
    dup int := 0;
    err text;
    err_seq bigint;
    answers jsonb := '[]';
    kind text;
    answer_seq bigint;
BEGIN
    -- NO KEY UPDATE: foreign-key checks (KEY SHARE) on this row must not wait.
    SELECT * INTO st FROM fed_peers WHERE peer = from_peer FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', from_peer));
    END IF;
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        s := (item->>'seq')::bigint;
        kind := item->'body'->>'kind';
        IF s <= st.in_applied THEN
            dup := dup + 1;
            CONTINUE;
        END IF;
        IF s <> st.in_applied + 1 THEN
            err := 'gap';
        ELSIF decode(item->>'prev', 'hex') <> st.in_head THEN
            err := 'broken_chain';
        ELSIF kind = 'test' THEN
            INSERT INTO fed_test_received (peer, seq, n)
                 VALUES (from_peer, s, (item->'body'->>'n')::bigint);
        ELSIF kind = 'xb_propose' THEN
            FOR x IN SELECT * FROM jsonb_array_elements(item->'body'->'items') LOOP
                -- fed_peers is locked: the batch's answer will get this sequence.
                answers := answers || tb_xb_on_propose(from_peer, x, st.out_next_seq);
            END LOOP;
        ELSIF kind = 'xb_answer' THEN
            FOR x IN SELECT * FROM jsonb_array_elements(item->'body'->'items') LOOP
                PERFORM tb_xb_on_answer(from_peer, x);
            END LOOP;
        ELSE
            err := 'unknown_kind';
        END IF;
        IF err IS NOT NULL THEN
            err_seq := s;
            EXIT;
        END IF;
        INSERT INTO fed_inbox (peer, seq, hash, envelope, body)
             VALUES (from_peer, s, decode(item->>'hash', 'hex'),
                     decode(item->>'envelope', 'hex'), item->'body');
        st.in_applied := s;
        st.in_head := decode(item->>'hash', 'hex');
    END LOOP;
    UPDATE fed_peers SET in_applied = st.in_applied, in_head = st.in_head WHERE peer = from_peer;
    IF jsonb_array_length(answers) > 0 THEN
        answer_seq := tb_fed_enqueue(from_peer, jsonb_build_object('kind', 'xb_answer',
                                                                   'items', answers));
        IF answer_seq <> st.out_next_seq THEN
            PERFORM tb_raise('internal_error', 'answer sequence moved during apply');
        END IF;
    END IF;
    RETURN jsonb_build_object('applied', st.in_applied, 'duplicates', dup, 'error', err,
                              'error_seq', err_seq);
END $$;

-- Each peer bank: our clearing position, its last checkpoint of its own, and
-- what is in flight between us (our reservations not yet answered, and our
-- answers it has not yet acknowledged).
CREATE FUNCTION tb_fed_audit() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('peers', coalesce(jsonb_agg(r ORDER BY r.peer), '[]'))
      FROM (SELECT p.peer, a.balance_minutes AS position, p.peer_clearing,
                   p.peer_clearing_at, p.diverged_at IS NOT NULL AS diverged,
                   coalesce((SELECT sum(minutes) FROM xb_exchanges x
                              WHERE x.peer = p.peer AND x.side = 'payer'
                                AND x.state = 'pending'), 0)
                 + coalesce((SELECT sum(minutes) FROM xb_exchanges x
                              WHERE x.peer = p.peer AND x.side = 'earner'
                                AND x.state = 'settled' AND x.answer_seq > p.out_acked), 0)
                   AS in_flight,
                   -- A checkpoint older than our last change with the peer
                   -- cannot show divergence, only that something is in flight.
                   coalesce(p.peer_clearing_at < (SELECT max(greatest(x.created_at, x.decided_at))
                                                    FROM xb_exchanges x WHERE x.peer = p.peer),
                            false) AS checkpoint_stale
              FROM fed_peers p JOIN accounts a ON a.id = p.clearing_account
             WHERE p.kind = 'bank') r
$$;

-- Our clearing balance for a peer, for the checkpoint we send it.
CREATE OR REPLACE FUNCTION tb_fed_checkpoint(to_peer text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('seq', p.out_acked,
               'head', coalesce((SELECT encode(hash, 'hex') FROM fed_outbox o
                                  WHERE o.peer = p.peer AND o.seq = p.out_acked), ''),
               'clearing', (SELECT balance_minutes FROM accounts WHERE id = p.clearing_account))
      FROM fed_peers p WHERE p.peer = to_peer
$$;

CREATE FUNCTION tb_fed_peer_clearing(from_peer text, clearing bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE fed_peers SET peer_clearing = clearing, peer_clearing_at = now()
     WHERE peer = from_peer
$$;

-- Histories and statements name the other bank's member of a cross-bank
-- line as "westminster member 204" (the number our coordinator was told)
-- or "a colchester member" (the payer's bank never says who).
CREATE FUNCTION tb_xb_party(xb bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN side = 'payer' AND remote_member IS NOT NULL
                THEN peer || ' member ' || remote_member
                ELSE 'a ' || peer || ' member' END
      FROM xb_exchanges WHERE id = xb
$$;

CREATE OR REPLACE FUNCTION tb_history(num bigint, cursor bigint, lim int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
    rows jsonb;
BEGIN
    SELECT jsonb_agg(to_jsonb(x) ORDER BY x.entry DESC) INTO rows FROM (
        SELECT * FROM (
            SELECT e.id AS entry, t.id AS exchange, t.performed_on, t.category, t.description,
                   e.minutes, sum(e.minutes) OVER (ORDER BY e.id) AS balance_after,
                   coalesce(tb_xb_party(t.xb_id), tb_account_label(other.account_id))
                       AS other_party,
                   (SELECT name FROM members WHERE account_id = other.account_id) AS other_name
              FROM entries e JOIN transfers t ON t.id = e.transfer_id
              CROSS JOIN LATERAL (SELECT o.account_id FROM entries o
                                   WHERE o.transfer_id = t.id AND o.account_id <> e.account_id
                                   LIMIT 1) other
             WHERE e.account_id = m.account_id) lines
         WHERE cursor IS NULL OR entry < cursor
         ORDER BY entry DESC LIMIT lim + 1) x;
    rows := coalesce(rows, '[]');
    RETURN jsonb_build_object(
        'number', m.number, 'name', m.name,
        'items', coalesce((SELECT jsonb_agg(r ORDER BY ord)
                             FROM jsonb_array_elements(rows) WITH ORDINALITY AS a(r, ord)
                            WHERE ord <= lim), '[]'),
        'next_cursor', CASE WHEN jsonb_array_length(rows) > lim
                            THEN rows->(lim - 1)->>'entry' END);
END $$;

CREATE OR REPLACE FUNCTION tb_statement(num bigint, from_date date, to_date date, bank_id text,
                             bank_name text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
    opening bigint;
    lines jsonb;
    total_in bigint;
    total_out bigint;
BEGIN
    IF from_date > to_date THEN
        PERFORM tb_raise('invalid_period', 'the period ends before it starts');
    END IF;
    SELECT coalesce(sum(e.minutes), 0) INTO opening
      FROM entries e JOIN transfers t ON t.id = e.transfer_id
     WHERE e.account_id = m.account_id AND t.performed_on < from_date;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'date', performed_on, 'transfer', transfer, 'kind', kind,
               'other_party', other_party, 'category', category, 'description', description,
               'minutes', minutes, 'balance_minutes', opening + running)
               ORDER BY performed_on, entry), '[]'),
           coalesce(sum(minutes) FILTER (WHERE minutes > 0), 0),
           coalesce(-sum(minutes) FILTER (WHERE minutes < 0), 0)
      INTO lines, total_in, total_out
      FROM (SELECT e.id AS entry, t.id AS transfer, t.kind, t.performed_on, t.category,
                   t.description, e.minutes,
                   sum(e.minutes) OVER (ORDER BY t.performed_on, e.id) AS running,
                   coalesce(tb_xb_party(t.xb_id), tb_party_name(other.account_id))
                       AS other_party
              FROM entries e JOIN transfers t ON t.id = e.transfer_id
             CROSS JOIN LATERAL (SELECT o.account_id FROM entries o
                                  WHERE o.transfer_id = t.id AND o.account_id <> e.account_id
                                  LIMIT 1) other
             WHERE e.account_id = m.account_id
               AND t.performed_on BETWEEN from_date AND to_date) x;
    RETURN jsonb_build_object(
        'bank', jsonb_build_object('id', bank_id, 'name', bank_name),
        'member', jsonb_build_object('number', m.number, 'kind', m.kind,
                                     'name', coalesce(m.name, 'former member'),
                                     'address', m.address, 'status', m.status),
        'from', from_date, 'to', to_date, 'opening_minutes', opening,
        'in_minutes', total_in, 'out_minutes', total_out,
        'closing_minutes', opening + total_in - total_out, 'lines', lines);
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
