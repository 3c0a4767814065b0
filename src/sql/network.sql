-- The national body's window on the network: at the observer, the banks'
-- activity reports (proto/report.proto), each checked before it is stored,
-- every revision kept, its signed envelope in fed_inbox as proof; and the
-- network's books, the matrix of pairs of banks whose clearing positions
-- must cancel. Nothing here is member-level: a report holds counts that
-- passed disclosure control at the bank, and the observer refuses one
-- that did not.

-- Every cell of a report that counts people with their minutes: within,
-- grants, each peer's given and received, each category and area, the
-- moves, and each referral kind.
CREATE FUNCTION tb_report_cells(r jsonb) RETURNS SETOF jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT c FROM (
        SELECT r->'hours'->'within' AS c
        UNION ALL SELECT r->'hours'->'grants'
        UNION ALL SELECT p->'given' FROM jsonb_array_elements(tb_report_list(r->'hours', 'peers')) p
        UNION ALL SELECT p->'received' FROM jsonb_array_elements(tb_report_list(r->'hours', 'peers')) p
        UNION ALL SELECT x FROM jsonb_array_elements(tb_report_list(r->'hours', 'categories')) x
        UNION ALL SELECT x FROM jsonb_array_elements(tb_report_list(r->'hours', 'areas')) x
        UNION ALL SELECT r->'moves'->'moved_in'
        UNION ALL SELECT r->'moves'->'moved_out'
        UNION ALL SELECT r->'moves'->'visiting'
        -- A referral kind's hours go with its people in the month's
        -- exchanges (active); its members on the books are a count apart.
        UNION ALL SELECT x - 'members' || jsonb_build_object('members', x->'active')
                    FROM jsonb_array_elements(tb_report_list(r, 'referrals')) x) s
     WHERE jsonb_typeof(c) = 'object'
$$;

