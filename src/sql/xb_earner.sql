-- A cross-bank exchange at the earner's bank: proposals checked, posted
-- and answered, one message or a run of them at a time.

-- A date a peer sent, or NULL. No exception block, which would make every
-- call a subtransaction (two per item of every proposal). Only a well-formed date of the calendar reaches
-- make_date, each test in an arm of its own (the planner folds what it can
-- at once), so nothing here raises. Immutable all through, so it is
-- written into the queries that call it rather than called.
CREATE FUNCTION tb_safe_date(t text) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
                     AND left(t, 4) <> '0000'
           THEN CASE WHEN substr(t, 9, 2)::int
                          <= CASE WHEN substr(t, 6, 2) IN ('04', '06', '09', '11') THEN 30
                                  WHEN substr(t, 6, 2) <> '02' THEN 31
                                  WHEN left(t, 4)::int % 4 = 0
                                       AND (left(t, 4)::int % 100 <> 0
                                            OR left(t, 4)::int % 400 = 0) THEN 29
                                  ELSE 28 END
                     THEN make_date(left(t, 4)::int, substr(t, 6, 2)::int, substr(t, 9, 2)::int)
                END
           END
$$;

-- At the earner's bank: who earns a proposed exchange. A plain proposal
-- names our member's number; one approving our claim names the claim; one
-- from an accepted contact names the contact. reason is set when the
-- proposal names what we cannot find.
CREATE FUNCTION tb_xb_proposed_earner(from_peer text, item jsonb, OUT em members,
                                      OUT claimed xb_claims, OUT reason text)
LANGUAGE plpgsql AS $$
DECLARE
    c dir_contacts;
BEGIN
    IF coalesce(item->>'claim', '') <> '' THEN
        SELECT * INTO claimed FROM xb_claims
         WHERE claim_id = item->>'claim' AND side = 'earner' AND xb_claims.peer = from_peer
           FOR UPDATE;
        SELECT * INTO em FROM members WHERE account_id = claimed.member_account;
        IF claimed.id IS NULL OR claimed.state <> 'open'
           OR claimed.minutes::text IS DISTINCT FROM item->>'minutes' THEN
            reason := 'claim_not_found';
        END IF;
    ELSIF coalesce(item->>'contact', '') <> '' THEN
        SELECT * INTO c FROM dir_contacts
         WHERE contact_id = item->>'contact' AND dir_contacts.peer = from_peer
           AND state = 'accepted';
        -- Our member earns: the one behind our offer, or the one who asked
        -- to help with the peer's request.
        IF c.id IS NULL OR (c.side = 'provider') <> (c.item_kind = 'offer') THEN
            reason := 'contact_not_found';
        ELSE
            SELECT * INTO em FROM members WHERE account_id = c.member_account;
        END IF;
    ELSIF item->>'earner' ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO em FROM members WHERE number = (item->>'earner')::bigint;
    END IF;
END $$;

CREATE FUNCTION tb_xb_on_propose(from_peer text, item jsonb, answer_seq bigint) RETURNS jsonb
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

CREATE FUNCTION tb_on_xb_propose(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    answers jsonb[] := '{}';
    fast jsonb := tb_xb_propose_batch(from_peer, body->'items', answer_seq);
BEGIN
    IF fast IS NOT NULL THEN
        RETURN jsonb_build_object('xb_answer', fast);
    END IF;
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        answers := answers || tb_xb_on_propose(from_peer, x, answer_seq);
    END LOOP;
    RETURN jsonb_build_object('xb_answer', to_jsonb(answers));
END $$;

CREATE FUNCTION tb_xb_propose_batch(from_peer text, items jsonb, answer_seq bigint)
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
