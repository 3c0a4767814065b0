-- Requests that brokers decide between banks: claims (an earner's bank asks
-- the payer's bank to record hours its member gave) and contacts (a bank
-- asks for contact with the member behind another bank's shared item).

-- Once decided, a claim or a contact never changes (TG_ARGV[0]: which),
-- but for an erasure clearing its words (TG_ARGV[1]), and the number of
-- the message that carried it moving after a restore (tb_fed_shift).
CREATE FUNCTION tb_request_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.state = 'open'
                             OR tb_only_cleared(to_jsonb(OLD), to_jsonb(NEW), TG_ARGV[1]::text[])
                             OR (current_setting('tb.renumber', true) = 'on'
                                 AND to_jsonb(OLD) - 'sent_seq' = to_jsonb(NEW) - 'sent_seq'))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = TG_ARGV[0] || '_already_decided',
        DETAIL = format('%s %s was already %s', TG_ARGV[0],
                        to_jsonb(OLD)->>(TG_ARGV[0] || '_id'), OLD.state);
END $$;

CREATE TRIGGER xb_claim_decided BEFORE UPDATE OR DELETE ON xb_claims
    FOR EACH ROW
    EXECUTE FUNCTION tb_request_guard('claim', '{description,message,answer,fingerprint}');

CREATE TRIGGER dir_contact_decided BEFORE UPDATE OR DELETE ON dir_contacts
    FOR EACH ROW EXECUTE FUNCTION tb_request_guard('contact', '{message,answer,item_text}');

-- The other bank's broker's decline as it is kept here: its reason, a code,
-- and their words.
CREATE FUNCTION tb_peer_reason(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(t, '') ~ '^[a-z_]{1,40}$' THEN t ELSE 'declined' END
$$;

-- A broker's words from a peer, kept only as text a person could have
-- typed here (tb_plain).
CREATE FUNCTION tb_peer_words(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN tb_plain(t) THEN left(nullif(t, ''), 500) END
$$;

CREATE FUNCTION tb_claim_json(c xb_claims) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.claim_id, 'side', c.side, 'peer', c.peer, 'state', c.state,
        'reason', c.reason, 'answer', c.answer,
        'payer', CASE WHEN c.side = 'payer'
                      THEN (SELECT number FROM members WHERE account_id = c.member_account) END,
        'earner', CASE WHEN c.side = 'earner'
                       THEN (SELECT number FROM members WHERE account_id = c.member_account) END,
        'payer_label', CASE WHEN c.side = 'earner' THEN c.peer || ' member ' || c.remote_member
                            WHEN c.member_account IS NULL THEN 'no such member'
                            ELSE tb_account_label(c.member_account) END,
        'earner_label', CASE WHEN c.side = 'earner' THEN tb_account_label(c.member_account)
                             WHEN c.remote_member IS NULL THEN 'a ' || c.peer || ' member'
                             ELSE c.peer || ' member ' || c.remote_member END,
        'minutes', c.minutes, 'category', c.category, 'description', c.description,
        'message', c.message, 'performed_on', c.performed_on,
        'sent', c.side = 'payer' OR c.sent_seq IS NOT NULL,
        'recorded_by', c.recorded_by, 'decided_by', c.decided_by,
        'created_at', c.created_at, 'decided_at', c.decided_at,
        'exchange', (SELECT jsonb_build_object('id', x.xid, 'state', x.state,
                                               'reason', x.reason)
                       FROM xb_exchanges x WHERE x.xid = c.xid))
$$;

CREATE FUNCTION tb_claim_get(want text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    c xb_claims;
BEGIN
    SELECT * INTO c FROM xb_claims WHERE claim_id = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('claim_not_found', format('there is no claim %s', want));
    END IF;
    RETURN tb_claim_json(c);
END $$;

-- Claims made here (outgoing) or made of this bank's members (incoming),
-- newest first; open ones only unless every state is asked for.
CREATE FUNCTION tb_claim_list(direction text, only_open boolean, cursor bigint, lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT * FROM xb_claims
         WHERE side = CASE direction WHEN 'outgoing' THEN 'earner' ELSE 'payer' END
           AND (NOT only_open OR state = 'open')
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_claim_json(p) ORDER BY p.id DESC) FROM page p),
                          '[]'),
        'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page))
