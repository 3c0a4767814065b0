-- Members and organisations: joining, changes, finding and listing them,
-- and their data rights (export, erasure).

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

-- A member, with where they came from or went (tb_member_referrals).
CREATE FUNCTION tb_member_get(num bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
BEGIN
    RETURN tb_member_json(m, true)
           || jsonb_build_object('referrals', tb_member_referrals(m.account_id));
END $$;

CREATE FUNCTION tb_member_json(m members, with_notes boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'number', m.number, 'kind', m.kind, 'name', m.name, 'email', m.email,
        'phone', m.phone, 'address', m.address, 'skills', m.skills, 'needs', m.needs,
        'availability', m.availability, 'status', m.status, 'joined_on', m.joined_on,
        'referred_by', m.referred_by, 'erased', m.erased_at IS NOT NULL,
        'district', tb_member_district(m), 'org_kind', m.org_kind, 'left_on', m.left_on,
        'floor_minutes', a.floor_minutes, 'balance_minutes', a.balance_minutes,
        'pending_minutes', a.pending_minutes, 'updated_at', m.updated_at)
        || CASE WHEN with_notes THEN jsonb_build_object('notes', m.notes,
                                                         'needs_care', m.needs_care)
                ELSE '{}' END
      FROM accounts a WHERE a.id = m.account_id
$$;

-- The kind of a referring organisation is an organisation's alone.
CREATE FUNCTION tb_check_org_kind(kind text, org_kind text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF org_kind IS NOT NULL AND kind <> 'organisation' THEN
        PERFORM tb_raise('invalid_field', 'org_kind is for organisations: gp_practice, '
                         'social_services, mental_health, housing or other');
    END IF;
END $$;

-- The postcode a text ends with (an address, or a line of one), as it is
-- written there, or NULL.
CREATE FUNCTION tb_postcode(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT (regexp_match(t, '(?:^|[^[:alnum:]])([A-Za-z]{1,2}[0-9][A-Za-z0-9]?[[:space:]]*'
                            '[0-9][A-Za-z]{2})[^[:alnum:]]*$'))[1]
$$;

-- A member's postcode district ("CO2"): the one the coordinator gave, or
-- else the outward code of a postcode the address ends with. Reports count
-- by it; the full postcode never leaves the bank.
CREATE FUNCTION tb_postcode_district(address text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT upper((regexp_match(tb_postcode(address),
                               '^([A-Za-z]{1,2}[0-9][A-Za-z0-9]?)[[:space:]]*[0-9][A-Za-z]{2}$'))[1])
$$;

CREATE FUNCTION tb_member_district(m members) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(m.district, tb_postcode_district(m.address))
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

CREATE FUNCTION tb_member_add(p jsonb, actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
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
        -- Past any a history lost to a restore may have given (tb_restored).
        SELECT greatest(coalesce(max(number), 0),
                        (SELECT coalesce(max(member_floor), 0) FROM restores)) + 1
          INTO num FROM members;
    ELSIF EXISTS (SELECT 1 FROM members WHERE number = num) THEN
        PERFORM tb_raise('duplicate_member_number',
                         format('member number %s is already taken', num));
    END IF;
    INSERT INTO accounts (kind, floor_minutes)
         VALUES (CASE kind WHEN 'organisation' THEN 'organisation' ELSE 'member' END,
                 (p->>'floor_minutes')::bigint)
      RETURNING id INTO acct;
    PERFORM tb_check_org_kind(kind, p->>'org_kind');
    INSERT INTO members (number, account_id, kind, name, email, phone, address, skills, needs,
                         availability, notes, joined_on, referred_by, district, org_kind,
                         needs_care, created_by, updated_by)
         VALUES (num, acct, kind, p->>'name', p->>'email', p->>'phone', p->>'address',
                 p->>'skills', p->>'needs', p->>'availability', p->>'notes',
                 coalesce((p->>'joined_on')::date, current_date),
                 (p->>'referred_by')::bigint, p->>'district', p->>'org_kind',
                 coalesce((p->>'needs_care')::boolean, false), actor, actor)
      RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

CREATE FUNCTION tb_member_update(num bigint, p jsonb, actor text, default_floor bigint)
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
    PERFORM tb_check_org_kind(m.kind, p->>'org_kind');
    SELECT * INTO a FROM accounts WHERE id = m.account_id FOR UPDATE;
    m := tb_find_member(num);
    IF p ? 'status' THEN
        PERFORM tb_check_not_moving(ARRAY[m.account_id]);
    END IF;
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
        district = CASE WHEN p ? 'district' THEN p->>'district' ELSE district END,
        org_kind = CASE WHEN p ? 'org_kind' THEN p->>'org_kind' ELSE org_kind END,
        needs_care = coalesce((p->>'needs_care')::boolean, needs_care),
        -- The day a member left, for the month's figures; gone if they come back.
        left_on = CASE WHEN coalesce(p->>'status', status) <> 'left' THEN NULL
                       WHEN status = 'left' THEN left_on ELSE current_date END,
        status = coalesce(p->>'status', status),
        joined_on = coalesce((p->>'joined_on')::date, joined_on),
        updated_by = actor, updated_at = now()
     WHERE number = num
    RETURNING * INTO m;
    RETURN tb_member_json(m, true);
END $$;

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

-- Whether the account is an erased member's.
CREATE FUNCTION tb_erased(acct bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM members WHERE account_id = acct AND erased_at IS NOT NULL)
$$;

-- Anonymises a member who left: personal fields and the free text of their
-- transfers are cleared, and so is what they shared with peer banks, here
-- and there (tb_erase_shared); the account, its entries and balance stay,
-- so the books still add up and other members' statements show "former
-- member". The coordinator's reason is kept without the member's details.
CREATE FUNCTION tb_member_erase(num bigint, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    a accounts;
    told jsonb;
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
    -- A fingerprint is a hash of the request, words and all: a retry
    -- with its key is then refused (tb_same_request). A group activity's
    -- exchanges share the request's words and fingerprint: all of them
    -- lose both.
    UPDATE transfers SET description = NULL, reason = NULL, fingerprint = NULL
     WHERE (payer_account = a.id OR earner_account = a.id
            OR group_key IN (SELECT group_key FROM transfers g
                              WHERE (g.payer_account = a.id OR g.earner_account = a.id)
                                AND g.group_key IS NOT NULL))
       AND (description IS NOT NULL OR reason IS NOT NULL OR fingerprint IS NOT NULL);
    told := tb_erase_shared(a.id);
    PERFORM tb_referral_forget(a.id);
    PERFORM tb_intake_forget((SELECT id FROM intake WHERE member_account = a.id));
    UPDATE safeguarding_checks SET reference = NULL WHERE member_account = a.id;
    UPDATE safeguarding_overrides SET reason = 'erased'
     WHERE member_account = a.id
        OR transfer_id IN (SELECT id FROM transfers
                            WHERE payer_account = a.id OR earner_account = a.id);
    UPDATE members SET name = NULL, email = NULL, phone = NULL, address = NULL, district = NULL,
                       skills = NULL,
                       needs = NULL, availability = NULL, notes = NULL, needs_care = false,
                       erased_at = now(), erased_by = actor,
                       erase_reason = tb_scrub(p->>'reason', tb_member_terms(m),
                                                tb_member_phones(m)),
                       updated_by = actor, updated_at = now()
     WHERE number = num
    RETURNING * INTO m;
    RETURN tb_member_json(m, true) || jsonb_build_object('peers_told', told);
END $$;
