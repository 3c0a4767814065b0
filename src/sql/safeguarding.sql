-- Safeguarding: the checks brokers record for members (a DBS check), the
-- categories of help whose helper needs a valid one ([safeguarding]
-- check_required), a coordinator's recorded override, and the members
-- flagged as needing extra care, whose exchanges a broker reviews.

CREATE FUNCTION tb_check_json(c safeguarding_checks) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.id, 'member', (SELECT number FROM members WHERE account_id = c.member_account),
        'kind', c.kind, 'reference', c.reference, 'checked_on', c.checked_on,
        'expires_on', c.expires_on,
        'valid', c.checked_on <= current_date
                 AND (c.expires_on IS NULL OR c.expires_on >= current_date),
        'recorded_by', c.recorded_by, 'recorded_at', c.recorded_at)
$$;

-- A check valid on day d.
CREATE FUNCTION tb_check_valid(acct bigint, d date) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM safeguarding_checks c
                    WHERE c.member_account = acct AND c.checked_on <= d
                      AND (c.expires_on IS NULL OR c.expires_on >= d))
$$;

-- Help in a category that needs a check, given on day d by the member
-- whose account is earner, needs them to hold a valid one. required is
-- the bank's list (fed_limits.check_required), read once by the caller.
CREATE FUNCTION tb_rule_safeguarding(category text, earner bigint, d date, required text[])
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN lower(btrim(category)) = ANY (required)
                     AND NOT tb_check_valid(earner, coalesce(d, current_date))
                THEN 'safeguarding_check_required' END
$$;

CREATE FUNCTION tb_check_required() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT check_required FROM fed_limits
$$;

-- For one piece of help, the rule's refusal, raised unless a coordinator
-- overrode it with a reason (override). True when the help goes ahead on
-- an override, which tb_safeguarding_overridden then records.
CREATE FUNCTION tb_safeguarding_guard(category text, em members, d date, override text)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF tb_rule_safeguarding(category, em.account_id, d, tb_check_required()) IS NULL THEN
        RETURN false;
    END IF;
    IF override IS NULL THEN
        PERFORM tb_raise('safeguarding_check_required', format(
            'help with %s needs a valid safeguarding check, and member %s has none on %s; '
            'record one (tbctl member check-add), or a coordinator may override with a reason',
            category, em.number, coalesce(d, current_date)));
    END IF;
    RETURN true;
END $$;

-- A contact a coordinator let through on an override, for help in that
-- category: what comes of it needs no check again.
CREATE FUNCTION tb_safeguarding_contact_overridden(want_contact text, want_category text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT want_contact IS NOT NULL
           AND EXISTS (SELECT 1 FROM safeguarding_overrides o
                        WHERE o.contact_id = want_contact
                          AND o.category = lower(btrim(want_category)))
$$;

CREATE FUNCTION tb_safeguarding_overridden(acct bigint, category text, transfer bigint,
                                           contact text, reason text, actor text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO safeguarding_overrides (member_account, category, transfer_id, contact_id,
                                        reason, by_actor)
         VALUES (acct, category, transfer, contact, reason, actor)
$$;

CREATE FUNCTION tb_check_add(num bigint, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    c safeguarding_checks;
BEGIN
    IF m.erased_at IS NOT NULL THEN
        PERFORM tb_raise('member_erased', format('member %s was erased and cannot change', num));
    END IF;
    IF (p->>'expires_on')::date < (p->>'checked_on')::date THEN
        PERFORM tb_raise('invalid_date', 'expires_on is before checked_on');
    END IF;
    IF (p->>'checked_on')::date > current_date THEN
        PERFORM tb_raise('invalid_date', 'checked_on is in the future');
    END IF;
    INSERT INTO safeguarding_checks (member_account, kind, reference, checked_on, expires_on,
                                     recorded_by)
         VALUES (m.account_id, p->>'kind', p->>'reference', (p->>'checked_on')::date,
                 (p->>'expires_on')::date, actor)
      RETURNING * INTO c;
    RETURN tb_check_json(c);
END $$;

CREATE FUNCTION tb_check_list(num bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'member', num, 'needs_care', m.needs_care,
        'valid', tb_check_valid(m.account_id, current_date),
        'items', coalesce((SELECT jsonb_agg(tb_check_json(c) ORDER BY c.checked_on DESC, c.id DESC)
                             FROM safeguarding_checks c WHERE c.member_account = m.account_id),
                          '[]'),
        'overrides', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                   'category', o.category, 'transfer', o.transfer_id,
                                   'contact', o.contact_id, 'reason', o.reason, 'by', o.by_actor,
                                   'at', o.at) ORDER BY o.id)
                                 FROM safeguarding_overrides o
                                WHERE o.member_account = m.account_id), '[]'))
      FROM tb_find_member(num) m
$$;

