-- The channel at this end, one stream per direction per peer: peers and
-- their keys, the outbox (queued, sealed, resent), applying a peer's
-- messages in order, acknowledgements and checkpoints. The tables and how
-- the stream works: migrations/001_baseline.sql.

CREATE FUNCTION tb_fed_peers(ids text[], kinds text[], limits bigint[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        PERFORM tb_fed_peer_add(ids[i], kinds[i], 'config', limits[i]);
    END LOOP;
    -- A peer the config named before and names no more is not linked now,
    -- unless the register in force lists it: it is the register's now
    -- (tb_register_peers), its directory kept.
    UPDATE fed_peers SET source = 'register'
     WHERE source = 'config' AND removed_at IS NULL AND NOT peer = ANY (ids)
       AND peer IN (SELECT x->>'id' FROM tb_register_in_force() h,
                         jsonb_array_elements(h.register->'banks') x);
    UPDATE fed_peers SET removed_at = now()
     WHERE source = 'config' AND removed_at IS NULL AND NOT peer = ANY (ids);
    PERFORM tb_fed_exchanges();
    RETURN coalesce((SELECT jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer) FROM fed_peers p
                      WHERE p.peer = ANY (ids)), '[]');
END $$;

-- A peer of the config or the register: its channel row and, a bank, its
-- clearing account with the exposure limit (minutes) as its floor.
CREATE FUNCTION tb_fed_peer_add(id text, kind_ text, source_ text, exposure bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    acct bigint;
BEGIN
    -- Rows are written only when something changes: a start or a register
    -- that changes nothing takes no lock the channel's applies wait for.
    INSERT INTO fed_peers (peer, kind, source) VALUES (id, kind_, source_)
    ON CONFLICT (peer) DO UPDATE
        SET kind = EXCLUDED.kind, source = EXCLUDED.source, removed_at = NULL
        WHERE (fed_peers.kind, fed_peers.source, fed_peers.removed_at)
              IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.source, NULL::timestamptz);
    IF kind_ = 'bank' THEN
        SELECT clearing_account INTO acct FROM fed_peers WHERE peer = id;
        IF acct IS NULL THEN
            INSERT INTO accounts (kind) VALUES ('clearing') RETURNING accounts.id INTO acct;
            UPDATE fed_peers SET clearing_account = acct WHERE peer = id;
        END IF;
        UPDATE accounts SET floor_minutes = -exposure
         WHERE accounts.id = acct AND floor_minutes IS DISTINCT FROM -exposure;
    END IF;
END $$;

-- Whom this bank exchanges hours with: every peer still linked, or those
-- of [federation] exchange_with. A peer it stops exchanging with no longer
-- sees our directory, nor we its (its items go, and come again from the
-- start if it is exchanged with again); what is pending with it stays.
CREATE FUNCTION tb_fed_exchanges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    only_ text[] := (SELECT exchange_with FROM fed_limits);
BEGIN
    WITH off AS (
        UPDATE fed_peers SET exchanges = false, dir_cursor = 0, dir_synced_at = NULL, dir_held = 0
         WHERE exchanges AND (removed_at IS NOT NULL OR NOT peer = ANY (coalesce(only_, ARRAY[peer])))
        RETURNING peer)
    DELETE FROM dir_remote r USING off WHERE r.peer = off.peer;
    UPDATE fed_peers SET exchanges = true
     WHERE NOT exchanges AND removed_at IS NULL AND peer = ANY (coalesce(only_, ARRAY[peer]));
END $$;

CREATE FUNCTION tb_fed_peer_json(p fed_peers) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s fed_sealed;
    a fed_acked;
BEGIN
    SELECT * INTO s FROM fed_sealed WHERE peer = p.peer;
    SELECT * INTO a FROM fed_acked WHERE peer = p.peer;
    RETURN jsonb_build_object(
        'peer', p.peer, 'kind', p.kind, 'source', p.source, 'removed', p.removed_at IS NOT NULL,
        'exchanges', p.exchanges, 'queued', p.out_next_seq - 1, 'sealed', s.out_sealed,
        'acked', a.out_acked, 'outbox_depth', p.out_next_seq - 1 - a.out_acked,
        'applied', p.in_applied, 'in_head', encode(p.in_head, 'hex'),
        'diverged', p.diverged_at IS NOT NULL, 'diverged_reason', p.diverged_reason,
        'recovering', tb_fed_recovery_json(p),
        'recovery_lost', tb_fed_recovery_lost_json(p.peer),
        'keys', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'key_id', k.key_id, 'public_key', encode(k.public_key, 'hex'),
                              'replaces', k.replaces,
                              'grace_seconds', greatest(0, extract(epoch FROM k.grace_until - now())),
                              'learned_seconds_ago', extract(epoch FROM now() - k.learned_at))
                              ORDER BY k.learned_at)
                            FROM fed_peer_keys k WHERE k.peer = p.peer), '[]'),
        'directory', CASE WHEN p.kind = 'bank' THEN jsonb_build_object(
                         'version', p.dir_cursor, 'synced_at', p.dir_synced_at,
                         'items', (SELECT count(*) FROM dir_remote r WHERE r.peer = p.peer))
                     END);