$$;

-- At the earner's bank: record a claim; the next tb_xb_batch sends it.
CREATE FUNCTION tb_claim_record(p jsonb, actor text, own_bank text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    done xb_claims;
    peer fed_peers;
    em members;
    c xb_claims;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(key));
    SELECT * INTO done FROM xb_claims WHERE idempotency_key = key;
    IF FOUND THEN
        PERFORM tb_same_request(key, done.fingerprint, fp, format('claim %s', done.claim_id));
        RETURN tb_claim_json(done);
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
            'the books with %s have diverged; no new claims go there until it is resolved',
            peer.peer));
    END IF;
    IF tb_rule_date((p->>'performed_on')::date) IS NOT NULL THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    em := tb_active_member((p->>'earner')::bigint, 'earner');
    PERFORM tb_safeguarding_guard(p->>'category', em, (p->>'performed_on')::date, NULL);
    INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes,
                           category, description, message, performed_on, state, recorded_by,
                           idempotency_key, fingerprint)
         VALUES (own_bank || ':c' || nextval('xb_claims_number'), 'earner', peer.peer,
                 em.account_id, (p->>'payer')::bigint, (p->>'minutes')::bigint,
                 p->>'category', p->>'description', p->>'message',
                 coalesce((p->>'performed_on')::date, current_date), 'open', actor, key, fp)
      RETURNING * INTO c;
    RETURN tb_claim_json(c);
END $$;

