-- A bank restored from a backup, catching up with its peers. The tables:
-- migrations/014_recovery.sql and 015_recovery_fetch.sql; the messages:
-- RecoverRequest and RecoverPage in proto/federation.proto.
--
-- A peer's stream to us is simply sent again: the peer keeps its outbox,
-- and resends from what our hello says we applied. Our stream to it is the
-- half a restore loses: the peer applied messages we no longer hold. We
-- take them back from its inbox, hold them sealed again under the numbers
-- they had, and re-apply what they did here; until then we seal nothing
-- new for it, and apply nothing from it.

-- The first start after timebankd --restore (stamp: the restore's). Every
-- sequence jumps a billion (years of the busiest bank), past any number
-- the history lost since the restored point may have given (exchanges'
-- xids, claims', contacts' and referrals' ids, directory versions); new
-- members are numbered past member_floor, and the national body's
-- registers past register_floor; and every peer's stream is held until
-- its hello says whether we are behind it (tb_fed_behind). Once per stamp.
CREATE FUNCTION tb_restored(stamp_ text, target_ text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    gap CONSTANT bigint := 1000000000;
    member_gap CONSTANT bigint := 1000;
    sq record;
    n int := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM restores WHERE stamp = stamp_) THEN
        RETURN jsonb_build_object('stamp', stamp_, 'recorded', false);
    END IF;
    FOR sq IN SELECT schemaname, sequencename, last_value FROM pg_sequences
               WHERE schemaname = current_schema() LOOP
        PERFORM setval(format('%I.%I', sq.schemaname, sq.sequencename),
                       coalesce(sq.last_value, 0) + gap);
        n := n + 1;
    END LOOP;
    INSERT INTO restores (stamp, target, member_floor, register_floor)
         VALUES (stamp_, target_, coalesce((SELECT max(number) FROM members), 0) + member_gap,
                 -- a register's serial is one a bank keeps only if it is newer
                 coalesce((SELECT max(serial) FROM register_published), 0) + member_gap);
    UPDATE fed_peers p SET recovering_since = now(), recover_from = s.out_sealed + 1,
                           recover_to = NULL, recovered_at = NULL
      FROM fed_sealed s
     WHERE s.peer = p.peer AND p.removed_at IS NULL;
    -- A peer that told us we were behind before we knew we had been put back.
    UPDATE fed_peers SET diverged_at = NULL, diverged_reason = NULL
     WHERE diverged_reason LIKE 'it says it applied our messages up to %';
    RETURN jsonb_build_object('stamp', stamp_, 'recorded', true, 'sequences', n,
                              'member_floor', (SELECT member_floor FROM restores
                                                WHERE stamp = stamp_));
END $$;

-- A peer's hello says it applied our messages up to confirmed. Past the
-- last we hold sealed, this bank was put back to an earlier point: the
-- messages after it were signed here, sent and applied there, and are
-- lost here. Until they are held again (tb_fed_recover), nothing more is
-- sealed for that peer (tb_fed_unsealed), so that no sequence names a
-- second message. A stream held since a restore and not behind is
-- released. Answers {behind, held, released, stage}, or {behind,
-- diverged} when this bank was not restored.
CREATE FUNCTION tb_fed_behind(to_peer text, confirmed bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    held bigint := (SELECT out_sealed FROM fed_sealed WHERE peer = to_peer);
    p fed_peers;
BEGIN
    IF held IS NULL THEN
        RETURN jsonb_build_object('behind', false);
    END IF;
    IF confirmed <= held THEN
        UPDATE fed_peers SET recovering_since = NULL, recover_from = NULL
         WHERE peer = to_peer AND recovering_since IS NOT NULL AND recover_to IS NULL
        RETURNING * INTO p;
        -- Being taken back, and the peer now says it holds no more of ours
        -- than we do (it was put back too): there is nothing more to take,
        -- and what was moved past its last comes back to follow ours.
        IF EXISTS (SELECT 1 FROM fed_peers WHERE peer = to_peer AND recover_to IS NOT NULL
                                             AND recovered_at IS NULL) THEN
            PERFORM tb_fed_shift(to_peer, held + 1,
                                 held + 1 - coalesce((SELECT min(seq) FROM fed_outbox
                                                       WHERE peer = to_peer AND seq > held),
                                                     held + 1));
            UPDATE fed_peers SET recovered_at = now(), recover_to = held WHERE peer = to_peer;
        END IF;
        RETURN jsonb_build_object('behind', false, 'held', held, 'released', p.peer IS NOT NULL,
                                  'stage', (SELECT tb_fed_recovery_stage(f) FROM fed_peers f
                                             WHERE f.peer = to_peer));
    END IF;
    -- Only a bank that was put back says so (tb_restored, at the first start
    -- after timebankd --restore or --restored). Any other, and any claim
    -- past what a stream could hold, is a peer that does not agree with
    -- what we sent: the pair is diverged, and nothing is taken.
    IF NOT EXISTS (SELECT 1 FROM fed_peers WHERE peer = to_peer AND recovering_since IS NOT NULL)
       OR confirmed - held > 10000000 THEN
        UPDATE fed_peers
           SET diverged_at = coalesce(diverged_at, now()),
               diverged_reason = coalesce(diverged_reason, format(
                   'it says it applied our messages up to %s, but we sealed only %s, and this '
                   'bank was not put back to an earlier point (timebankd --restored says it was)',
                   confirmed, held))
         WHERE peer = to_peer;
        RETURN jsonb_build_object('behind', true, 'diverged', true, 'held', held,
                                  'to', confirmed);
    END IF;
    UPDATE fed_peers SET recover_from = coalesce(recover_from, held + 1),
                         recover_to = greatest(coalesce(recover_to, 0), confirmed),
                         recovering_since = coalesce(recovering_since, now()),
                         recovered_at = NULL
     WHERE peer = to_peer RETURNING * INTO p;
    RETURN jsonb_build_object('behind', true, 'held', held, 'from', p.recover_from,
                              'to', p.recover_to, 'since', p.recovering_since,
                              'stage', 'fetching');
END $$;

-- waiting (for the peer's hello), fetching (our messages back), agreeing
-- (held again; the peer's next checkpoint must agree), or NULL.
CREATE FUNCTION tb_fed_recovery_stage(p fed_peers) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p.recovering_since IS NULL THEN NULL
                WHEN p.recover_to IS NULL THEN 'waiting'
                WHEN p.recovered_at IS NULL THEN 'fetching'
                ELSE 'agreeing' END
$$;

CREATE FUNCTION tb_fed_recovery_json(p fed_peers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p.recovering_since IS NOT NULL THEN jsonb_build_object(
               'from', p.recover_from, 'to', p.recover_to, 'since', p.recovering_since,
               'stage', tb_fed_recovery_stage(p),
               'held', (SELECT out_sealed FROM fed_sealed s WHERE s.peer = p.peer)) END
$$;

-- What a recovery from the peer could not bring back, oldest first.
CREATE FUNCTION tb_fed_recovery_lost_json(for_peer text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('from', seq_from, 'to', seq_to, 'what', what,
                                                 'noted_at', noted_at) ORDER BY seq_from, id),
                    '[]')
      FROM (SELECT * FROM fed_recovery_lost WHERE peer = for_peer
             ORDER BY seq_from DESC, id DESC LIMIT 100) l
$$;

-- At the peer: the asker's own messages, as we applied them, after its
-- sequence after: {applied, messages: [{seq, hash, envelope}]}, the
-- envelope empty where an erasure redacted it: at most lim (200), and
-- within 640 KiB of envelopes past the first. Those deleted after
-- inbox_keep_days are absent (the last is always kept).
CREATE FUNCTION tb_fed_recover_page(for_peer text, after bigint, lim int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'applied', (SELECT in_applied FROM fed_peers WHERE peer = for_peer),
        'messages', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'seq', i.seq, 'hash', encode(i.hash, 'hex'),
                                  'envelope', encode(coalesce(i.envelope, ''), 'hex'))
                                  ORDER BY i.seq)
                                FROM (SELECT *, sum(octet_length(coalesce(envelope, '')))
                                                    OVER (ORDER BY seq)
                                                - octet_length(coalesce(envelope, '')) AS before
                                        FROM (SELECT * FROM fed_inbox
                                               WHERE peer = for_peer AND seq > after
                                               ORDER BY seq
                                               LIMIT least(greatest(lim, 1), 200)) l) i
                               -- the first always; then within 640 KiB of envelopes
                               WHERE i.before = 0 OR i.before + octet_length(coalesce(
                                         i.envelope, '')) <= 655360),
                             '[]'))
$$;

-- What names one item of a message: its xid, claim, contact or referral
-- id, an erasure's record; else the item itself.
CREATE FUNCTION tb_fed_item_id(x jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(x->>'xid', x->>'claim_id', x->>'contact_id', x->>'referral_id',
                    (x->>'record') || ':' || (x->>'id'), x::text)
$$;

-- Whether a message queued here and one taken back from a peer are the
-- same: of one kind, naming the same items in the same order. (Numbers
-- given after a restore start past the lost ones: tb_restored.)
CREATE FUNCTION tb_fed_same_message(a jsonb, b jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT a->>'kind' = b->>'kind'
           AND CASE WHEN jsonb_typeof(a->'items') = 'array'
                         AND jsonb_typeof(b->'items') = 'array'
                    THEN (SELECT array_agg(tb_fed_item_id(x) ORDER BY n)
                            FROM jsonb_array_elements(a->'items') WITH ORDINALITY AS t(x, n))
                         IS NOT DISTINCT FROM
                         (SELECT array_agg(tb_fed_item_id(x) ORDER BY n)
                            FROM jsonb_array_elements(b->'items') WITH ORDINALITY AS t(x, n))
                    ELSE (a - 'kind') = (b - 'kind') END
$$;

-- Notes what a recovery could not bring back, one range per run of
-- sequences with the same words; returns {peer, from, to, what}.
CREATE FUNCTION tb_fed_recovery_note(to_peer text, seq_from_ bigint, seq_to_ bigint,
                                     what_ text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fed_recovery_lost SET seq_to = seq_to_
     WHERE id = (SELECT max(id) FROM fed_recovery_lost WHERE peer = to_peer)
       AND seq_to = seq_from_ - 1 AND what = what_;
    IF NOT FOUND THEN
        INSERT INTO fed_recovery_lost (peer, seq_from, seq_to, what)
             VALUES (to_peer, seq_from_, seq_to_, what_);
    END IF;
    RETURN jsonb_build_object('peer', to_peer, 'from', seq_from_, 'to', seq_to_, 'what', what_);
END $$;

-- Our messages queued and not yet sealed for a peer, from from_seq on,
-- moved by shift in their order, with everything that names their number.
CREATE FUNCTION tb_fed_shift(to_peer text, from_seq bigint, shift bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF shift = 0 THEN
        RETURN;
    END IF;
    -- Twice, through negative numbers, so that no row meets another.
    UPDATE fed_outbox SET seq = -(seq + shift) WHERE peer = to_peer AND seq >= from_seq;
    UPDATE fed_outbox SET seq = -seq WHERE peer = to_peer AND seq < 0;
    UPDATE fed_redact_waiting SET seq = -(seq + shift) WHERE peer = to_peer AND seq >= from_seq;
    UPDATE fed_redact_waiting SET seq = -seq WHERE peer = to_peer AND seq < 0;
    UPDATE fed_peers SET out_next_seq = out_next_seq + shift WHERE peer = to_peer;
    UPDATE xb_exchanges SET proposed_seq = proposed_seq + shift
     WHERE peer = to_peer AND side = 'payer' AND proposed_seq >= from_seq;
    -- a decided exchange, claim or contact changes only so (tb_xb_guard,
    -- tb_request_guard)
    PERFORM set_config('tb.answer_parts', 'on', true);
    PERFORM set_config('tb.renumber', 'on', true);
    UPDATE xb_exchanges SET answer_seq = answer_seq + shift
     WHERE peer = to_peer AND side = 'earner' AND answer_seq >= from_seq;
    UPDATE xb_claims SET sent_seq = sent_seq + shift WHERE peer = to_peer AND sent_seq >= from_seq;
    UPDATE dir_contacts SET sent_seq = sent_seq + shift
     WHERE peer = to_peer AND sent_seq >= from_seq;
    PERFORM set_config('tb.answer_parts', 'off', true);
    PERFORM set_config('tb.renumber', 'off', true);
    UPDATE referrals SET sent_seq = sent_seq + shift WHERE peer = to_peer AND sent_seq >= from_seq;
    UPDATE fed_reports_sent SET sent_seq = sent_seq + shift
     WHERE peer = to_peer AND sent_seq >= from_seq;
END $$;

-- Messages queued here that are in the way of those taken back, from
-- from_seq on, go after the peer's last (last_seq), in their order.
CREATE FUNCTION tb_fed_renumber(to_peer text, from_seq bigint, last_seq bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM fed_outbox
                WHERE peer = to_peer AND seq BETWEEN from_seq AND last_seq) THEN
        PERFORM tb_fed_shift(to_peer, from_seq, last_seq + 1 - from_seq);
    END IF;
END $$;

-- What one of our messages taken back did here, done again where this
-- bank lost it: our proposals (rebuilt from their sender_note, which the
-- daemon opened into notes; the coordinator's words were never sent, and
-- are not known), our answers to the peer's proposals (kept
-- until the peer sends the proposals again: tb_xb_recovered), our claims
-- and referrals, our decisions on the peer's claims and contact requests. What cannot be done
-- again is noted. Returns the notes.
CREATE FUNCTION tb_fed_readopt(to_peer text, s bigint, m jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    body jsonb := m->'body';
    x jsonb;
    note jsonb;
    pm members;
    lost jsonb := '[]';
    missing text[] := '{}';
BEGIN
    IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
        RETURN jsonb_build_array(tb_fed_recovery_note(to_peer, s, s, coalesce(m->>'why', format(
            'redacted at %s by an erasure: what it carried is not known here', to_peer))));
    END IF;
    CASE body->>'kind'
    WHEN 'xb_propose' THEN
        FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
            CONTINUE WHEN EXISTS (SELECT 1 FROM xb_exchanges WHERE xid = x->>'xid');
            note := m->'notes'->(x->>'xid');
            pm := NULL;
            SELECT * INTO pm FROM members WHERE number = (note->>'payer')::bigint;
            IF pm.account_id IS NULL OR NOT tb_peer_id((SELECT bank_id FROM fed_limits),
                                                       x->>'xid', '') THEN
                lost := lost || tb_fed_recovery_note(to_peer, s, s, format(
                    'exchange %s, %s with %s member %s on %s: %s', x->>'xid',
                    tb_hours((x->>'minutes')::bigint), to_peer, x->>'earner',
                    x->>'performed_on',
                    CASE WHEN note IS NULL THEN 'its payer is not known here (proposed before '
                                                'proposals carried a sender note, or sealed '
                                                'with a key this bank no longer holds)'
                         ELSE format('its payer, member %s, is not here', note->>'payer') END));
                CONTINUE;
            END IF;
            PERFORM 1 FROM accounts WHERE id = pm.account_id FOR UPDATE;
            UPDATE accounts SET pending_minutes = pending_minutes + (x->>'minutes')::bigint
             WHERE id = pm.account_id;
            INSERT INTO xb_exchanges (id, xid, side, peer, member_account, remote_member, minutes,
                                      category, description, performed_on, state, recorded_by,
                                      proposed_seq, reverses, claim, contact)
                 VALUES (split_part(x->>'xid', ':', 2)::bigint, x->>'xid', 'payer', to_peer,
                         pm.account_id, nullif((x->>'earner')::bigint, 0),
                         (x->>'minutes')::bigint, x->>'category',
                         'taken back from ' || to_peer || ' after a restore',
                         (x->>'performed_on')::date,
                         'pending', coalesce(nullif(note->>'recorded_by', ''),
                                             'recovered:' || to_peer),
                         s, nullif(x->>'reverses', ''), nullif(x->>'claim', ''),
                         nullif(x->>'contact', ''));
            -- It approved the peer's claim: so it is here again, now or
            -- when the peer sends the claim again.
            IF coalesce(x->>'claim', '') <> '' THEN
                PERFORM tb_fed_recovered_answer(to_peer, x->>'claim', s, jsonb_build_object(
                    'xid', x->>'xid', 'by', note->>'recorded_by'));
            END IF;
        END LOOP;
    WHEN 'xb_claim' THEN
        -- Our claims: the claimant's number travels in them.
        INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes,
                               category, message, performed_on, state, recorded_by, sent_seq)
        SELECT c->>'claim_id', 'earner', to_peer, em.account_id,
               nullif((c->>'payer')::bigint, 0), (c->>'minutes')::bigint, c->>'category',
               nullif(c->>'message', ''), (c->>'performed_on')::date, 'open',
               'recovered:' || to_peer, s
          FROM jsonb_array_elements(body->'items') c
          JOIN members em ON em.number = (c->>'earner')::bigint
         WHERE NOT EXISTS (SELECT 1 FROM xb_claims k WHERE k.claim_id = c->>'claim_id');
        SELECT array_agg(c->>'claim_id') INTO missing
          FROM jsonb_array_elements(body->'items') c
         WHERE NOT EXISTS (SELECT 1 FROM xb_claims k WHERE k.claim_id = c->>'claim_id');
        IF cardinality(missing) > 0 THEN
            lost := lost || tb_fed_recovery_note(to_peer, s, s, format(
                'claims %s: their claimant is not here', array_to_string(missing, ', ')));
        END IF;
    WHEN 'referral' THEN
        -- Our referrals: a move's balance is posted here when the peer's
        -- answer comes again (tb_on_referral_answer), and its member is
        -- held meanwhile, as when it was sent.
        INSERT INTO referrals (id, referral_id, side, peer, kind, state, member_account, reason,
                               shared, consent_how, consent_notes, consent_by, consent_at,
                               record, balance_minutes, recorded_by, sent_seq)
        SELECT substr(split_part(r->>'referral_id', ':', 2), 2)::bigint, r->>'referral_id',
               'referring', to_peer, r->>'kind', 'open', m.account_id, nullif(r->>'reason', ''),
               ARRAY(SELECT jsonb_array_elements_text(r->'shared')), r->>'consent_how',
               coalesce((r->>'consent_notes')::boolean, false), r->>'consent_by',
               (r->>'consent_at')::timestamptz,
               CASE WHEN jsonb_typeof(r->'record') = 'object' THEN r->'record' END,
               coalesce((r->>'balance_minutes')::bigint, 0), r->>'consent_by', s
          FROM jsonb_array_elements(body->'items') r
          JOIN members m ON m.number = (r->>'member')::bigint
         WHERE tb_peer_id((SELECT bank_id FROM fed_limits), r->>'referral_id', 'r')
           AND r->>'kind' IN ('move', 'introduce')
           AND NOT EXISTS (SELECT 1 FROM referrals k WHERE k.referral_id = r->>'referral_id');
        UPDATE members m SET status = 'moving', updated_by = 'recovered:' || to_peer,
                             updated_at = now()
          FROM jsonb_array_elements(body->'items') r
         WHERE m.number = (r->>'member')::bigint AND r->>'kind' = 'move'
           AND m.status = 'active'
           AND EXISTS (SELECT 1 FROM referrals k
                        WHERE k.referral_id = r->>'referral_id' AND k.state = 'open'
                          AND k.sent_seq = s);
        SELECT array_agg(r->>'referral_id') INTO missing
          FROM jsonb_array_elements(body->'items') r
         WHERE NOT EXISTS (SELECT 1 FROM referrals k WHERE k.referral_id = r->>'referral_id');
        IF cardinality(missing) > 0 THEN
            lost := lost || tb_fed_recovery_note(to_peer, s, s, format(
                'referrals %s: their member is not here', array_to_string(missing, ', ')));
        END IF;
    WHEN 'xb_claim_answer', 'dir_contact_answer' THEN
        -- The peer's claims we declined, its contact requests we answered:
        -- so again, now or when it sends them again.
        FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
            PERFORM tb_fed_recovered_answer(to_peer, coalesce(x->>'claim_id', x->>'contact_id'),
                                            s, x);
        END LOOP;
    WHEN 'xb_answer' THEN
        INSERT INTO fed_recovered_answers (peer, id, seq, answer)
        SELECT to_peer, a->>'xid', s, a
          FROM jsonb_array_elements(body->'items') a
         WHERE NOT EXISTS (SELECT 1 FROM xb_exchanges x
                            WHERE x.xid = a->>'xid' AND x.side = 'earner')
        ON CONFLICT DO NOTHING;
    WHEN 'test', 'activity_report', 'report_answer' THEN
        NULL; -- nothing here rests on them (a report is made again when due)
    ELSE
        -- Our contact requests (who asked is not in them), answers on the
        -- peer's referrals, erasures: named, for a coordinator to make
        -- again where this bank lost them.
        SELECT array_agg(tb_fed_item_id(i) ORDER BY n) INTO missing
          FROM jsonb_array_elements(body->'items') WITH ORDINALITY AS t(i, n)
         WHERE NOT (body->>'kind' = 'dir_contact'
                    AND EXISTS (SELECT 1 FROM dir_contacts c WHERE c.contact_id = i->>'contact_id'));
        IF cardinality(missing) > 0 THEN
            lost := lost || tb_fed_recovery_note(to_peer, s, s, format(
                '%s (%s): %s applied it; what it did here is not made again%s', body->>'kind',
                array_to_string(missing, ', '), to_peer,
                CASE WHEN body->>'kind' = 'erasure'
                     THEN ': a member erased after the restored point is here again, '
                          'and is to be erased again' ELSE '' END));
        END IF;
    END CASE;
    RETURN lost;
END $$;

-- Our messages to a peer, taken back from it and checked by the daemon
-- (signed by us, to it, in order): [{seq, hash, envelope, prev, body,
-- notes, why}], envelope and body absent where it redacted one or we could
-- not open it (why). Each is held sealed again under its number, as sent
-- and acknowledged: one queued here and not yet sealed that is the same
-- message is that one; anything else queued in the way goes after the
-- peer's last. Where one is missing (the peer no longer keeps it) its
-- number is held, empty, and noted. Returns {held, done, lost}.
CREATE FUNCTION tb_fed_recover(to_peer text, msgs jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    p fed_peers;
    st fed_sealed;
    m jsonb;
    s bigint;
    q fed_outbox;
    lost jsonb := '[]';
    chained boolean := true; -- out_head is the hash of out_sealed's envelope
BEGIN
    -- Accounts before the peer's row, as everything that takes both does.
    PERFORM tb_lock_accounts(ARRAY(
        SELECT m.account_id FROM jsonb_array_elements(msgs) g,
               jsonb_each(CASE WHEN jsonb_typeof(g->'notes') = 'object' THEN g->'notes'
                               ELSE '{}' END) n
          JOIN members m ON m.number = (n.value->>'payer')::bigint));
    SELECT * INTO p FROM fed_peers WHERE peer = to_peer FOR NO KEY UPDATE;
    SELECT * INTO st FROM fed_sealed WHERE peer = to_peer FOR UPDATE;
    IF p.recover_to IS NULL OR p.recovered_at IS NOT NULL THEN
        PERFORM tb_raise('not_recovering', format('nothing is being recovered from %s', to_peer));
    END IF;
    FOR m IN SELECT * FROM jsonb_array_elements(msgs) LOOP
        s := (m->>'seq')::bigint;
        CONTINUE WHEN s <= st.out_sealed;  -- held already: a page asked for again
        EXIT WHEN s > p.recover_to;
        IF s > st.out_sealed + 1 THEN
            -- Not held here, and never numbered again: out_sealed passes them.
            PERFORM tb_fed_renumber(to_peer, st.out_sealed + 1, p.recover_to);
            lost := lost || tb_fed_recovery_note(to_peer, st.out_sealed + 1, s - 1, format(
                '%s no longer keeps them (inbox_keep_days): what they did here is not known',
                to_peer));
            chained := false;
        END IF;
        IF chained AND m->>'envelope' <> '' AND decode(m->>'prev', 'hex') <> st.out_head THEN
            PERFORM tb_raise('broken_chain', format(
                'message %s from %s does not follow the one we hold before it', s, to_peer));
        END IF;
        SELECT * INTO q FROM fed_outbox WHERE peer = to_peer AND seq = s;
        IF FOUND AND q.envelope IS NULL AND jsonb_typeof(m->'body') = 'object'
           AND tb_fed_same_message(q.body::jsonb, m->'body') THEN
            -- Queued before the restored point and sealed after it: the same message.
            UPDATE fed_outbox SET envelope = decode(m->>'envelope', 'hex'),
                                  hash = decode(m->>'hash', 'hex')
             WHERE peer = to_peer AND seq = s;
        ELSE
            PERFORM tb_fed_renumber(to_peer, s, p.recover_to);
            INSERT INTO fed_outbox (peer, seq, body, envelope, hash)
                 VALUES (to_peer, s, coalesce(m->'body', '{"kind": "redacted"}')::json,
                         decode(coalesce(m->>'envelope', ''), 'hex'), decode(m->>'hash', 'hex'));
            lost := lost || tb_fed_readopt(to_peer, s, m);
        END IF;
        st.out_sealed := s;
        st.out_head := decode(m->>'hash', 'hex');
        chained := true;
    END LOOP;
    UPDATE fed_sealed SET out_sealed = st.out_sealed, out_head = st.out_head
     WHERE peer = to_peer;
    UPDATE fed_acked SET out_acked = greatest(out_acked, st.out_sealed) WHERE peer = to_peer;
    UPDATE fed_peers SET out_next_seq = greatest(out_next_seq, st.out_sealed + 1),
                         recovered_at = CASE WHEN st.out_sealed >= p.recover_to THEN now() END
     WHERE peer = to_peer;
    RETURN jsonb_build_object('held', st.out_sealed, 'to', p.recover_to,
                              'done', st.out_sealed >= p.recover_to, 'lost', lost);
END $$;

-- Our decision on a claim or contact request of the peer's, taken back
-- from it: applied to it if we hold it, else kept until the peer sends it
-- again (tb_fed_request_recovered).
CREATE FUNCTION tb_fed_recovered_answer(to_peer text, cid text, s bigint, answer jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fed_recovered_answers (peer, id, seq, answer) VALUES (to_peer, cid, s, answer)
    ON CONFLICT DO NOTHING;
    PERFORM tb_fed_request_recovered(to_peer, cid);
END $$;

-- A claim or contact request of the peer's we hold, open, that we decided
-- before a restore (fed_recovered_answers): decided so again, and not
-- answered again. Called when the request comes (tb_on_xb_claim,
-- tb_on_dir_contact) and when the decision is taken back. Whether it was.
CREATE FUNCTION tb_fed_request_recovered(from_peer text, rid text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ra fed_recovered_answers;
    claim boolean := EXISTS (SELECT 1 FROM xb_claims
                              WHERE claim_id = rid AND side = 'payer' AND peer = from_peer
                                AND state = 'open');
BEGIN
    IF NOT claim AND NOT EXISTS (SELECT 1 FROM dir_contacts
                                  WHERE contact_id = rid AND side = 'provider'
                                    AND peer = from_peer AND state = 'open') THEN
        RETURN false;
    END IF;
    DELETE FROM fed_recovered_answers r WHERE r.peer = from_peer AND r.id = rid
    RETURNING * INTO ra;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF claim THEN
        -- approved by the proposal that names it ({xid}), or declined
        UPDATE xb_claims
           SET state = CASE WHEN ra.answer ? 'xid' THEN 'approved' ELSE 'declined' END,
               xid = ra.answer->>'xid',
               reason = CASE WHEN NOT ra.answer ? 'xid'
                             THEN coalesce(nullif(ra.answer->>'reason', ''), 'declined') END,
               answer = nullif(ra.answer->>'message', ''),
               sent_seq = CASE WHEN NOT ra.answer ? 'xid' THEN ra.seq END,
               decided_by = coalesce(nullif(ra.answer->>'by', ''), 'recovered:' || from_peer),
               decided_at = now()
         WHERE claim_id = rid AND side = 'payer' AND peer = from_peer;
    ELSE
        UPDATE dir_contacts
           SET state = CASE WHEN (ra.answer->>'accepted')::boolean THEN 'accepted'
                            ELSE 'declined' END,
               reason = CASE WHEN NOT (ra.answer->>'accepted')::boolean
                             THEN coalesce(nullif(ra.answer->>'reason', ''), 'declined') END,
               answer = nullif(ra.answer->>'message', ''), sent_seq = ra.seq,
               decided_by = 'recovered:' || from_peer, decided_at = now()
         WHERE contact_id = rid AND side = 'provider' AND peer = from_peer;
    END IF;
    RETURN true;
END $$;

-- The peer's next checkpoint agrees with what we applied, after our
-- messages to it were held again: the recovery is over, and what waited
-- is sealed. (tb_fed_checkpoint_check.)
CREATE FUNCTION tb_fed_recovered(from_peer text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ra fed_recovered_answers;
BEGIN
    UPDATE fed_peers SET recovering_since = NULL, recover_from = NULL, recover_to = NULL
     WHERE peer = from_peer AND recover_to IS NOT NULL AND recovered_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- The peer has sent again all it had sent us: an answer of ours that
    -- no request came again for is named, and kept no longer.
    FOR ra IN DELETE FROM fed_recovered_answers r WHERE r.peer = from_peer RETURNING * LOOP
        PERFORM tb_fed_recovery_note(from_peer, ra.seq, ra.seq, format(
            'our answer on %s: %s did not send it again, so it is not made again here',
            ra.id, from_peer));
    END LOOP;
    RETURN true;
END $$;

-- At the earner's bank, proposals the peer sends again that we answered
-- before the restore (fed_recovered_answers): each is decided as our
-- answer said, which the peer applied, not afresh, and is not answered
-- again. Returns the message's other items, for the usual path.
CREATE FUNCTION tb_xb_recovered(from_peer text, body jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    ra fed_recovered_answers;
    rest jsonb := '[]';
    proposed record;
    orig xb_exchanges;
    em members;
    claimed xb_claims;
    reason text;
    clearing bigint := (SELECT clearing_account FROM fed_peers WHERE peer = from_peer);
BEGIN
    IF jsonb_typeof(body->'items') IS DISTINCT FROM 'array'
       OR NOT EXISTS (SELECT 1 FROM fed_recovered_answers r WHERE r.peer = from_peer) THEN
        RETURN body;
    END IF;
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        DELETE FROM fed_recovered_answers r WHERE r.peer = from_peer AND r.id = x->>'xid'
        RETURNING * INTO ra;
        IF NOT FOUND OR NOT tb_peer_id(from_peer, x->>'xid', '') THEN
            rest := rest || jsonb_build_array(x);
            CONTINUE;
        END IF;
        CONTINUE WHEN EXISTS (SELECT 1 FROM xb_exchanges WHERE xid = x->>'xid');
        -- Not the proposal we answered: decided afresh (the peer keeps the
        -- first answer it applied), and named.
        IF coalesce(ra.answer->>'proposal', '') NOT IN ('', tb_xb_proposal_digest(x)) THEN
            PERFORM tb_fed_recovery_note(from_peer, ra.seq, ra.seq, format(
                'exchange %s: %s sent it again, but not as we answered it; it was decided '
                'afresh', x->>'xid', from_peer));
            rest := rest || jsonb_build_array(x);
            CONTINUE;
        END IF;
        reason := CASE WHEN (ra.answer->>'accepted')::boolean THEN NULL
                       ELSE coalesce(nullif(ra.answer->>'reason', ''), 'refused') END;
        em := NULL;
        claimed := NULL;
        IF coalesce(x->>'reverses', '') <> '' THEN
            SELECT * INTO orig FROM xb_exchanges
             WHERE xid = x->>'reverses' AND side = 'payer' AND peer = from_peer;
            SELECT * INTO em FROM members WHERE account_id = orig.member_account;
        ELSE
            proposed := tb_xb_proposed_earner(from_peer, x);
            em := proposed.em;
            claimed := proposed.claimed;
        END IF;
        IF reason IS NULL AND em.account_id IS NULL THEN
            PERFORM tb_fed_recovery_note(from_peer, ra.seq, ra.seq, format(
                'exchange %s, %s on %s, which we accepted: its earner (%s) is not here, '
                'so it is not posted; %s posted it', x->>'xid', tb_hours((x->>'minutes')::bigint),
                x->>'performed_on', coalesce(nullif(x->>'claim', ''), nullif(x->>'contact', ''),
                                             'member ' || (x->>'earner')), from_peer));
            CONTINUE;
        END IF;
        IF reason IS NULL THEN
            PERFORM tb_lock_accounts(ARRAY[clearing, em.account_id]);
        END IF;
        PERFORM tb_xb_earner_record(from_peer, x, em, claimed, reason, ra.seq);
    END LOOP;
    RETURN jsonb_set(body, '{items}', rest);
END $$;
