-- Statements for members, and reports for funders.

-- The other party as a statement names it: "Chitra Desai (member 3)",
-- "former member", "community account".
CREATE FUNCTION tb_party_name(acct bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT name || ' (' || tb_account_label(acct) || ')' FROM members
                      WHERE account_id = acct AND erased_at IS NULL),
                    tb_account_label(acct))
$$;

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
                   coalesce(tb_xb_party(t.xb_id), tb_move_party(t.referral_id),
                            tb_party_name(other.account_id))
                       AS other_party
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

-- Exchanges that stand: not grants, not reversals, not reversed. A
-- cross-bank exchange is reversed by another exchange the other way
-- (xb_exchanges.reverses): neither stands.
CREATE FUNCTION tb_stands(t transfers) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT t.kind = 'exchange'
       AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.reverses = t.id)
       AND (t.xb_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM xb_exchanges x
                            WHERE x.id = t.xb_id
                              AND (x.reverses IS NOT NULL
                                   OR EXISTS (SELECT 1 FROM xb_exchanges r
                                               WHERE r.reverses = x.xid
                                                 AND r.state = 'settled'))))
$$;

CREATE FUNCTION tb_standing_exchanges(from_date date, to_date date) RETURNS SETOF transfers
LANGUAGE sql STABLE AS $$
    SELECT * FROM transfers t
     WHERE t.kind = 'exchange' AND t.performed_on BETWEEN from_date AND to_date AND tb_stands(t)
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

-- ---- the national body's activity report --------------------------------
--
-- A month's figures for the network, counted as every bank counts them
-- (README, "Counting rules"), with disclosure control applied here, before
-- anything leaves: a count of people from 1 to below-1 is suppressed
-- (NULL), and one of below or more is rounded to the nearest step; zero is
-- zero. Figures of a cell whose count of people is suppressed are
-- suppressed with it.

-- A count of people as it may leave the bank.
CREATE FUNCTION tb_disclose(n bigint, below int, step int) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n IS NULL THEN NULL
                WHEN n = 0 THEN 0
                WHEN n < below THEN NULL
                ELSE (round(n::numeric / step) * step)::bigint END
$$;

-- The cells of one breakdown ({..., members, minutes, ...}, members a
-- count of people) as they may leave: each count disclosed, and a cell's
-- minutes (every figure named *minutes) suppressed with its count. Where
-- that leaves one cell's minutes suppressed, the smallest of the others
-- are suppressed too, so that the total less the cells shown gives no one
-- cell's minutes.
CREATE FUNCTION tb_disclose_cells(cells jsonb, below int, step int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH c AS (
        SELECT x, n, tb_disclose((x->>'members')::bigint, below, step) AS shown,
               coalesce((x->>'members')::bigint, 0) > 0
                   AND tb_disclose((x->>'members')::bigint, below, step) IS NULL AS hidden,
               (x->>'minutes')::bigint AS minutes
          FROM jsonb_array_elements(cells) WITH ORDINALITY AS t(x, n)),
    ranked AS (
        SELECT c.*, count(*) FILTER (WHERE hidden) OVER () AS n_hidden,
               row_number() OVER (PARTITION BY hidden, minutes > 0 ORDER BY minutes, n) AS rank
          FROM c)
    SELECT coalesce(jsonb_agg(
               CASE WHEN hidden OR (n_hidden = 1 AND NOT hidden AND rank = 1 AND minutes > 0)
                    THEN x || (SELECT coalesce(jsonb_object_agg(k, NULL), '{}')
                                 FROM jsonb_object_keys(x) k WHERE k LIKE '%minutes')
                    ELSE x END
               || jsonb_build_object('members', shown) ORDER BY n), '[]')
      FROM ranked
$$;

-- The member accounts of this bank and what a report counts them by.
CREATE FUNCTION tb_report_people() RETURNS TABLE (account_id bigint, kind text, district text,
                                                  joined_on date, left_on date,
                                                  referrer_kind text)
LANGUAGE sql STABLE AS $$
    SELECT m.account_id, m.kind, coalesce(upper(tb_member_district(m)), 'unknown'), m.joined_on,
           m.left_on,
           CASE WHEN m.referred_by IS NOT NULL
                THEN coalesce((SELECT o.org_kind FROM members o WHERE o.number = m.referred_by),
                              'other') END
      FROM members m
$$;

-- A category of exchanges as the national body counts it: its code in the
-- shared taxonomy (dir_categories: "it help" is it-help), or other. No
-- local wording leaves the bank.
CREATE FUNCTION tb_report_category(c text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT code FROM dir_categories
                      WHERE code = regexp_replace(lower(btrim(c)), '[[:space:]_]+', '-', 'g')),
                    'other')
