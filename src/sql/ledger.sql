-- The ledger: the journal and its guards, accounts, balances and floors,
-- and posting one transfer. Everything that moves hours posts through here.
--
-- Every API operation is one call to one function, so each is a single
-- atomic statement: a lost connection never leaves one half applied.
-- Business refusals are raised with SQLSTATE TB000 (tb_raise), the stable
-- API error code as the message and a sentence for people as the detail.

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

-- ---- rules ------------------------------------------------------------------
--
-- Each rule is one function answering its refusal's stable code, or NULL.
-- Every path that needs a rule calls it: one taking an item at a time
-- raises the refusal with a sentence for people; one taking a batch
-- set-wise goes item by item instead when any item would be refused, so
-- every refusal is answered the same way. SQL functions, so that set-wise
-- queries inline them.

-- Who takes part in an exchange is an active member.
CREATE FUNCTION tb_rule_active(status text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status <> 'active' THEN 'member_inactive' END
$$;

-- Nobody exchanges with themselves.
CREATE FUNCTION tb_rule_parties(payer bigint, earner bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN payer = earner THEN 'same_member' END
$$;

-- Help is recorded once it has been given: not for a day to come.
CREATE FUNCTION tb_rule_date(performed_on date) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN performed_on > current_date THEN 'invalid_date' END
$$;

-- What an account spends, pending debits included, keeps it at or above
-- its floor.
CREATE FUNCTION tb_rule_floor(available bigint, minutes bigint, floor bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN available - minutes < floor THEN 'below_floor' END
$$;

-- ---- the journal --------------------------------------------------------------

-- The journal and the transfers it records are append-only, whoever asks.
CREATE FUNCTION tb_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = format('%s on %s is refused: the journal is append-only; '
                        'corrections are new transfers', TG_OP, TG_TABLE_NAME);
END $$;

CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION tb_refuse_change();

-- Whether a row's new version only clears (sets to NULL) some of cols, the
-- free text an erasure takes out of a record that otherwise never changes.
CREATE FUNCTION tb_only_cleared(old jsonb, new jsonb, cols text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT old - cols = new - cols
       AND NOT EXISTS (SELECT 1 FROM unnest(cols) c
                        WHERE new->c <> 'null' AND new->c IS DISTINCT FROM old->c)
$$;

CREATE FUNCTION tb_transfers_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND tb_only_cleared(to_jsonb(OLD), to_jsonb(NEW),
                          '{description,reason,fingerprint}') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = format('%s on %s is refused: the journal is append-only; '
                        'corrections are new transfers', TG_OP, TG_TABLE_NAME);
END $$;

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION tb_transfers_guard();

-- The journal: each transfer's debit (its payer's account, negative) and
-- credit (its earner's), so every transfer sums to zero by construction.
-- An entry's id is its transfer's twice, less one for the debit.
CREATE VIEW entries (id, transfer_id, account_id, minutes, created_at) AS
    SELECT t.id * 2 - 1, t.id, t.payer_account, -t.minutes, t.created_at FROM transfers t
    UNION ALL
    SELECT t.id * 2, t.id, t.earner_account, t.minutes, t.created_at FROM transfers t;

CREATE TRIGGER entries_append_only INSTEAD OF INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION tb_refuse_change();

-- Keeps the cached balances in step with every transfer written: one
-- update per account a statement's transfers touch, at its end. Unless the
-- function writing them posts their balances itself (tb.balances_posted),
-- as settling a message of answers does, with the accounts locked.
CREATE FUNCTION tb_post_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tb.balances_posted', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE accounts a SET balance_minutes = a.balance_minutes + s.change
      FROM (SELECT l.account_id, sum(l.change) AS change
              FROM added, LATERAL (VALUES (added.payer_account, -added.minutes),
                                          (added.earner_account, added.minutes))
                          AS l(account_id, change)
             GROUP BY l.account_id) s
     WHERE a.id = s.account_id;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_post AFTER INSERT ON transfers REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tb_post_transfers();

CREATE FUNCTION tb_community_account() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM accounts WHERE kind = 'community'
$$;

-- How a member is named in answers and statements, wherever it is found.
-- Letters, digits and spaces only, so answers write it without escaping.
-- STABLE, as text || bigint is, so that queries inline it.
CREATE FUNCTION tb_member_label(kind text, number bigint, erased_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN erased_at IS NOT NULL THEN 'former member'
                WHEN kind = 'organisation' THEN 'organisation ' || number
                ELSE 'member ' || number END
$$;

-- How an account is named in answers and statements. PL/pgSQL rather than
-- SQL, so that its plans are kept from call to call.
CREATE FUNCTION tb_account_label(acct bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members;
    label text;
BEGIN
    SELECT * INTO m FROM members WHERE account_id = acct;
    IF FOUND THEN
        RETURN tb_member_label(m.kind, m.number, m.erased_at);
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

CREATE FUNCTION tb_balance(num bigint, default_floor bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'number', m.number, 'name', m.name, 'status', m.status,
        'balance_minutes', a.balance_minutes, 'pending_minutes', a.pending_minutes,
        'floor_minutes', coalesce(a.floor_minutes, default_floor),
        'available_minutes',
            a.balance_minutes - a.pending_minutes - coalesce(a.floor_minutes, default_floor))
      FROM accounts a, tb_find_member(num) m WHERE a.id = m.account_id
$$;

-- The floor that applies to an account: its own, else the bank's default
-- (members and organisations) or the community floor (the community account).
CREATE FUNCTION tb_floor_of(a accounts, default_floor bigint, community_floor bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(a.floor_minutes,
                    CASE WHEN a.kind = 'community' THEN community_floor ELSE default_floor END)
$$;

CREATE FUNCTION tb_lock_accounts(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
END $$;

-- Posts one transfer: checks the payer's floor and writes the transfer,
-- whose trigger posts its balances. The caller has locked both accounts.
CREATE FUNCTION tb_post(kind text, payer bigint, earner bigint, minutes bigint, category text,
                        description text, performed_on date, actor text, key text, fp text,
                        reverses bigint, reason text, group_key text,
                        default_floor bigint, community_floor bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    pa accounts;
    fl bigint;
    tid bigint;
BEGIN
    SELECT * INTO pa FROM accounts WHERE id = payer;
    fl := tb_floor_of(pa, default_floor, community_floor);
    IF tb_rule_floor(pa.balance_minutes - pa.pending_minutes, minutes, fl) IS NOT NULL THEN
        PERFORM tb_raise('below_floor', format(
            '%s has %s to spend above the floor of %s; this needs %s',
            tb_account_label(payer),
            tb_hours(greatest(pa.balance_minutes - pa.pending_minutes - fl, 0)),
            tb_hours(fl), tb_hours(minutes)));
    END IF;
    INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, description,
                           performed_on, recorded_by, idempotency_key, fingerprint, reverses,
                           reason, group_key)
         VALUES (kind, payer, earner, minutes, category, description,
                 coalesce(performed_on, current_date), actor, key, fp, reverses, reason,
                 group_key)
      RETURNING id INTO tid;
    RETURN tid;
END $$;

-- A request sent again with its idempotency key is the one done before
-- (what, the record it made) when its fingerprint is the same. One whose
-- words an erasure cleared, fingerprint with them, cannot be told from a
-- new request under the same key: refused, saying what was done, so that
-- nothing is done twice and a new request is not mistaken for the old.
CREATE FUNCTION tb_same_request(key text, done_fp text, fp text, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF done_fp IS NULL THEN
        PERFORM tb_raise('idempotency_key_erased', format(
            'idempotency key %s was used for %s, whose words were since erased: a retry '
            'cannot be told from a new request; it was done once, and a new request needs '
            'a new key', key, what));
    ELSIF done_fp <> fp THEN
        PERFORM tb_raise('idempotency_conflict', format(
            'idempotency key %s was already used for a different request (%s)', key, what));
    END IF;
END $$;

-- A stored answer for a key already used, or NULL when the key is new.
-- Same key with a different request: idempotency_conflict.
CREATE FUNCTION tb_replay(key text, fp text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    done transfers;
BEGIN
    -- Same key, one at a time: a retry waits for the first try and sees it.
    PERFORM pg_advisory_xact_lock(hashtext(key));
    SELECT * INTO done FROM transfers WHERE idempotency_key = key;
    IF NOT FOUND THEN
        -- A group's exchanges carry KEY:1, KEY:2, ...
        SELECT * INTO done FROM transfers WHERE idempotency_key = key || ':1' AND group_key = key;
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM tb_same_request(key, done.fingerprint, fp, format('transfer %s', done.id));
    IF done.group_key IS NOT NULL THEN
        RETURN tb_group_json(done.group_key);
    END IF;
    RETURN tb_exchange_json(done.id);
END $$;

CREATE FUNCTION tb_active_member(num bigint, role text) RETURNS members LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
BEGIN
    IF tb_rule_active(m.status) IS NOT NULL THEN
        PERFORM tb_raise('member_inactive', format('%s %s is %s', role, num, m.status));
    END IF;
    RETURN m;
END $$;
