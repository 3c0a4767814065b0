-- People referred into this bank by a GP practice or a service: the
-- referral and its states, the outcomes read from the ledger, the letter
-- back to the referrer, and the commissioners' report.
--
-- scope, where a function takes one, is the organisation a referrer's
-- token is for (it sees that organisation's referrals, and their status
-- only), or NULL for the bank's own staff.

CREATE FUNCTION tb_intake_reasons() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['isolation', 'low-mood', 'long-term-condition', 'carer', 'bereavement',
                 'recently-discharged', 'other']
$$;

-- The SNOMED CT concept a GP system records for a state, where the UK
-- social prescribing codes have one (README, "Referrals from GP practices").
CREATE FUNCTION tb_intake_snomed(state text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE state
        WHEN 'received' THEN jsonb_build_object('code', '871731000000106',
                                                'display', 'Referral to social prescribing service')
        WHEN 'declined' THEN jsonb_build_object('code', '871711000000103',
                                                'display', 'Social prescribing declined')
        END
$$;

-- The states a referral may go to from each: forward only, one step at a
-- time. A person can be unreachable, or the referral withdrawn, before
-- anyone reached them.
CREATE FUNCTION tb_intake_next(state text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE state
        WHEN 'received' THEN ARRAY['contacted', 'unreachable', 'withdrawn']
        WHEN 'contacted' THEN ARRAY['joined', 'declined', 'unreachable', 'withdrawn']
        ELSE '{}'::text[] END
$$;

CREATE FUNCTION tb_intake_overdue(i intake) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT i.state = 'received'
           AND i.received_at < now() - make_interval(days => (SELECT intake_overdue_days
                                                                 FROM fed_limits))
$$;

-- A date some months after another, as a date.
CREATE FUNCTION tb_months_after(d date, months int) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT (d + make_interval(months => months))::date
$$;

-- Active k months after joining: an exchange in the month before that day.
-- NULL until the day has come.
CREATE FUNCTION tb_intake_active(joined date, k int, as_of date, days date[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN tb_months_after(joined, k) > as_of THEN NULL
                ELSE EXISTS (SELECT 1 FROM unnest(days) d
                              WHERE d >= tb_months_after(joined, k - 1)
                                AND d < tb_months_after(joined, k)) END
$$;

-- What happened after a person joined, from the ledger as it stands on
-- as_of: the first exchange; whether they were active at 3 and at 6
-- months (an exchange in the month before each; NULL until that day has
-- come); and the hours given and received in the first 3, 6 and 12 months
-- (complete once the period is over). NULL for a referral not joined.
CREATE FUNCTION tb_intake_outcomes(i intake, as_of date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT t.performed_on,
               CASE WHEN t.earner_account = i.member_account THEN t.minutes ELSE 0 END AS given,
               CASE WHEN t.payer_account = i.member_account THEN t.minutes ELSE 0 END AS received
          FROM transfers t
         WHERE (t.payer_account = i.member_account OR t.earner_account = i.member_account)
           AND t.kind = 'exchange' AND t.performed_on >= i.joined_on
           AND t.performed_on <= as_of AND tb_stands(t))
    SELECT CASE WHEN i.joined_on IS NOT NULL THEN jsonb_build_object(
        'joined_on', i.joined_on,
        'first_exchange', (SELECT min(performed_on) FROM x),
        'active_3_months', tb_intake_active(i.joined_on, 3, as_of,
                                            ARRAY(SELECT performed_on FROM x)),
        'active_6_months', tb_intake_active(i.joined_on, 6, as_of,
                                            ARRAY(SELECT performed_on FROM x)),
        'periods', (SELECT jsonb_agg(jsonb_build_object(
                        'months', k,
                        'complete', tb_months_after(i.joined_on, k) <= as_of,
                        'given_minutes', coalesce((SELECT sum(given) FROM x
                                                    WHERE performed_on
                                                          < tb_months_after(i.joined_on, k)), 0),
                        'received_minutes', coalesce((SELECT sum(received) FROM x
                                                       WHERE performed_on
                                                             < tb_months_after(i.joined_on, k)),
                                                     0))
                        ORDER BY k)
                      FROM unnest(ARRAY[3, 6, 12]) k)) END
$$;

-- A referral's status: what its referrer may read, and the bank's staff
-- with it: each change, but not who at the bank made it. The outcomes go
-- back to the referrer only with the person's consent.
CREATE FUNCTION tb_intake_status(i intake, scope bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.id, 'org', i.org, 'org_name', (SELECT name FROM members WHERE number = i.org),
        'state', i.state, 'reasons', to_jsonb(i.reasons),
        'consent_contact', i.consent_contact, 'consent_outcomes', i.consent_outcomes,
        'received_at', i.received_at, 'contacted_at', i.contacted_at,
        'joined_on', i.joined_on, 'closed_at', i.closed_at,
        'overdue', tb_intake_overdue(i), 'idempotency_key', i.idempotency_key,
        'snomed', tb_intake_snomed(i.state),
        'history', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'state', e.state, 'at', e.at, 'snomed', tb_intake_snomed(e.state))
                        || CASE WHEN scope IS NULL
                                THEN jsonb_build_object('by', e.by_actor, 'detail', e.detail)
                                ELSE '{}' END
                        ORDER BY e.id), '[]')
                      FROM intake_events e WHERE e.intake_id = i.id))
        || CASE WHEN scope IS NULL OR i.consent_outcomes
                THEN jsonb_build_object('outcomes', tb_intake_outcomes(i, current_date))
                ELSE '{}' END
