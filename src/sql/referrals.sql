-- Members referred between banks: a move or an introduction, sent by the
-- member's bank with what the member consented to share, field by field,
-- and decided by the other bank's coordinator. The table and its states:
-- migrations/011_referrals.sql.
--
-- The steps, each once on the exactly-once channel:
--   referring bank  tb_referral_send       'referral' (a move holds the member: 'moving')
--   receiving bank  tb_on_referral         kept open, or refused whole ('refused')
--                   tb_referral_accept     the membership made here; a move's balance
--                                          posted here; 'referral_answer' accepted
--                   tb_referral_decline, tb_referrals_expire, tb_on_referral_withdraw
--                                          erased here; 'referral_answer' saying so
--   referring bank  tb_on_referral_answer  accepted: a move's balance posted here and
--                                          the membership closed; else the member freed
-- The receiving bank's answer is final: a withdrawal that reaches it after
-- it decided changes nothing.

-- The fields a referral may carry: the member's own (members), and their
-- record, each shared only with the member's consent.
CREATE FUNCTION tb_referral_fields() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['name', 'email', 'phone', 'address', 'skills', 'needs', 'availability',
                 'district', 'notes']
$$;

-- How consent was given, as the coordinator records it.
CREATE FUNCTION tb_referral_consents() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['in person', 'by phone', 'in writing']
$$;

-- The other bank's member as a line of a statement names them: the
-- referral's bank and their number there. NULL for a transfer of no
-- referral.
CREATE FUNCTION tb_move_party(rid bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT tb_remote_label(peer, remote_member) FROM referrals WHERE id = rid
$$;

CREATE FUNCTION tb_referral_json(r referrals) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.referral_id, 'side', r.side, 'peer', r.peer, 'kind', r.kind, 'state', r.state,
        'member', (SELECT number FROM members WHERE account_id = r.member_account),
        'remote_member', r.remote_member,
        'reason', r.reason, 'shared', to_jsonb(r.shared),
        'consent', jsonb_build_object('how', r.consent_how, 'notes', r.consent_notes,
                                      'recorded_by', r.consent_by, 'at', r.consent_at),
        'details', r.details, 'record', r.record, 'balance_minutes', r.balance_minutes,
        'answer', r.answer, 'refusal', r.refusal, 'decided_by', r.decided_by,
        'decided_at', r.decided_at, 'expires_at', r.expires_at,
        'withdraw_asked_at', r.withdraw_asked_at, 'erased_at', r.erased_at,
        'erased_confirmed_in', r.erased_seq,
        'sent', r.sent_seq IS NOT NULL, 'transfer', r.transfer_id,
        'recorded_by', r.recorded_by, 'created_at', r.created_at)
$$;

CREATE FUNCTION tb_referral_get(want text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    r referrals;
BEGIN
    SELECT * INTO r FROM referrals WHERE referral_id = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('referral_not_found', format('there is no referral %s', want));
    END IF;
    RETURN tb_referral_json(r);
END $$;

-- Referrals this bank received (incoming) or sent (outgoing), newest
-- first; open ones only unless every state is asked for.
CREATE FUNCTION tb_referral_list(direction text, only_open boolean, cursor bigint, lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT * FROM referrals
         WHERE side = CASE direction WHEN 'outgoing' THEN 'referring' ELSE 'receiving' END
           AND (NOT only_open OR state = 'open')
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_referral_json(p) ORDER BY p.id DESC)
                             FROM page p), '[]'),
        'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page))
$$;

-- What a member has open with other banks that a move would leave behind:
-- cross-bank exchanges pending, claims and contacts open. '' when nothing.
CREATE FUNCTION tb_member_open_with_peers(acct bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(what, ', ' ORDER BY what), '')
      FROM (SELECT 'exchange ' || xid || ' (pending)' AS what FROM xb_exchanges
             WHERE member_account = acct AND state = 'pending'
            UNION ALL
            SELECT 'claim ' || claim_id || ' (open)' FROM xb_claims
             WHERE member_account = acct AND state = 'open'
            UNION ALL
            SELECT 'contact ' || contact_id || ' (open)' FROM dir_contacts
             WHERE member_account = acct AND state = 'open') o
$$;

-- A member's record as it may travel: the day they joined, and the
-- exchanges (and hours) they gave and received that stand. Never the
-- exchanges themselves.
CREATE FUNCTION tb_member_record(m members) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'joined_on', m.joined_on::text,
        'exchanges_given', count(*) FILTER (WHERE t.earner_account = m.account_id),
        'exchanges_received', count(*) FILTER (WHERE t.payer_account = m.account_id),
        'minutes_given', coalesce(sum(t.minutes) FILTER (WHERE t.earner_account = m.account_id), 0),
        'minutes_received', coalesce(sum(t.minutes) FILTER (WHERE t.payer_account = m.account_id), 0))
      FROM transfers t
     WHERE m.account_id IN (t.payer_account, t.earner_account) AND t.kind = 'exchange'
       AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.reverses = t.id)