-- Each active member's checks of each kind that run out within days (or
-- have run out, and were not renewed): the latest of that kind only.
CREATE FUNCTION tb_checks_expiring(days int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH latest AS (
        SELECT DISTINCT ON (c.member_account, c.kind) c.*
          FROM safeguarding_checks c JOIN members m ON m.account_id = c.member_account
         WHERE m.status = 'active'
         ORDER BY c.member_account, c.kind, c.expires_on DESC NULLS FIRST)
    SELECT jsonb_build_object('days', days, 'items', coalesce(jsonb_agg(
               tb_check_json(l) || jsonb_build_object('expired', l.expires_on < current_date,
                                                      'days_left', l.expires_on - current_date)
               ORDER BY l.expires_on, l.id), '[]'))
      FROM latest l
     WHERE l.expires_on IS NOT NULL AND l.expires_on <= current_date + days
$$;

-- The exchanges of members who need extra care that a broker has not yet
-- reviewed (tb_care_reviewed).
CREATE FUNCTION tb_care_review() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(
               tb_exchange_json(t.id) || jsonb_build_object('care_member', m.number)
               ORDER BY t.id), '[]'))
      FROM members m
      JOIN transfers t ON (t.payer_account = m.account_id OR t.earner_account = m.account_id)
     WHERE m.needs_care AND t.kind = 'exchange' AND t.id > m.care_reviewed_to
$$;

-- A broker has reviewed a member's exchanges up to the one up_to, the last
-- they saw (NULL: all there are now).
CREATE FUNCTION tb_care_reviewed(num bigint, up_to bigint, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_find_member(num);
    last bigint;
BEGIN
    IF NOT m.needs_care THEN
        PERFORM tb_raise('not_flagged', format('member %s is not flagged as needing care', num));
    END IF;
    SELECT max(id) INTO last FROM transfers
     WHERE (payer_account = m.account_id OR earner_account = m.account_id)
       AND (up_to IS NULL OR id <= up_to);
    UPDATE members SET care_reviewed_to = greatest(care_reviewed_to, coalesce(last, 0)),
                       updated_by = actor, updated_at = now()
     WHERE number = num;
    RETURN jsonb_build_object('member', num, 'reviewed_to', greatest(m.care_reviewed_to, last),
                              'reviewed_by', actor, 'reviewed_at', now());
END $$;

-- ---- the coordinator's to-do ----------------------------------------------
--
-- Everything waiting for a coordinator or broker, in one place; the figures
-- come from the functions that list each in full.
CREATE FUNCTION tb_todo(default_floor bigint, near_minutes bigint, review boolean)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'intake_overdue', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'id', i.id, 'org', i.org, 'received_at', i.received_at)
                              ORDER BY i.id)
                              FROM intake i WHERE tb_intake_overdue(i)), '[]'),
        'intake_waiting', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'id', i.id, 'org', i.org, 'state', i.state,
                              'received_at', i.received_at) ORDER BY i.id)
                              FROM intake i
                             WHERE i.state IN ('received', 'contacted')
                               AND NOT tb_intake_overdue(i)), '[]'),
        'claims', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      'claim', c.claim_id, 'bank', c.peer, 'minutes', c.minutes) ORDER BY c.id)
                      FROM xb_claims c WHERE c.side = 'payer' AND c.state = 'open'), '[]'),
        'contacts', coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'contact', c.contact_id, 'bank', c.peer, 'handle', c.handle)
                        ORDER BY c.id)
                        FROM dir_contacts c WHERE c.side = 'provider' AND c.state = 'open'),
                     '[]'),
        'referrals', coalesce((SELECT jsonb_agg(jsonb_build_object(
                         'referral', r.referral_id, 'bank', r.peer, 'kind', r.kind)
                         ORDER BY r.id)
                         FROM referrals r WHERE r.side = 'receiving' AND r.state = 'open'),
                      '[]'),
        'items_waiting', CASE WHEN review THEN coalesce((SELECT jsonb_agg(jsonb_build_object(
                             'kind', d.kind, 'id', d.id, 'handle', d.handle) ORDER BY d.id)
                             FROM dir_items d
                            WHERE d.visibility = 'federation' AND d.approved_at IS NULL
                              AND d.state = 'active'), '[]') END,
        'near_floor', coalesce((SELECT jsonb_agg(jsonb_build_object(
                          'member', m.number, 'balance_minutes', a.balance_minutes,
                          'pending_minutes', a.pending_minutes,
                          'floor_minutes', coalesce(a.floor_minutes, default_floor))
                          ORDER BY a.balance_minutes - a.pending_minutes, m.number)
                          FROM members m JOIN accounts a ON a.id = m.account_id
                         WHERE m.status = 'active'
                           AND a.balance_minutes - a.pending_minutes
                               <= coalesce(a.floor_minutes, default_floor) + near_minutes),
                       '[]'),
        'checks_expiring', tb_checks_expiring(30)->'items',
        'care_quiet', coalesce((SELECT jsonb_agg(jsonb_build_object(
                          'member', m.number,
                          'last_exchange', (SELECT max(t.performed_on) FROM transfers t
                                             WHERE t.kind = 'exchange'
                                               AND (t.payer_account = m.account_id
                                                    OR t.earner_account = m.account_id)))
                          ORDER BY m.number)
                          FROM members m
                         WHERE m.needs_care AND m.status = 'active'
                           AND NOT EXISTS (SELECT 1 FROM transfers t
                                            WHERE t.kind = 'exchange'
                                              AND (t.payer_account = m.account_id
                                                   OR t.earner_account = m.account_id)
                                              AND t.performed_on > current_date - 30)), '[]'),
        'care_review', jsonb_array_length(tb_care_review()->'items'),
        'peers', coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'peer', p.peer, 'diverged_at', p.diverged_at) ORDER BY p.peer)
                     FROM fed_peers p WHERE p.diverged_at IS NOT NULL), '[]'))
$$;