$$;

-- All of a referral, for the bank's staff: the person, the referrer, the
-- notes, and (tb_intake_status) who made each change.
CREATE FUNCTION tb_intake_json(i intake) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT tb_intake_status(i, NULL) || jsonb_build_object(
        'name', i.name, 'phone', i.phone, 'email', i.email, 'address', i.address,
        'notes', i.notes, 'referrer', jsonb_build_object('name', i.referrer_name,
                                                         'role', i.referrer_role,
                                                         'contact', i.referrer_contact),
        'declined_reason', i.declined_reason, 'erased', i.erased_at IS NOT NULL,
        'member', (SELECT number FROM members WHERE account_id = i.member_account))
$$;

CREATE FUNCTION tb_intake_answer(i intake, scope bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN scope IS NULL THEN tb_intake_json(i) ELSE tb_intake_status(i, scope) END
$$;

-- The referral want, as its referrer or the staff may see it; locked for
-- a change when for_update.
CREATE FUNCTION tb_intake_find(want bigint, scope bigint, for_update boolean) RETURNS intake
LANGUAGE plpgsql AS $$
DECLARE
    i intake;
BEGIN
    IF for_update THEN
        SELECT * INTO i FROM intake WHERE id = want FOR UPDATE;
    ELSE
        SELECT * INTO i FROM intake WHERE id = want;
    END IF;
    IF NOT FOUND THEN
        PERFORM tb_raise('intake_not_found', format('there is no referral %s', want));
    END IF;
    -- Another organisation's referral is, to a referrer, one there is not.
    IF scope IS NOT NULL AND i.org <> scope THEN
        PERFORM tb_raise('intake_not_found', format('there is no referral %s', want));
    END IF;
    RETURN i;
END $$;

-- The organisation a referral comes from: one of this bank's, still there.
CREATE FUNCTION tb_intake_org(num bigint) RETURNS members LANGUAGE plpgsql STABLE AS $$
DECLARE
    o members;
BEGIN
    SELECT * INTO o FROM members WHERE number = num;
    IF NOT FOUND OR o.kind <> 'organisation' THEN
        PERFORM tb_raise('not_an_organisation', format(
            'member %s is not an organisation of this bank; a referral comes from a GP '
            'practice or service that is one (tbctl member add --kind organisation)', num));
    END IF;
    IF o.status <> 'active' THEN
        PERFORM tb_raise('member_inactive', format('organisation %s is %s', num, o.status));
    END IF;
    RETURN o;
END $$;

CREATE FUNCTION tb_intake_add(p jsonb, actor text, scope bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    org_num bigint := coalesce((p->>'org')::bigint, scope);
    key text := p->>'idempotency_key';
    fp text := md5((p - 'idempotency_key' || jsonb_build_object('org', org_num))::text);
    i intake;
BEGIN
    IF scope IS NOT NULL AND org_num <> scope THEN
        PERFORM tb_raise('other_organisation', format(
            'this token refers for organisation %s, not %s', scope, org_num));
    END IF;
    IF org_num IS NULL THEN
        PERFORM tb_raise('invalid_field', 'org names the referring organisation');
    END IF;
    -- Keys are each organisation's own: one cannot use, or read through,
    -- another's.
    IF key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('intake:' || org_num || ':' || key));
        SELECT * INTO i FROM intake WHERE org = org_num AND idempotency_key = key;
        IF FOUND THEN
            PERFORM tb_same_request(key, i.fingerprint, fp, format('referral %s', i.id));
            RETURN tb_intake_answer(i, scope);
        END IF;
    END IF;
    PERFORM tb_intake_org(org_num);
    IF jsonb_typeof(p->'reasons') IS DISTINCT FROM 'array'
       OR jsonb_array_length(p->'reasons') = 0
       OR NOT ARRAY(SELECT jsonb_array_elements_text(p->'reasons')) <@ tb_intake_reasons() THEN
        PERFORM tb_raise('invalid_reason', 'reasons must be one or more of isolation, low-mood, '
                         'long-term-condition, carer, bereavement, recently-discharged or other');
    END IF;
    INSERT INTO intake (org, name, phone, email, address, referrer_name, referrer_role,
                        referrer_contact, reasons, notes, consent_contact, consent_outcomes,
                        idempotency_key, fingerprint)
         VALUES (org_num, p->>'name', p->>'phone', p->>'email', p->>'address',
                 p->>'referrer_name', p->>'referrer_role', p->>'referrer_contact',
                 ARRAY(SELECT jsonb_array_elements_text(p->'reasons')), p->>'notes',
                 coalesce((p->>'consent_contact')::boolean, false),
                 coalesce((p->>'consent_outcomes')::boolean, false), key, fp)
      RETURNING * INTO i;
    INSERT INTO intake_events (intake_id, state, by_actor) VALUES (i.id, 'received', actor);
    RETURN tb_intake_answer(i, scope);
END $$;

-- A referral moves on to the state want: contacted, joined (p's member,
-- or a member made from the referral), declined (p's reason),
-- unreachable or withdrawn. A referrer may only withdraw its own.
CREATE FUNCTION tb_intake_move(want bigint, to_state text, p jsonb, actor text, scope bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    i intake := tb_intake_find(want, scope, true);
    m members;
    made jsonb;
BEGIN
    IF scope IS NOT NULL AND to_state <> 'withdrawn' THEN
        PERFORM tb_raise('forbidden', 'a referrer may withdraw its referral, and only that');
    END IF;
    IF NOT to_state = ANY (tb_intake_next(i.state)) THEN
        PERFORM tb_raise('invalid_transition', format(
            'referral %s is %s; it can go to %s, not to %s', want, i.state,
            coalesce(nullif(array_to_string(tb_intake_next(i.state), ', '), ''),
                     'no other state'), to_state));
    END IF;
    IF to_state = 'contacted' AND NOT i.consent_contact THEN
        PERFORM tb_raise('no_consent', format(
            'the person referred in %s did not consent to be contacted; ask the referrer '
            'to confirm consent, or withdraw the referral', want));
    END IF;
    IF to_state = 'joined' THEN
        IF p ? 'member' THEN
            m := tb_find_member((p->>'member')::bigint);
            -- One referral at a time takes a member (members_referred below).
            SELECT * INTO m FROM members WHERE number = m.number FOR UPDATE;
            IF m.kind <> 'person' OR m.erased_at IS NOT NULL THEN
                PERFORM tb_raise('invalid_field', format(
                    'member %s is not a person who can join from a referral', m.number));
            END IF;
            IF m.status <> 'active' THEN
                PERFORM tb_raise('member_inactive', format('member %s is %s', m.number,
                                                           m.status));
            END IF;
            IF EXISTS (SELECT 1 FROM intake WHERE member_account = m.account_id) THEN
                PERFORM tb_raise('member_already_referred', format(
                    'member %s is already linked to referral %s', m.number,
                    (SELECT id FROM intake WHERE member_account = m.account_id)));
            END IF;
            UPDATE members SET referred_by = i.org, updated_by = actor, updated_at = now()
             WHERE number = m.number AND referred_by IS NULL;
        ELSE
            made := tb_member_add(jsonb_strip_nulls(jsonb_build_object(
                        'name', i.name, 'phone', i.phone, 'email', i.email,
                        'address', i.address, 'notes', i.notes, 'referred_by', i.org)), actor);
            m := tb_find_member((made->>'number')::bigint);
        END IF;
        UPDATE intake SET member_account = m.account_id, joined_on = current_date
         WHERE id = i.id;
    END IF;
    UPDATE intake SET state = to_state,
                      contacted_at = CASE WHEN to_state = 'contacted' THEN now()
                                          ELSE contacted_at END,
                      closed_at = CASE WHEN to_state <> 'contacted' THEN now() END,
                      declined_reason = CASE WHEN to_state = 'declined' THEN p->>'reason'
                                             ELSE declined_reason END
     WHERE id = i.id RETURNING * INTO i;
    INSERT INTO intake_events (intake_id, state, by_actor, detail)
         VALUES (i.id, to_state, actor,
                 CASE WHEN to_state = 'joined' THEN 'member ' || m.number END);
    RETURN tb_intake_answer(i, scope);
END $$;

CREATE FUNCTION tb_intake_get(want bigint, scope bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_intake_answer(tb_intake_find(want, scope, false), scope)
$$;

-- Referrals, newest first: in a state, overdue for first contact, of one
-- organisation (a referrer's own only).
CREATE FUNCTION tb_intake_list(want_state text, overdue boolean, org_num bigint, scope bigint,
                               cursor bigint, lim int) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF scope IS NOT NULL AND org_num IS DISTINCT FROM scope AND org_num IS NOT NULL THEN
        PERFORM tb_raise('other_organisation', format(
            'this token reads the referrals of organisation %s only', scope));
    END IF;
    RETURN (
        WITH page AS (
            SELECT * FROM intake i
             WHERE (want_state IS NULL OR i.state = want_state)
               AND (NOT overdue OR tb_intake_overdue(i))
               AND (coalesce(org_num, scope) IS NULL OR i.org = coalesce(org_num, scope))
               AND (cursor IS NULL OR i.id < cursor)
             ORDER BY i.id DESC LIMIT lim)
        SELECT jsonb_build_object(
            'items', coalesce((SELECT jsonb_agg(tb_intake_answer(p, scope) ORDER BY p.id DESC)
                                 FROM page p), '[]'),
            'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page)));
END $$;

-- The letter to the referrer about one person, with their consent: the
-- state, when they joined, their first exchange, and whether they were
-- active at 3 and at 6 months. It names nobody else.
CREATE FUNCTION tb_intake_letter(want bigint, scope bigint, bank_name text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    i intake := tb_intake_find(want, scope, false);
    o jsonb;
    words text;
BEGIN
    IF NOT i.consent_outcomes THEN
        PERFORM tb_raise('no_consent', format(
            'the person referred in %s did not consent to outcomes being shared with the '
            'referrer; no letter can be written', want));
    END IF;
    IF i.erased_at IS NOT NULL THEN
        PERFORM tb_raise('member_erased', format('referral %s was erased', want));
    END IF;
    o := tb_intake_outcomes(i, current_date);
    words := format(E'Dear %s,\n\n', coalesce(i.referrer_name, 'colleague'))
          || format(E'Re: %s, referred to %s on %s (our referral %s)\n\n',
                    i.name, bank_name, to_char(i.received_at, 'FMDD FMMonth YYYY'), i.id)
          || CASE i.state
                 WHEN 'received' THEN E'We have received the referral and will be in touch '
                                      'with them soon.\n'
                 WHEN 'contacted' THEN format(E'We contacted them on %s.\n',
                                              to_char(i.contacted_at, 'FMDD FMMonth YYYY'))
                 WHEN 'joined' THEN format(E'They joined the time bank on %s.\n',
                                           to_char(i.joined_on, 'FMDD FMMonth YYYY'))
                 WHEN 'declined' THEN E'We spoke with them, and they decided not to join.\n'
                 WHEN 'unreachable' THEN E'We were not able to reach them.\n'
                 ELSE E'The referral was withdrawn.\n' END
          || CASE WHEN o IS NULL THEN ''
                  WHEN o->>'first_exchange' IS NULL THEN E'They have not yet exchanged any time.\n'
                  ELSE format(E'Their first exchange of time was on %s.\n',
                              to_char((o->>'first_exchange')::date, 'FMDD FMMonth YYYY')) END
          || CASE WHEN o IS NULL THEN ''
                  ELSE format(E'Active at 3 months: %s.\nActive at 6 months: %s.\n',
                              tb_intake_yes_no(o->'active_3_months'),
                              tb_intake_yes_no(o->'active_6_months')) END
          || format(E'\nThey agreed to this being shared with you.\n\nWith best wishes,\n%s\n',
                    bank_name);
    RETURN jsonb_build_object(
        'id', i.id, 'org', i.org, 'org_name', (SELECT name FROM members WHERE number = i.org),
        'referrer', i.referrer_name, 'person', i.name, 'state', i.state,
        'received_on', i.received_at::date, 'contacted_on', i.contacted_at::date,
        'joined_on', i.joined_on, 'first_exchange', o->'first_exchange',
        'active_3_months', o->'active_3_months', 'active_6_months', o->'active_6_months',
        'snomed', tb_intake_snomed(i.state), 'text', words);
END $$;

CREATE FUNCTION tb_intake_yes_no(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL OR v = 'null' THEN 'not yet known'
                WHEN v = 'true' THEN 'yes' ELSE 'no' END
$$;

-- A referral's person forgotten: their details and notes, and the words
-- of every change, go; the state and dates stay, for the reports.
CREATE FUNCTION tb_intake_erase(want bigint, actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    i intake := tb_intake_find(want, NULL, true);
BEGIN
    IF i.erased_at IS NOT NULL THEN
        PERFORM tb_raise('already_erased', format('referral %s was already erased', want));
    END IF;
    IF i.state IN ('received', 'contacted') THEN
        PERFORM tb_raise('intake_open', format(
            'referral %s is %s; close it (declined, unreachable or withdrawn) first',
            want, i.state));
    END IF;
    IF EXISTS (SELECT 1 FROM members WHERE account_id = i.member_account
                                       AND erased_at IS NULL) THEN
        PERFORM tb_raise('intake_joined', format(
            'referral %s joined as member %s; erase the member (tbctl member erase), which '
            'erases the referral with them', want,
            (SELECT number FROM members WHERE account_id = i.member_account)));
    END IF;
    PERFORM tb_intake_forget(i.id);
    INSERT INTO intake_events (intake_id, state, by_actor, detail)
         VALUES (i.id, i.state, actor, 'erased');
    RETURN tb_intake_json((SELECT x FROM intake x WHERE x.id = i.id));
END $$;

CREATE FUNCTION tb_intake_forget(want bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE intake SET name = NULL, phone = NULL, email = NULL, address = NULL, notes = NULL,
                      referrer_name = NULL, referrer_role = NULL, referrer_contact = NULL,
                      declined_reason = NULL, idempotency_key = NULL, fingerprint = NULL,
                      erased_at = now()
     WHERE id = want;
    UPDATE intake_events SET detail = NULL WHERE intake_id = want AND detail <> 'erased';
$$;

-- ---- the commissioners' report ------------------------------------------
--
-- Referrals received in a period, and what became of each however long
-- after, per referring organisation, per reason and in all. A referral
-- with two reasons counts under each. Disclosed (for anyone outside the
-- bank), the period is whole months, every count of people is held to the
-- national body's rule (tb_disclose), a median goes with the count of
-- people it is the median of, and hours with the people who joined, across
-- the organisations as the national body's cells are (tb_disclose_cells),
-- so that the total less the organisations shown gives no one's hours.

CREATE FUNCTION tb_intake_figures(rows jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'received', count(*),
        'contacted', count(*) FILTER (WHERE r->>'contacted_at' IS NOT NULL),
        'contacted_in_time', count(*) FILTER (
            WHERE (r->>'contacted_at')::timestamptz
                  <= (r->>'received_at')::timestamptz
                     + make_interval(days => (SELECT intake_overdue_days FROM fed_limits))),
        'joined', count(*) FILTER (WHERE r->>'state' = 'joined'),
        'declined', count(*) FILTER (WHERE r->>'state' = 'declined'),
        'unreachable', count(*) FILTER (WHERE r->>'state' = 'unreachable'),
        'withdrawn', count(*) FILTER (WHERE r->>'state' = 'withdrawn'),
        'exchanged', count(*) FILTER (WHERE r#>>'{outcomes,first_exchange}' IS NOT NULL),
        'median_days_to_contact', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
            extract(epoch FROM (r->>'contacted_at')::timestamptz
                               - (r->>'received_at')::timestamptz) / 86400)::numeric, 1),
        'median_days_to_first_exchange', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
            (r#>>'{outcomes,first_exchange}')::date
            - (r->>'received_at')::timestamptz::date)::numeric, 1),
        'active_3_months', count(*) FILTER (WHERE (r#>>'{outcomes,active_3_months}')::boolean),
        'known_3_months', count(*) FILTER (WHERE r#>>'{outcomes,active_3_months}' IS NOT NULL),
        'active_6_months', count(*) FILTER (WHERE (r#>>'{outcomes,active_6_months}')::boolean),
        'known_6_months', count(*) FILTER (WHERE r#>>'{outcomes,active_6_months}' IS NOT NULL),
        'given_minutes', coalesce(sum((r#>>'{outcomes,periods,2,given_minutes}')::bigint), 0),
        'received_minutes', coalesce(sum((r#>>'{outcomes,periods,2,received_minutes}')::bigint),
                                     0))
      FROM jsonb_array_elements(rows) r
$$;

-- One row's figures as they may leave the bank: each count of people
-- disclosed; each median with the people it is of, and the hours with the
-- people who joined.
CREATE FUNCTION tb_intake_disclosed(f jsonb, below int, step int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT (SELECT jsonb_object_agg(k, tb_disclose((f->>k)::bigint, below, step))
              FROM unnest(ARRAY['received', 'contacted', 'contacted_in_time', 'joined',
                                'declined', 'unreachable', 'withdrawn', 'exchanged',
                                'active_3_months', 'known_3_months', 'active_6_months',
                                'known_6_months']) k)
        || jsonb_build_object(
               'median_days_to_contact',
               CASE WHEN tb_disclose((f->>'contacted')::bigint, below, step) > 0
                    THEN f->'median_days_to_contact' END,
               'median_days_to_first_exchange',
               CASE WHEN tb_disclose((f->>'exchanged')::bigint, below, step) > 0
                    THEN f->'median_days_to_first_exchange' END,
               'given_minutes',
               CASE WHEN tb_disclose((f->>'joined')::bigint, below, step) IS NOT NULL
                    THEN f->'given_minutes' END,
               'received_minutes',
               CASE WHEN tb_disclose((f->>'joined')::bigint, below, step) IS NOT NULL
                    THEN f->'received_minutes' END)
$$;

-- Rows of figures as they may leave the bank: each disclosed, and the
-- hours suppressed across the rows as tb_disclose_cells does.
CREATE FUNCTION tb_intake_disclosed_rows(rows jsonb, below int, step int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH r AS (SELECT x, n FROM jsonb_array_elements(rows) WITH ORDINALITY AS t(x, n)),
    c AS (SELECT tb_disclose_cells(coalesce(jsonb_agg(jsonb_build_object(
                     'members', (x->>'joined')::bigint,
                     'minutes', (x->>'given_minutes')::bigint + (x->>'received_minutes')::bigint,
                     'given_minutes', x->'given_minutes',
                     'received_minutes', x->'received_minutes') ORDER BY n), '[]'),
                     below, step) AS cells FROM r)
    SELECT coalesce(jsonb_agg(r.x || tb_intake_disclosed(r.x, below, step)
                              || jsonb_build_object(
                                     'given_minutes', c.cells->(r.n::int - 1)->'given_minutes',
                                     'received_minutes',
                                     c.cells->(r.n::int - 1)->'received_minutes')
                              ORDER BY r.n), '[]')
      FROM r, c
$$;

CREATE FUNCTION tb_report_intake(from_date date, to_date date, org_num bigint,
                                 disclose boolean) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    lim fed_limits;
    f date := CASE WHEN disclose THEN date_trunc('month', from_date)::date ELSE from_date END;
    t date := CASE WHEN disclose
                   THEN (date_trunc('month', to_date) + interval '1 month - 1 day')::date
                   ELSE to_date END;
    orgs jsonb;
    reasons jsonb;
    total jsonb;
BEGIN
    SELECT * INTO lim FROM fed_limits;
    WITH r AS (
        SELECT i.org, i.reasons, tb_intake_status(i, NULL) AS j
          FROM intake i
         WHERE i.received_at::date BETWEEN f AND t
           AND (org_num IS NULL OR i.org = org_num))
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org', o.org, 'name', m.name, 'org_kind', m.org_kind)
                       || tb_intake_figures(o.rows) ORDER BY o.org), '[]')
              FROM (SELECT r.org, jsonb_agg(r.j) AS rows FROM r GROUP BY r.org) o
              JOIN members m ON m.number = o.org),
           (SELECT coalesce(jsonb_agg(jsonb_build_object('reason', b.reason)
                                      || tb_intake_figures(b.rows)
                                      ORDER BY array_position(tb_intake_reasons(), b.reason)),
                            '[]')
              FROM (SELECT reason, jsonb_agg(r.j) AS rows
                      FROM r, unnest(r.reasons) reason GROUP BY reason) b),
           tb_intake_figures(coalesce((SELECT jsonb_agg(j) FROM r), '[]'))
      INTO orgs, reasons, total;
    IF disclose THEN
        orgs := tb_intake_disclosed_rows(orgs, lim.suppress_below, lim.round_to);
        reasons := tb_intake_disclosed_rows(reasons, lim.suppress_below, lim.round_to);
        total := tb_intake_disclosed(total, lim.suppress_below, lim.round_to);
    END IF;
    RETURN jsonb_build_object(
        'report', 'intake', 'from', f, 'to', t, 'org', org_num, 'disclosed', disclose,
        'suppress_below', lim.suppress_below, 'round_to', lim.round_to,
        'overdue_days', lim.intake_overdue_days,
        'organisations', orgs, 'reasons', reasons, 'total', total);
END $$;

-- ---- the national body's activity report ----------------------------------
--
-- The month's intake for the national body: what happened to referrals in
-- the month, every figure a count of people, disclosed (tb_disclose).
CREATE FUNCTION tb_intake_month(from_date date, to_date date, below int, step int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH i AS (SELECT x.*, tb_intake_outcomes(x, to_date) AS o FROM intake x),
    counts AS (
        SELECT count(*) FILTER (WHERE received_at::date BETWEEN from_date AND to_date) AS received,
               count(*) FILTER (WHERE contacted_at::date BETWEEN from_date AND to_date)
                   AS contacted,
               count(*) FILTER (WHERE state = 'joined' AND joined_on BETWEEN from_date AND to_date)
                   AS joined,
               count(*) FILTER (WHERE state = 'declined'
                                  AND closed_at::date BETWEEN from_date AND to_date) AS declined,
               count(*) FILTER (WHERE state = 'unreachable'
                                  AND closed_at::date BETWEEN from_date AND to_date)
                   AS unreachable,
               count(*) FILTER (WHERE state = 'withdrawn'
                                  AND closed_at::date BETWEEN from_date AND to_date)
                   AS withdrawn,
               count(*) FILTER (WHERE tb_months_after(joined_on, 3) BETWEEN from_date AND to_date)
                   AS reached_3_months,
               count(*) FILTER (WHERE tb_months_after(joined_on, 3) BETWEEN from_date AND to_date
                                  AND (o->>'active_3_months')::boolean) AS active_3_months,
               count(*) FILTER (WHERE tb_months_after(joined_on, 6) BETWEEN from_date AND to_date)
                   AS reached_6_months,
               count(*) FILTER (WHERE tb_months_after(joined_on, 6) BETWEEN from_date AND to_date
                                  AND (o->>'active_6_months')::boolean) AS active_6_months
          FROM i)
    SELECT jsonb_object_agg(f.key, tb_disclose(f.value::text::bigint, below, step))
      FROM counts c, jsonb_each(to_jsonb(c)) f
$$;
