-- Migration 3: the federation channel. One ordered, hash-chained,
-- exactly-once stream per direction per peer.
--
-- Outbound: a change writes its message body into fed_outbox in its own
-- transaction (tb_fed_enqueue). The daemon then seals each row once, in
-- order: it signs the envelope, chaining it to the previous one, and stores
-- the exact bytes, so a resend after any crash sends the same message.
-- Inbound: tb_fed_apply applies messages in order and records the sequence
-- and chain head in the same transaction; anything at or below the applied
-- sequence is a duplicate and is skipped.

CREATE TABLE fed_peers (
    peer            text PRIMARY KEY,
    out_next_seq    bigint NOT NULL DEFAULT 1,  -- the next sequence to hand out
    out_sealed      bigint NOT NULL DEFAULT 0,  -- sealed (signed) up to here
    out_head        bytea NOT NULL DEFAULT '',  -- hash of the envelope at out_sealed
    out_acked       bigint NOT NULL DEFAULT 0,  -- the peer applied up to here
    in_applied      bigint NOT NULL DEFAULT 0,  -- we applied the peer's stream up to here
    in_head         bytea NOT NULL DEFAULT '',  -- hash of the envelope at in_applied
    diverged_at     timestamptz,
    diverged_reason text
);

CREATE TABLE fed_outbox (
    peer       text NOT NULL REFERENCES fed_peers (peer),
    seq        bigint NOT NULL,
    body       jsonb NOT NULL,
    envelope   bytea,           -- NULL until sealed
    hash       bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, seq)
);
CREATE INDEX fed_outbox_unsealed ON fed_outbox (peer, seq) WHERE envelope IS NULL;

-- What each peer sent us, as it signed it: proof of what it said.
CREATE TABLE fed_inbox (
    peer       text NOT NULL REFERENCES fed_peers (peer),
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    envelope   bytea NOT NULL,
    body       jsonb NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, seq)
);
CREATE TRIGGER fed_inbox_append_only BEFORE UPDATE OR DELETE ON fed_inbox
    FOR EACH ROW EXECUTE FUNCTION tb_refuse_change();

-- Test messages received: they prove the channel without touching the ledger.
CREATE TABLE fed_test_received (
    peer text NOT NULL,
    seq  bigint NOT NULL,
    n    bigint NOT NULL,
    PRIMARY KEY (peer, seq)
);

-- Signing keys peers announced in a rotation, each signed by the key it
-- replaces; the replaced key is accepted beside it until grace_until.
CREATE TABLE fed_peer_keys (
    peer        text NOT NULL REFERENCES fed_peers (peer),
    key_id      text NOT NULL,
    public_key  bytea NOT NULL,
    replaces    text NOT NULL,
    learned_at  timestamptz NOT NULL DEFAULT now(),
    grace_until timestamptz NOT NULL,
    PRIMARY KEY (peer, key_id)
);

CREATE FUNCTION tb_fed_peer_json(p fed_peers) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'peer', p.peer, 'queued', p.out_next_seq - 1, 'sealed', p.out_sealed,
        'acked', p.out_acked, 'outbox_depth', p.out_next_seq - 1 - p.out_acked,
        'applied', p.in_applied, 'in_head', encode(p.in_head, 'hex'),
        'diverged', p.diverged_at IS NOT NULL, 'diverged_reason', p.diverged_reason,
        'keys', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'key_id', k.key_id, 'public_key', encode(k.public_key, 'hex'),
                              'replaces', k.replaces,
                              'grace_seconds', greatest(0, extract(epoch FROM k.grace_until - now())))
                              ORDER BY k.learned_at)
                            FROM fed_peer_keys k WHERE k.peer = p.peer), '[]'))
$$;

CREATE FUNCTION tb_fed_key_learned(from_peer text, kid text, public_hex text, old_kid text,
                                   grace_days int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO fed_peer_keys (peer, key_id, public_key, replaces, grace_until)
         VALUES (from_peer, kid, decode(public_hex, 'hex'), old_kid,
                 now() + make_interval(days => grace_days))
    ON CONFLICT DO NOTHING
$$;

-- Makes sure every configured peer has its row; answers every peer's state.
CREATE FUNCTION tb_fed_peers(ids text[]) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fed_peers (peer) SELECT unnest(ids) ON CONFLICT DO NOTHING;
    RETURN coalesce((SELECT jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer) FROM fed_peers p
                      WHERE p.peer = ANY (ids)), '[]');
