-- Migration 1: one bank's ledger.
--
-- Every API operation is one call to one function below, so each is a single
-- atomic statement: a lost connection can never leave it half applied.
-- Business refusals are raised with SQLSTATE TB000, the stable API error code
-- as the message and a sentence for people as the detail.

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('member', 'organisation', 'community', 'clearing')),
    -- NULL: the bank's default floor (from the config) applies.
    floor_minutes   bigint CHECK (floor_minutes <= 0),
    -- A cache of the journal; audit proves it equals the sum of entries.
    balance_minutes bigint NOT NULL DEFAULT 0,
    -- Debits reserved but not yet posted (cross-bank exchanges in flight).
    pending_minutes bigint NOT NULL DEFAULT 0 CHECK (pending_minutes >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_one_community ON accounts (kind) WHERE kind = 'community';
INSERT INTO accounts (kind) VALUES ('community');

CREATE TABLE members (
    number       bigint PRIMARY KEY CHECK (number > 0),
    account_id   bigint NOT NULL UNIQUE REFERENCES accounts (id),
    name         text NOT NULL,
    email        text,
    phone        text,
    address      text,
    skills       text,
    needs        text,
    availability text,
    notes        text, -- confidential: special needs, accessibility
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'left')),
    joined_on    date NOT NULL DEFAULT current_date,
    created_by   text NOT NULL,
    updated_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_status ON members (status, number);

CREATE TABLE transfers (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('exchange')),
    payer_account   bigint NOT NULL REFERENCES accounts (id),
    earner_account  bigint NOT NULL REFERENCES accounts (id),
    minutes         bigint NOT NULL CHECK (minutes > 0),
    category        text NOT NULL,
    description     text,
    performed_on    date NOT NULL,
    recorded_by     text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (payer_account <> earner_account)
);
CREATE INDEX transfers_payer ON transfers (payer_account, id);
CREATE INDEX transfers_earner ON transfers (earner_account, id);

-- The journal: credit positive, debit negative; each transfer sums to zero.
CREATE TABLE entries (
    id          bigserial PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    minutes     bigint NOT NULL CHECK (minutes <> 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_account ON entries (account_id, id);
CREATE INDEX entries_transfer ON entries (transfer_id);

-- The journal and the transfers it records are append-only, whoever asks.
CREATE FUNCTION tb_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = format('%s on %s is refused: the journal is append-only; '
                        'corrections are new transfers', TG_OP, TG_TABLE_NAME);
END $$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION tb_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION tb_refuse_change();
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION tb_refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION tb_refuse_change();

-- Keeps the cached balance in step with every entry written.
CREATE FUNCTION tb_post_entry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance_minutes = balance_minutes + NEW.minutes
     WHERE id = NEW.account_id;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_post AFTER INSERT ON entries
    FOR EACH ROW EXECUTE FUNCTION tb_post_entry();

CREATE FUNCTION tb_raise(code text, message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = code, DETAIL = message;
END $$;

-- Minutes shown as hours, the same way tbctl shows them ("1h30m", "-2h").
CREATE FUNCTION tb_hours(m bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN m < 0 THEN '-' ELSE '' END ||
           CASE WHEN abs(m) >= 60 OR abs(m) = 0 THEN (abs(m) / 60)::text || 'h' ELSE '' END ||
           CASE WHEN abs(m) % 60 = 0 THEN ''
                WHEN abs(m) >= 60 THEN lpad((abs(m) % 60)::text, 2, '0') || 'm'
                ELSE (abs(m) % 60)::text || 'm' END
$$;

CREATE FUNCTION tb_member_json(m members, with_notes boolean) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'number', m.number, 'name', m.name, 'email', m.email, 'phone', m.phone,
        'address', m.address, 'skills', m.skills, 'needs', m.needs,
        'availability', m.availability, 'status', m.status, 'joined_on', m.joined_on,
        'floor_minutes', a.floor_minutes, 'balance_minutes', a.balance_minutes,
        'pending_minutes', a.pending_minutes, 'updated_at', m.updated_at)
        || CASE WHEN with_notes THEN jsonb_build_object('notes', m.notes) ELSE '{}' END
      FROM accounts a WHERE a.id = m.account_id
$$;

CREATE FUNCTION tb_find_member(num bigint) RETURNS members LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members;
BEGIN
    SELECT * INTO m FROM members WHERE number = num;
    IF NOT FOUND THEN
        PERFORM tb_raise('member_not_found', format('there is no member %s', num));
    END IF;
    RETURN m;
END $$;

CREATE FUNCTION tb_member_add(p jsonb, actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    num bigint := (p->>'number')::bigint;
    acct bigint;
    m members;
BEGIN
    -- Numbers are handed out one at a time so two adds never pick the same.
    PERFORM pg_advisory_xact_lock(hashtext('tb_member_number'));
    IF num IS NULL THEN
        SELECT coalesce(max(number), 0) + 1 INTO num FROM members;
    ELSIF EXISTS (SELECT 1 FROM members WHERE number = num) THEN
        PERFORM tb_raise('duplicate_member_number',
                         format('member number %s is already taken', num));
    END IF;
    INSERT INTO accounts (kind, floor_minutes)
         VALUES ('member', (p->>'floor_minutes')::bigint) RETURNING id INTO acct;
    INSERT INTO members (number, account_id, name, email, phone, address, skills, needs,
                         availability, notes, joined_on, created_by, updated_by)
         VALUES (num, acct, p->>'name', p->>'email', p->>'phone', p->>'address', p->>'skills',
                 p->>'needs', p->>'availability', p->>'notes',
                 coalesce((p->>'joined_on')::date, current_date), actor, actor)
      RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

CREATE FUNCTION tb_member_get(num bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT tb_member_json(tb_find_member(num), true)
$$;

CREATE FUNCTION tb_member_list(want_status text, search text, cursor bigint, lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT m FROM members m
         WHERE (want_status IS NULL OR m.status = want_status)
           AND (search IS NULL OR m.name ILIKE '%' || search || '%')
           AND (cursor IS NULL OR m.number > cursor)
         ORDER BY m.number LIMIT lim + 1)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_member_json(m, false) ORDER BY (m).number)
                             FROM (SELECT m FROM page ORDER BY (m).number LIMIT lim) first), '[]'),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) > lim
                            THEN (SELECT (m).number FROM page ORDER BY (m).number
                                  OFFSET lim - 1 LIMIT 1)::text END)