END $$;

CREATE FUNCTION tb_fed_peer_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fed_sealed (peer) VALUES (NEW.peer);
    INSERT INTO fed_acked (peer) VALUES (NEW.peer);
    RETURN NEW;
END $$;

CREATE TRIGGER fed_peer_rows AFTER INSERT ON fed_peers
    FOR EACH ROW EXECUTE FUNCTION tb_fed_peer_rows();

-- The limits of the config (see fed_limits), at start and reload.
CREATE FUNCTION tb_fed_limits_set(lim jsonb) RETURNS void LANGUAGE sql AS $$
    UPDATE fed_limits SET
        max_open_claims = coalesce((lim->>'max_open_claims')::int, max_open_claims),
        max_open_contacts = coalesce((lim->>'max_open_contacts')::int, max_open_contacts),
        max_directory_items = coalesce((lim->>'max_directory_items')::int, max_directory_items),
        inbox_keep_days = coalesce((lim->>'inbox_keep_days')::int, inbox_keep_days),
        bank_id = coalesce(lim->>'bank_id', bank_id),
        role = coalesce(lim->>'role', role),
        suppress_below = coalesce((lim->>'suppress_below')::int, suppress_below),
        round_to = coalesce((lim->>'round_to')::int, round_to),
        exchange_with = CASE WHEN jsonb_typeof(lim->'exchange_with') = 'array'
                             THEN ARRAY(SELECT jsonb_array_elements_text(lim->'exchange_with'))
                             WHEN lim ? 'exchange_with' THEN NULL ELSE exchange_with END,
        register_exposure_limit = coalesce((lim->>'register_exposure_limit')::bigint,
                                           register_exposure_limit),
        register_limits = coalesce(lim->'register_limits', register_limits),
        referral_accept_negative = coalesce((lim->>'referral_accept_negative')::boolean,
                                            referral_accept_negative),
        referral_expire_days = coalesce((lim->>'referral_expire_days')::int, referral_expire_days),
        intake_overdue_days = coalesce((lim->>'intake_overdue_days')::int, intake_overdue_days),
        check_required = CASE WHEN jsonb_typeof(lim->'check_required') = 'array'
                              THEN ARRAY(SELECT jsonb_array_elements_text(lim->'check_required'))
                              ELSE check_required END;
    SELECT tb_register_limits();
    SELECT tb_fed_exchanges();
$$;

-- What peers sent is kept as proof for inbox_keep_days, and then deleted:
-- the chain rests on fed_peers.in_head, so only the last message from each
-- peer, which a checkpoint may name, is kept however old. Returns how many
-- went. Messages to peers that waited for their acknowledgement before an
-- erasure could redact them are redacted too (tb_fed_redact_waiting), and
-- the notes of refused requests go after the same time.
CREATE FUNCTION tb_fed_inbox_purge() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM set_config('tb.inbox_purge', 'on', true);
    DELETE FROM fed_inbox i
     USING fed_peers p
     WHERE i.peer = p.peer AND i.seq < p.in_applied
       AND i.applied_at < now() - make_interval(days => (SELECT inbox_keep_days FROM fed_limits))
       -- A bank's report is kept with its proof.
       AND NOT EXISTS (SELECT 1 FROM network_reports r WHERE r.bank = i.peer AND r.seq = i.seq);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('tb.inbox_purge', 'off', true);
    DELETE FROM fed_refused_records
     WHERE noted_at < now() - make_interval(days => (SELECT inbox_keep_days FROM fed_limits));
    PERFORM tb_fed_redact_waiting();
    RETURN n;