-- At the payer's bank: a broker approves. The exchange is recorded as if
-- the payer's bank had recorded it (reserved against the payer's floor,
-- proposed in the next batch, naming the claim). Approving twice, or after
-- a decline, is claim_already_decided.
CREATE FUNCTION tb_claim_approve(want text, p jsonb, actor text, default_floor bigint,
                                 own_bank text, max_minutes bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c xb_claims;
    x jsonb;
BEGIN
    SELECT * INTO c FROM xb_claims WHERE claim_id = want AND side = 'payer' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('claim_not_found', format('there is no claim %s made of this bank',
                                                   want));
    END IF;
    IF c.state <> 'open' THEN
        PERFORM tb_raise('claim_already_decided', format('claim %s was already %s',
                                                         want, c.state));
    END IF;
    IF c.minutes > max_minutes THEN
        PERFORM tb_raise('invalid_hours', format(
            'claim %s is for %s, over this bank''s maximum of %s per exchange; decline it',
            want, tb_hours(c.minutes), tb_hours(max_minutes)));
    END IF;
    x := tb_xb_record(jsonb_build_object(
             'bank', c.peer, 'payer', (SELECT number FROM members
                                        WHERE account_id = c.member_account),
             'earner', c.remote_member,
             'minutes', c.minutes, 'category', c.category,
             'description', coalesce(nullif(c.message, ''), 'claimed by a ' || c.peer || ' member'),
             'performed_on', least(c.performed_on, current_date),
             'idempotency_key', 'claim:' || c.claim_id),
         actor, default_floor, own_bank);
    UPDATE xb_exchanges SET claim = c.claim_id WHERE xid = x->>'id';
    UPDATE xb_claims SET state = 'approved', xid = x->>'id', decided_by = actor,
                         decided_at = now()
     WHERE id = c.id RETURNING * INTO c;
    RETURN tb_claim_json(c);
END $$;

-- At the payer's bank: a broker declines, with words for the claimant's bank.
CREATE FUNCTION tb_claim_decline(want text, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c xb_claims;
BEGIN
    SELECT * INTO c FROM xb_claims WHERE claim_id = want AND side = 'payer' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('claim_not_found', format('there is no claim %s made of this bank',
                                                   want));
    END IF;
    IF c.state <> 'open' THEN
        PERFORM tb_raise('claim_already_decided', format('claim %s was already %s',
                                                         want, c.state));
    END IF;
    UPDATE xb_claims SET state = 'declined', reason = 'declined', answer = p->>'reason',
                         decided_by = actor, decided_at = now(),
                         sent_seq = tb_fed_enqueue(c.peer, jsonb_build_object(
                             'kind', 'xb_claim_answer', 'items', jsonb_build_array(
                                 jsonb_build_object('claim_id', c.claim_id,
                                                    'reason', 'declined',
                                                    'message', p->>'reason')))::json)
     WHERE id = c.id RETURNING * INTO c;
    RETURN tb_claim_json(c);
END $$;

-- At the payer's bank, inside tb_fed_apply: take in claims. Each waits for
-- a broker, or is refused at once (no such member, malformed) with an
-- answer; one seen before is skipped. Only a claim kept keeps its words
-- (tb_inbox_kept). Never raises.
CREATE FUNCTION tb_on_xb_claim(from_peer text, body jsonb, seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers := (SELECT p FROM fed_peers p WHERE p.peer = from_peer);
    item jsonb;
    n int;
    kept int[] := '{}';
    pm members;
    reason text;
    answers jsonb := '[]';
    most bigint := tb_max_exchange();
    -- How many more open claims the peer may leave with us.
    room int := (SELECT max_open_claims FROM fed_limits)
                - (SELECT count(*) FROM xb_claims c
                    WHERE c.peer = from_peer AND c.side = 'payer' AND c.state = 'open');
BEGIN
    FOR item, n IN SELECT * FROM jsonb_array_elements(body->'items') WITH ORDINALITY LOOP
        SELECT * INTO pm FROM members WHERE number = tb_peer_number(item->>'payer', 18);
        IF NOT tb_peer_id(from_peer, item->>'claim_id', 'c') THEN
            PERFORM tb_note_refused(from_peer, 'claim', item->>'claim_id', pm.account_id);
            answers := answers || jsonb_build_object(
                'claim_id', left(coalesce(item->>'claim_id', ''), 80),
                'reason', 'invalid_request', 'message', '');
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM xb_claims WHERE claim_id = item->>'claim_id') THEN
            CONTINUE;
        END IF;
        reason := coalesce(tb_rule_bank(peer.kind, peer.clearing_account, peer.exchanges),
                           CASE WHEN tb_rule_hours(tb_peer_number(item->>'minutes', 12), most) IS NOT NULL
                                     OR length(item->>'message') > 500
                                     OR NOT tb_plain(item->>'message')
                                THEN 'invalid_request' END,
                           tb_rule_sent(item->>'performed_on', item->>'category'),
                           tb_rule_named(pm.number, pm.erased_at),
                           -- a member moving away leaves nothing open behind
                           CASE WHEN pm.status = 'moving' THEN 'member_inactive' END,
                           CASE WHEN room <= 0 THEN 'too_many_open' END);
        -- Kept only while open, for a broker: one refused on arrival is
        -- answered, its proof is the message in fed_inbox without its
        -- words, and so a peer can make us keep no more than
        -- max_open_claims.
        IF reason IS NULL THEN
            room := room - 1;
            kept := kept || n;
            INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member,
                                   minutes, category, message, performed_on, state,
                                   recorded_by, received_seq)
                 VALUES (item->>'claim_id', 'payer', from_peer, pm.account_id,
                         nullif(tb_peer_number(item->>'earner', 18), 0),
                         tb_peer_number(item->>'minutes', 12), item->>'category',
                         nullif(item->>'message', ''), tb_safe_date(item->>'performed_on'),
                         'open', 'federation:' || from_peer, seq);
            -- decided before a restore here: so again (recovery.sql)
            PERFORM tb_fed_request_recovered(from_peer, item->>'claim_id');
        ELSE
            PERFORM tb_note_refused(from_peer, 'claim', item->>'claim_id', pm.account_id);
            answers := answers || jsonb_build_object('claim_id', item->>'claim_id',
                                                     'reason', reason, 'message', '');
        END IF;
    END LOOP;
    RETURN jsonb_build_object('xb_claim_answer', answers) || tb_inbox_kept(body, kept);
END $$;

-- At the earner's bank, inside tb_fed_apply: the payer's bank declined; the
-- first answer to each claim still open decides it, and keeps its words
-- unless the claimant was erased. Any other keeps none (tb_inbox_kept).
CREATE FUNCTION tb_on_xb_claim_answer(from_peer text, body jsonb, seq bigint)
RETURNS jsonb LANGUAGE sql AS $$
    WITH a AS (
        SELECT DISTINCT ON (a->>'claim_id') a, n
          FROM jsonb_array_elements(body->'items') WITH ORDINALITY AS t(a, n)
         ORDER BY a->>'claim_id', n),
    decided AS (
        UPDATE xb_claims c
           SET state = 'declined', reason = tb_peer_reason(a.a->>'reason'),
               answer = CASE WHEN NOT tb_erased(c.member_account)
                             THEN tb_peer_words(a.a->>'message') END,
               received_seq = seq, decided_by = 'federation:' || from_peer, decided_at = now()
          FROM a
         WHERE c.claim_id = a.a->>'claim_id' AND c.side = 'earner' AND c.peer = from_peer
           AND c.state = 'open'
        RETURNING a.n, c.answer IS NOT NULL AS words)
    SELECT tb_inbox_kept(body, ARRAY(SELECT n::int FROM decided WHERE words))
$$;

CREATE FUNCTION tb_contact_json(c dir_contacts) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.contact_id, 'side', c.side, 'peer', c.peer, 'handle', c.handle,
        'member', (SELECT number FROM members WHERE account_id = c.member_account),
        'member_label', CASE WHEN c.member_account IS NULL THEN NULL
                             ELSE tb_account_label(c.member_account) END,
        'item', jsonb_build_object('kind', c.item_kind, 'category', c.item_category,
                                   'text', c.item_text),
        'message', c.message, 'state', c.state, 'reason', c.reason, 'answer', c.answer,
        'sent', c.side = 'provider' OR c.sent_seq IS NOT NULL,
        'recorded_by', c.recorded_by, 'decided_by', c.decided_by,
        'created_at', c.created_at, 'decided_at', c.decided_at,
        'exchanges', coalesce((SELECT jsonb_agg(jsonb_build_object('id', x.xid, 'state', x.state)
                                                ORDER BY x.id)
                                 FROM xb_exchanges x WHERE x.contact = c.contact_id), '[]'))
