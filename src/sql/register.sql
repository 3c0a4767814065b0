-- The network's register at the national body: banks added, removed,
-- revoked and their keys rotated, each change kept in register_history;
-- the draft the next publish signs, what it would change, and the
-- registers published. The daemon signs (it holds the register key); the
-- rules decide what is in it.

CREATE FUNCTION tb_register_bank_json(b register_banks) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', b.id, 'name', b.name, 'address', b.address, 'kind', b.kind,
        'cert_sha256', coalesce(b.cert_sha256, ''),
        'keys', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                     'public_key', encode(k.public_key, 'hex'),
                                     'not_before_unix', floor(extract(epoch FROM k.not_before)),
                                     'not_after_unix', coalesce(floor(extract(epoch FROM k.not_after)), 0))
                                 ORDER BY k.not_before, k.public_key)
                            FROM register_keys k
                           WHERE k.bank = b.id AND (k.not_after IS NULL OR k.not_after > now())),
                         '[]'))
$$;

CREATE FUNCTION tb_register_note(actor text, action text, bank text, detail jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO register_history (actor, action, bank, detail) VALUES (actor, action, bank, detail)
$$;

-- Changes to the register, and publishes, one at a time: each checks what
-- is there before it writes.
CREATE FUNCTION tb_register_lock() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('tb_register'))
$$;

CREATE FUNCTION tb_register_find(want text) RETURNS register_banks LANGUAGE plpgsql AS $$
DECLARE
    b register_banks;
BEGIN
    PERFORM tb_register_lock();
    SELECT * INTO b FROM register_banks WHERE id = want AND removed_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('bank_not_found', format('%s is not in the register', want));
    END IF;
    RETURN b;
END $$;