END $$;

CREATE FUNCTION tb_fed_key_learned(from_peer text, kid text, public_hex text, old_kid text,
                                   grace_days int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO fed_peer_keys (peer, key_id, public_key, replaces, grace_until)
         VALUES (from_peer, kid, decode(public_hex, 'hex'), old_kid,
                 now() + make_interval(days => grace_days))
    ON CONFLICT DO NOTHING
$$;

-- An operator stops accepting a key a peer announced: it is deleted here
-- (the daemon has dropped it from memory: in_memory). key_not_found when
-- it was in neither.
CREATE FUNCTION tb_fed_key_forget(from_peer text, kid text, in_memory boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    -- A key it announced now chains from the key that announced it, so
    -- that the successor still loads (tb_fed_state, the daemon's load_keys).
    UPDATE fed_peer_keys k SET replaces = f.replaces
      FROM fed_peer_keys f
     WHERE f.peer = from_peer AND f.key_id = kid AND k.peer = from_peer AND k.replaces = kid;
    DELETE FROM fed_peer_keys WHERE peer = from_peer AND key_id = kid;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 AND NOT in_memory THEN
        PERFORM tb_raise('key_not_found', format(
            'peer %s has no learned key %s (a key the config pins is changed in the config)',
            from_peer, kid));
    END IF;
    RETURN jsonb_build_object('peer', from_peer, 'key_id', kid, 'state', 'forgotten');
END $$;

-- The channel's calls, made for every message, are PL/pgSQL so that their
-- plans are kept (an SQL function is planned afresh at every call).
CREATE FUNCTION tb_fed_state() RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer), '[]')
              FROM fed_peers p);
END $$;

-- Queues one message to a peer, in the caller's transaction, kept as the
-- JSON text it is given (a jsonb body cast to json gives its text).
CREATE FUNCTION tb_fed_enqueue(to_peer text, body json) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
BEGIN
    UPDATE fed_peers SET out_next_seq = out_next_seq + 1 WHERE peer = to_peer
    RETURNING out_next_seq - 1 INTO s;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', to_peer));
    END IF;
    INSERT INTO fed_outbox (peer, seq, body) VALUES (to_peer, s, body);
    RETURN s;
END $$;


-- Queues a list of items to a peer as messages of one kind, each within
-- the frame's cap: at most 1000 items (ENV_MAX_ITEMS, which a receiver
-- enforces) and about 256 KiB of their JSON text, which is longer than
-- their wire form. A list that fits goes as one message. Returns each
-- message's sequence and its items, in order.
CREATE FUNCTION tb_fed_enqueue_items(to_peer text, kind text, items jsonb)
RETURNS TABLE (seq bigint, part jsonb) LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_array_length(items) <= 1000 AND pg_column_size(items) < 200000 THEN
        seq := tb_fed_enqueue(to_peer, jsonb_build_object('kind', kind, 'items', items)::json);
        part := items;
        RETURN NEXT;
        RETURN;
    END IF;
    -- A message ends at every 1000th item and wherever the running size
    -- crosses a multiple of 256 KiB: both only grow, so each message is a
    -- run of the list.
    FOR part IN
        SELECT jsonb_agg(x ORDER BY n)
          FROM (SELECT x, n, (n - 1) / 1000 AS by_count,
                       (sum(octet_length(x::text)) OVER (ORDER BY n)
                        - octet_length(x::text)) / 262144 AS by_size
                  FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)) i
         GROUP BY by_count, by_size
         ORDER BY by_count, by_size
    LOOP
        seq := tb_fed_enqueue(to_peer, jsonb_build_object('kind', kind, 'items', part)::json);
        RETURN NEXT;
    END LOOP;
END $$;

