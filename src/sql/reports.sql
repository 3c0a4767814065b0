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
                   coalesce(tb_xb_party(t.xb_id), tb_party_name(other.account_id))
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
