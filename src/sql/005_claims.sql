-- Migration 5: claims from the earner's side. A member of this bank helped a
-- member of a peer bank, who has not recorded it: this bank claims the
-- hours. The peer's broker approves (the peer then proposes the exchange as
-- usual, naming the claim) or declines. A claim moves no hours by itself.

CREATE TABLE xb_claims (
    id             bigserial PRIMARY KEY,
    claim_id       text NOT NULL UNIQUE,       -- "<earner bank>:c<id there>"
    side           text NOT NULL CHECK (side IN ('earner', 'payer')),
    peer           text NOT NULL REFERENCES fed_peers (peer),
    member_account bigint REFERENCES accounts (id),  -- our member, when known
    remote_member  bigint,        -- the other member's number at the peer
    minutes        bigint NOT NULL CHECK (minutes > 0),
    category       text NOT NULL,
    description    text,          -- ours only: never sent
    message        text,          -- the claimant's words for the other bank's broker
    performed_on   date NOT NULL,
    state          text NOT NULL CHECK (state IN ('open', 'approved', 'declined')),
    reason         text,          -- declined: declined, member_not_found, ...
    answer         text,          -- declined by a broker: the broker's words
    xid            text,          -- approved: the exchange it became
    sent_seq       bigint,        -- earner side: the message that carried it
    recorded_by    text NOT NULL,
    decided_by     text,
    idempotency_key text UNIQUE,
    fingerprint    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz
);
CREATE INDEX xb_claims_open ON xb_claims (side, id) WHERE state = 'open';
CREATE SEQUENCE xb_claims_number;

-- Once decided, a claim never changes.
CREATE FUNCTION tb_claim_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = 'open' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'claim_already_decided',
        DETAIL = format('claim %s was already %s', OLD.claim_id, OLD.state);
END $$;
CREATE TRIGGER xb_claim_decided BEFORE UPDATE OR DELETE ON xb_claims
    FOR EACH ROW EXECUTE FUNCTION tb_claim_guard();

-- The exchange a claim became, at either bank.
ALTER TABLE xb_exchanges ADD COLUMN claim text;

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
        IF done.fingerprint <> fp THEN
            PERFORM tb_raise('idempotency_conflict', format(
                'idempotency key %s was already used for a different request', key));
        END IF;
        RETURN tb_claim_json(done);
    END IF;
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = p->>'bank' AND kind = 'bank';
    IF NOT FOUND THEN
        PERFORM tb_raise('unknown_bank', format('%s is not a bank this bank is linked to',
                                                p->>'bank'));
    END IF;
    IF peer.diverged_at IS NOT NULL THEN
        PERFORM tb_raise('peer_diverged', format(
            'the books with %s have diverged; no new claims go there until it is resolved',
            peer.peer));
    END IF;
    IF (p->>'performed_on')::date > current_date THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    em := tb_active_member((p->>'earner')::bigint, 'earner');
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
                         decided_by = actor, decided_at = now()
     WHERE id = c.id RETURNING * INTO c;
    PERFORM tb_fed_enqueue(c.peer, jsonb_build_object('kind', 'xb_claim_answer', 'items',
        jsonb_build_array(jsonb_build_object('claim_id', c.claim_id, 'reason', 'declined',
                                             'message', c.answer))));
    RETURN tb_claim_json(c);
END $$;

-- At the payer's bank, inside tb_fed_apply: take in one claim. Returns an
-- answer when the claim is refused at once (no such member, malformed),
-- NULL when it waits for a broker or was seen before. Never raises.
CREATE FUNCTION tb_claim_on_receive(from_peer text, item jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    pm members;
    reason text;
    minutes bigint;
    earner bigint;
BEGIN
    IF coalesce(item->>'claim_id', '') !~ ('^' || from_peer || ':c[0-9]{1,18}$') THEN
        RETURN jsonb_build_object('claim_id', left(coalesce(item->>'claim_id', ''), 80),
                                  'reason', 'invalid_request', 'message', '');
    END IF;
    IF EXISTS (SELECT 1 FROM xb_claims WHERE claim_id = item->>'claim_id') THEN
        RETURN NULL;
    END IF;
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    IF coalesce(item->>'minutes', '') ~ '^[0-9]{1,12}$' THEN
        minutes := (item->>'minutes')::bigint;
    END IF;
    IF coalesce(item->>'earner', '') ~ '^[1-9][0-9]{0,17}$' THEN
        earner := (item->>'earner')::bigint;
    END IF;
    IF coalesce(item->>'payer', '') ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO pm FROM members WHERE number = (item->>'payer')::bigint;
    END IF;
    IF peer.kind <> 'bank' THEN
        reason := 'unknown_bank';
    ELSIF minutes IS NULL OR minutes <= 0 OR tb_safe_date(item->>'performed_on') IS NULL
          OR tb_safe_date(item->>'performed_on') > current_date + 1
          OR coalesce(item->>'category', '') !~ '^[^[:cntrl:]]{1,40}$'
          OR length(coalesce(item->>'message', '')) > 500 THEN
        reason := 'invalid_request';
    ELSIF pm.number IS NULL OR pm.erased_at IS NOT NULL THEN
        reason := 'member_not_found';
    END IF;
    IF reason = 'invalid_request' OR reason = 'unknown_bank' THEN
        -- Not kept: there is nothing a broker could do with it.
        RETURN jsonb_build_object('claim_id', item->>'claim_id', 'reason', reason,
                                  'message', '');
    END IF;
    INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes,
                           category, message, performed_on, state, reason, recorded_by,
                           decided_at)
         VALUES (item->>'claim_id', 'payer', from_peer, pm.account_id, earner, minutes,
                 item->>'category', nullif(item->>'message', ''),
                 tb_safe_date(item->>'performed_on'),
                 CASE WHEN reason IS NULL THEN 'open' ELSE 'declined' END, reason,
                 'federation:' || from_peer, CASE WHEN reason IS NOT NULL THEN now() END);
    IF reason IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('claim_id', item->>'claim_id', 'reason', reason, 'message', '');
END $$;

-- At the earner's bank, inside tb_fed_apply: the payer's bank declined.
CREATE FUNCTION tb_claim_on_answer(from_peer text, item jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE xb_claims SET state = 'declined',
                         reason = left(coalesce(nullif(item->>'reason', ''), 'declined'), 40),
                         answer = left(nullif(item->>'message', ''), 500),
                         decided_by = 'federation:' || from_peer, decided_at = now()
     WHERE claim_id = item->>'claim_id' AND side = 'earner' AND peer = from_peer
       AND state = 'open';
END $$;

-- Sending claims (tb_xb_batch), approvals arriving with a proposal
-- (tb_xb_on_propose) and applying claim messages (tb_fed_apply) are
-- brought in with the directory's contacts in migrations 6 and 7.