-- count test messages to a peer in one transaction; each carries n = its
-- sequence, so the receiver can prove order and exactly-once.
CREATE FUNCTION tb_fed_test_enqueue(to_peer text, count int, note text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
BEGIN
    UPDATE fed_peers SET out_next_seq = out_next_seq + count WHERE peer = to_peer
    RETURNING out_next_seq - count INTO first;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', to_peer));
    END IF;
    INSERT INTO fed_outbox (peer, seq, body)
    SELECT to_peer, first + i, jsonb_build_object('kind', 'test', 'n', first + i, 'text', note)
      FROM generate_series(0, count - 1) i;
    RETURN jsonb_build_object('peer', to_peer, 'first', first, 'last', first + count - 1);
END $$;

CREATE FUNCTION tb_fed_unsealed(lim int) RETURNS json LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(json_build_object(
                       'peer', o.peer, 'seq', o.seq, 'body', o.body,
                       'prev', encode(s.out_head, 'hex'), 'after', s.out_sealed)
                       ORDER BY o.peer, o.seq), '[]')
              -- Each peer's in turn, but those held while recovering
              -- (recovery.sql), whose backlog is not read at all.
              FROM (SELECT q.* FROM fed_peers p
                      CROSS JOIN LATERAL (SELECT * FROM fed_outbox q
                                           WHERE q.peer = p.peer AND q.envelope IS NULL
                                           ORDER BY q.seq LIMIT lim) q
                     WHERE p.recovering_since IS NULL
                     ORDER BY q.peer, q.seq LIMIT lim) o
              JOIN fed_sealed s USING (peer));
END $$;

-- What the daemon seals next, in one call: reservations not yet proposed
-- become messages (tb_xb_batch), then everything unsealed, in order. A
-- failure to batch proposals is logged and leaves them for the next call;
-- what is queued is sealed regardless. Batches of exchanges queue their
-- own proposals, so there is seldom anything to batch: the exception
-- block (a subtransaction) and tb_xb_batch's reads run only when there is.
-- Plans: see tb_fed_apply.
CREATE FUNCTION tb_fed_to_seal(lim int) RETURNS json LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET random_page_cost = 1.1 SET plan_cache_mode = force_generic_plan SET jit = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM xb_claims
                WHERE side = 'earner' AND state = 'open' AND sent_seq IS NULL)
       OR EXISTS (SELECT 1 FROM xb_exchanges
                   WHERE side = 'payer' AND proposed_seq IS NULL AND state = 'pending') THEN
        BEGIN
            PERFORM tb_xb_batch(lim);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'batching proposals: %', SQLERRM;
        END;
    END IF;
    RETURN tb_fed_unsealed(lim);
END $$;

CREATE FUNCTION tb_fed_outbox(to_peer text, after_seq bigint, lim int) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_array(seq, encode(envelope, 'hex'))
                                      ORDER BY seq), '[]')
              FROM (SELECT seq, envelope FROM fed_outbox
                     WHERE peer = to_peer AND seq > after_seq AND envelope IS NOT NULL
                     ORDER BY seq LIMIT lim) o);
END $$;

CREATE FUNCTION tb_fed_seal(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    n int;
BEGIN
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        UPDATE fed_sealed SET out_sealed = (item->>'seq')::bigint,
                              out_head = decode(item->>'hash', 'hex')
         WHERE peer = item->>'peer' AND out_sealed = (item->>'seq')::bigint - 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            PERFORM tb_raise('seal_out_of_order', format('sealing %s to %s out of order',
                                                         item->>'seq', item->>'peer'));
        END IF;
        UPDATE fed_outbox SET envelope = decode(item->>'envelope', 'hex'),
                              hash = decode(item->>'hash', 'hex')
         WHERE peer = item->>'peer' AND seq = (item->>'seq')::bigint AND envelope IS NULL;
    END LOOP;
    -- How far each peer's stream is sealed: all the daemon needs to go on
    -- (tb_fed_state's directory counts read every remote item).
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('peer', peer, 'sealed', out_sealed)
                                      ORDER BY peer), '[]')
              FROM fed_sealed);
END $$;

