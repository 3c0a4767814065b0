-- Funders' reports and statements count exchanges that stand: not grants,
-- not reversals, nor what they reversed.
BEGIN;
SELECT plan(10);

SELECT tb_member_add(jsonb_build_object('name', 'GP practice', 'kind', 'organisation'), 'test');
SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g, 'referred_by', 1,
                                        'joined_on', '2026-03-01'), 'test')
  FROM generate_series(2, 3) g;
SELECT tb_member_add('{"name": "Member 4", "joined_on": "2026-04-02"}', 'test');
SELECT tb_grant('{"member": 2, "minutes": 300, "performed_on": "2026-03-01",
                  "idempotency_key": "g"}', 'test', -100000);
SELECT tb_exchange_record(jsonb_build_object('payer', 2, 'earner', e, 'minutes', m,
                                             'category', c, 'performed_on', d,
                                             'idempotency_key', k), 'test', -600)
  FROM (VALUES (3, 60, 'lifts', '2026-03-10', 'a'), (3, 90, 'lifts', '2026-03-20', 'b'),
               (4, 30, 'gardening', '2026-04-05', 'c'), (3, 45, 'lifts', '2026-04-06', 'd'))
       AS v(e, m, c, d, k);
SELECT tb_reverse((SELECT id FROM transfers WHERE idempotency_key = 'b'),
                  '{"reason": "recorded twice", "idempotency_key": "r"}', 'test', -600, -100000);

SELECT is(tb_report_categories('2026-01-01', '2026-12-31')->'rows',
          '[{"month": "2026-03", "category": "lifts", "minutes": 60, "exchanges": 1},
            {"month": "2026-04", "category": "gardening", "minutes": 30, "exchanges": 1},
            {"month": "2026-04", "category": "lifts", "minutes": 45, "exchanges": 1}]',
          'by month and category: the reversed exchange and the grant are not counted');
SELECT is(tb_report_categories('2026-04-06', '2026-04-06')->'rows'->0->>'minutes', '45',
          'a period includes its last day');
SELECT is(tb_report_active(30, '2026-04-10')->'rows'->0,
          '{"active_members": 3, "registered_members": 3, "active_organisations": 0}',
          'active: a standing exchange given or received in the window');
SELECT is(tb_report_active(7, '2026-03-31')->'rows'->0->>'active_members', '0',
          'a reversed exchange makes nobody active');
SELECT is(tb_report_new_members('2026-03-01', '2026-04-30')->'rows',
          '[{"month": "2026-03", "new_members": 2, "new_organisations": 0},
            {"month": "2026-04", "new_members": 1, "new_organisations": 0}]',
          'new members by month, persons and organisations apart');
SELECT is(tb_report_referrals('2026-01-01', '2026-12-31')->'rows',
          '[{"source": "GP practice", "members": 2, "new_members": 2, "minutes_given": 105,
             "source_number": 1, "minutes_received": 135},
            {"source": "not referred", "members": 1, "new_members": 1, "minutes_given": 30,
             "source_number": null, "minutes_received": 0}]',
          'by referrer: members and the hours they gave and received');

SELECT is(tb_statement(2, '2026-03-15', '2026-04-30', 'colchester', 'Colchester')
              - 'lines' - 'bank' - 'member',
          '{"from": "2026-03-15", "to": "2026-04-30", "opening_minutes": 240,
            "in_minutes": 0, "out_minutes": 165, "closing_minutes": 75}',
          'a statement opens with all before its period and closes with all in it');
SELECT is(jsonb_array_length(tb_statement(2, '2026-03-15', '2026-04-30', 'colchester',
                                          'Colchester')->'lines'), 3,
          'a reversed exchange stays on it; its reversal is dated the day it was made');
SELECT is((SELECT sum((l->>'minutes')::bigint) FROM jsonb_array_elements(
              tb_statement(2, '2000-01-01', '2026-12-31', 'c', 'C')->'lines') l),
          (SELECT balance_minutes FROM accounts a JOIN members m ON m.account_id = a.id
            WHERE m.number = 2)::numeric,
          'a statement of all time ends at the balance');
SELECT throws_ok($$SELECT tb_statement(2, '2026-05-01', '2026-04-01', 'c', 'C')$$,
                 'TB000', 'invalid_period', 'a period that ends before it starts');

SELECT * FROM finish();
ROLLBACK;
