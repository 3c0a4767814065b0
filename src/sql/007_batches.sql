-- Migration 7: many exchanges in one transaction. The daemon gathers the
-- exchanges recorded through its API while a batch is in the database and
-- sends them together (tb_exchange_batch): one call, one commit, and each
-- keeps its own answer. Every writer that locks several accounts locks
-- them in account order first, so batches, channel applies and single
-- requests never wait on each other in a cycle.

-- Exchanges to record, each {"xb": bool, "actor": text, "p": the validated
-- request}: a list of {"ok": true, "result": ...} or {"ok": false, "code",
-- "detail"}, in order. A refusal undoes that exchange only.
CREATE FUNCTION tb_exchange_batch(items jsonb, default_floor bigint, own_bank text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    it jsonb;
    answers jsonb[] := '{}';
    code text;
    detail text;
BEGIN
    PERFORM 1 FROM accounts
     WHERE id IN (SELECT m.account_id FROM members m
                   WHERE m.number IN (SELECT (i->'p'->>'payer')::bigint
                                        FROM jsonb_array_elements(items) i
                                      UNION
                                      SELECT (i->'p'->>'earner')::bigint
                                        FROM jsonb_array_elements(items) i
                                       WHERE NOT (i->>'xb')::boolean))
     ORDER BY id FOR UPDATE;
    FOR it IN SELECT * FROM jsonb_array_elements(items) LOOP
        BEGIN
            answers := answers || jsonb_build_object('ok', true, 'result',
                CASE WHEN (it->>'xb')::boolean
                     THEN tb_xb_record(it->'p', it->>'actor', default_floor, own_bank)
                     ELSE tb_exchange_record(it->'p', it->>'actor', default_floor) END);
        EXCEPTION WHEN SQLSTATE 'TB000' THEN
            GET STACKED DIAGNOSTICS code = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
            answers := answers || jsonb_build_object('ok', false, 'code', code,
                                                     'detail', detail);
        END;
    END LOOP;
    RETURN to_jsonb(answers);
END $$;

-- ---- applying channel messages -----------------------------------------
--
-- Each kind of channel message has its handler tb_on_<kind>(from_peer,
-- body, answer_seq) returning the replies it queues, as {reply kind:
-- [items]}; tb_fed_apply runs them in order and queues the replies of the
-- whole run, an exchange batch's answers first (their sequence is known
-- in advance: answer_seq).

