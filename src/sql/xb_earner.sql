-- A cross-bank exchange at the earner's bank: proposals checked, posted
-- and answered, one message or a run of them at a time.

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
    ELSE
        SELECT * INTO em FROM members WHERE number = tb_peer_number(item->>'earner', 18);
    END IF;
END $$;

-- The exchange a proposal makes at the earner's bank, decided (reason
-- NULL: settled and posted), and the claim it approves; the accounts are
-- locked. Decided by the rules (tb_xb_on_propose), or as our answer said
-- before a restore (tb_xb_recovered).
CREATE FUNCTION tb_xb_earner_record(from_peer text, item jsonb, em members, claimed xb_claims,
                                    reason text, answer_seq bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    clearing bigint := (SELECT clearing_account FROM fed_peers WHERE peer = from_peer);
    minutes bigint := tb_peer_number(item->>'minutes', 12);
    xid_id bigint := nextval('xb_exchanges_id_seq');
    tid bigint;
BEGIN
    IF reason IS NULL THEN
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
             VALUES ('exchange', clearing, em.account_id, minutes,
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
                 (item->>'performed_on')::date,
                 CASE WHEN reason IS NULL THEN 'settled' ELSE 'rejected' END, reason, tid,
                 answer_seq, 'federation:' || from_peer, now(),
                 CASE WHEN reason IS NULL THEN nullif(item->>'reverses', '') END,
                 claimed.claim_id);
    IF claimed.id IS NOT NULL AND reason IS DISTINCT FROM 'claim_not_found' THEN
        UPDATE xb_claims SET state = 'approved', xid = item->>'xid',
                             decided_by = 'federation:' || from_peer, decided_at = now()
         WHERE id = claimed.id;
    END IF;
END $$;

-- One proposal, item by item: each rule in turn, the first that refuses
-- giving the answer's reason. tb_xb_propose_batch asks the same rules of a
-- whole message at once.
CREATE FUNCTION tb_xb_on_propose(from_peer text, item jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    orig xb_exchanges;
    claimed xb_claims;
    proposed record;
    em members;
    clearing accounts;
    minutes bigint := tb_peer_number(item->>'minutes', 12);
    reversal boolean := coalesce(item->>'reverses', '') <> '';
    reason text;
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    -- A peer names its own exchanges only; one it sent before gets the same
    -- answer again; a malformed one is refused without being recorded.
    IF NOT tb_peer_id(from_peer, item->>'xid', '') THEN
        RETURN tb_xb_answer_text(item->>'xid', 'invalid_request', item)::jsonb;
    END IF;
    SELECT * INTO orig FROM xb_exchanges WHERE xid = item->>'xid';
    IF FOUND THEN
        RETURN tb_xb_answer_text(orig.xid, CASE WHEN orig.state <> 'settled'
                                                THEN coalesce(orig.reason, '') END,
                                 item)::jsonb;
    END IF;
    orig := NULL;
    reason := tb_rule_sent(item->>'performed_on', item->>'category');
    IF reason IS NOT NULL THEN
        RETURN tb_xb_answer_text(item->>'xid', reason, item)::jsonb;
    END IF;
    IF reversal THEN
        -- A reversal: the earner is the payer of the exchange it reverses.
        SELECT * INTO orig FROM xb_exchanges
         WHERE xid = item->>'reverses' AND side = 'payer' AND xb_exchanges.peer = from_peer;
        SELECT * INTO em FROM members WHERE account_id = orig.member_account;
        IF orig.id IS NULL OR orig.state <> 'settled' THEN
            reason := 'exchange_not_found';
        ELSIF EXISTS (SELECT 1 FROM xb_exchanges WHERE reverses = orig.xid) THEN
            reason := 'already_reversed';
        ELSIF minutes IS DISTINCT FROM orig.minutes THEN
            reason := 'invalid_hours';  -- a reversal undoes the whole exchange
        END IF;
    ELSE
        proposed := tb_xb_proposed_earner(from_peer, item);
        em := proposed.em;
        claimed := proposed.claimed;
        reason := proposed.reason;
    END IF;
    -- a reversal of an earlier exchange goes through whoever the peer is now
    reason := coalesce(reason, tb_rule_bank(peer.kind, peer.clearing_account,
                                            peer.exchanges OR reversal),
                       tb_rule_named(em.number, em.erased_at),
                       -- a reversal is held to its original, not to today's limit
                       CASE WHEN reversal THEN tb_rule_hours(minutes, orig.minutes)
                            ELSE tb_rule_hours(minutes, tb_max_exchange()) END,
                       -- help our member gave, unless a coordinator let the
                       -- contact it came from through in that category
                       CASE WHEN NOT reversal
                                 AND NOT tb_safeguarding_contact_overridden(
                                         nullif(item->>'contact', ''), item->>'category')
                            THEN tb_rule_safeguarding(item->>'category', em.account_id,
                                                      (item->>'performed_on')::date,
                                                      tb_check_required()) END);
    IF reason IS NULL THEN
        PERFORM tb_lock_accounts(ARRAY[peer.clearing_account, em.account_id]);
        SELECT * INTO em FROM members WHERE number = em.number;
        SELECT * INTO clearing FROM accounts WHERE id = peer.clearing_account;
        -- Reversals are corrections: the member's status does not matter,
        -- but while they move their balance is held (tb_referral_send).
        reason := coalesce(CASE WHEN NOT reversal THEN tb_rule_active(em.status)
                                WHEN em.status = 'moving' THEN 'member_inactive' END,
                           tb_rule_exposure(clearing.balance_minutes, minutes,
                                            clearing.floor_minutes));
    END IF;
    PERFORM tb_xb_earner_record(from_peer, item, em, claimed, reason, answer_seq);
    RETURN tb_xb_answer_text(item->>'xid', reason, item)::jsonb;
END $$;

CREATE FUNCTION tb_on_xb_propose(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    answers jsonb[] := '{}';
    fast jsonb;
BEGIN
    -- Those we answered before a restore are decided as we answered them.
    body := tb_xb_recovered(from_peer, body);
    fast := tb_xb_propose_batch(from_peer, body->'items', answer_seq);
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
    most bigint := tb_max_exchange();
    required text[] := tb_check_required();
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    IF tb_rule_bank(peer.kind, peer.clearing_account, peer.exchanges) IS NOT NULL
       OR jsonb_typeof(items) <> 'array' OR jsonb_array_length(items) = 0 THEN
        RETURN NULL;
    END IF;
    -- tb_xb_on_propose's rules for every item, and the clearing account's
    -- limit for all the message's hours; a member not found is NULL here,
    -- and bool_and skips NULLs, so each is made false first. A reversal,
    -- a claim or a contact goes item by item.
    WITH it AS (
        SELECT n, x->>'xid' AS xid, x->>'minutes' AS minutes, x->>'category' AS category,
               x->>'performed_on' AS performed_on,
               tb_peer_number(x->>'earner', 18) AS earner,
               coalesce(x->>'reverses', '') || coalesce(x->>'claim', '')
                   || coalesce(x->>'contact', '') AS names
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    m AS (
        SELECT it.*, em.status, em.erased_at, em.number, em.account_id,
               tb_peer_number(it.minutes, 12) AS mins
          FROM it LEFT JOIN members em ON em.number = it.earner)
    SELECT coalesce(bool_and(coalesce(tb_peer_id(from_peer, xid, '') AND names = ''
                                      AND tb_rule_sent(performed_on, category) IS NULL
                                      AND tb_rule_named(number, erased_at) IS NULL
                                      AND tb_rule_hours(mins, most) IS NULL
                                      AND tb_rule_active(status) IS NULL
                                      AND (cardinality(required) = 0
                                           OR tb_rule_safeguarding(
                                                  category, account_id,
                                                  CASE WHEN tb_rule_sent(performed_on, category)
                                                            IS NULL
                                                       THEN performed_on::date END,
                                                  required) IS NULL),
                                      false)), false)
           AND count(DISTINCT xid) = count(*)
           AND NOT EXISTS (SELECT 1 FROM xb_exchanges x
                            WHERE x.xid = ANY (ARRAY(SELECT xid FROM it)))
           AND (SELECT tb_rule_exposure(a.balance_minutes, sum(m.mins)::bigint, a.floor_minutes) IS NULL
                  FROM accounts a WHERE a.id = peer.clearing_account),
           array_agg(account_id ORDER BY n)
      INTO ok, earners FROM m;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('tb.batch_path', 'set-wise', true);
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
    RETURN (SELECT ('[' || string_agg(tb_xb_answer_text(x->>'xid', NULL, x), ',' ORDER BY n)
                    || ']')::jsonb
              FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n));
END $$;