$$;

-- At the referring bank: a coordinator refers an active member to another
-- bank, with the member's consent (p: member, bank, kind, reason, share,
-- consent, consent_notes; checked for shape by the API, req_referral). The
-- referral travels in the same transaction. A move holds the member
-- ('moving') until the other bank answers.
CREATE FUNCTION tb_referral_send(p jsonb, actor text, own_bank text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    share text[] := ARRAY(SELECT jsonb_array_elements_text(p->'share'));
    done referrals;
    peer fed_peers;
    m members;
    a accounts;
    clearing accounts;
    open_ text;
    rec jsonb;
    item jsonb;
    r referrals;
    rid bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(key));
    SELECT * INTO done FROM referrals WHERE idempotency_key = key;
    IF FOUND THEN
        PERFORM tb_same_request(key, done.fingerprint, fp, format('referral %s', done.referral_id));
        RETURN tb_referral_json(done);
    END IF;
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = p->>'bank' AND kind = 'bank';
    IF NOT FOUND THEN
        PERFORM tb_raise('unknown_bank', format('%s is not a bank this bank is linked to',
                                                p->>'bank'));
    END IF;
    IF NOT peer.exchanges THEN
        PERFORM tb_raise('not_exchanging', tb_not_exchanging_text(peer.peer));
    END IF;
    IF peer.diverged_at IS NOT NULL THEN
        PERFORM tb_raise('peer_diverged', format(
            'the books with %s have diverged; no referral goes there until it is resolved',
            peer.peer));
    END IF;
    m := tb_find_member((p->>'member')::bigint);
    SELECT * INTO a FROM accounts WHERE id = m.account_id FOR UPDATE;
    m := tb_find_member(m.number);  -- its status as it is under the lock
    IF m.status <> 'active' THEN
        PERFORM tb_raise('member_inactive', format('member %s is %s; only an active member is referred',
                                                   m.number, m.status));
    END IF;
    IF m.kind <> 'person' THEN
        PERFORM tb_raise('member_inactive', format(
            'member %s is an organisation; organisations are not referred', m.number));
    END IF;
    IF EXISTS (SELECT 1 FROM referrals WHERE member_account = m.account_id AND side = 'referring'
                                        AND state = 'open' AND referrals.peer = peer.peer) THEN
        PERFORM tb_raise('referral_open', format(
            'member %s already has an open referral to %s (%s); withdraw it or wait for its answer',
            m.number, peer.peer,
            (SELECT referral_id FROM referrals WHERE member_account = m.account_id
                AND side = 'referring' AND state = 'open' AND referrals.peer = peer.peer)));
    END IF;
    IF p->>'kind' = 'move' THEN
        open_ := tb_member_open_with_peers(m.account_id);
        IF open_ <> '' OR a.pending_minutes <> 0 THEN
            PERFORM tb_raise('member_has_open', format(
                'member %s cannot move while these are open with other banks: %s; '
                'settle or decline them first', m.number, open_));
        END IF;
        IF EXISTS (SELECT 1 FROM referrals WHERE member_account = m.account_id
                                            AND side = 'referring' AND state = 'open') THEN
            PERFORM tb_raise('referral_open', format(
                'member %s has an open referral; a move waits until it is answered or withdrawn',
                m.number));
        END IF;
        -- Owing hours, the member leaves the other bank owing ours: our
        -- limit with it applies, as for an exchange its member earned.
        SELECT * INTO clearing FROM accounts WHERE id = peer.clearing_account FOR UPDATE;
        IF a.balance_minutes < 0
           AND tb_rule_exposure(clearing.balance_minutes, -a.balance_minutes,
                                clearing.floor_minutes) IS NOT NULL THEN
            PERFORM tb_raise('exposure_limit', format(
                'member %s owes %s, which would take what %s owes this bank past its limit of %s',
                m.number, tb_hours(-a.balance_minutes), peer.peer,
                tb_hours(-clearing.floor_minutes)));
        END IF;
    END IF;
    IF 'record' = ANY (share) THEN
        rec := tb_member_record(m);
    END IF;
    rid := nextval('referrals_id_seq');
    item := jsonb_build_object(
        'referral_id', own_bank || ':r' || rid, 'kind', p->>'kind', 'member', m.number,
        'reason', coalesce(p->>'reason', ''), 'shared', to_jsonb(share),
        'consent_how', p->>'consent', 'consent_notes', coalesce((p->>'consent_notes')::boolean, false),
        'consent_by', actor, 'consent_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'record', rec,
        'balance_minutes', CASE WHEN p->>'kind' = 'move' THEN a.balance_minutes ELSE 0 END)
        -- Only the fields consented to, each as this bank holds it.
        || (SELECT coalesce(jsonb_object_agg(f, coalesce(to_jsonb(m)->>f, '')), '{}')
              FROM unnest(tb_referral_fields()) f WHERE f = ANY (share))
        || CASE WHEN 'district' = ANY (share)
                THEN jsonb_build_object('district', coalesce(tb_member_district(m), '')) ELSE '{}' END;
    INSERT INTO referrals (id, referral_id, side, peer, kind, state, member_account, reason,
                           shared, consent_how, consent_notes, consent_by, consent_at, record,
                           balance_minutes, recorded_by, idempotency_key, fingerprint, sent_seq)
         VALUES (rid, item->>'referral_id', 'referring', peer.peer, p->>'kind', 'open',
                 m.account_id, p->>'reason', share, p->>'consent',
                 (item->>'consent_notes')::boolean, actor, now(), rec,
                 (item->>'balance_minutes')::bigint, actor, key, fp,
                 tb_fed_enqueue(peer.peer, jsonb_build_object(
                     'kind', 'referral', 'items', jsonb_build_array(item))::json))
      RETURNING * INTO r;
    IF p->>'kind' = 'move' THEN
        UPDATE members SET status = 'moving', updated_by = actor, updated_at = now()
         WHERE number = m.number;
    END IF;
    RETURN tb_referral_json(r);
