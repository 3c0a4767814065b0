-- Migration 2: a coordinator's weekly work. Organisations, referral sources,
-- grants from the community account, reversals, group exchanges,
-- statements, reports for funders, and members' data rights.

-- Organisations (a GP practice, a youth centre, a museum taking time
-- credits) are members of kind 'organisation': same numbers, same exchanges,
-- their own floor. referred_by names the organisation that referred a person.
ALTER TABLE members ADD COLUMN kind text NOT NULL DEFAULT 'person'
    CHECK (kind IN ('person', 'organisation'));
ALTER TABLE members ADD COLUMN referred_by bigint REFERENCES members (number);
ALTER TABLE members ADD COLUMN erased_at timestamptz;
ALTER TABLE members ADD COLUMN erased_by text;
ALTER TABLE members ADD COLUMN erase_reason text;
ALTER TABLE members ALTER COLUMN name DROP NOT NULL;
ALTER TABLE members ADD CONSTRAINT members_named CHECK (name IS NOT NULL OR erased_at IS NOT NULL);
CREATE INDEX members_referred_by ON members (referred_by) WHERE referred_by IS NOT NULL;

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('exchange', 'grant', 'reversal'));
-- A transfer is reversed at most once: the index refuses a second.
ALTER TABLE transfers ADD COLUMN reverses bigint UNIQUE REFERENCES transfers (id);
ALTER TABLE transfers ADD COLUMN reason text;
-- The exchanges of one group activity share the request's key.
ALTER TABLE transfers ADD COLUMN group_key text;
CREATE INDEX transfers_group ON transfers (group_key) WHERE group_key IS NOT NULL;
CREATE INDEX transfers_performed ON transfers (performed_on);

-- Amounts, parties and dates never change. The one change allowed is
-- clearing free text (description, reason) when a member's data is erased.
DROP TRIGGER transfers_append_only ON transfers;
CREATE FUNCTION tb_transfers_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND to_jsonb(NEW) - 'description' - 'reason' = to_jsonb(OLD) - 'description' - 'reason'
       AND (NEW.description IS NULL OR NEW.description IS NOT DISTINCT FROM OLD.description)
       AND (NEW.reason IS NULL OR NEW.reason IS NOT DISTINCT FROM OLD.reason) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = format('%s on %s is refused: the journal is append-only; '
                        'corrections are new transfers', TG_OP, TG_TABLE_NAME);
END $$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION tb_transfers_guard();

CREATE FUNCTION tb_community_account() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM accounts WHERE kind = 'community'
$$;

-- How an account is named to people: on statements, histories, exports.
CREATE OR REPLACE FUNCTION tb_account_label(acct bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE WHEN erased_at IS NOT NULL THEN 'former member'
                     WHEN kind = 'organisation' THEN 'organisation ' || number
                     ELSE 'member ' || number END
           FROM members WHERE account_id = acct),
        (SELECT CASE kind WHEN 'community' THEN 'community account'
                          ELSE kind || ' account ' || id END
           FROM accounts WHERE id = acct))
$$;

CREATE OR REPLACE FUNCTION tb_member_json(m members, with_notes boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'number', m.number, 'kind', m.kind, 'name', m.name, 'email', m.email,
        'phone', m.phone, 'address', m.address, 'skills', m.skills, 'needs', m.needs,
        'availability', m.availability, 'status', m.status, 'joined_on', m.joined_on,
        'referred_by', m.referred_by, 'erased', m.erased_at IS NOT NULL,
        'floor_minutes', a.floor_minutes, 'balance_minutes', a.balance_minutes,
        'pending_minutes', a.pending_minutes, 'updated_at', m.updated_at)
        || CASE WHEN with_notes THEN jsonb_build_object('notes', m.notes) ELSE '{}' END
      FROM accounts a WHERE a.id = m.account_id
$$;