-- A bank joins (p: id, name, address, kind, signing_pub as 64 hex digits,
-- cert_sha256), validated by the daemon; one already in the register, or
-- a key another bank has, is refused.
CREATE FUNCTION tb_register_add(p jsonb, actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    b register_banks;
BEGIN
    PERFORM tb_register_lock();
    IF EXISTS (SELECT 1 FROM register_banks WHERE id = p->>'id' AND removed_at IS NULL) THEN
        PERFORM tb_raise('bank_exists', format('%s is already in the register', p->>'id'));
    END IF;
    IF EXISTS (SELECT 1 FROM register_keys k JOIN register_banks r ON r.id = k.bank
                WHERE k.public_key = decode(p->>'signing_pub', 'hex') AND r.id <> p->>'id') THEN
        PERFORM tb_raise('key_in_use', 'that signing key is another bank''s');
    END IF;
    DELETE FROM register_keys WHERE bank = p->>'id';
    INSERT INTO register_banks (id, name, address, kind, cert_sha256)
         VALUES (p->>'id', p->>'name', p->>'address', coalesce(p->>'kind', 'bank'),
                 p->>'cert_sha256')
    ON CONFLICT (id) DO UPDATE
        SET name = EXCLUDED.name, address = EXCLUDED.address, kind = EXCLUDED.kind,
            cert_sha256 = EXCLUDED.cert_sha256, added_at = now(), removed_at = NULL,
            revoked = false
    RETURNING * INTO b;
    INSERT INTO register_keys (bank, public_key) VALUES (b.id, decode(p->>'signing_pub', 'hex'));
    PERFORM tb_register_note(actor, 'add-bank', b.id, p - 'id');
    RETURN tb_register_bank_json(b);
END $$;

-- A bank leaves (or, revoked, is put out: its certificates are revoked at
-- the CA with tbpki revoke, and the next register carries the new CRL).
CREATE FUNCTION tb_register_remove(want text, revoke boolean, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b register_banks := tb_register_find(want);
BEGIN
    UPDATE register_banks SET removed_at = now(), revoked = revoke WHERE id = b.id
    RETURNING * INTO b;
    PERFORM tb_register_note(actor, CASE WHEN revoke THEN 'revoke' ELSE 'remove-bank' END, b.id,
                             '{}');
    RETURN jsonb_build_object('id', b.id, 'state', CASE WHEN revoke THEN 'revoked'
                                                         ELSE 'removed' END);
END $$;

-- A bank's new signing key: the keys it has keep working for grace_days,
-- then end; the new one works from now.
CREATE FUNCTION tb_register_rotate(want text, pub_hex text, grace_days int, actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    b register_banks := tb_register_find(want);
BEGIN
    IF EXISTS (SELECT 1 FROM register_keys WHERE public_key = decode(pub_hex, 'hex')) THEN
        PERFORM tb_raise('key_in_use', 'that signing key is already in the register');
    END IF;
    -- A bank takes at most four keys of one bank (FED_MAX_KEYS).
    IF (SELECT count(*) FROM register_keys
         WHERE bank = b.id AND (not_after IS NULL OR not_after > now())) >= 4 THEN
        PERFORM tb_raise('too_many_keys', format(
            '%s has four signing keys in force; rotate again once the oldest has ended', b.id));
    END IF;
    UPDATE register_keys SET not_after = now() + make_interval(days => grace_days)
     WHERE bank = b.id AND (not_after IS NULL OR not_after > now() + make_interval(days => grace_days));
    INSERT INTO register_keys (bank, public_key) VALUES (b.id, decode(pub_hex, 'hex'));
    PERFORM tb_register_note(actor, 'rotate-key', b.id,
                             jsonb_build_object('signing_pub', pub_hex, 'grace_days', grace_days));
    RETURN tb_register_bank_json(b);
END $$;

-- The serial the next register published takes: past the last, and past
-- any a history lost to a restore may have published (tb_restored).
CREATE FUNCTION tb_register_next_serial() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT greatest(coalesce((SELECT max(serial) FROM register_published), 0),
                    coalesce((SELECT max(register_floor) FROM restores), 0)) + 1
$$;

-- The register the next publish signs (next_days: until its next update),
-- without its CRL, which the daemon reads from the CA's file.
CREATE FUNCTION tb_register_draft(next_days int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'serial', tb_register_next_serial(),
        'issued_unix', floor(extract(epoch FROM now())),
        'next_update_unix', floor(extract(epoch FROM now() + make_interval(days => next_days))),
        'banks', coalesce((SELECT jsonb_agg(tb_register_bank_json(b) ORDER BY b.id)
                             FROM register_banks b WHERE b.removed_at IS NULL), '[]'))
$$;

-- The last register published, again as the next serial with a new next
-- update, when its next update is within_days away or past (the daemon
-- checks hourly, so that no bank holds a stale register); NULL when it is
-- not due. Keys whose window has ended are left out; changes not yet
-- published stay waiting for a publish of their own.
CREATE FUNCTION tb_register_refresh_due(within_days int, next_days int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'serial', p.serial + 1,
        'issued_unix', floor(extract(epoch FROM now())),
        'next_update_unix', floor(extract(epoch FROM now() + make_interval(days => next_days))),
        'banks', coalesce((
            SELECT jsonb_agg(b || jsonb_build_object('keys', coalesce((
                       SELECT jsonb_agg(k ORDER BY n) FROM jsonb_array_elements(b->'keys')
                                                           WITH ORDINALITY AS t(k, n)
                        WHERE (k->>'not_after_unix')::bigint = 0
                           OR (k->>'not_after_unix')::bigint > extract(epoch FROM now())), '[]'))
                   ORDER BY b->>'id')
              FROM jsonb_array_elements(p.register->'banks') b), '[]'))
      FROM (SELECT * FROM register_published ORDER BY serial DESC LIMIT 1) p
     WHERE (p.register->>'next_update_unix')::bigint
           < extract(epoch FROM now() + make_interval(days => within_days))
$$;

-- What the next publish would change, bank by bank, against the last one
-- published: added, removed, and changed (with the fields that differ).
CREATE FUNCTION tb_register_diff() RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH last AS (SELECT register FROM register_published ORDER BY serial DESC LIMIT 1),
    was AS (SELECT b->>'id' AS id, b FROM last, jsonb_array_elements(register->'banks') b),
    now_ AS (SELECT b->>'id' AS id, b FROM jsonb_array_elements(tb_register_draft(0)->'banks') b),
    rows AS (
        SELECT coalesce(n.id, w.id) AS id,
               CASE WHEN w.id IS NULL THEN 'added' WHEN n.id IS NULL THEN 'removed'
                    ELSE 'changed' END AS change,
               CASE WHEN w.id IS NOT NULL AND n.id IS NOT NULL THEN
                   (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(n.b) k
                     WHERE n.b->k IS DISTINCT FROM w.b->k) END AS fields
          FROM now_ n FULL JOIN was w ON w.id = n.id
         WHERE w.id IS NULL OR n.id IS NULL OR n.b <> w.b)
    SELECT jsonb_build_object(
        'published_serial', (SELECT max(serial) FROM register_published),
        'changes', coalesce((SELECT jsonb_agg(jsonb_strip_nulls(to_jsonb(r)) ORDER BY r.id)
                               FROM rows r), '[]'))
$$;

-- A register the daemon signed: kept as it went out, as the next serial.
CREATE FUNCTION tb_register_store(serial bigint, register jsonb, signed_hex text, actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tb_register_lock();
    IF serial <> tb_register_next_serial() THEN
        PERFORM tb_raise('register_changed', 'another register was published meanwhile; '
                                             'publish again');
    END IF;
    INSERT INTO register_published (serial, actor, register, signed)
         VALUES (serial, actor, register, decode(signed_hex, 'hex'));
    PERFORM tb_register_note(actor, 'publish', NULL, jsonb_build_object('serial', serial));
    RETURN tb_register_show();
END $$;

-- The register as it stands: the last published (serial, when, by whom,
-- its next update) and the banks in it now, and whether changes wait.
CREATE FUNCTION tb_register_show() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'published', (SELECT jsonb_build_object(
                                 'serial', p.serial, 'published_at', p.published_at,
                                 'actor', p.actor,
                                 'next_update', to_timestamp((p.register->>'next_update_unix')::bigint),
                                 'bytes', length(p.signed))
                        FROM register_published p ORDER BY p.serial DESC LIMIT 1),
        'banks', coalesce((SELECT jsonb_agg(tb_register_bank_json(b) ORDER BY b.id)
                             FROM register_banks b WHERE b.removed_at IS NULL), '[]'),
        'pending_changes', jsonb_array_length(tb_register_diff()->'changes'))
$$;

CREATE FUNCTION tb_register_history(lim int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.n DESC), '[]')
      FROM (SELECT * FROM register_history ORDER BY n DESC LIMIT lim) h
$$;

-- The last register published, signed, as hex (what the observer serves).
CREATE FUNCTION tb_register_signed() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(signed, 'hex') FROM register_published ORDER BY serial DESC LIMIT 1
$$;

-- At the observer: the last register published, if newer than have, to
-- offer a bank that holds have.
CREATE FUNCTION tb_register_offer(have bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('serial', serial, 'signed', encode(signed, 'hex'))
      FROM register_published WHERE serial > have ORDER BY serial DESC LIMIT 1
$$;

-- At a bank: a register the daemon verified (signature, serial, contents)
-- is kept if it is newer than the one held; the serial held either way.
CREATE FUNCTION tb_register_take(serial bigint, signed_hex text, register jsonb, from_peer text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    held bigint := (SELECT r.serial FROM fed_register r);
BEGIN
    IF held IS NOT NULL AND held >= serial THEN
        RETURN tb_register_held() || '{"taken": false}';
    END IF;
    INSERT INTO fed_register (serial, signed, register, from_peer)
         VALUES (serial, decode(signed_hex, 'hex'), register, from_peer)
    ON CONFLICT (id) DO UPDATE
        SET serial = EXCLUDED.serial, signed = EXCLUDED.signed, register = EXCLUDED.register,
            from_peer = EXCLUDED.from_peer, taken_at = now();
    RETURN tb_register_held() || '{"taken": true}';
END $$;

-- The register in force here: at a bank the one it took, at the national
-- body the last it published.
CREATE FUNCTION tb_register_in_force(OUT serial bigint, OUT signed bytea, OUT register jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.serial, r.signed, r.register FROM fed_register r
     WHERE (SELECT role FROM fed_limits) = 'bank'
    UNION ALL
    (SELECT p.serial, p.signed, p.register FROM register_published p
      WHERE (SELECT role FROM fed_limits) = 'observer' ORDER BY p.serial DESC LIMIT 1)
$$;

-- The exposure limit of a peer from the register: its own in the config
-- ([peer ID] with only exposure_limit), else the default for the
-- register's peers ([federation] exposure_limit).
CREATE FUNCTION tb_register_limit(bank text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce((register_limits->>bank)::bigint, register_exposure_limit) FROM fed_limits
$$;

-- The config's limits for the register's peers, at start and reload.
CREATE FUNCTION tb_register_limits() RETURNS void LANGUAGE sql AS $$
    UPDATE accounts a SET floor_minutes = -tb_register_limit(p.peer)
      FROM fed_peers p
     WHERE p.source = 'register' AND p.kind = 'bank' AND a.id = p.clearing_account
       AND a.floor_minutes IS DISTINCT FROM -tb_register_limit(p.peer)
$$;

-- The register's banks as this daemon's peers. Each bank it lists, but
-- this one and those the config names, is a peer with its channel row
-- and, a bank, its clearing account; a peer that came from the register
-- and is no longer in it is removed: neither dialed nor accepted, and no
-- new exchange, claim, contact or directory goes to it, while what is
-- pending with it stays pending. The daemon has read and checked the
-- register in force (tb_register_in_force_signed) before. Returns its
-- serial, and the channel state of each of its peers, and of those
-- removed (shown as such, with what still waits for them).
CREATE FUNCTION tb_register_peers() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    held record;
    own text := (SELECT bank_id FROM fed_limits);
    b jsonb;
    listed text[] := '{}';
BEGIN
    SELECT * INTO held FROM tb_register_in_force();
    -- A bank the register does not list is no member: no bank of it is a
    -- peer (the daemon warns).
    IF (SELECT role FROM fed_limits) = 'bank' AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements(held.register->'banks') x WHERE x->>'id' = own) THEN
        held.register := NULL;
    END IF;
    FOR b IN SELECT x FROM jsonb_array_elements(coalesce(held.register->'banks', '[]')) x LOOP
        CONTINUE WHEN b->>'id' = own OR EXISTS (
            SELECT 1 FROM fed_peers
             WHERE peer = b->>'id' AND source = 'config' AND removed_at IS NULL);
        listed := listed || (b->>'id');
        PERFORM tb_fed_peer_add(b->>'id', b->>'kind', 'register', tb_register_limit(b->>'id'));
    END LOOP;
    UPDATE fed_peers SET removed_at = now()
     WHERE source = 'register' AND removed_at IS NULL AND NOT peer = ANY (listed);
    PERFORM tb_fed_exchanges();
    RETURN jsonb_build_object(
        'serial', coalesce(held.serial, 0),
        'peers', coalesce((SELECT jsonb_agg(tb_fed_peer_json(p) ORDER BY p.peer)
                             FROM fed_peers p
                            WHERE p.peer = ANY (listed)
                               OR (p.source = 'register' AND p.removed_at IS NOT NULL)), '[]'));
END $$;

-- The register in force, signed, for the daemon to check and read the
-- banks' addresses and keys from.
CREATE FUNCTION tb_register_in_force_signed() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('serial', coalesce(serial, 0), 'signed', encode(signed, 'hex'))
      FROM tb_register_in_force()
$$;

-- At a bank: a register held that no longer verifies (the config's
-- register key changed) is forgotten, and the peers that came of it go;
-- the national body's next offer is taken whatever its serial.
CREATE FUNCTION tb_register_forget() RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM fed_register;
    RETURN tb_register_peers();
END $$;

-- At a bank: the register held, for the daemon at start and for show.
CREATE FUNCTION tb_register_held() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT jsonb_build_object(
                                'serial', serial, 'taken_at', taken_at, 'from', from_peer,
                                'next_update_unix', (register->>'next_update_unix')::bigint,
                                'banks', jsonb_array_length(register->'banks'))
                       FROM fed_register), '{"serial": 0}')
$$;