$$;

-- Floor and status changes lock the account first, like an exchange does,
-- so a check made under the lock stays true until commit.
CREATE FUNCTION tb_member_update(num bigint, p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    a accounts;
    fl bigint;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = m.account_id FOR UPDATE;
    IF p ? 'floor_minutes' THEN
        fl := coalesce((p->>'floor_minutes')::bigint, default_floor);
        IF a.balance_minutes - a.pending_minutes < fl THEN
            PERFORM tb_raise('below_floor', format(
                'member %s has a balance of %s, below the new floor of %s',
                num, tb_hours(a.balance_minutes - a.pending_minutes), tb_hours(fl)));
        END IF;
        UPDATE accounts SET floor_minutes = (p->>'floor_minutes')::bigint WHERE id = a.id;
    END IF;
    UPDATE members SET
        name = CASE WHEN p ? 'name' THEN p->>'name' ELSE name END,
        email = CASE WHEN p ? 'email' THEN p->>'email' ELSE email END,
        phone = CASE WHEN p ? 'phone' THEN p->>'phone' ELSE phone END,
        address = CASE WHEN p ? 'address' THEN p->>'address' ELSE address END,
        skills = CASE WHEN p ? 'skills' THEN p->>'skills' ELSE skills END,
        needs = CASE WHEN p ? 'needs' THEN p->>'needs' ELSE needs END,
        availability = CASE WHEN p ? 'availability' THEN p->>'availability' ELSE availability END,
        notes = CASE WHEN p ? 'notes' THEN p->>'notes' ELSE notes END,
        status = coalesce(p->>'status', status),
        joined_on = coalesce((p->>'joined_on')::date, joined_on),
        updated_by = actor, updated_at = now()
     WHERE number = num
    RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

CREATE FUNCTION tb_balance(num bigint, default_floor bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'number', m.number, 'name', m.name, 'status', m.status,
        'balance_minutes', a.balance_minutes, 'pending_minutes', a.pending_minutes,
        'floor_minutes', coalesce(a.floor_minutes, default_floor),
        'available_minutes',
            a.balance_minutes - a.pending_minutes - coalesce(a.floor_minutes, default_floor))
      FROM accounts a, tb_find_member(num) m WHERE a.id = m.account_id
$$;

CREATE FUNCTION tb_account_label(acct bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT 'member ' || number FROM members WHERE account_id = acct),
                    (SELECT kind || ' account ' || id FROM accounts WHERE id = acct))
$$;