-- A list of a report (an array, or none).
CREATE FUNCTION tb_report_list(j jsonb, key text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(j->key) = 'array' THEN j->key ELSE '[]' END
$$;

-- Why a bank's report may not be stored, or NULL when it may, checked in
-- this order (so that no cast meets what it cannot read): its shape (a
-- month of the last ten years, its first and last days, a revision); its
-- size; every number an integer of at most 12 digits and every string a
-- code; nothing negative but a position; the observer's own disclosure
-- rule (fed_limits) held by every count of people (0, suppressed, or at
-- least suppress_below and a multiple of round_to), with the minutes of a
-- suppressed cell suppressed and those of a cell of no one zero; and each
-- name a code, once: a category of the shared taxonomy, a postcode
-- district, a kind of referrer; and a bank named must be another of the
-- observer's (unknown_bank).
CREATE FUNCTION tb_report_refusal(r jsonb, lim fed_limits, from_peer text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m date;
BEGIN
    IF jsonb_typeof(r) IS DISTINCT FROM 'object'
       OR jsonb_typeof(r->'members') IS DISTINCT FROM 'object'
       OR jsonb_typeof(r->'hours') IS DISTINCT FROM 'object'
       OR coalesce(r->>'month', '') !~ '^2[0-9]{3}-(0[1-9]|1[0-2])$'
       OR coalesce(r->>'revision', '') !~ '^[1-9][0-9]{0,8}$'
       OR jsonb_typeof(r->'final') IS DISTINCT FROM 'boolean' THEN
        RETURN 'malformed';
    END IF;
    m := (r->>'month' || '-01')::date;
    IF m > current_date OR m < date_trunc('month', current_date) - interval '119 months'
       OR r->>'from' IS DISTINCT FROM m::text
       OR r->>'to' IS DISTINCT FROM (m + interval '1 month - 1 day')::date::text THEN
        RETURN 'malformed';
    END IF;
    IF octet_length(r::text) > 262144 THEN
        RETURN 'too_large';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_path_query(r, 'lax $.**') v
                WHERE (jsonb_typeof(v) = 'number' AND v::text !~ '^-?[0-9]{1,12}$')
                   OR (jsonb_typeof(v) = 'string'
                       AND v#>>'{}' !~ '^([a-z0-9_-]{1,40}|[A-Z]{1,2}[0-9][0-9A-Z]?|'
                                       '2[0-9]{3}-[0-9]{2}(-[0-9]{2})?)$')) THEN
        RETURN 'malformed';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_path_query(r, 'lax $.**') v, jsonb_each(
                   CASE WHEN jsonb_typeof(v) = 'object' THEN v ELSE '{}' END) f
                WHERE jsonb_typeof(f.value) = 'number' AND f.key <> 'position_minutes'
                  AND (f.value#>>'{}')::bigint < 0) THEN
        RETURN 'negative_count';
    END IF;
    IF EXISTS (SELECT 1
                 FROM (SELECT v FROM jsonb_each(r->'members') k(kind, counts),
                                     jsonb_each(CASE WHEN jsonb_typeof(counts) = 'object'
                                                     THEN counts ELSE '{}' END) f(name, v)
                       UNION ALL SELECT c->'members' FROM tb_report_cells(r) c
                       UNION ALL SELECT f.v
                                   FROM jsonb_each(CASE WHEN jsonb_typeof(r->'intake') = 'object'
                                                        THEN r->'intake' ELSE '{}' END) f(k, v)
                       UNION ALL SELECT y.v
                                   FROM jsonb_array_elements(tb_report_list(r, 'referrals')) x,
                                        LATERAL (VALUES (x->'received'), (x->'members')) y(v)) p
                WHERE jsonb_typeof(v) = 'number' AND (v#>>'{}')::bigint <> 0
                  AND ((v#>>'{}')::bigint < lim.suppress_below
                       OR (v#>>'{}')::bigint % lim.round_to <> 0))
       OR EXISTS (SELECT 1 FROM tb_report_cells(r) c, jsonb_each(c) f
                   WHERE f.key LIKE '%minutes' AND jsonb_typeof(f.value) <> 'null'
                     AND (jsonb_typeof(c->'members') IS DISTINCT FROM 'number'
                          OR ((c->>'members')::bigint = 0 AND (f.value#>>'{}')::bigint <> 0)))
    THEN
        RETURN 'undisclosed_count';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(tb_report_list(r->'hours', 'categories')) x
                WHERE NOT EXISTS (SELECT 1 FROM dir_categories d WHERE d.code = x->>'category'))
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(tb_report_list(r->'hours', 'areas')) x
                   WHERE coalesce(x->>'district', '') !~ '^([A-Z]{1,2}[0-9][0-9A-Z]?|unknown)$')
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(tb_report_list(r, 'referrals')) x
                   WHERE coalesce(x->>'kind', '') NOT IN ('gp_practice', 'social_services',
                                                          'mental_health', 'housing', 'other'))
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(tb_report_list(r, 'clearing')) x
                   WHERE jsonb_typeof(x->'position_minutes') IS DISTINCT FROM 'number'
                      OR jsonb_typeof(x->'in_flight') IS DISTINCT FROM 'number'
                      OR jsonb_typeof(x->'applied_seq') IS DISTINCT FROM 'number'
                      OR jsonb_typeof(x->'acked_seq') IS DISTINCT FROM 'number')
       OR (SELECT count(*) <> count(DISTINCT k)
             FROM (SELECT 'c' || (x->>'category') AS k
                     FROM jsonb_array_elements(tb_report_list(r->'hours', 'categories')) x
                   UNION ALL SELECT 'a' || (x->>'district')
                     FROM jsonb_array_elements(tb_report_list(r->'hours', 'areas')) x
                   UNION ALL SELECT 'r' || (x->>'kind')
                     FROM jsonb_array_elements(tb_report_list(r, 'referrals')) x
                   UNION ALL SELECT 'p' || (x->>'bank')
                     FROM jsonb_array_elements(tb_report_list(r->'hours', 'peers')) x
                   UNION ALL SELECT 'b' || (x->>'bank')
                     FROM jsonb_array_elements(tb_report_list(r, 'clearing')) x) names) THEN
        RETURN 'malformed';
    END IF;
    -- A bank it names is another of the observer's: no other words pass
    -- as a bank's id.
    IF EXISTS (SELECT 1
                 FROM (SELECT x->>'bank' AS bank
                         FROM jsonb_array_elements(tb_report_list(r->'hours', 'peers')) x
                       UNION ALL
                       SELECT x->>'bank' FROM jsonb_array_elements(tb_report_list(r, 'clearing')) x) b
                WHERE b.bank IS NULL OR b.bank = from_peer
                   OR NOT EXISTS (SELECT 1 FROM fed_peers p
                                   WHERE p.peer = b.bank AND p.kind = 'bank')) THEN
        RETURN 'unknown_bank';
    END IF;
    RETURN NULL;
END $$;

-- At the observer, inside tb_fed_apply: a bank's report. One that passes
-- tb_report_refusal, newer than any of the bank's for the month, is stored
-- with the message that carried it (its envelope stays in fed_inbox as
-- proof); one that does not is kept as its hash only, and logged. Either
-- way the bank is answered.
CREATE FUNCTION tb_on_activity_report(from_peer text, body jsonb, seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    lim fed_limits := (SELECT l FROM fed_limits l);
    r jsonb := body - 'kind';
    why text;
    m date;
    rev int;
BEGIN
    why := CASE WHEN lim.role <> 'observer' THEN 'not_the_national_body'
                WHEN (SELECT kind FROM fed_peers WHERE peer = from_peer) <> 'bank'
                THEN 'not_a_bank' END;
    why := coalesce(why, tb_report_refusal(r, lim, from_peer));
    IF why IS NULL THEN
        m := (r->>'month' || '-01')::date;
        rev := (r->>'revision')::int;
        -- A bank sends a few a day, and every month it missed after time
        -- away (at most 120): what it may make the observer keep is bounded.
        why := CASE WHEN rev <= (SELECT max(revision) FROM network_reports
                                  WHERE bank = from_peer AND month = m)
                    THEN 'stale_revision'
                    WHEN (SELECT count(*) FROM network_reports
                           WHERE bank = from_peer AND received_at > now() - interval '1 day')
                         >= 200
                    THEN 'too_many_reports' END;
    END IF;
    IF why IS NULL THEN
        INSERT INTO network_reports (bank, month, revision, final, report, seq)
             VALUES (from_peer, m, rev, coalesce((r->>'final')::boolean, false), r, seq);
        -- A pair of this bank's whose books now disagree is logged.
        PERFORM tb_warn_diverged(m, from_peer);
        RETURN jsonb_build_object('report_answer', jsonb_build_array(jsonb_build_object(
            'month', r->>'month', 'revision', rev, 'accepted', true, 'reason', '')));
    END IF;
    RAISE WARNING 'fed: the activity report from % for % (revision %) is refused: %',
        from_peer, substring(body->>'month' FROM '^[0-9]{4}-[0-9]{2}$'),
        substring(body->>'revision' FROM '^[0-9]{1,9}$'), why;
    RETURN jsonb_build_object(
        'report_answer', jsonb_build_array(jsonb_build_object(
            'month', coalesce(substring(body->>'month' FROM '^[0-9]{4}-[0-9]{2}$'), ''),
            'revision', CASE WHEN body->>'revision' ~ '^[0-9]{1,9}$'
                             THEN (body->>'revision')::int ELSE 0 END,
            'accepted', false, 'reason', why)),
        '_kept', jsonb_build_object('kind', 'activity_report', 'refused', why));
END $$;

-- Each bank's last report for a month (its highest revision).
CREATE FUNCTION tb_network_latest(m date) RETURNS SETOF network_reports
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (bank) * FROM network_reports
     WHERE month = date_trunc('month', m) ORDER BY bank, revision DESC
$$;

-- A report's figures for the network's totals: people (rounded as they
-- came; NULL where suppressed) and minutes. Hours between banks count once,
-- at the bank of the member who gave them.
CREATE FUNCTION tb_report_figures(r jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'members', (r#>>'{members,person,total}')::bigint
                   + (r#>>'{members,organisation,total}')::bigint,
        'active', (r#>>'{members,person,active}')::bigint
                  + (r#>>'{members,organisation,active}')::bigint,
        'new', (r#>>'{members,person,new}')::bigint + (r#>>'{members,organisation,new}')::bigint,
        'left', (r#>>'{members,person,left}')::bigint
                + (r#>>'{members,organisation,left}')::bigint,
        'within_minutes', (r#>>'{hours,within,minutes}')::bigint,
        'between_minutes', (SELECT sum((p#>>'{given,minutes}')::bigint)
                              FROM jsonb_array_elements(tb_report_list(r->'hours', 'peers')) p),
        'grant_minutes', (r#>>'{hours,grants,minutes}')::bigint,
        'referrals', (SELECT sum((x->>'received')::bigint)
                        FROM jsonb_array_elements(tb_report_list(r, 'referrals')) x),
        -- A report made before moves were counted has none.
        'moved_in', CASE WHEN jsonb_typeof(r->'moves') = 'object'
                         THEN (r#>>'{moves,moved_in,members}')::bigint ELSE 0 END,
        'moved_out', CASE WHEN jsonb_typeof(r->'moves') = 'object'
                          THEN (r#>>'{moves,moved_out,members}')::bigint ELSE 0 END,
        -- People referred in by GP practices and services; a report made
        -- before intake was counted has none.
        'intake_received', CASE WHEN jsonb_typeof(r->'intake') = 'object'
                                THEN (r#>>'{intake,received}')::bigint ELSE 0 END,
        'intake_joined', CASE WHEN jsonb_typeof(r->'intake') = 'object'
                              THEN (r#>>'{intake,joined}')::bigint ELSE 0 END)
$$;

-- The network's totals a month at a time, from each bank's last report of
-- each month, as one row a month (from..to), and for one month a row for
-- each bank too. A total leaves out what a bank suppressed: partial says
-- it did.
CREATE FUNCTION tb_network_summary(from_month date, to_month date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH months AS (
        SELECT generate_series(date_trunc('month', from_month), date_trunc('month', to_month),
                               interval '1 month')::date AS m),
    rows AS (
        SELECT m, l.bank, l.revision, l.final, l.received_at, tb_report_figures(l.report) AS f
          FROM months, tb_network_latest(m) l),
    totals AS (
        SELECT m, count(bank) AS banks,
               jsonb_build_object(
                   'members', sum((f->>'members')::bigint), 'active', sum((f->>'active')::bigint),
                   'new', sum((f->>'new')::bigint), 'left', sum((f->>'left')::bigint),
                   'within_minutes', sum((f->>'within_minutes')::bigint),
                   'between_minutes', sum((f->>'between_minutes')::bigint),
                   'grant_minutes', sum((f->>'grant_minutes')::bigint),
                   'referrals', sum((f->>'referrals')::bigint),
                   'moved_in', sum((f->>'moved_in')::bigint),
                   'moved_out', sum((f->>'moved_out')::bigint),
                   'intake_received', sum((f->>'intake_received')::bigint),
                   'intake_joined', sum((f->>'intake_joined')::bigint)) AS t,
               coalesce(bool_or(jsonb_path_exists(f, '$.* ? (@ == null)')), false) AS partial
          FROM months LEFT JOIN rows USING (m)
         GROUP BY m)
    SELECT jsonb_build_object(
        'from', to_char(from_month, 'YYYY-MM'), 'to', to_char(to_month, 'YYYY-MM'),
        'months', (SELECT jsonb_agg(jsonb_build_object('month', to_char(m, 'YYYY-MM'),
                                                       'banks', banks, 'partial', partial)
                                    || t ORDER BY m) FROM totals),
        'banks', CASE WHEN date_trunc('month', from_month) = date_trunc('month', to_month) THEN
                     coalesce((SELECT jsonb_agg(jsonb_build_object(
                                       'bank', bank, 'revision', revision, 'final', final,
                                       'received_at', received_at) || f ORDER BY bank)
                                 FROM rows), '[]') END)
$$;

-- Hours by category or by area across the network (what: 'categories' or
-- 'areas'), from each bank's last report of each month from..to.
CREATE FUNCTION tb_network_breakdown(what text, from_month date, to_month date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH months AS (
        SELECT generate_series(date_trunc('month', from_month), date_trunc('month', to_month),
                               interval '1 month')::date AS m),
    cells AS (
        SELECT x->>(CASE what WHEN 'areas' THEN 'district' ELSE 'category' END) AS name,
               (x->>'minutes')::bigint AS minutes, l.bank
          FROM months, tb_network_latest(m) l,
               jsonb_array_elements(tb_report_list(l.report->'hours', what)) x)
    SELECT jsonb_build_object(
        'from', to_char(from_month, 'YYYY-MM'), 'to', to_char(to_month, 'YYYY-MM'),
        'rows', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  CASE what WHEN 'areas' THEN 'district' ELSE 'category' END,
                                  name, 'minutes', minutes, 'banks', banks,
                                  'partial', partial) ORDER BY minutes DESC NULLS LAST, name)
                            FROM (SELECT name, sum(minutes) AS minutes,
                                         count(DISTINCT bank) AS banks,
                                         bool_or(minutes IS NULL) AS partial
                                    FROM cells GROUP BY name) g), '[]'))
$$;

-- The network's books for a month: for each pair of banks, the position
-- each reported with the other at the month's end, which must cancel.
-- agree: they do; in_flight: they do not, but an exchange between them
-- was undecided, or the two reports rest on different points of their
-- channel (what one applied of the other's stream is not what the other
-- saw acknowledged), so a later report may agree; diverged: they rest on
-- the same points, nothing in flight, and still do not cancel; no_report:
-- one of them has sent no report for the month, or its report has no
-- position with the other. network_minutes: the sum of every position
-- reported, which is zero when the books agree.
CREATE FUNCTION tb_network_pairs(m date, only_bank text DEFAULT NULL)
RETURNS TABLE (a text, b text, state text, a_position numeric, b_position numeric,
               in_flight numeric)
LANGUAGE sql STABLE AS $$
    -- A bank removed from the register counts for the months it reported.
    WITH banks AS (SELECT peer AS bank FROM fed_peers f
                    WHERE kind = 'bank' AND (removed_at IS NULL OR EXISTS (
                              SELECT 1 FROM network_reports r
                               WHERE r.bank = f.peer AND r.month = date_trunc('month', m)))),
    pos AS (
        SELECT l.bank, c->>'bank' AS other, (c->>'position_minutes')::numeric AS position,
               (c->>'in_flight')::numeric AS in_flight, (c->>'applied_seq')::numeric AS applied,
               (c->>'acked_seq')::numeric AS acked
          FROM tb_network_latest(m) l, jsonb_array_elements(tb_report_list(l.report, 'clearing')) c
         WHERE only_bank IS NULL OR l.bank = only_bank OR c->>'bank' = only_bank)
    SELECT x.bank, y.bank,
           CASE WHEN pa.bank IS NULL OR pb.bank IS NULL THEN 'no_report'
                WHEN pa.position + pb.position = 0 THEN 'agree'
                WHEN pa.in_flight > 0 OR pb.in_flight > 0 OR pa.applied <> pb.acked
                     OR pb.applied <> pa.acked THEN 'in_flight'
                ELSE 'diverged' END,
           pa.position, pb.position, coalesce(pa.in_flight, 0) + coalesce(pb.in_flight, 0)
      FROM banks x JOIN banks y ON x.bank < y.bank
      LEFT JOIN pos pa ON pa.bank = x.bank AND pa.other = y.bank
      LEFT JOIN pos pb ON pb.bank = y.bank AND pb.other = x.bank
     WHERE only_bank IS NULL OR only_bank IN (x.bank, y.bank)
$$;

CREATE FUNCTION tb_network_books(m date) RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH pairs AS (SELECT * FROM tb_network_pairs(m))
    SELECT jsonb_build_object(
        'month', to_char(m, 'YYYY-MM'),
        'pairs', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'a', a, 'b', b, 'state', state, 'a_position_minutes', a_position,
                                  'b_position_minutes', b_position, 'in_flight', in_flight)
                                  ORDER BY a, b) FROM pairs), '[]'),
        'diverged', (SELECT count(*) FROM pairs WHERE state = 'diverged'),
        'network_minutes', (SELECT coalesce(sum((c->>'position_minutes')::numeric), 0)
                              FROM tb_network_latest(m) l,
                                   jsonb_array_elements(tb_report_list(l.report, 'clearing')) c))
$$;

-- Logs each pair of bank's for month m whose books disagree.
CREATE FUNCTION tb_warn_diverged(m date, bank text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p jsonb;
BEGIN
    FOR p IN SELECT to_jsonb(x) FROM tb_network_pairs(m, bank) x WHERE x.state = 'diverged' LOOP
        RAISE WARNING 'fed: the books of % and % disagree for %: % reports %, % reports % '
                      '(they must cancel)', p->>'a', p->>'b', to_char(m, 'YYYY-MM'), p->>'a',
                      p->>'a_position', p->>'b', p->>'b_position';
    END LOOP;
END $$;

-- Each bank the observer links to, with its last report: when it came
-- (and how old it is), for which month and revision, and that month's
-- members and hours (people as reported, rounded).
CREATE FUNCTION tb_network_banks() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'bank', b.peer, 'last_report_at', l.received_at,
               'report_age_seconds', floor(extract(epoch FROM now() - l.received_at)),
               'month', to_char(l.month, 'YYYY-MM'), 'revision', l.revision, 'final', l.final,
               'this_month', (SELECT tb_report_figures(t.report) FROM tb_network_latest(current_date) t
                               WHERE t.bank = b.peer))
               ORDER BY b.peer), '[]')
      FROM fed_peers b
      LEFT JOIN LATERAL (SELECT * FROM network_reports r WHERE r.bank = b.peer
                          ORDER BY received_at DESC, month DESC LIMIT 1) l ON true
     WHERE b.kind = 'bank'
$$;

-- The national body's figures for Prometheus (the observer's /metrics):
-- each bank's last report's age, its hours and members active this month
-- as it reported them (a suppressed count has no sample), and the pairs
-- whose books disagree this month or last (whose final reports came after
-- it closed), each named with the month.
CREATE FUNCTION tb_network_metrics() RETURNS text LANGUAGE sql STABLE AS $$
    WITH banks AS (SELECT b->>'bank' AS bank, b FROM jsonb_array_elements(tb_network_banks()) b),
    books AS (SELECT tb_network_books(m) AS k
                FROM (VALUES (current_date), ((current_date - interval '1 month')::date)) v(m)),
    diverged AS (SELECT p, k->>'month' AS month FROM books, jsonb_array_elements(k->'pairs') p
                  WHERE p->>'state' = 'diverged')
    SELECT '# HELP timebankd_network_report_age_seconds Seconds since the bank''s last activity report came.' || E'\n'
        || '# TYPE timebankd_network_report_age_seconds gauge' || E'\n'
        || coalesce((SELECT string_agg(format('timebankd_network_report_age_seconds{bank="%s"} %s',
                                              bank, b->>'report_age_seconds'), E'\n' ORDER BY bank)
                                || E'\n'
                       FROM banks WHERE b->>'report_age_seconds' IS NOT NULL), '')
        || '# HELP timebankd_network_credits_this_month Time credits (one an hour) the bank''s members exchanged this month, within the bank and given to other banks, as last reported.' || E'\n'
        || '# TYPE timebankd_network_credits_this_month gauge' || E'\n'
        || coalesce((SELECT string_agg(format('timebankd_network_credits_this_month{bank="%s"} %s', bank,
                                              round(((b#>>'{this_month,within_minutes}')::numeric
                                                     + coalesce((b#>>'{this_month,between_minutes}')::numeric, 0))
                                                    / 60, 2)), E'\n' ORDER BY bank) || E'\n'
                       FROM banks WHERE b#>>'{this_month,within_minutes}' IS NOT NULL), '')
        || '# HELP timebankd_network_members_active Members active this month at the bank, as reported (rounded; no sample when suppressed).' || E'\n'
        || '# TYPE timebankd_network_members_active gauge' || E'\n'
        || coalesce((SELECT string_agg(format('timebankd_network_members_active{bank="%s"} %s', bank,
                                              b#>>'{this_month,active}'), E'\n' ORDER BY bank) || E'\n'
                       FROM banks WHERE b#>>'{this_month,active}' IS NOT NULL), '')
        || '# HELP timebankd_network_pairs_diverged Pairs of banks whose books disagree, this month or last.' || E'\n'
        || '# TYPE timebankd_network_pairs_diverged gauge' || E'\n'
        || format('timebankd_network_pairs_diverged %s', (SELECT count(*) FROM diverged)) || E'\n'
        || '# HELP timebankd_network_pair_diverged 1 for a pair of banks whose books disagree for the month.' || E'\n'
        || '# TYPE timebankd_network_pair_diverged gauge' || E'\n'
        || coalesce((SELECT string_agg(format('timebankd_network_pair_diverged{bank="%s",with="%s",month="%s"} 1',
                                              p->>'a', p->>'b', month), E'\n' ORDER BY month, p->>'a')
                                || E'\n'
                       FROM diverged), '')
$$;

-- One bank's report of a month as the observer holds it: every revision
-- (when it came, the message that carried it) and the last in full.
CREATE FUNCTION tb_network_bank_report(b text, m date) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fed_peers WHERE peer = b AND kind = 'bank') THEN
        PERFORM tb_raise('peer_not_found', format('there is no bank %s', b));
    END IF;
    RETURN jsonb_build_object(
        'bank', b, 'month', to_char(m, 'YYYY-MM'),
        'revisions', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                         'revision', revision, 'final', final,
                                         'received_at', received_at, 'seq', seq)
                                     ORDER BY revision)
                                 FROM network_reports
                                WHERE bank = b AND month = date_trunc('month', m)), '[]'),
        'report', (SELECT report FROM tb_network_latest(m) WHERE bank = b));
END $$;