$$;

-- The month's report of this bank (month: its first day), its counts as
-- they may leave, in the channel's JSON of an ActivityReport
-- (proto/report.proto) without its revision. final: the month has closed.
CREATE FUNCTION tb_network_report(month date, below int, step int)
RETURNS jsonb LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    from_date date := date_trunc('month', month)::date;
    to_date date := (date_trunc('month', month) + interval '1 month - 1 day')::date;
    r jsonb;
BEGIN
    WITH
    xs AS MATERIALIZED (SELECT * FROM tb_standing_exchanges(from_date, to_date)),
    people AS MATERIALIZED (SELECT * FROM tb_report_people()),
    -- Each exchange once per member of ours in it: who gave (earned), who
    -- received (paid), and the peer when it crossed a bank.
    -- Each local category's code, looked up once.
    codes AS MATERIALIZED (
        SELECT c.category, tb_report_category(c.category) AS code
          FROM (SELECT DISTINCT category FROM xs) c),
    sides AS MATERIALIZED (
        SELECT x.id, x.minutes, codes.code AS category, p.account_id,
               p.kind, p.district, p.referrer_kind, x.gave,
               (SELECT xe.peer FROM xb_exchanges xe WHERE xe.id = x.xb_id) AS peer
          FROM (SELECT xs.*, xs.earner_account AS account, true AS gave FROM xs
                UNION ALL
                SELECT xs.*, xs.payer_account, false FROM xs) x
          JOIN people p ON p.account_id = x.account
          JOIN codes ON codes.category = x.category),
    books AS (
        SELECT kind,
               count(*) FILTER (WHERE joined_on <= to_date
                                  AND (left_on IS NULL OR left_on > to_date)) AS total,
               count(*) FILTER (WHERE joined_on BETWEEN from_date AND to_date) AS new,
               count(*) FILTER (WHERE left_on BETWEEN from_date AND to_date) AS left_,
               (SELECT count(DISTINCT s.account_id) FROM sides s WHERE s.kind = p.kind)
                   AS active
          FROM people p GROUP BY kind)
    SELECT jsonb_build_object(
        'month', to_char(from_date, 'YYYY-MM'),
        'from', from_date, 'to', to_date, 'final', to_date < current_date,
        'rule', jsonb_build_object('suppress_below', below, 'round_to', step),
        'members', (SELECT jsonb_object_agg(k.kind, jsonb_build_object(
                               'total', tb_disclose(coalesce(b.total, 0), below, step),
                               'active', tb_disclose(coalesce(b.active, 0), below, step),
                               'new', tb_disclose(coalesce(b.new, 0), below, step),
                               'left', tb_disclose(coalesce(b.left_, 0), below, step)))
                      FROM (VALUES ('person'), ('organisation')) k(kind)
                      LEFT JOIN books b USING (kind)),
        'hours', jsonb_build_object(
            'within', tb_disclose_cells(jsonb_build_array(jsonb_build_object(
                          'members', (SELECT count(DISTINCT account_id) FROM sides
                                       WHERE peer IS NULL),
                          'minutes', (SELECT coalesce(sum(minutes), 0) FROM xs
                                       WHERE xb_id IS NULL))), below, step)->0,
            'grants', (SELECT tb_disclose_cells(jsonb_build_array(jsonb_build_object(
                                  'members', count(DISTINCT g.earner_account),
                                  'minutes', coalesce(sum(g.minutes), 0))), below, step)->0
                         FROM transfers g
                        WHERE g.kind = 'grant' AND g.performed_on BETWEEN from_date AND to_date
                          AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.reverses = g.id)),
            'peers', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'bank', f.peer,
                                 'given', tb_disclose_cells(jsonb_build_array(jsonb_build_object(
                                     'members', (SELECT count(DISTINCT account_id) FROM sides s
                                                  WHERE s.peer = f.peer AND s.gave),
                                     'minutes', (SELECT coalesce(sum(minutes), 0) FROM sides s
                                                  WHERE s.peer = f.peer AND s.gave))),
                                     below, step)->0,
                                 'received', tb_disclose_cells(jsonb_build_array(
                                     jsonb_build_object(
                                     'members', (SELECT count(DISTINCT account_id) FROM sides s
                                                  WHERE s.peer = f.peer AND NOT s.gave),
                                     'minutes', (SELECT coalesce(sum(minutes), 0) FROM sides s
                                                  WHERE s.peer = f.peer AND NOT s.gave))),
                                     below, step)->0)
                             ORDER BY f.peer), '[]')
                        FROM fed_peers f WHERE f.kind = 'bank'),
            -- An hour counts in categories and areas once in the network:
            -- at the bank of the member who gave it, by their district.
            'categories', tb_disclose_cells((
                SELECT coalesce(jsonb_agg(jsonb_build_object('category', category,
                                                             'members', members,
                                                             'minutes', minutes)
                                          ORDER BY category), '[]')
                  FROM (SELECT category, count(DISTINCT account_id) AS members,
                               sum(minutes) AS minutes
                          FROM sides WHERE gave GROUP BY category) c), below, step),
            'areas', tb_disclose_cells((
                SELECT coalesce(jsonb_agg(jsonb_build_object('district', district,
                                                             'members', members,
                                                             'minutes', minutes)
                                          ORDER BY district), '[]')
                  FROM (SELECT district, count(DISTINCT account_id) AS members,
                               sum(minutes) AS minutes
                          FROM sides WHERE gave GROUP BY district) a), below, step)),
        -- Moves between banks, apart from hours exchanged: each cell a
        -- count of people with the balances they carried.
        'moves', (SELECT jsonb_build_object('moved_in', c->0, 'moved_out', c->1, 'visiting', c->2)
                    FROM tb_disclose_cells((
                        SELECT jsonb_agg(cell ORDER BY n)
                          FROM (SELECT k.n, jsonb_build_object(
                                       'members', count(r.id),
                                       'minutes', coalesce(sum(greatest(r.balance_minutes, 0)), 0),
                                       'owed_minutes',
                                           coalesce(sum(greatest(-r.balance_minutes, 0)), 0)) AS cell
                                  FROM (VALUES (1, 'receiving', 'move'), (2, 'referring', 'move'),
                                               (3, 'receiving', 'introduce')) k(n, side, kind)
                                  LEFT JOIN referrals r
                                    ON r.side = k.side AND r.kind = k.kind AND r.state = 'accepted'
                                   AND r.decided_at::date BETWEEN from_date AND to_date
                                 GROUP BY k.n) g), below, step) c),
        -- People referred in by GP practices and services (intake.sql).
        'intake', tb_intake_month(from_date, to_date, below, step),
        -- A referral kind's cell is disclosed by its people in the month's
        -- exchanges (active), whose hours it holds; its members on the
        -- books at the month's end are a count apart.
        'referrals', (
            SELECT jsonb_agg(c - 'on_books' || jsonb_build_object(
                                 'active', c->'members',
                                 'members', tb_disclose((c->>'on_books')::bigint, below, step))
                             ORDER BY n)
              FROM jsonb_array_elements(tb_disclose_cells((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'kind', k.kind,
                                  'received', tb_disclose(
                                      (SELECT count(*) FROM people p
                                        WHERE p.referrer_kind = k.kind
                                          AND p.joined_on BETWEEN from_date AND to_date),
                                      below, step),
                                  'on_books', (SELECT count(*) FROM people p
                                                WHERE p.referrer_kind = k.kind
                                                  AND p.joined_on <= to_date
                                                  AND (p.left_on IS NULL OR p.left_on > to_date)),
                                  'members', (SELECT count(DISTINCT account_id) FROM sides s
                                               WHERE s.referrer_kind = k.kind),
                                  'minutes', (SELECT coalesce(sum(minutes), 0) FROM sides s
                                               WHERE s.referrer_kind = k.kind),
                                  'given_minutes', (SELECT coalesce(sum(minutes), 0) FROM sides s
                                                     WHERE s.referrer_kind = k.kind AND s.gave),
                                  'received_minutes', (SELECT coalesce(sum(minutes), 0)
                                                         FROM sides s
                                                        WHERE s.referrer_kind = k.kind
                                                          AND NOT s.gave))
                                  ORDER BY k.n)
                         FROM (VALUES (1, 'gp_practice'), (2, 'social_services'),
                                      (3, 'mental_health'), (4, 'housing'), (5, 'other')) k(n, kind)),
                       below, step)) WITH ORDINALITY AS t(c, n)),
        -- The bank's position with each peer at the month's end, on what
        -- both have posted by then; in_flight: its exchanges not yet
        -- decided, which the peer may have posted or not.
        'clearing', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                'bank', f.peer,
                                'position_minutes', (
                                    SELECT coalesce(sum(CASE WHEN t.earner_account = f.clearing_account
                                                             THEN t.minutes ELSE -t.minutes END), 0)
                                      FROM transfers t
                                     WHERE f.clearing_account IN (t.payer_account, t.earner_account)
                                       AND t.performed_on <= to_date
                                       -- without members' moves, which cancel
                                       -- pair by pair as exchanges do, and
                                       -- would show one mover's balance
                                       AND t.kind <> 'move'),
                                'in_flight', (SELECT count(*) FROM xb_exchanges x
                                               WHERE x.peer = f.peer AND x.state = 'pending'
                                                 AND x.performed_on <= to_date),
                                'applied_seq', f.in_applied,
                                'acked_seq', (SELECT out_acked FROM fed_acked a
                                               WHERE a.peer = f.peer))
                            ORDER BY f.peer), '[]')
                       FROM fed_peers f WHERE f.kind = 'bank'))
      INTO r;
    RETURN r;