CREATE FUNCTION tb_exchange_json(tid bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'state', 'settled', 'payer', pm.number, 'earner', em.number,
        'minutes', t.minutes, 'category', t.category, 'description', t.description,
        'performed_on', t.performed_on, 'recorded_by', t.recorded_by,
        'idempotency_key', t.idempotency_key, 'created_at', t.created_at)
      FROM transfers t
      LEFT JOIN members pm ON pm.account_id = t.payer_account
      LEFT JOIN members em ON em.account_id = t.earner_account
     WHERE t.id = tid
$$;

CREATE FUNCTION tb_exchange_record(p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    minutes bigint := (p->>'minutes')::bigint;
    done transfers;
    pm members;
    em members;
    pa accounts;
    fl bigint;
    tid bigint;
BEGIN
    -- Same key, one at a time: a retry waits for the first try and sees it.
    PERFORM pg_advisory_xact_lock(hashtext(key));
    SELECT * INTO done FROM transfers WHERE idempotency_key = key;
    IF FOUND THEN
        IF done.fingerprint <> fp THEN
            PERFORM tb_raise('idempotency_conflict', format(
                'idempotency key %s was already used for a different exchange (%s)', key, done.id));
        END IF;
        RETURN tb_exchange_json(done.id);
    END IF;

    pm := tb_find_member((p->>'payer')::bigint);
    em := tb_find_member((p->>'earner')::bigint);
    IF pm.number = em.number THEN
        PERFORM tb_raise('same_member', 'payer and earner are the same member');
    END IF;
    IF (p->>'performed_on')::date > current_date THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    -- Lock both accounts in id order so crossing exchanges cannot deadlock.
    PERFORM 1 FROM accounts WHERE id IN (pm.account_id, em.account_id) ORDER BY id FOR UPDATE;
    SELECT * INTO pm FROM members WHERE number = pm.number;
    SELECT * INTO em FROM members WHERE number = em.number;
    IF pm.status <> 'active' THEN
        PERFORM tb_raise('member_inactive', format('payer %s is %s', pm.number, pm.status));
    END IF;
    IF em.status <> 'active' THEN
        PERFORM tb_raise('member_inactive', format('earner %s is %s', em.number, em.status));
    END IF;
    SELECT * INTO pa FROM accounts WHERE id = pm.account_id;
    fl := coalesce(pa.floor_minutes, default_floor);
    IF pa.balance_minutes - pa.pending_minutes - minutes < fl THEN
        PERFORM tb_raise('below_floor', format(
            'member %s has %s to spend above the floor of %s; this exchange needs %s',
            pm.number, tb_hours(greatest(pa.balance_minutes - pa.pending_minutes - fl, 0)),
            tb_hours(fl), tb_hours(minutes)));
    END IF;

    INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, description,
                           performed_on, recorded_by, idempotency_key, fingerprint)
         VALUES ('exchange', pm.account_id, em.account_id, minutes, p->>'category',
                 p->>'description', coalesce((p->>'performed_on')::date, current_date),
                 actor, key, fp)
      RETURNING id INTO tid;
    INSERT INTO entries (transfer_id, account_id, minutes)
         VALUES (tid, pm.account_id, -minutes), (tid, em.account_id, minutes);
    RETURN tb_exchange_json(tid);
END $$;

CREATE FUNCTION tb_exchange_get(tid bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    j jsonb := tb_exchange_json(tid);
BEGIN
    IF j IS NULL THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', tid));
    END IF;
    RETURN j;
END $$;

CREATE FUNCTION tb_exchange_list(num bigint, cursor bigint, lim int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    acct bigint;
    ids bigint[];
BEGIN
    IF num IS NOT NULL THEN
        acct := (tb_find_member(num)).account_id;
    END IF;
    SELECT array_agg(id ORDER BY id DESC) INTO ids FROM (
        SELECT id FROM transfers
         WHERE (acct IS NULL OR payer_account = acct OR earner_account = acct)
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim + 1) page;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_exchange_json(i) ORDER BY i DESC)
                             FROM unnest(ids[1:lim]) i), '[]'),
        'next_cursor', CASE WHEN cardinality(ids) > lim THEN ids[lim]::text END);
END $$;