$$;

CREATE FUNCTION tb_contact_find(want text) RETURNS dir_contacts LANGUAGE plpgsql STABLE AS $$
DECLARE
    c dir_contacts;
BEGIN
    SELECT * INTO c FROM dir_contacts WHERE contact_id = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('contact_not_found', format('there is no contact %s', want));
    END IF;
    RETURN c;
END $$;

CREATE FUNCTION tb_contact_get(want text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT tb_contact_json(tb_contact_find(want))
$$;

CREATE FUNCTION tb_contact_list(direction text, only_open boolean, cursor bigint, lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT * FROM dir_contacts
         WHERE side = CASE direction WHEN 'outgoing' THEN 'requester' ELSE 'provider' END
           AND (NOT only_open OR state = 'open')
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_contact_json(p) ORDER BY p.id DESC) FROM page p),
                          '[]'),
        'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page))
$$;

-- At the requesting bank: ask for contact; the request travels in the same
-- transaction.
CREATE FUNCTION tb_contact_request(p jsonb, actor text, own_bank text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_active_member((p->>'for')::bigint, 'member');
    item dir_remote;
    n int;
    c dir_contacts;
    overridden boolean;
BEGIN
    IF p->>'bank' = own_bank OR (p->>'bank' IS NULL AND EXISTS (
           SELECT 1 FROM dir_items WHERE handle = p->>'handle')) THEN
        PERFORM tb_raise('own_item', format(
            '%s is this bank''s own item: arrange it here (tbctl offer list / request list)',
            p->>'handle'));
    END IF;
    SELECT count(*) INTO n FROM dir_remote
     WHERE handle = p->>'handle' AND (p->>'bank' IS NULL OR peer = p->>'bank');
    IF n = 0 THEN
        PERFORM tb_raise('item_not_found', format(
            'no peer bank shares an item %s (tbctl directory search finds them)',
            p->>'handle'));
    ELSIF n > 1 THEN
        PERFORM tb_raise('ambiguous_handle', format(
            'more than one bank shares an item %s; say which bank', p->>'handle'));
    END IF;
    SELECT * INTO item FROM dir_remote
     WHERE handle = p->>'handle' AND (p->>'bank' IS NULL OR peer = p->>'bank');
    IF NOT (SELECT exchanges FROM fed_peers WHERE peer = item.peer) THEN
        PERFORM tb_raise('not_exchanging', tb_not_exchanging_text(item.peer));
    END IF;
    -- Our member offers the help a peer's request is for.
    overridden := item.kind = 'request'
                  AND tb_safeguarding_guard(item.category, m, current_date,
                                            p->>'safeguarding_override');
    INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                              item_category, item_text, message, state, recorded_by)
         VALUES (own_bank || ':k' || nextval('dir_contacts_number'), 'requester', item.peer,
                 item.handle, m.account_id, item.kind, item.category, item.text,
                 p->>'message', 'open', actor)
      RETURNING * INTO c;
    IF overridden THEN
        PERFORM tb_safeguarding_overridden(m.account_id, item.category, NULL, c.contact_id,
                                           p->>'safeguarding_override', actor);
    END IF;
    UPDATE dir_contacts SET sent_seq = tb_fed_enqueue(c.peer, jsonb_build_object(
               'kind', 'dir_contact', 'items', jsonb_build_array(jsonb_build_object(
                   'contact_id', c.contact_id, 'handle', c.handle, 'message', c.message)))::json)
     WHERE id = c.id RETURNING * INTO c;
    RETURN tb_contact_json(c);