END $$;

-- The most each field of a referral may hold, as the API holds a member's
-- (req.c's member_text), and whether it may run over lines.
CREATE FUNCTION tb_referral_limits() RETURNS TABLE (field text, most int, lines boolean)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('name', 200, false), ('email', 254, false), ('phone', 40, false),
           ('address', 500, true), ('skills', 2000, true), ('needs', 2000, true),
           ('availability', 500, true), ('district', 4, false), ('notes', 4000, true),
           ('reason', 500, true), ('consent_by', 200, false)
$$;

-- At the receiving bank: why a referral a peer sent is refused whole, or
-- NULL. A field with a value the member did not consent to share (a
-- misbehaving bank), notes without their own consent, or anything no
-- coordinator could have sent through the API, is refused. Never raises:
-- every value is checked before anything casts it.
CREATE FUNCTION tb_referral_refusal(from_peer text, x jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(x->'shared') IS DISTINCT FROM 'array'
             OR jsonb_array_length(x->'shared') NOT BETWEEN 1 AND 10
             OR EXISTS (SELECT 1 FROM jsonb_array_elements(x->'shared') s
                         WHERE jsonb_typeof(s) <> 'string'
                            OR NOT s#>>'{}' = ANY (tb_referral_fields() || 'record'::text))
             OR (SELECT count(DISTINCT s) FROM jsonb_array_elements(x->'shared') s)
                <> jsonb_array_length(x->'shared') THEN 'invalid_request'
        -- Each field with a value was consented to.
        WHEN EXISTS (SELECT 1 FROM unnest(tb_referral_fields()) f
                      WHERE coalesce(x->>f, '') <> ''
                        AND NOT x->'shared' ? f) THEN 'not_consented'
        WHEN jsonb_typeof(x->'record') = 'object' AND NOT x->'shared' ? 'record' THEN 'not_consented'
        WHEN jsonb_typeof(x->'consent_notes') IS DISTINCT FROM 'boolean' THEN 'invalid_request'
        WHEN x->'shared' ? 'notes' AND NOT (x->>'consent_notes')::boolean THEN 'not_consented'
        WHEN NOT coalesce(x->>'consent_how', '') = ANY (tb_referral_consents()) THEN 'invalid_request'
        WHEN coalesce(x->>'consent_at', '')
                 !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$'
             OR tb_safe_date(left(x->>'consent_at', 10)) IS NULL THEN 'invalid_request'
        WHEN coalesce(x->>'kind', '') NOT IN ('move', 'introduce') THEN 'invalid_request'
        WHEN coalesce(length(x->>'name'), 0) = 0 THEN 'invalid_request'
        WHEN tb_peer_number(x->>'member', 18) IS NULL THEN 'invalid_request'
        WHEN coalesce(x->>'balance_minutes', '') !~ '^-?[0-9]{1,9}$'
             OR (x->>'kind' = 'introduce' AND x->>'balance_minutes' <> '0') THEN 'invalid_request'
        WHEN EXISTS (SELECT 1 FROM tb_referral_limits() l
                      WHERE length(x->>l.field) > l.most OR NOT tb_plain(x->>l.field)
                         OR (NOT l.lines AND x->>l.field ~ E'[\\n\\t]'))
             OR coalesce(x->>'district', '') !~ '^([A-Z]{1,2}[0-9][0-9A-Z]?)?$' THEN 'invalid_request'
    END
$$;

-- The member fields of a referral message's items taken out, for those
-- whose ids are named (ids), or those at the places named (at, from 1):
-- each keeps only its id, and the envelope goes to its hash
-- (tb_referral_erase). NULL when the body carries none of them.
CREATE FUNCTION tb_referral_redacted(body jsonb, ids text[], at bigint[] DEFAULT '{}')
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN bool_or(hit) THEN
               jsonb_set(body, '{items}', jsonb_agg(CASE WHEN hit
                                                         THEN jsonb_build_object('referral_id', x->'referral_id')
                                                         ELSE x END ORDER BY n))
           END
      FROM (SELECT x, n, coalesce(body->>'kind' = 'referral'
                                  AND (x->>'referral_id' = ANY (ids) OR n = ANY (at))
                                  AND x <> jsonb_build_object('referral_id', x->'referral_id'),
                                  false) AS hit
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                             THEN body->'items' ELSE '[]' END)
                   WITH ORDINALITY AS t(x, n)) i
$$;

-- At the receiving bank, inside tb_fed_apply: take in referrals. Each is
-- kept open for a coordinator, until it expires; or refused whole and
-- answered so, nothing of it stored, the message kept without its fields.
-- One seen before is not taken again, nor its fields kept twice. A peer
-- may leave at most max_open_claims open, and send as many a day. Never
-- raises.
CREATE FUNCTION tb_on_referral(from_peer text, body jsonb, seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers := (SELECT p FROM fed_peers p WHERE p.peer = from_peer);
    lim fed_limits := (SELECT l FROM fed_limits l);
    item jsonb;
    n bigint;
    why text;
    dropped bigint[] := '{}';
    answers jsonb := '[]';
    room int := coalesce(lim.max_open_claims, 1000) - greatest(
                    (SELECT count(*) FROM referrals r
                      WHERE r.peer = from_peer AND r.side = 'receiving' AND r.state = 'open'),
                    (SELECT count(*) FROM referrals r
                      WHERE r.peer = from_peer AND r.side = 'receiving'
                        AND r.created_at > now() - interval '1 day'));
BEGIN
    FOR item, n IN SELECT * FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                                           THEN body->'items' ELSE '[]' END)
                            WITH ORDINALITY LOOP
        IF jsonb_typeof(item) <> 'object' THEN
            CONTINUE;
        END IF;
        IF tb_peer_id(from_peer, item->>'referral_id', 'r')
           AND EXISTS (SELECT 1 FROM referrals r WHERE r.referral_id = item->>'referral_id'
                                                   AND r.peer = from_peer AND r.side = 'receiving') THEN
            dropped := dropped || n;
            CONTINUE;
        END IF;
        why := CASE WHEN NOT tb_peer_id(from_peer, item->>'referral_id', 'r')
                    THEN 'invalid_request' END;
        why := coalesce(why, tb_rule_bank(peer.kind, peer.clearing_account, peer.exchanges),
                        tb_referral_refusal(from_peer, item),
                        CASE WHEN room <= 0 THEN 'too_many_open' END);
        IF why IS NOT NULL THEN
            dropped := dropped || n;
            answers := answers || jsonb_build_object(
                'referral_id', left(coalesce(item->>'referral_id', ''), 80), 'state', 'refused',
                'member', 0, 'reason', why, 'message', '', 'decided_on', current_date::text);
            CONTINUE;
        END IF;
        room := room - 1;
        INSERT INTO referrals (referral_id, side, peer, kind, state, remote_member, reason,
                               shared, consent_how, consent_notes, consent_by, consent_at,
                               details, record, balance_minutes, expires_at, received_seq,
                               recorded_by)
        SELECT item->>'referral_id', 'receiving', from_peer, item->>'kind', 'open',
               (item->>'member')::bigint, nullif(item->>'reason', ''),
               ARRAY(SELECT jsonb_array_elements_text(item->'shared')), item->>'consent_how',
               (item->>'consent_notes')::boolean, coalesce(item->>'consent_by', ''),
               (item->>'consent_at')::timestamptz,
               (SELECT jsonb_object_agg(f, item->>f) FROM unnest(tb_referral_fields()) f
                 WHERE coalesce(item->>f, '') <> ''),
               CASE WHEN jsonb_typeof(item->'record') = 'object' THEN jsonb_build_object(
                   'joined_on', tb_safe_date(item->'record'->>'joined_on'),
                   'exchanges_given', tb_peer_number(item->'record'->>'exchanges_given', 9),
                   'exchanges_received', tb_peer_number(item->'record'->>'exchanges_received', 9),
                   'minutes_given', tb_peer_number(item->'record'->>'minutes_given', 12),
                   'minutes_received', tb_peer_number(item->'record'->>'minutes_received', 12)) END,
               (item->>'balance_minutes')::bigint,
               now() + make_interval(days => lim.referral_expire_days), seq, from_peer;
    END LOOP;
    IF cardinality(dropped) = 0 THEN
        RETURN CASE WHEN jsonb_array_length(answers) > 0
                    THEN jsonb_build_object('referral_answer', answers) ELSE '{}' END;
    END IF;
    -- Nothing of a referral refused or seen before is kept: the message
    -- without its fields.
    RETURN jsonb_build_object('referral_answer', answers,
                              '_kept', coalesce(tb_referral_redacted(body, '{}', dropped), body));
END $$;

-- At the receiving bank: a referral decided otherwise than accepted loses
-- what it carried, here and in the message that carried it (redacted to
-- its hash, as an erasure leaves it), and the other bank's member number.
CREATE FUNCTION tb_referral_erase(r referrals) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE referrals SET details = NULL, record = NULL, reason = NULL, remote_member = NULL,
                         erased_at = now()
     WHERE id = r.id;
    UPDATE fed_inbox i SET body = tb_referral_redacted(i.body, ARRAY[r.referral_id]), envelope = ''
     WHERE i.peer = r.peer AND i.seq = r.received_seq
       AND tb_referral_redacted(i.body, ARRAY[r.referral_id]) IS NOT NULL;
END $$;

-- A referral decided at the receiving bank: its state, and for any state
-- but accepted its fields erased. Returns the answer for the referring
-- bank, which the caller queues (tb_referral_answer) or, applying a
-- peer's messages, hands back as a reply.
CREATE FUNCTION tb_referral_decided(r referrals, new_state text, actor text, words text,
                                    account bigint, transfer bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE referrals
       SET state = new_state, decided_by = actor, decided_at = now(), answer = words,
           member_account = account, transfer_id = transfer,
           details = CASE WHEN new_state = 'accepted' THEN NULL ELSE details END
     WHERE id = r.id;
    IF new_state <> 'accepted' THEN
        PERFORM tb_referral_erase(r);
    END IF;
    RETURN jsonb_build_object(
        'referral_id', r.referral_id, 'state', new_state,
        'member', coalesce((SELECT number FROM members WHERE account_id = account), 0),
        'reason', '', 'message', coalesce(words, ''), 'decided_on', current_date::text);
END $$;

-- Decides a referral and queues its answer (sent_seq); the referral as it
-- is now.
CREATE FUNCTION tb_referral_answer(r referrals, new_state text, actor text, words text,
                                   account bigint, transfer bigint) RETURNS referrals
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb := tb_referral_decided(r, new_state, actor, words, account, transfer);
BEGIN
    UPDATE referrals
       SET sent_seq = tb_fed_enqueue(r.peer, jsonb_build_object(
               'kind', 'referral_answer', 'items', jsonb_build_array(item))::json)
     WHERE id = r.id RETURNING * INTO r;
    RETURN r;
END $$;

-- An open referral of this bank's side (referring or receiving), locked.
CREATE FUNCTION tb_referral_open(want text, side_ text) RETURNS referrals
LANGUAGE plpgsql AS $$
DECLARE
    r referrals;
BEGIN
    SELECT * INTO r FROM referrals WHERE referral_id = want AND side = side_ FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('referral_not_found', format('there is no referral %s %s this bank',
                                                      want, CASE side_ WHEN 'receiving'
                                                                 THEN 'made to' ELSE 'made by' END));
    END IF;
    IF r.state <> 'open' THEN
        PERFORM tb_raise('referral_already_decided', format('referral %s was already %s',
                                                            want, r.state));
    END IF;
    RETURN r;
END $$;
-- A move's balance posted at either bank, against its clearing account
-- for the other: the balance leaves the member at the referring bank and
-- reaches them at the receiving one, in credit or owing. Both banks post
-- the same minutes, so the two clearing accounts mirror. The accounts are
-- locked by the caller; the rules were the receiving bank's to decide, and
-- its decision is final here.
CREATE FUNCTION tb_move_post(r referrals, acct bigint, clearing bigint, words text, day date,
                             actor text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    member_pays boolean := (r.balance_minutes > 0) = (r.side = 'referring');
    tid bigint;
BEGIN
    INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, description,
                           performed_on, recorded_by, idempotency_key, fingerprint, referral_id)
         VALUES ('move', CASE WHEN member_pays THEN acct ELSE clearing END,
                 CASE WHEN member_pays THEN clearing ELSE acct END, abs(r.balance_minutes),
                 'move', words, day, actor, 'referral:' || r.referral_id, r.referral_id, r.id)
      RETURNING id INTO tid;
    RETURN tid;
END $$;

-- At the receiving bank: a coordinator accepts (p: number, message). The
-- member is made here from what was shared; a move's balance is posted
-- against the referring bank's clearing account, within this bank's rules:
-- a balance owed only with [referrals] accept_negative, and not below the
-- floor; a balance in credit only within the exposure limit with that bank.
CREATE FUNCTION tb_referral_accept(want text, p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r referrals := tb_referral_open(want, 'receiving');
    peer fed_peers := (SELECT f FROM fed_peers f WHERE f.peer = r.peer);
    clearing accounts;
    m jsonb;
    acct bigint;
    tid bigint;
    b bigint := r.balance_minutes;
BEGIN
    IF peer.peer IS NULL OR peer.clearing_account IS NULL THEN
        PERFORM tb_raise('peer_not_found', format('%s, which made referral %s, is no longer a '
                                                  'bank this bank is linked to', r.peer, want));
    END IF;
    IF NOT peer.exchanges THEN
        PERFORM tb_raise('not_exchanging', tb_not_exchanging_text(peer.peer));
    END IF;
    IF r.expires_at < now() THEN
        PERFORM tb_raise('referral_already_decided', format(
            'referral %s expired on %s; it is being erased', want, r.expires_at::date));
    END IF;
    IF r.kind = 'move' AND peer.diverged_at IS NOT NULL THEN
        PERFORM tb_raise('peer_diverged', format(
            'the books with %s have diverged; no balance moves until it is resolved', r.peer));
    END IF;
    IF r.kind = 'move' THEN
        SELECT * INTO clearing FROM accounts WHERE id = peer.clearing_account FOR UPDATE;
        IF b < 0 AND NOT (SELECT referral_accept_negative FROM fed_limits) THEN
            PERFORM tb_raise('balance_refused', format(
                'the member would arrive owing %s, and this bank takes no member owing hours '
                '([referrals] accept_negative = no); decline, or ask %s to settle the balance first',
                tb_hours(-b), r.peer));
        END IF;
        IF b < 0 AND b < default_floor THEN
            PERFORM tb_raise('below_floor', format(
                'the member would arrive owing %s, below this bank''s floor of %s',
                tb_hours(-b), tb_hours(default_floor)));
        END IF;
        IF b > 0 AND tb_rule_exposure(clearing.balance_minutes, b, clearing.floor_minutes)
                     IS NOT NULL THEN
            PERFORM tb_raise('exposure_limit', format(
                'the member''s %s would take what %s owes this bank past its limit of %s',
                tb_hours(b), r.peer, tb_hours(-clearing.floor_minutes)));
        END IF;
    END IF;
    m := tb_member_add(coalesce(r.details, '{}')
                       || jsonb_strip_nulls(jsonb_build_object('number', p->'number')), actor);
    acct := (SELECT account_id FROM members WHERE number = (m->>'number')::bigint);
    IF r.kind = 'move' AND b <> 0 THEN
        PERFORM tb_lock_accounts(ARRAY[acct, clearing.id]);
        tid := tb_move_post(r, acct, clearing.id, format('moved from %s, member %s there',
                                                         r.peer, r.remote_member),
                            current_date, actor);
    END IF;
    r := tb_referral_answer(r, 'accepted', actor, p->>'message', acct, tid);
    RETURN tb_referral_json(r);
END $$;

-- At the receiving bank: a coordinator declines (p: reason).
CREATE FUNCTION tb_referral_decline(want text, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN tb_referral_json(tb_referral_answer(tb_referral_open(want, 'receiving'), 'declined', actor,
                                               p->>'reason', NULL, NULL));
END $$;

-- At the receiving bank: referrals no coordinator decided in
-- [referrals] expire_days expire, erased. Returns how many.
CREATE FUNCTION tb_referrals_expire() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r referrals;
    n int := 0;
BEGIN
    FOR r IN SELECT * FROM referrals
              WHERE side = 'receiving' AND state = 'open' AND expires_at < now()
              ORDER BY id FOR UPDATE SKIP LOCKED LOOP
        PERFORM tb_referral_answer(r, 'expired', 'expiry', NULL, NULL, NULL);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- At the referring bank: the member withdrew consent. The other bank is
-- asked to withdraw and erase the referral; its answer settles it.
CREATE FUNCTION tb_referral_withdraw(want text, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r referrals := tb_referral_open(want, 'referring');
BEGIN
    -- A bank no longer in the register will not answer: the referral ends
    -- here, and a move's member is free. Should it come back with an answer
    -- it made before it left, that answer finds nothing open, and the
    -- federation audit shows what it posted.
    IF (SELECT removed_at FROM fed_peers WHERE peer = r.peer) IS NOT NULL THEN
        UPDATE referrals SET state = 'withdrawn', decided_by = actor, decided_at = now(),
                             withdraw_asked_at = now(),
                             answer = format('withdrawn here: %s is no longer in the network''s '
                                             'register', r.peer)
         WHERE id = r.id;
        UPDATE members SET status = 'active', updated_by = actor, updated_at = now()
         WHERE account_id = r.member_account AND status = 'moving';
        RETURN tb_referral_get(want);
    END IF;
    PERFORM tb_referral_ask_withdraw(r, format('withdrawn by %s', actor));
    RETURN tb_referral_get(want);
END $$;

-- Asks the other bank to withdraw and erase an open referral of ours,
-- once; why: our words for it.
CREATE FUNCTION tb_referral_ask_withdraw(r referrals, why text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF r.withdraw_asked_at IS NULL THEN
        PERFORM tb_fed_enqueue(r.peer, jsonb_build_object(
            'kind', 'referral_withdraw', 'items', jsonb_build_array(
                jsonb_build_object('referral_id', r.referral_id)))::json);
        UPDATE referrals SET withdraw_asked_at = now(), answer = why WHERE id = r.id;
    END IF;
END $$;

-- At the receiving bank, inside tb_fed_apply: the referring bank withdrew.
-- An open referral is withdrawn and erased, and the answer says so; one
-- decided already stays as it is (its answer went before).
CREATE FUNCTION tb_on_referral_withdraw(from_peer text, body jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r referrals;
    answers jsonb := '[]';
BEGIN
    FOR r IN SELECT * FROM referrals
              WHERE side = 'receiving' AND peer = from_peer AND state = 'open'
                AND referral_id = ANY (ARRAY(
                        SELECT x->>'referral_id'
                          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                                         THEN body->'items' ELSE '[]' END) x
                         WHERE jsonb_typeof(x) = 'object'))
              ORDER BY id FOR UPDATE LOOP
        answers := answers || tb_referral_decided(r, 'withdrawn', from_peer, NULL, NULL, NULL);
    END LOOP;
    RETURN CASE WHEN jsonb_array_length(answers) > 0
                THEN jsonb_build_object('referral_answer', answers) ELSE '{}' END;
END $$;

-- At the referring bank, inside tb_fed_apply: the other bank's answers,
-- each final. Accepted: the remote number kept, a move's balance posted
-- here (the same minutes the other bank posted, so the two clearing
-- accounts mirror) and the membership closed. Otherwise the referral ends
-- as answered, erased there (erased_seq: the signed answer that says so),
-- and a held member is active again. An answer to nothing open of ours
-- changes nothing. Never raises.
CREATE FUNCTION tb_on_referral_answer(from_peer text, body jsonb, seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    r referrals;
    st text;
    clearing bigint := (SELECT clearing_account FROM fed_peers WHERE peer = from_peer);
    tid bigint;
    day date;
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                                     THEN body->'items' ELSE '[]' END) LOOP
        CONTINUE WHEN jsonb_typeof(x) <> 'object';
        SELECT * INTO r FROM referrals
         WHERE referral_id = x->>'referral_id' AND side = 'referring' AND peer = from_peer
           AND state = 'open'
         FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        st := x->>'state';
        CONTINUE WHEN st IS NULL OR st NOT IN ('accepted', 'declined', 'withdrawn', 'expired',
                                               'refused');
        tid := NULL;
        -- Posted on the day the other bank posted it, so that both banks'
        -- months hold it (a day the peer could not have meant is today).
        day := tb_safe_date(x->>'decided_on');
        day := CASE WHEN day BETWEEN current_date - 2 AND current_date + 1 THEN day
                    ELSE current_date END;
        IF st = 'accepted' THEN
            IF r.kind = 'move' THEN
                PERFORM tb_lock_accounts(ARRAY[r.member_account, clearing]);
                IF r.balance_minutes <> 0 THEN
                    tid := tb_move_post(r, r.member_account, clearing,
                                        format('moved to %s, member %s there', from_peer,
                                               tb_peer_number(x->>'member', 18)),
                                        day, r.recorded_by);
                END IF;
                UPDATE members SET status = 'left', left_on = current_date,
                                   updated_by = 'referral ' || r.referral_id, updated_at = now()
                 WHERE account_id = r.member_account;
            END IF;
            -- A member erased since keeps nothing of the answer but its state.
            UPDATE referrals
               SET state = 'accepted',
                   remote_member = CASE WHEN NOT tb_erased(r.member_account)
                                        THEN tb_peer_number(x->>'member', 18) END,
                   answer = CASE WHEN NOT tb_erased(r.member_account)
                                 THEN tb_peer_words(x->>'message') ELSE answer END,
                   decided_by = from_peer, decided_at = now(), received_seq = seq,
                   transfer_id = tid
             WHERE id = r.id;
        ELSE
            UPDATE referrals SET state = st, refusal = CASE WHEN st = 'refused'
                                                            THEN tb_peer_reason(x->>'reason') END,
                                 answer = coalesce(tb_peer_words(x->>'message'), answer),
                                 decided_by = from_peer, decided_at = now(), received_seq = seq,
                                 erased_at = now(), erased_seq = seq
             WHERE id = r.id;
            UPDATE members SET status = 'active', updated_by = 'referral ' || r.referral_id,
                               updated_at = now()
             WHERE account_id = r.member_account AND status = 'moving';
        END IF;
    END LOOP;
    RETURN '{}';
END $$;

-- Where a member came from or went, for member show: the referrals
-- accepted that name them here.
CREATE FUNCTION tb_member_referrals(acct bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'referral', r.referral_id, 'kind', r.kind, 'side', r.side, 'bank', r.peer,
               'member', r.remote_member, 'on', r.decided_at::date,
               'text', CASE WHEN r.side = 'receiving' AND r.kind = 'move'
                                 THEN format('moved from %s, member %s there, on %s', r.peer,
                                             r.remote_member, r.decided_at::date)
                            WHEN r.side = 'receiving'
                                 THEN format('visiting from %s, member %s there, since %s', r.peer,
                                             r.remote_member, r.decided_at::date)
                            WHEN r.kind = 'move'
                                 THEN format('moved to %s, member %s there, on %s', r.peer,
                                             r.remote_member, r.decided_at::date)
                            ELSE format('also visiting %s, member %s there, since %s', r.peer,
                                        r.remote_member, r.decided_at::date) END)
               ORDER BY r.id), '[]')
      FROM referrals r WHERE r.member_account = acct AND r.state = 'accepted'
$$;

-- A member's erasure reaches their referrals: what each holds of them
-- (the reason, the record, the other bank's number) is cleared, and the
-- message that carried it redacted, here: the referral we received, or
-- the one we sent once the other bank has it. A referral still open (an
-- introduction: a member who is moving cannot have left) is withdrawn, and
-- the other bank erases it.
CREATE FUNCTION tb_referral_forget(acct bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r referrals;
BEGIN
    FOR r IN SELECT * FROM referrals WHERE member_account = acct ORDER BY id FOR UPDATE LOOP
        IF r.side = 'referring' AND r.state = 'open' THEN
            PERFORM tb_referral_ask_withdraw(r, 'the member was erased');
        END IF;
        UPDATE referrals SET details = NULL, record = NULL, reason = NULL, remote_member = NULL
         WHERE id = r.id;
        IF r.side = 'receiving' THEN
            UPDATE fed_inbox i
               SET body = tb_referral_redacted(i.body, ARRAY[r.referral_id]), envelope = ''
             WHERE i.peer = r.peer AND i.seq = r.received_seq
               AND tb_referral_redacted(i.body, ARRAY[r.referral_id]) IS NOT NULL;
        ELSIF r.sent_seq <= (SELECT out_acked FROM fed_acked a WHERE a.peer = r.peer) THEN
            UPDATE fed_outbox o
               SET body = tb_referral_redacted(o.body::jsonb, ARRAY[r.referral_id])::json,
                   envelope = ''
             WHERE o.peer = r.peer AND o.seq = r.sent_seq
               AND tb_referral_redacted(o.body::jsonb, ARRAY[r.referral_id]) IS NOT NULL;
        ELSE
            -- Not yet acknowledged, it may be sent again: redacted once it
            -- is (tb_fed_redact_waiting).
            INSERT INTO fed_redact_waiting (peer, seq, claims, contacts, referrals)
                 VALUES (r.peer, r.sent_seq, '{}', '{}', ARRAY[r.referral_id])
            ON CONFLICT (peer, seq) DO UPDATE
                SET referrals = fed_redact_waiting.referrals || excluded.referrals;
        END IF;
    END LOOP;
END $$;

-- Why a transfer may not be reversed while a member in it is moving: the
-- balance the other bank decided on is the one that travels.
CREATE FUNCTION tb_check_not_moving(accts bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m members;
BEGIN
    SELECT * INTO m FROM members WHERE account_id = ANY (accts) AND status = 'moving' LIMIT 1;
    IF FOUND THEN
        PERFORM tb_raise('member_moving', format(
            'member %s is moving to another bank (referral %s): their balance is held until '
            'it answers; withdraw the referral first', m.number,
            (SELECT referral_id FROM referrals WHERE member_account = m.account_id
                AND side = 'referring' AND state = 'open' AND kind = 'move')));
    END IF;
END $$;