-- The accounts a run of messages from a peer will change, locked in account
-- order: the clearing account, and our members named by proposals (their
-- numbers) and answers (our exchanges). Each is looked up from the
-- messages' items by its key, never by reading a table for the items.
CREATE FUNCTION tb_fed_prelock(from_peer text, items jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Each set of keys looked up in one scan of its index (= ANY), the
    -- accounts too, which that scan returns in order.
    PERFORM 1 FROM accounts
     WHERE id = ANY (ARRAY(
               SELECT clearing_account FROM fed_peers WHERE peer = from_peer
               UNION ALL
               SELECT x.member_account FROM xb_exchanges x
                WHERE x.side = 'payer' AND x.xid = ANY (ARRAY(
                      SELECT a->>'xid'
                        FROM jsonb_array_elements(items) i,
                             jsonb_array_elements(CASE WHEN i->'body'->>'kind' = 'xb_answer'
                                                       THEN i->'body'->'items' ELSE '[]' END) a))
               UNION ALL
               SELECT m.account_id FROM members m
                WHERE m.number = ANY (ARRAY(
                      SELECT (p->>'earner')::bigint
                        FROM jsonb_array_elements(items) i,
                             jsonb_array_elements(CASE WHEN i->'body'->>'kind' = 'xb_propose'
                                                       THEN i->'body'->'items' ELSE '[]' END) p
                       WHERE length(p->>'earner') <= 18 AND p->>'earner' ~ '^[0-9]+$'))
               UNION ALL
               SELECT r.member_account FROM referrals r
                WHERE r.side = 'referring' AND r.referral_id = ANY (ARRAY(
                      SELECT a->>'referral_id'
                        FROM jsonb_array_elements(items) i,
                             jsonb_array_elements(CASE WHEN i->'body'->>'kind' = 'referral_answer'
                                                       THEN i->'body'->'items' ELSE '[]' END) a))))
     ORDER BY id FOR UPDATE;
END $$;

-- A peer's words are kept only with a record that holds them: a claim or
-- contact refused on arrival, one seen before, or an answer to one already
-- decided keeps none. The handler names the items whose words it kept
-- (ordinals from 1), and gets {"_kept": the body with the others' words
-- taken out}, or {} when there were none to take: tb_fed_apply then keeps
-- that body, and the envelope redacted to its hash, as an erasure leaves
-- it, so that no words are held that no record can find.
CREATE FUNCTION tb_inbox_kept(body jsonb, kept int[]) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN bool_or(out) THEN
               jsonb_build_object('_kept', jsonb_set(body, '{items}', jsonb_agg(
                   CASE WHEN out THEN x || '{"message": ""}' ELSE x END ORDER BY n)))
               ELSE '{}' END
      FROM (SELECT x, n, jsonb_typeof(x) = 'object' AND coalesce(x->>'message', '') <> ''
                         AND NOT (n = ANY (kept)) AS out
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                             THEN body->'items' ELSE '[]' END)
                   WITH ORDINALITY AS t(x, n)) i
$$;