END $$;

CREATE FUNCTION tb_fed_state() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer), '[]') FROM fed_peers p
$$;

-- Queues one message to a peer, in the caller's transaction.
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
-- A body built as jsonb is queued as its text.
CREATE FUNCTION tb_fed_enqueue(to_peer text, body jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN tb_fed_enqueue(to_peer, body::json);
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

-- Rows waiting to be sealed, in order, each peer's first with the chain
-- head it follows.
CREATE FUNCTION tb_fed_unsealed(lim int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'peer', o.peer, 'seq', o.seq, 'body', o.body,
               'prev', encode(p.out_head, 'hex'), 'after', p.out_sealed)
               ORDER BY o.peer, o.seq), '[]')
      FROM (SELECT * FROM fed_outbox WHERE envelope IS NULL ORDER BY peer, seq LIMIT lim) o
      JOIN fed_peers p USING (peer)
$$;

-- Stores sealed envelopes; each must extend its peer's chain by one.
CREATE FUNCTION tb_fed_seal(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    n int;
BEGIN
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        UPDATE fed_peers SET out_sealed = (item->>'seq')::bigint,
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
    RETURN tb_fed_state();
END $$;

-- Sealed envelopes after a sequence, for sending.
CREATE FUNCTION tb_fed_outbox(to_peer text, after_seq bigint, lim int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_array(seq, encode(envelope, 'hex')) ORDER BY seq), '[]')
      FROM (SELECT seq, envelope FROM fed_outbox
             WHERE peer = to_peer AND seq > after_seq AND envelope IS NOT NULL
             ORDER BY seq LIMIT lim) o
$$;

-- Applies verified messages from a peer in order, in one transaction.
-- Duplicates are skipped; at a gap, a broken chain or an unknown kind it
-- stops, keeping what came before, and says why.
CREATE FUNCTION tb_fed_apply(from_peer text, items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    item jsonb;
    s bigint;
    dup int := 0;
    err text;
    err_seq bigint;
BEGIN
    -- NO KEY UPDATE: foreign-key checks (KEY SHARE) on this row must not wait.
    SELECT * INTO st FROM fed_peers WHERE peer = from_peer FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('peer_not_found', format('there is no peer %s', from_peer));
    END IF;
    FOR item IN SELECT * FROM jsonb_array_elements(items) LOOP
        s := (item->>'seq')::bigint;
        IF s <= st.in_applied THEN
            dup := dup + 1;
            CONTINUE;
        END IF;
        IF s <> st.in_applied + 1 THEN
            err := 'gap';
        ELSIF decode(item->>'prev', 'hex') <> st.in_head THEN
            err := 'broken_chain';
        ELSIF item->'body'->>'kind' = 'test' THEN
            INSERT INTO fed_test_received (peer, seq, n)
                 VALUES (from_peer, s, (item->'body'->>'n')::bigint);
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
    RETURN jsonb_build_object('applied', st.in_applied, 'duplicates', dup, 'error', err,
                              'error_seq', err_seq);
END $$;

-- The peer says it applied our stream up to seq.
CREATE FUNCTION tb_fed_acked(to_peer text, seq bigint) RETURNS bigint LANGUAGE sql AS $$
    UPDATE fed_peers SET out_acked = greatest(out_acked, least(seq, out_sealed))
     WHERE peer = to_peer RETURNING out_acked
$$;

-- Our outbound stream as far as the peer acknowledged it.
CREATE FUNCTION tb_fed_checkpoint(to_peer text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('seq', p.out_acked,
               'head', coalesce((SELECT encode(hash, 'hex') FROM fed_outbox o
                                  WHERE o.peer = p.peer AND o.seq = p.out_acked), ''))
      FROM fed_peers p WHERE p.peer = to_peer
$$;

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
    IF verdict = 'diverged' THEN
        UPDATE fed_peers SET diverged_at = coalesce(diverged_at, now()),
                             diverged_reason = coalesce(diverged_reason, format(
                                 'checkpoint at %s: peer head %s, applied %s', at_seq, head,
                                 st.in_applied))
         WHERE peer = from_peer;
    END IF;
    RETURN verdict;
END $$;