-- A member's lines, newest first, each with the balance after it.
CREATE FUNCTION tb_history(num bigint, cursor bigint, lim int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
    rows jsonb;
BEGIN
    SELECT jsonb_agg(to_jsonb(x) ORDER BY x.entry DESC) INTO rows FROM (
        SELECT * FROM (
            SELECT e.id AS entry, t.id AS exchange, t.performed_on, t.category, t.description,
                   e.minutes, sum(e.minutes) OVER (ORDER BY e.id) AS balance_after,
                   tb_account_label(other.account_id) AS other_party,
                   (SELECT name FROM members WHERE account_id = other.account_id) AS other_name
              FROM entries e JOIN transfers t ON t.id = e.transfer_id
              CROSS JOIN LATERAL (SELECT o.account_id FROM entries o
                                   WHERE o.transfer_id = t.id AND o.account_id <> e.account_id
                                   LIMIT 1) other
             WHERE e.account_id = m.account_id) lines
         WHERE cursor IS NULL OR entry < cursor
         ORDER BY entry DESC LIMIT lim + 1) x;
    rows := coalesce(rows, '[]');
    RETURN jsonb_build_object(
        'number', m.number, 'name', m.name,
        'items', coalesce((SELECT jsonb_agg(r ORDER BY ord)
                             FROM jsonb_array_elements(rows) WITH ORDINALITY AS a(r, ord)
                            WHERE ord <= lim), '[]'),
        'next_cursor', CASE WHEN jsonb_array_length(rows) > lim
                            THEN rows->(lim - 1)->>'entry' END);
END $$;

-- Invariants 1 to 3 of the design, each with what failed.
CREATE FUNCTION tb_audit(default_floor bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_accounts bigint;
    n_entries bigint;
    sum_balances numeric;
    sum_entries numeric;
    unbalanced jsonb;
    mismatched jsonb;
    below jsonb;
    checks jsonb;
BEGIN
    SELECT count(*), coalesce(sum(balance_minutes), 0) INTO n_accounts, sum_balances FROM accounts;
    SELECT count(*), coalesce(sum(minutes), 0) INTO n_entries, sum_entries FROM entries;
    SELECT coalesce(jsonb_agg('transfer ' || transfer_id), '[]') INTO unbalanced FROM (
        SELECT transfer_id FROM entries GROUP BY transfer_id HAVING sum(minutes) <> 0
         ORDER BY transfer_id LIMIT 50) u;
    SELECT coalesce(jsonb_agg(format('%s: balance %s, journal %s', tb_account_label(id),
                                     balance_minutes, journal)), '[]') INTO mismatched FROM (
        SELECT a.id, a.balance_minutes, coalesce(j.total, 0) AS journal
          FROM accounts a
          LEFT JOIN (SELECT account_id, sum(minutes) AS total FROM entries GROUP BY account_id) j
            ON j.account_id = a.id
         WHERE a.balance_minutes <> coalesce(j.total, 0)
         ORDER BY a.id LIMIT 50) x;
    SELECT coalesce(jsonb_agg(format('%s: balance %s with %s pending, floor %s',
                                     tb_account_label(id), tb_hours(balance_minutes),
                                     tb_hours(pending_minutes), tb_hours(fl))), '[]')
      INTO below FROM (
        SELECT id, balance_minutes, pending_minutes,
               coalesce(floor_minutes, default_floor) AS fl
          FROM accounts
         WHERE kind IN ('member', 'organisation')
           AND balance_minutes - pending_minutes < coalesce(floor_minutes, default_floor)
         ORDER BY id LIMIT 50) b;
    checks := jsonb_build_array(
        jsonb_build_object('invariant', 1, 'name', 'balances of all accounts sum to zero',
            'ok', sum_balances = 0 AND sum_entries = 0 AND jsonb_array_length(unbalanced) = 0,
            'detail', format('%s accounts sum to %s minutes; %s journal entries sum to %s minutes',
                             n_accounts, sum_balances, n_entries, sum_entries),
            'failing', unbalanced),
        jsonb_build_object('invariant', 2, 'name', 'every balance equals the replay of its journal',
            'ok', jsonb_array_length(mismatched) = 0,
            'detail', format('%s accounts replayed from %s entries', n_accounts, n_entries),
            'failing', mismatched),
        jsonb_build_object('invariant', 3, 'name', 'no balance is below its floor, pending included',
            'ok', jsonb_array_length(below) = 0,
            'detail', format('member and organisation accounts checked against their floors '
                             '(default %s)', tb_hours(default_floor)),
            'failing', below));
    RETURN jsonb_build_object(
        'ok', NOT EXISTS (SELECT 1 FROM jsonb_array_elements(checks) c WHERE NOT (c->>'ok')::boolean),
        'checked_at', now(), 'checks', checks);
END $$;