END $$;

-- At the providing bank: a broker accepts or declines, with words for the
-- requesting bank.
-- p: message, the broker's words; safeguarding_override, a coordinator's
-- reason to accept help that needs a check the member does not hold.
CREATE FUNCTION tb_contact_answer(want text, accept boolean, p jsonb, actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c dir_contacts;
    words text := p->>'message';
    em members;
BEGIN
    SELECT * INTO c FROM dir_contacts WHERE contact_id = want AND side = 'provider' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('contact_not_found', format(
            'there is no contact %s asked of this bank', want));
    END IF;
    IF c.state <> 'open' THEN
        PERFORM tb_raise('contact_already_decided', format('contact %s was already %s',
                                                           want, c.state));
    END IF;
    -- Our member gives the help an offer is for.
    IF accept AND c.item_kind = 'offer' THEN
        SELECT * INTO em FROM members WHERE account_id = c.member_account;
        IF tb_safeguarding_guard(c.item_category, em, current_date,
                                 p->>'safeguarding_override') THEN
            PERFORM tb_safeguarding_overridden(em.account_id, c.item_category, NULL,
                                               c.contact_id, p->>'safeguarding_override', actor);
        END IF;
    END IF;
    UPDATE dir_contacts SET state = CASE WHEN accept THEN 'accepted' ELSE 'declined' END,
                            reason = CASE WHEN accept THEN NULL ELSE 'declined' END,
                            answer = words, decided_by = actor, decided_at = now(),
                            sent_seq = tb_fed_enqueue(c.peer, jsonb_build_object(
                                'kind', 'dir_contact_answer', 'items', jsonb_build_array(
                                    jsonb_build_object('contact_id', c.contact_id,
                                                       'accepted', accept,
                                                       'reason', CASE WHEN accept THEN ''
                                                                      ELSE 'declined' END,
                                                       'message', words)))::json)
     WHERE id = c.id RETURNING * INTO c;
    RETURN tb_contact_json(c);
END $$;

-- At the providing bank, inside tb_fed_apply: take in contact requests.
-- Each waits for a broker, or is refused at once (malformed, or no such
-- shared item) with an answer; one seen before is skipped. Only a request
-- kept keeps its words (tb_inbox_kept).
CREATE FUNCTION tb_on_dir_contact(from_peer text, body jsonb, seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    n int;
    kept int[] := '{}';
    item dir_items;
    m members;
    reason text;
    answers jsonb := '[]';
    room int := (SELECT max_open_contacts FROM fed_limits)
                - (SELECT count(*) FROM dir_contacts c
                    WHERE c.peer = from_peer AND c.side = 'provider' AND c.state = 'open');
    -- A bank not exchanged with may still hold our items from before.
    exchanging boolean := coalesce((SELECT exchanges FROM fed_peers WHERE peer = from_peer),
                                   false);
BEGIN
    FOR x, n IN SELECT * FROM jsonb_array_elements(body->'items') WITH ORDINALITY LOOP
        SELECT * INTO item FROM dir_items WHERE handle = x->>'handle';
        SELECT * INTO m FROM members WHERE account_id = item.member_account;
        IF NOT tb_peer_id(from_peer, x->>'contact_id', 'k') THEN
            PERFORM tb_note_refused(from_peer, 'contact', x->>'contact_id', item.member_account);
            answers := answers || jsonb_build_object(
                'contact_id', left(coalesce(x->>'contact_id', ''), 80),
                'accepted', false, 'reason', 'invalid_request', 'message', '');
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM dir_contacts WHERE contact_id = x->>'contact_id') THEN
            CONTINUE;
        END IF;
        reason := CASE WHEN NOT exchanging THEN 'not_exchanging'
                       WHEN item.id IS NULL OR NOT tb_dir_shared(item, m.status)
                       THEN 'item_not_found'
                       WHEN NOT tb_plain(x->>'message') OR length(x->>'message') > 500
                       THEN 'invalid_request'
                       WHEN room <= 0 THEN 'too_many_open' END;
        IF reason IS NOT NULL THEN
            PERFORM tb_note_refused(from_peer, 'contact', x->>'contact_id', item.member_account);
            answers := answers || jsonb_build_object('contact_id', x->>'contact_id',
                'accepted', false, 'reason', reason, 'message', '');
            CONTINUE;
        END IF;
        room := room - 1;
        kept := kept || n;
        INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                                  item_category, item_text, message, state, recorded_by,
                                  received_seq)
             VALUES (x->>'contact_id', 'provider', from_peer, item.handle, item.member_account,
                     item.kind, item.category, item.text, coalesce(x->>'message', ''),
                     'open', 'federation:' || from_peer, seq);
        -- answered before a restore here: so again (recovery.sql)
        PERFORM tb_fed_request_recovered(from_peer, x->>'contact_id');
    END LOOP;
    RETURN jsonb_build_object('dir_contact_answer', answers) || tb_inbox_kept(body, kept);