-- Every kind of channel message, and the one function that applies it:
-- the replies it queues, as {reply kind: [items]} (and _kept: see
-- tb_inbox_kept), or NULL for a kind this bank does not know. answer_seq
-- is the sequence the run's answers to exchange proposals will have.
CREATE FUNCTION tb_fed_handle(from_peer text, seq bigint, body jsonb, answer_seq bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    CASE body->>'kind'
    WHEN 'xb_propose' THEN
        RETURN tb_on_xb_propose(from_peer, body, answer_seq);
    WHEN 'xb_answer' THEN
        RETURN tb_on_xb_answer(from_peer, body, answer_seq);
    -- Requests and their answers are answered by the run's replies, and
    -- keep the sequence of the message that carried their words.
    WHEN 'xb_claim' THEN
        RETURN tb_on_xb_claim(from_peer, body, seq);
    WHEN 'xb_claim_answer' THEN
        RETURN tb_on_xb_claim_answer(from_peer, body, seq);
    WHEN 'dir_contact' THEN
        RETURN tb_on_dir_contact(from_peer, body, seq);
    WHEN 'dir_contact_answer' THEN
        RETURN tb_on_dir_contact_answer(from_peer, body, seq);
    WHEN 'erasure' THEN
        RETURN tb_on_erasure(from_peer, body);
    WHEN 'referral' THEN
        RETURN tb_on_referral(from_peer, body, seq);
    WHEN 'referral_answer' THEN
        RETURN tb_on_referral_answer(from_peer, body, seq);
    WHEN 'referral_withdraw' THEN
        RETURN tb_on_referral_withdraw(from_peer, body);
    WHEN 'activity_report' THEN
        RETURN tb_on_activity_report(from_peer, body, seq);
    WHEN 'report_answer' THEN
        RETURN tb_on_report_answer(from_peer, body);
    WHEN 'test' THEN
        -- Proves the channel without touching the ledger.
        INSERT INTO fed_test_received (peer, seq, n)
             VALUES (from_peer, seq, (body->>'n')::bigint);
        RETURN '{}';
    ELSE
        RETURN NULL;
    END CASE;
END $$;

-- Applies a run of a peer's messages in order (tb_fed_handle for each) and
-- queues the replies of the whole run, an exchange batch's answers first.
--
-- The busy paths (this, tb_fed_to_seal, tb_xb_batch, tb_exchange_batch)
-- look up a few dozen rows in tables that grow by thousands a minute.
-- Planned from a younger table's statistics, a lookup becomes a read of
-- the whole table; so they use an index wherever there is one, join by
-- nested loops, count a random page read as one from memory, and keep
-- generic plans (their SET options). A scan forbidden that cannot be
-- avoided (a table of one row, fed_limits) is costed past jit_above_cost,
-- and would be compiled afresh at each call: they do not compile (jit).
CREATE FUNCTION tb_fed_apply(from_peer text, items jsonb, max_exchange bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET random_page_cost = 1.1 SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    st fed_peers;
    item jsonb;
    s bigint;
    dup int := 0;
    err text;
    err_seq bigint;
    got jsonb;
    kept jsonb;
    replies jsonb := '{}';
    reply_kind text;
    part_seq bigint;
    queued int := 0;
    -- A run of nothing but answers takes no account until its end.
    deferred boolean := NOT EXISTS (SELECT 1 FROM jsonb_array_elements(items) i
                                     WHERE i->'body'->>'kind' IS DISTINCT FROM 'xb_answer');
    -- The national body and a bank say only this to each other: reports
    -- and their answers (and test messages). A bank refuses anything else
    -- from the observer, a request for member-level data above all, and
    -- the observer anything else from a bank.
    observer boolean := (SELECT role = 'observer' FROM fed_limits);
    settled bigint[] := '{}';
BEGIN
    -- One apply at a time per peer. Proposals are answered in one message
    -- whose sequence is fixed now: nothing else may queue to the peer until
    -- this commits, so the peer's row is locked (NO KEY UPDATE: foreign-key
    -- checks on it need not wait). Other runs leave the row free.
    -- Accounts before the peer's row, as everything that takes both does
    -- (an exchange batch proposes what it records: tb_xb_batch_record).
    --
    -- The payer's bank applies runs of answers, and its exchange batches
    -- reserve against the same members' accounts: each waited on the other
    -- for half its time. A run of answers settles first, touching no
    -- account, and then posts what it settled, with all its accounts
    -- locked at once, in order, as the run's last step.
    --
    -- It commits without waiting for the disk, as an exchange batch does,
    -- so that what it locked is free at commit: the daemon acknowledges it
    -- only once the barrier sent behind it has flushed the WAL past it
    -- (db_query_durable), and whatever reads it (the answers it queued,
    -- sealed and sent) commits after it.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- The most one exchange or claim may be, as the daemon's config says,
    -- for the rules this run calls (tb_max_exchange).
    PERFORM set_config('tb.max_exchange', max_exchange::text, true);
    PERFORM pg_advisory_xact_lock(hashtext('tb_fed_apply ' || from_peer));
    IF NOT deferred THEN
        PERFORM tb_fed_prelock(from_peer, items);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) i
                WHERE i->'body'->>'kind' = 'xb_propose') THEN
        SELECT * INTO st FROM fed_peers WHERE peer = from_peer FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO st FROM fed_peers WHERE peer = from_peer;
    END IF;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', from_peer));
    END IF;
    -- A run of several messages of proposals, each next in the stream and
    -- chained to the one before, is decided as one message would be: one
    -- set-wise check and one posting for all their items, answered in the
    -- run's one answer, which costs less than statements for each message.
    -- Anything else, or proposals that are not all simple together, goes
    -- message by message below.
    IF jsonb_array_length(items) > 1 AND NOT observer AND st.kind = 'bank'
       AND NOT EXISTS (SELECT 1 FROM fed_recovered_answers r WHERE r.peer = from_peer)
       AND (SELECT count(*) FROM (
                SELECT n, i, lag(i->>'hash') OVER (ORDER BY n) AS prev_hash
                  FROM jsonb_array_elements(items) WITH ORDINALITY AS t(i, n)) r
             WHERE i->'body'->>'kind' = 'xb_propose'
               AND jsonb_typeof(i->'body'->'items') = 'array'
               AND i->>'seq' = (st.in_applied + n)::text
               AND i->>'prev' = coalesce(prev_hash, encode(st.in_head, 'hex')))
           = jsonb_array_length(items) THEN
        -- The run's items in order, message after message: a path query
        -- copies them as they are, where jsonb_agg would take each apart
        -- and sort them.
        got := tb_xb_propose_batch(from_peer,
                                   jsonb_path_query_array(items, '$[*].body.items[*]'),
                                   st.out_next_seq);
        IF got IS NOT NULL THEN
            replies := jsonb_build_object('xb_answer', got);
            INSERT INTO fed_inbox (peer, seq, hash, envelope, body)
            SELECT from_peer, (i->>'seq')::bigint, decode(i->>'hash', 'hex'),
                   decode(i->>'envelope', 'hex'), i->'body'
              FROM jsonb_array_elements(items) i;
            st.in_applied := (items->-1->>'seq')::bigint;
            st.in_head := decode(items->-1->>'hash', 'hex');
            items := '[]';
        END IF;
    END IF;
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        s := (item->>'seq')::bigint;
        IF s <= st.in_applied THEN
            -- A sequence names one message for ever: the same one again is
            -- a resend after a lost acknowledgement, skipped; a different
            -- one under it (a peer put back to an earlier point, numbering
            -- anew) is refused, and the pair is diverged.
            IF EXISTS (SELECT 1 FROM fed_inbox i
                        WHERE i.peer = from_peer AND i.seq = s
                          AND i.hash <> decode(item->>'hash', 'hex')) THEN
                err := 'sequence_reused';
                err_seq := s;
                UPDATE fed_peers
                   SET diverged_at = coalesce(diverged_at, now()),
                       diverged_reason = coalesce(diverged_reason, format(
                           'it sent a different message under sequence %s, which we applied '
                           'already', s))
                 WHERE peer = from_peer;
                EXIT;
            END IF;
            dup := dup + 1;
            CONTINUE;
        END IF;
        got := NULL;
        IF s <> st.in_applied + 1 THEN
            err := 'gap';
        ELSIF decode(item->>'prev', 'hex') <> st.in_head THEN
            err := 'broken_chain';
        ELSIF item->'body'->>'kind' NOT IN ('test', CASE WHEN observer THEN 'activity_report'
                                                         WHEN st.kind = 'observer'
                                                         THEN 'report_answer' END)
              AND (observer OR st.kind = 'observer') THEN
            err := 'not_between_bank_and_observer';
        ELSE
            IF deferred THEN
                -- tb_on_xb_answer's two steps, the posting left to the run's end.
                settled := settled || tb_xb_answer_settle(from_peer, item->'body'->'items');
                got := '{}';
            ELSE
                -- fed_peers is locked: the run's exchange answers will get this sequence.
                got := tb_fed_handle(from_peer, s, item->'body', st.out_next_seq);
            END IF;
            IF got IS NULL THEN
                err := 'unknown_kind';
            END IF;
            kept := got->'_kept';
            got := got - '_kept';
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
                     CASE WHEN kept IS NULL THEN decode(item->>'envelope', 'hex') ELSE '' END,
                     coalesce(kept, item->'body'));
        kept := NULL;
        st.in_applied := s;
        st.in_head := decode(item->>'hash', 'hex');
    END LOOP;
    IF cardinality(settled) > 0 THEN
        PERFORM tb_xb_answer_post(from_peer, settled, true);
    END IF;
    UPDATE fed_peers SET in_applied = st.in_applied, in_head = st.in_head WHERE peer = from_peer;
    -- The answers go first, in as many messages as they need (a long
    -- outage may leave tens of thousands); each exchange records the
    -- sequence of the message that carries its answer.
    IF jsonb_array_length(coalesce(replies->'xb_answer', '[]')) > 0 THEN
        FOR part_seq, got IN
            SELECT * FROM tb_fed_enqueue_items(from_peer, 'xb_answer', replies->'xb_answer')
        LOOP
            IF queued = 0 AND part_seq <> st.out_next_seq THEN
                PERFORM tb_raise('internal_error', 'answer sequence moved during apply');
            ELSIF queued > 0 THEN
                PERFORM set_config('tb.answer_parts', 'on', true);
                UPDATE xb_exchanges x SET answer_seq = part_seq
                  FROM jsonb_array_elements(got) a
                 WHERE x.xid = a->>'xid' AND x.side = 'earner' AND x.peer = from_peer;
                PERFORM set_config('tb.answer_parts', 'off', true);
            END IF;
            queued := queued + 1;
        END LOOP;
    END IF;
    FOR reply_kind IN SELECT k FROM jsonb_object_keys(replies) k WHERE k <> 'xb_answer'
                       ORDER BY k LOOP
        IF jsonb_array_length(replies->reply_kind) > 0 THEN
            queued := queued + (SELECT count(*)
                                  FROM tb_fed_enqueue_items(from_peer, reply_kind,
                                                            replies->reply_kind));
        END IF;
    END LOOP;
    -- queued: replies waiting to be sealed and sent now.
    RETURN jsonb_build_object('applied', st.in_applied, 'duplicates', dup, 'error', err,
                              'error_seq', err_seq, 'queued', queued);