END $$;

-- What tells one report of a month from another: its figures, without
-- whether the month had closed and the channel's positions it was made at.
CREATE FUNCTION tb_report_digest(r jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT md5((r - 'final' - 'revision' - 'kind' - 'clearing'
                || jsonb_build_object('clearing', (
                       SELECT coalesce(jsonb_agg(c - 'applied_seq' - 'acked_seq' ORDER BY n), '[]')
                         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r->'clearing') = 'array'
                                                        THEN r->'clearing' ELSE '[]' END)
                              WITH ORDINALITY AS t(c, n))))::text)
$$;

-- Queues the reports due to each observer, with the disclosure rule of
-- the config (fed_limits), for every month from the bank's first (its
-- first member's joining, or first transfer) to this one. A month's report
-- is due when none was sent for it (after time offline, every month
-- missed goes), when the month has closed since the last (the final
-- report), when its figures changed since the last (a backdated or
-- reversed exchange, a member who joined, left or moved), when it is this
-- month and the last is a day old (the month to date, daily), or when it
-- is the month a coordinator asked for (send). Each is the month's next
-- revision. Returns what it queued.
CREATE FUNCTION tb_reports_send(send date DEFAULT NULL) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    lim fed_limits := (SELECT l FROM fed_limits l);
    obs text;
    m date;
    r jsonb;
    d text;
    last fed_reports_sent;
    rev int;
    s bigint;
    queued jsonb := '[]';