-- A referral source must be an organisation of this bank.
CREATE FUNCTION tb_check_referrer(num bigint) RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF num IS NOT NULL AND (tb_find_member(num)).kind <> 'organisation' THEN
        PERFORM tb_raise('invalid_referrer', format(
            'member %s is not an organisation; referred_by names the organisation '
            'that referred the member', num));
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tb_member_add(p jsonb, actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    num bigint := (p->>'number')::bigint;
    kind text := coalesce(p->>'kind', 'person');
    acct bigint;
    m members;
BEGIN
    PERFORM tb_check_referrer((p->>'referred_by')::bigint);
    -- Numbers are handed out one at a time so two adds never pick the same.
    PERFORM pg_advisory_xact_lock(hashtext('tb_member_number'));
    IF num IS NULL THEN
        SELECT coalesce(max(number), 0) + 1 INTO num FROM members;
    ELSIF EXISTS (SELECT 1 FROM members WHERE number = num) THEN
        PERFORM tb_raise('duplicate_member_number',
                         format('member number %s is already taken', num));
    END IF;
    INSERT INTO accounts (kind, floor_minutes)
         VALUES (CASE kind WHEN 'organisation' THEN 'organisation' ELSE 'member' END,
                 (p->>'floor_minutes')::bigint)
      RETURNING id INTO acct;
    INSERT INTO members (number, account_id, kind, name, email, phone, address, skills, needs,
                         availability, notes, joined_on, referred_by, created_by, updated_by)
         VALUES (num, acct, kind, p->>'name', p->>'email', p->>'phone', p->>'address',
                 p->>'skills', p->>'needs', p->>'availability', p->>'notes',
                 coalesce((p->>'joined_on')::date, current_date),
                 (p->>'referred_by')::bigint, actor, actor)
      RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

CREATE OR REPLACE FUNCTION tb_member_update(num bigint, p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    a accounts;
    fl bigint;
BEGIN
    IF m.erased_at IS NOT NULL THEN
        PERFORM tb_raise('member_erased', format('member %s was erased and cannot change', num));
    END IF;
    IF p ? 'referred_by' THEN
        PERFORM tb_check_referrer((p->>'referred_by')::bigint);
    END IF;
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
        referred_by = CASE WHEN p ? 'referred_by' THEN (p->>'referred_by')::bigint
                           ELSE referred_by END,
        status = coalesce(p->>'status', status),
        joined_on = coalesce((p->>'joined_on')::date, joined_on),
        updated_by = actor, updated_at = now()
     WHERE number = num
    RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

DROP FUNCTION tb_member_list(text, text, bigint, int);
CREATE FUNCTION tb_member_list(want_status text, want_kind text, search text, cursor bigint,
                               lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT m FROM members m
         WHERE (want_status IS NULL OR m.status = want_status)
           AND (want_kind IS NULL OR m.kind = want_kind)
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

CREATE OR REPLACE FUNCTION tb_exchange_json(tid bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'kind', t.kind, 'state', 'settled',
        'payer', pm.number, 'earner', em.number,
        'payer_label', tb_account_label(t.payer_account),
        'earner_label', tb_account_label(t.earner_account),
        'minutes', t.minutes, 'category', t.category, 'description', t.description,
        'performed_on', t.performed_on, 'recorded_by', t.recorded_by,
        'idempotency_key', t.idempotency_key, 'created_at', t.created_at,
        'reverses', t.reverses, 'reason', t.reason, 'group_key', t.group_key,
        'reversed_by', (SELECT r.id FROM transfers r WHERE r.reverses = t.id))
      FROM transfers t
      LEFT JOIN members pm ON pm.account_id = t.payer_account
      LEFT JOIN members em ON em.account_id = t.earner_account
     WHERE t.id = tid
$$;

-- The floor that applies to an account: its own, else the bank's default
-- (members and organisations) or the community floor (the community account).
CREATE FUNCTION tb_floor_of(a accounts, default_floor bigint, community_floor bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(a.floor_minutes,
                    CASE WHEN a.kind = 'community' THEN community_floor ELSE default_floor END)
$$;

-- Posts one transfer: checks the payer's floor and writes the transfer and
-- its two entries. The caller has locked both accounts.
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
    IF pa.balance_minutes - pa.pending_minutes - minutes < fl THEN
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
    INSERT INTO entries (transfer_id, account_id, minutes)
         VALUES (tid, payer, -minutes), (tid, earner, minutes);
    RETURN tid;
END $$;

-- Locks accounts in id order, so requests that cross cannot deadlock.
CREATE FUNCTION tb_lock_accounts(ids bigint[]) RETURNS void LANGUAGE sql AS $$
    SELECT 1 FROM accounts WHERE id = ANY (ids) ORDER BY id FOR UPDATE
$$;

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
    IF done.fingerprint <> fp THEN
        PERFORM tb_raise('idempotency_conflict', format(
            'idempotency key %s was already used for a different request (transfer %s)',
            key, done.id));
    END IF;
    IF done.group_key IS NOT NULL THEN
        RETURN tb_group_json(done.group_key);
    END IF;
    RETURN tb_exchange_json(done.id);
END $$;

CREATE FUNCTION tb_active_member(num bigint, role text) RETURNS members LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
BEGIN
    IF m.status <> 'active' THEN
        PERFORM tb_raise('member_inactive', format('%s %s is %s', role, num, m.status));
    END IF;
    RETURN m;
END $$;

CREATE OR REPLACE FUNCTION tb_exchange_record(p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    pm members;
    em members;
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    pm := tb_find_member((p->>'payer')::bigint);
    em := tb_find_member((p->>'earner')::bigint);
    IF (p->>'performed_on')::date > current_date THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    PERFORM tb_lock_accounts(ARRAY[pm.account_id, em.account_id]);
    pm := tb_active_member(pm.number, 'payer');
    em := tb_active_member(em.number, 'earner');
    tid := tb_post('exchange', pm.account_id, em.account_id,
        (p->>'minutes')::bigint, p->>'category', p->>'description',
        (p->>'performed_on')::date, actor, key, fp, NULL, NULL, NULL, default_floor, NULL);
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;

CREATE FUNCTION tb_group_json(gkey text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'group_key', gkey, 'state', 'settled',
        'payer', (array_agg(pm.number))[1],
        'minutes', sum(t.minutes),
        'items', jsonb_agg(tb_exchange_json(t.id) ORDER BY t.id))
      FROM transfers t LEFT JOIN members pm ON pm.account_id = t.payer_account
     WHERE t.group_key = gkey
$$;

-- One activity, several earners (a gardening session with four helpers):
-- one exchange per earner, all posted or none.
CREATE FUNCTION tb_exchange_group(p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    pm members;
    em members;
    item jsonb;
    accts bigint[];
    total bigint := 0;
    i int := 0;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    IF (p->>'performed_on')::date > current_date THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    pm := tb_find_member((p->>'payer')::bigint);
    accts := ARRAY[pm.account_id];
    FOR item IN SELECT * FROM jsonb_array_elements(p->'earners') LOOP
        accts := accts || (tb_find_member((item->>'earner')::bigint)).account_id;
        total := total + (item->>'minutes')::bigint;
    END LOOP;
    PERFORM tb_lock_accounts(accts);
    pm := tb_active_member(pm.number, 'payer');
    FOR item IN SELECT * FROM jsonb_array_elements(p->'earners') LOOP
        i := i + 1;
        em := tb_active_member((item->>'earner')::bigint, 'earner');
        PERFORM tb_post('exchange', pm.account_id, em.account_id, (item->>'minutes')::bigint,
            p->>'category', p->>'description', (p->>'performed_on')::date, actor,
            key || ':' || i, fp, NULL, NULL, key, default_floor, NULL);
    END LOOP;
    RETURN tb_group_json(key);
END $$;

-- Hours from the community account to a member: starting hours, rewards.
CREATE FUNCTION tb_grant(p jsonb, actor text, community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    em members;
    community bigint := tb_community_account();
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    em := tb_find_member((p->>'member')::bigint);
    PERFORM tb_lock_accounts(ARRAY[community, em.account_id]);
    em := tb_active_member(em.number, 'member');
    tid := tb_post('grant', community, em.account_id,
        (p->>'minutes')::bigint, coalesce(p->>'category', 'grant'), p->>'description',
        (p->>'performed_on')::date, actor, key, fp, NULL, p->>'reason', NULL, NULL,
        community_floor);
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;

-- A new transfer the other way, referencing the original, which never
-- changes. Reversals are corrections, so the members' status does not
-- matter, but floors still do.
CREATE FUNCTION tb_reverse(original bigint, p jsonb, actor text, default_floor bigint,
                           community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p || jsonb_build_object('reverses', original) - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    t transfers;
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = original;
    IF NOT FOUND THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', original));
    END IF;
    IF t.kind = 'reversal' THEN
        PERFORM tb_raise('not_reversible', format(
            'transfer %s is itself a reversal; record a new exchange instead', original));
    END IF;
    PERFORM tb_lock_accounts(ARRAY[t.payer_account, t.earner_account]);
    IF EXISTS (SELECT 1 FROM transfers WHERE reverses = original) THEN
        PERFORM tb_raise('already_reversed', format('exchange %s was already reversed by %s',
            original, (SELECT id FROM transfers WHERE reverses = original)));
    END IF;
    tid := tb_post('reversal', t.earner_account, t.payer_account, t.minutes, t.category,
        format('reversal of %s %s', t.kind, t.id), current_date, actor, key, fp, original,
        p->>'reason', NULL, default_floor, community_floor);
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;

DROP FUNCTION tb_audit(bigint);
-- Invariants 1 to 3 of the design, each with what failed. Floors: members
-- and organisations their own or the bank's default, the community account
-- the community floor.
CREATE FUNCTION tb_audit(default_floor bigint, community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
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
               tb_floor_of(a, default_floor, community_floor) AS fl
          FROM accounts a
         WHERE kind IN ('member', 'organisation', 'community')
           AND balance_minutes - pending_minutes < tb_floor_of(a, default_floor, community_floor)
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
            'detail', format('member, organisation and community accounts checked against their '
                             'floors (default %s, community %s)', tb_hours(default_floor),
                             tb_hours(community_floor)),
            'failing', below));
    RETURN jsonb_build_object(
        'ok', NOT EXISTS (SELECT 1 FROM jsonb_array_elements(checks) c WHERE NOT (c->>'ok')::boolean),
        'checked_at', now(), 'checks', checks);
END $$;

-- The other party as a statement names it: "Chitra Desai (member 3)",
-- "former member", "community account".
CREATE FUNCTION tb_party_name(acct bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT name || ' (' || tb_account_label(acct) || ')' FROM members
                      WHERE account_id = acct AND erased_at IS NULL),
                    tb_account_label(acct))
$$;

-- A statement for a period, by the date each exchange was performed:
-- opening balance, each line with the running balance, closing balance.
CREATE FUNCTION tb_statement(num bigint, from_date date, to_date date, bank_id text,
                             bank_name text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
    opening bigint;
    lines jsonb;
    total_in bigint;
    total_out bigint;
BEGIN
    IF from_date > to_date THEN
        PERFORM tb_raise('invalid_period', 'the period ends before it starts');
    END IF;
    SELECT coalesce(sum(e.minutes), 0) INTO opening
      FROM entries e JOIN transfers t ON t.id = e.transfer_id
     WHERE e.account_id = m.account_id AND t.performed_on < from_date;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'date', performed_on, 'transfer', transfer, 'kind', kind,
               'other_party', other_party, 'category', category, 'description', description,
               'minutes', minutes, 'balance_minutes', opening + running)
               ORDER BY performed_on, entry), '[]'),
           coalesce(sum(minutes) FILTER (WHERE minutes > 0), 0),
           coalesce(-sum(minutes) FILTER (WHERE minutes < 0), 0)
      INTO lines, total_in, total_out
      FROM (SELECT e.id AS entry, t.id AS transfer, t.kind, t.performed_on, t.category,
                   t.description, e.minutes,
                   sum(e.minutes) OVER (ORDER BY t.performed_on, e.id) AS running,
                   tb_party_name(other.account_id) AS other_party
              FROM entries e JOIN transfers t ON t.id = e.transfer_id
             CROSS JOIN LATERAL (SELECT o.account_id FROM entries o
                                  WHERE o.transfer_id = t.id AND o.account_id <> e.account_id
                                  LIMIT 1) other
             WHERE e.account_id = m.account_id
               AND t.performed_on BETWEEN from_date AND to_date) x;
    RETURN jsonb_build_object(
        'bank', jsonb_build_object('id', bank_id, 'name', bank_name),
        'member', jsonb_build_object('number', m.number, 'kind', m.kind,
                                     'name', coalesce(m.name, 'former member'),
                                     'address', m.address, 'status', m.status),
        'from', from_date, 'to', to_date, 'opening_minutes', opening,
        'in_minutes', total_in, 'out_minutes', total_out,
        'closing_minutes', opening + total_in - total_out, 'lines', lines);
END $$;

-- Exchanges that stand: not grants, not reversals, not reversed.
CREATE FUNCTION tb_standing_exchanges(from_date date, to_date date) RETURNS SETOF transfers
LANGUAGE sql STABLE AS $$
    SELECT * FROM transfers t
     WHERE t.kind = 'exchange' AND t.performed_on BETWEEN from_date AND to_date
       AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.reverses = t.id)
$$;

CREATE FUNCTION tb_report_categories(from_date date, to_date date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('report', 'categories', 'from', from_date, 'to', to_date,
        'rows', coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.month, r.category), '[]'))
      FROM (SELECT to_char(performed_on, 'YYYY-MM') AS month, category,
                   count(*) AS exchanges, sum(minutes) AS minutes
              FROM tb_standing_exchanges(from_date, to_date) GROUP BY 1, 2) r
$$;

CREATE FUNCTION tb_report_active(days int, as_of date) RETURNS jsonb LANGUAGE sql STABLE AS $$
    -- "Active" means a standing exchange, given or received, in the window.
    SELECT jsonb_build_object('report', 'active', 'as_of', as_of, 'days', days,
        'rows', jsonb_build_array(jsonb_build_object(
            'active_members', (SELECT count(DISTINCT m.number)
                                 FROM members m
                                 JOIN tb_standing_exchanges(as_of - days + 1, as_of) t
                                   ON m.account_id IN (t.payer_account, t.earner_account)
                                WHERE m.kind = 'person'),
            'registered_members', (SELECT count(*) FROM members
                                    WHERE kind = 'person' AND status = 'active'),
            'active_organisations', (SELECT count(DISTINCT m.number)
                                       FROM members m
                                       JOIN tb_standing_exchanges(as_of - days + 1, as_of) t
                                         ON m.account_id IN (t.payer_account, t.earner_account)
                                      WHERE m.kind = 'organisation'))))
$$;

CREATE FUNCTION tb_report_new_members(from_date date, to_date date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('report', 'new-members', 'from', from_date, 'to', to_date,
        'rows', coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.month), '[]'))
      FROM (SELECT to_char(joined_on, 'YYYY-MM') AS month,
                   count(*) FILTER (WHERE kind = 'person') AS new_members,
                   count(*) FILTER (WHERE kind = 'organisation') AS new_organisations
              FROM members WHERE joined_on BETWEEN from_date AND to_date GROUP BY 1) r
$$;

-- Members and hours by the organisation that referred them in.
CREATE FUNCTION tb_report_referrals(from_date date, to_date date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH x AS (SELECT * FROM tb_standing_exchanges(from_date, to_date))
    SELECT jsonb_build_object('report', 'referrals', 'from', from_date, 'to', to_date,
        'rows', coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.source_number NULLS LAST), '[]'))
      FROM (SELECT m.referred_by AS source_number,
                   CASE WHEN m.referred_by IS NULL THEN 'not referred'
                        ELSE coalesce((SELECT name FROM members o WHERE o.number = m.referred_by),
                                      'former member') END AS source,
                   count(*) AS members,
                   count(*) FILTER (WHERE m.joined_on BETWEEN from_date AND to_date)
                       AS new_members,
                   coalesce(sum((SELECT sum(minutes) FROM x WHERE x.earner_account = m.account_id)),
                            0) AS minutes_given,
                   coalesce(sum((SELECT sum(minutes) FROM x WHERE x.payer_account = m.account_id)),
                            0) AS minutes_received
              FROM members m WHERE m.kind = 'person' GROUP BY m.referred_by) r