END $$;

-- Acknowledgements commit without waiting for the disk: one lost in a
-- crash only means resending what the peer then skips as applied.
CREATE FUNCTION tb_fed_acked(to_peer text, seq bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    acked bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE fed_acked a
       SET out_acked = greatest(a.out_acked,
                                least(seq, (SELECT out_sealed FROM fed_sealed s
                                             WHERE s.peer = to_peer)))
     WHERE a.peer = to_peer RETURNING a.out_acked INTO acked;
    RETURN acked;
END $$;

CREATE FUNCTION tb_fed_checkpoint(to_peer text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object('seq', a.out_acked,
                       'head', coalesce((SELECT encode(hash, 'hex') FROM fed_outbox o
                                          WHERE o.peer = p.peer AND o.seq = a.out_acked), ''),
                       'clearing', (SELECT balance_minutes FROM accounts
                                     WHERE id = p.clearing_account),
                       'applied', p.in_applied)
              FROM fed_peers p JOIN fed_acked a USING (peer) WHERE p.peer = to_peer);
END $$;

-- Compares a peer's checkpoint of its stream to us with what we applied.
CREATE FUNCTION tb_fed_checkpoint_check(from_peer text, at_seq bigint, head text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    ours bytea;
    verdict text;
BEGIN
    SELECT * INTO st FROM fed_peers WHERE peer = from_peer;
    IF at_seq = 0 THEN
        verdict := 'agree';
    ELSIF at_seq > st.in_applied THEN
        verdict := 'diverged';  -- it believes we applied what we never did
    ELSE
        SELECT hash INTO ours FROM fed_inbox WHERE peer = from_peer AND fed_inbox.seq = at_seq;
        verdict := CASE WHEN encode(ours, 'hex') = head THEN 'agree' ELSE 'diverged' END;
    END IF;
    -- After a restore, what the peer checkpoints of its stream agreeing
    -- with what we applied again ends the recovery (tb_fed_recovered).
    IF verdict = 'agree' AND st.recovered_at IS NOT NULL AND st.recover_to IS NOT NULL
       AND tb_fed_recovered(from_peer) THEN
        verdict := 'recovered';
    END IF;
    IF verdict = 'diverged' THEN
        UPDATE fed_peers SET diverged_at = coalesce(diverged_at, now()),
                             diverged_reason = coalesce(diverged_reason, format(
                                 'checkpoint at %s: peer head %s, applied %s', at_seq, head,
                                 st.in_applied))
         WHERE peer = from_peer;
    END IF;
    RETURN verdict;
END $$;

-- A peer's checkpointed clearing balance for us, how much of our stream it
-- had applied when it read it (applied), and how much of its own we had
-- acknowledged (at_seq): what was posted after those is in flight to the
-- balance (tb_fed_audit).
CREATE FUNCTION tb_fed_peer_clearing(from_peer text, clearing bigint, applied bigint,
                                     at_seq bigint)
RETURNS void LANGUAGE sql AS $$
    UPDATE fed_peers SET peer_clearing = clearing, peer_clearing_at = now(),
                         peer_clearing_seq = at_seq,
                         -- no more than we sent
                         peer_clearing_applied = least(applied, (SELECT out_sealed FROM fed_sealed s
                                                                  WHERE s.peer = from_peer))
     WHERE peer = from_peer
$$;