BEGIN
    IF lim.role <> 'bank' THEN
        RETURN queued;
    END IF;
    -- The daemon's hourly call and a coordinator's may meet.
    PERFORM pg_advisory_xact_lock(hashtext('tb_reports_send'));
    FOR obs IN SELECT peer FROM fed_peers WHERE kind = 'observer' AND removed_at IS NULL
                ORDER BY peer LOOP
        -- At most the last ten years, which is as far back as the
        -- national body takes.
        FOR m IN SELECT generate_series(
                            greatest(date_trunc('month', least(current_date,
                                                               (SELECT min(joined_on) FROM members),
                                                               (SELECT min(performed_on)
                                                                  FROM transfers))),
                                     date_trunc('month', current_date) - interval '119 months'),
                            date_trunc('month', current_date), interval '1 month')::date LOOP
            SELECT * INTO last FROM fed_reports_sent
             WHERE peer = obs AND month = m ORDER BY revision DESC LIMIT 1;
            r := tb_network_report(m, lim.suppress_below, lim.round_to);
            d := tb_report_digest(r);
            IF last.peer IS NULL OR m = date_trunc('month', send)
               OR ((r->>'final')::boolean AND NOT last.final) OR d <> last.digest
               OR (NOT (r->>'final')::boolean AND last.made_at < now() - interval '1 day') THEN
                rev := coalesce(last.revision, 0) + 1;
                r := jsonb_build_object('kind', 'activity_report', 'revision', rev) || r;
                s := tb_fed_enqueue(obs, r::json);
                INSERT INTO fed_reports_sent (peer, month, revision, final, digest, body, sent_seq)
                     VALUES (obs, m, rev, (r->>'final')::boolean, d, r, s);
                queued := queued || jsonb_build_object('peer', obs, 'month', r->>'month',
                                                       'revision', rev, 'final', r->'final',
                                                       'seq', s);
            END IF;
        END LOOP;
    END LOOP;
    RETURN queued;