END $$;

-- At the requesting bank, inside tb_fed_apply: the providing bank answered;
-- the first answer to each contact still open decides it, and keeps its
-- words unless our member was erased. Any other keeps none (tb_inbox_kept).
CREATE FUNCTION tb_on_dir_contact_answer(from_peer text, body jsonb, seq bigint)
RETURNS jsonb LANGUAGE sql AS $$
    WITH a AS (
        SELECT DISTINCT ON (a->>'contact_id') a, n,
               coalesce(a->>'accepted' = 'true', false) AS accepted
          FROM jsonb_array_elements(body->'items') WITH ORDINALITY AS t(a, n)
         ORDER BY a->>'contact_id', n),
    decided AS (
        UPDATE dir_contacts c
           SET state = CASE WHEN a.accepted THEN 'accepted' ELSE 'declined' END,
               reason = CASE WHEN NOT a.accepted THEN tb_peer_reason(a.a->>'reason') END,
               answer = CASE WHEN NOT tb_erased(c.member_account)
                             THEN tb_peer_words(a.a->>'message') END,
               received_seq = seq, decided_by = 'federation:' || from_peer, decided_at = now()
          FROM a
         WHERE c.contact_id = a.a->>'contact_id' AND c.side = 'requester'
           AND c.peer = from_peer AND c.state = 'open'
        RETURNING a.n, c.answer IS NOT NULL AS words)
    SELECT tb_inbox_kept(body, ARRAY(SELECT n::int FROM decided WHERE words))
$$;
