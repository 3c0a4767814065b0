-- The audit: checks of the ledger's and the channel's invariants
-- (DESIGN.md), each reported with what it found.

-- Invariants 1 to 3 of the design, each with what failed. Floors: members
-- and organisations their own or the bank's default, the community account
-- the community floor. The journal is its transfers' debits and credits
-- (the view entries), so that each transfer sums to zero needs no check:
-- what can be false is the cached balances and pending debits, and the
-- links the audit proves instead of foreign keys (tb_audit).
CREATE FUNCTION tb_audit_balances(default_floor bigint, community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_accounts bigint;
    n_entries bigint;
    sum_balances numeric;
    mismatched jsonb;
    pending jsonb;
    below jsonb;
    checks jsonb;
BEGIN
    SELECT count(*), coalesce(sum(balance_minutes), 0) INTO n_accounts, sum_balances FROM accounts;
    SELECT 2 * count(*) INTO n_entries FROM transfers;
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
    -- Pending debits are exactly the reservations of cross-bank exchanges
    -- still in flight at the payer's bank.
    SELECT coalesce(jsonb_agg(format('%s: %s pending, reservations %s', tb_account_label(id),
                                     tb_hours(pending_minutes), tb_hours(reserved))), '[]')
      INTO pending FROM (
        SELECT a.id, a.pending_minutes, coalesce(r.total, 0)::bigint AS reserved
          FROM accounts a
          LEFT JOIN (SELECT member_account, sum(minutes) AS total FROM xb_exchanges
                      WHERE side = 'payer' AND state = 'pending' GROUP BY member_account) r
            ON r.member_account = a.id
         WHERE a.pending_minutes <> coalesce(r.total, 0)
         ORDER BY a.id LIMIT 50) p;
    checks := jsonb_build_array(
        jsonb_build_object('invariant', 1, 'name', 'balances of all accounts sum to zero',
            'ok', sum_balances = 0,
            'detail', format('%s accounts sum to %s minutes', n_accounts, sum_balances),
            'failing', '[]'::jsonb),
        jsonb_build_object('invariant', 2, 'name', 'every balance equals the replay of its journal',
            'ok', jsonb_array_length(mismatched) = 0,
            'detail', format('%s accounts replayed from %s entries', n_accounts, n_entries),
            'failing', mismatched),
        jsonb_build_object('invariant', 3, 'name', 'no balance is below its floor, pending included',
            'ok', jsonb_array_length(below) = 0 AND jsonb_array_length(pending) = 0,
            'detail', format('member, organisation and community accounts checked against their '
                             'floors (default %s, community %s), and every pending debit '
                             'against the reservations in flight', tb_hours(default_floor),
                             tb_hours(community_floor)),
            'failing', below || pending));
    RETURN jsonb_build_object(
        'ok', NOT EXISTS (SELECT 1 FROM jsonb_array_elements(checks) c WHERE NOT (c->>'ok')::boolean),
        'checked_at', now(), 'checks', checks);
END $$;

CREATE FUNCTION tb_audit(default_floor bigint, community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    result jsonb := tb_audit_balances(default_floor, community_floor);
    orphans jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(what ORDER BY n), '[]') INTO orphans FROM (
        (SELECT 3 AS n, format('transfer %s: no account %s', t.id, acct) AS what
           FROM transfers t, LATERAL (VALUES (t.payer_account), (t.earner_account)) v(acct)
          WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = acct)
          LIMIT 50)
        UNION ALL
        (SELECT 4, format('cross-bank exchange %s: no account %s', x.xid, x.member_account)
           FROM xb_exchanges x
          WHERE x.member_account IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.member_account)
          LIMIT 50)
        UNION ALL
        (SELECT 5, format('cross-bank exchange %s: no transfer %s', x.xid, x.transfer_id)
           FROM xb_exchanges x
          WHERE x.transfer_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = x.transfer_id)
          LIMIT 50)
        UNION ALL
        (SELECT 6, format('cross-bank exchange %s: no peer %s', x.xid, x.peer)
           FROM xb_exchanges x
          WHERE NOT EXISTS (SELECT 1 FROM fed_peers p WHERE p.peer = x.peer)
          LIMIT 50)) o;
    IF jsonb_array_length(orphans) = 0 THEN
        RETURN result;
    END IF;
    -- Invariant 2 is the second check.
    RETURN jsonb_set(jsonb_set(jsonb_set(result, '{checks,1,ok}', 'false'),
                               '{checks,1,failing}', result #> '{checks,1,failing}' || orphans),
                     '{ok}', 'false');
END $$;

CREATE FUNCTION tb_fed_audit() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('peers', coalesce(jsonb_agg(r ORDER BY r.peer), '[]'))
      FROM (SELECT p.peer, a.balance_minutes AS position, p.peer_clearing,
                   p.peer_clearing_at, p.diverged_at IS NOT NULL AS diverged,
                   -- In flight to the peer's checkpointed balance: our
                   -- reservations; what we posted and answered after what
                   -- the peer had applied when it read that balance (as
                   -- acknowledged, before a checkpoint says); and what we
                   -- settled of proposals it had not applied then.
                   coalesce((SELECT sum(minutes) FROM xb_exchanges x
                              WHERE x.peer = p.peer AND x.side = 'payer'
                                AND (x.state = 'pending'
                                     OR (x.state = 'settled'
                                         AND x.proposed_seq > p.peer_clearing_applied))), 0)
                 + coalesce((SELECT sum(minutes) FROM xb_exchanges x
                              WHERE x.peer = p.peer AND x.side = 'earner'
                                AND x.state = 'settled'
                                AND x.answer_seq > coalesce(p.peer_clearing_applied, k.out_acked)), 0)
                 -- Moves: open at the referring bank, which the other may
                 -- have accepted and posted; accepted at the receiving
                 -- bank, its answer not yet applied there.
                 + coalesce((SELECT sum(abs(r.balance_minutes)) FROM referrals r
                              WHERE r.peer = p.peer AND r.kind = 'move'
                                AND ((r.side = 'referring' AND r.state = 'open')
                                     -- answered after the peer's checkpoint
                                     OR (r.side = 'referring' AND r.state = 'accepted'
                                         AND r.received_seq > p.peer_clearing_seq)
                                     OR (r.side = 'receiving' AND r.state = 'accepted'
                                         AND r.sent_seq > coalesce(p.peer_clearing_applied,
                                                                   k.out_acked)))), 0)
                   AS in_flight,
                   -- A checkpoint older than our last change with the peer
                   -- cannot show divergence, only that something is in flight.
                   coalesce(p.peer_clearing_at < greatest(
                                (SELECT max(greatest(x.created_at, x.decided_at))
                                   FROM xb_exchanges x WHERE x.peer = p.peer),
                                (SELECT max(r.decided_at) FROM referrals r
                                  WHERE r.peer = p.peer AND r.kind = 'move')),
                            false) AS checkpoint_stale
              FROM fed_peers p JOIN accounts a ON a.id = p.clearing_account
              JOIN fed_acked k ON k.peer = p.peer
             WHERE p.kind = 'bank') r
$$;