END $$;

-- The national body's answer to reports it was sent (at a bank, inside
-- tb_fed_apply): accepted, or why it refused one.
CREATE FUNCTION tb_on_report_answer(from_peer text, body jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    WITH a AS (
        SELECT a FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                                THEN body->'items' ELSE '[]' END) a
         WHERE a->>'month' ~ '^[0-9]{4}-(0[1-9]|1[0-2])$' AND a->>'revision' ~ '^[0-9]{1,9}$'),
    answered AS (
        UPDATE fed_reports_sent s
           SET answer = CASE WHEN a.a->>'accepted' = 'true' THEN 'accepted'
                             ELSE tb_peer_reason(a.a->>'reason') END,
               answered_at = now()
          FROM a
         WHERE s.peer = from_peer AND s.month = (a.a->>'month' || '-01')::date
           AND s.revision = (a.a->>'revision')::int AND s.answer IS NULL
        RETURNING 1)
    SELECT '{}'::jsonb FROM (SELECT count(*) FROM answered) n
$$;

-- A month's report at this bank: the last one sent to each observer, as it
-- left, and every revision, with its answer; and the figures as they
-- stand now, when they differ from what was last sent (the next report
-- will carry them) or when none was sent.
CREATE FUNCTION tb_network_report_sent(month date, below int, step int, bank_id text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH now_ AS (SELECT tb_network_report(month, below, step) AS r),
    sent AS (SELECT * FROM fed_reports_sent s WHERE s.month = date_trunc('month', $1)),
    latest AS (SELECT DISTINCT ON (peer) * FROM sent ORDER BY peer, revision DESC)
    SELECT jsonb_build_object(
        'bank', bank_id, 'month', to_char(month, 'YYYY-MM'),
        'national', coalesce((SELECT jsonb_agg(peer ORDER BY peer) FROM fed_peers
                               WHERE kind = 'observer'), '[]'),
        'sent', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'peer', peer, 'revision', revision, 'final', final,
                                  'seq', sent_seq, 'made_at', made_at, 'answer', answer,
                                  'answered_at', answered_at) ORDER BY peer, revision)
                            FROM sent), '[]'),
        'report', (SELECT body FROM latest ORDER BY peer LIMIT 1),
        'changed_since', CASE WHEN NOT EXISTS (SELECT 1 FROM latest)
                                   OR EXISTS (SELECT 1 FROM latest
                                               WHERE digest <> tb_report_digest(now_.r))
                              THEN now_.r END)
      FROM now_
$$;