$$;

-- Everything held about a member, for a subject access request.
CREATE FUNCTION tb_member_export(num bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'exported_at', now(),
        'member', tb_member_json(m, true) || jsonb_build_object(
            'created_by', m.created_by, 'created_at', m.created_at, 'updated_by', m.updated_by,
            'erased_at', m.erased_at, 'erased_by', m.erased_by, 'erase_reason', m.erase_reason,
            'referred_by_name', (SELECT name FROM members o WHERE o.number = m.referred_by)),
        'transfers', coalesce((SELECT jsonb_agg(tb_exchange_json(t.id) ORDER BY t.id)
                                 FROM transfers t
                                WHERE m.account_id IN (t.payer_account, t.earner_account)), '[]'))
      FROM tb_find_member(num) m
$$;

-- Anonymises a member who left: personal fields and the free text of their
-- transfers are cleared; the account, its entries and balance stay, so the
-- books still add up and other members' statements show "former member".
CREATE FUNCTION tb_member_erase(num bigint, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    a accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = m.account_id FOR UPDATE;
    IF m.erased_at IS NOT NULL THEN
        PERFORM tb_raise('already_erased', format('member %s was already erased', num));
    END IF;
    IF m.status <> 'left' THEN
        PERFORM tb_raise('member_not_left', format(
            'member %s is %s; only a member who left can be erased (set status left first)',
            num, m.status));
    END IF;
    IF (a.balance_minutes <> 0 OR a.pending_minutes <> 0)
       AND NOT coalesce((p->>'force')::boolean, false) THEN
        PERFORM tb_raise('balance_not_zero', format(
            'member %s has a balance of %s; settle it first, or erase with force and a reason',
            num, tb_hours(a.balance_minutes)));
    END IF;
    UPDATE transfers SET description = NULL, reason = NULL
     WHERE (payer_account = a.id OR earner_account = a.id)
       AND (description IS NOT NULL OR reason IS NOT NULL);
    UPDATE members SET name = NULL, email = NULL, phone = NULL, address = NULL, skills = NULL,
                       needs = NULL, availability = NULL, notes = NULL,
                       erased_at = now(), erased_by = actor, erase_reason = p->>'reason',
                       updated_by = actor, updated_at = now()
     WHERE number = num
    RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;