CREATE FUNCTION tb_on_xb_propose(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    answers jsonb[] := '{}';
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        answers := answers || tb_xb_on_propose(from_peer, x, answer_seq);
    END LOOP;
    RETURN jsonb_build_object('xb_answer', to_jsonb(answers));
END $$;

CREATE FUNCTION tb_on_xb_answer(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        PERFORM tb_xb_on_answer(from_peer, x);
    END LOOP;
    RETURN '{}';
END $$;

CREATE FUNCTION tb_on_xb_claim(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    refused jsonb;
    answers jsonb[] := '{}';
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        refused := tb_claim_on_receive(from_peer, x);
        IF refused IS NOT NULL THEN
            answers := answers || refused;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('xb_claim_answer', to_jsonb(answers));
END $$;

CREATE FUNCTION tb_on_xb_claim_answer(from_peer text, body jsonb, answer_seq bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        PERFORM tb_claim_on_answer(from_peer, x);
    END LOOP;
    RETURN '{}';
END $$;

CREATE FUNCTION tb_on_dir_contact(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
    refused jsonb;
    answers jsonb[] := '{}';
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        refused := tb_contact_on_receive(from_peer, x);
        IF refused IS NOT NULL THEN
            answers := answers || refused;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('dir_contact_answer', to_jsonb(answers));
END $$;

CREATE FUNCTION tb_on_dir_contact_answer(from_peer text, body jsonb, answer_seq bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    x jsonb;
BEGIN
    FOR x IN SELECT * FROM jsonb_array_elements(body->'items') LOOP
        PERFORM tb_contact_on_answer(from_peer, x);
    END LOOP;
    RETURN '{}';
END $$;

CREATE FUNCTION tb_on_test(from_peer text, body jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT '{}'::jsonb
$$;

-- The accounts a run of messages from a peer will change, locked in account
-- order: the clearing account, and our members named by proposals (their
-- numbers) and answers (our exchanges).
CREATE FUNCTION tb_fed_prelock(from_peer text, items jsonb) RETURNS void
LANGUAGE sql AS $$
    SELECT 1 FROM accounts
     WHERE id IN (SELECT clearing_account FROM fed_peers WHERE peer = from_peer)
        OR id IN (SELECT x.member_account
                    FROM jsonb_array_elements(items) i,
                         jsonb_array_elements(CASE WHEN i->'body'->>'kind' = 'xb_answer'
                                                   THEN i->'body'->'items' ELSE '[]' END) a,
                         xb_exchanges x
                   WHERE x.xid = a->>'xid' AND x.side = 'payer')
        OR id IN (SELECT m.account_id
                    FROM jsonb_array_elements(items) i,
                         jsonb_array_elements(CASE WHEN i->'body'->>'kind' = 'xb_propose'
                                                   THEN i->'body'->'items' ELSE '[]' END) p,
                         members m
                   WHERE p->>'earner' ~ '^[0-9]{1,18}$'
                     AND m.number = (p->>'earner')::bigint)
     ORDER BY id FOR UPDATE
$$;

CREATE OR REPLACE FUNCTION tb_fed_apply(from_peer text, items jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    item jsonb;
    s bigint;
    dup int := 0;
    err text;
    err_seq bigint;
    kind text;
    handler regprocedure;
    got jsonb;
    replies jsonb := '{}';
    reply_kind text;
    answer_seq bigint;
BEGIN
    -- NO KEY UPDATE: foreign-key checks (KEY SHARE) on this row must not wait.
    SELECT * INTO st FROM fed_peers WHERE peer = from_peer FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', from_peer));
    END IF;
    PERFORM tb_fed_prelock(from_peer, items);
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        s := (item->>'seq')::bigint;
        kind := item->'body'->>'kind';
        IF s <= st.in_applied THEN
            dup := dup + 1;
            CONTINUE;
        END IF;
        handler := CASE WHEN kind ~ '^[a-z_]{1,40}$'
                        THEN to_regprocedure('tb_on_' || kind || '(text, jsonb, bigint)') END;
        IF s <> st.in_applied + 1 THEN
            err := 'gap';
        ELSIF decode(item->>'prev', 'hex') <> st.in_head THEN
            err := 'broken_chain';
        ELSIF handler IS NULL THEN
            err := 'unknown_kind';
        ELSE
            IF kind = 'test' THEN
                INSERT INTO fed_test_received (peer, seq, n)
                     VALUES (from_peer, s, (item->'body'->>'n')::bigint);
            END IF;
            -- fed_peers is locked: the run's exchange answers will get this sequence.
            EXECUTE format('SELECT %s($1, $2, $3)', handler::regproc)
               INTO got USING from_peer, item->'body', st.out_next_seq;
            FOR reply_kind IN SELECT * FROM jsonb_object_keys(got) LOOP
                replies := jsonb_set(replies, ARRAY[reply_kind],
                                     coalesce(replies->reply_kind, '[]') || (got->reply_kind));
            END LOOP;
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
    IF jsonb_array_length(coalesce(replies->'xb_answer', '[]')) > 0 THEN
        answer_seq := tb_fed_enqueue(from_peer, jsonb_build_object(
                          'kind', 'xb_answer', 'items', replies->'xb_answer'));
        IF answer_seq <> st.out_next_seq THEN
            PERFORM tb_raise('internal_error', 'answer sequence moved during apply');
        END IF;
    END IF;
    FOR reply_kind IN SELECT k FROM jsonb_object_keys(replies) k WHERE k <> 'xb_answer'
                       ORDER BY k LOOP
        IF jsonb_array_length(replies->reply_kind) > 0 THEN
            PERFORM tb_fed_enqueue(from_peer, jsonb_build_object('kind', reply_kind,
                                                                 'items', replies->reply_kind));
        END IF;
    END LOOP;
    RETURN jsonb_build_object('applied', st.in_applied, 'duplicates', dup, 'error', err,
                              'error_seq', err_seq);
END $$;

-- ---- cheaper answers ----------------------------------------------------
--
-- Each recorded exchange is answered with its JSON, labels included. As SQL
-- functions these were planned afresh at every call and cost more than the
-- posting itself; in PL/pgSQL their plans are kept. Same results.

CREATE OR REPLACE FUNCTION tb_account_label(acct bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members;
    label text;
BEGIN
    SELECT * INTO m FROM members WHERE account_id = acct;
    IF FOUND THEN
        RETURN CASE WHEN m.erased_at IS NOT NULL THEN 'former member'
                    WHEN m.kind = 'organisation' THEN 'organisation ' || m.number
                    ELSE 'member ' || m.number END;
    END IF;
    SELECT peer || ' clearing account' INTO label FROM fed_peers WHERE clearing_account = acct;
    IF FOUND THEN
        RETURN label;
    END IF;
    SELECT CASE kind WHEN 'community' THEN 'community account'
                     ELSE kind || ' account ' || id END
      INTO label FROM accounts WHERE id = acct;
    RETURN label;
END $$;

CREATE OR REPLACE FUNCTION tb_exchange_json(tid bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t transfers;
BEGIN
    SELECT * INTO t FROM transfers WHERE id = tid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object(
        'id', t.id, 'kind', t.kind, 'state', 'settled',
        'payer', (SELECT number FROM members WHERE account_id = t.payer_account),
        'earner', (SELECT number FROM members WHERE account_id = t.earner_account),
        'payer_label', tb_account_label(t.payer_account),
        'earner_label', tb_account_label(t.earner_account),
        'minutes', t.minutes, 'category', t.category, 'description', t.description,
        'performed_on', t.performed_on, 'recorded_by', t.recorded_by,
        'idempotency_key', t.idempotency_key, 'created_at', t.created_at,
        'reverses', t.reverses, 'reason', t.reason, 'group_key', t.group_key,
        'reversed_by', (SELECT r.id FROM transfers r WHERE r.reverses = t.id));
END $$;

CREATE OR REPLACE FUNCTION tb_lock_accounts(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
END $$;

CREATE OR REPLACE FUNCTION tb_xb_json(x xb_exchanges) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
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
            'reversed_by', (SELECT r.xid FROM xb_exchanges r WHERE r.reverses = x.xid),
            'claim', x.claim, 'contact', x.contact);
END $$;
