-- The activity reports on the channel: a bank queues the months due to
-- the national body (each month once, then the final, a revision when
-- figures change, the month to date on demand), takes in its answers, and
-- refuses anything else from it; the observer checks each report before
-- it stores it, keeps every revision, and keeps the network's books.
BEGIN;
SELECT plan(31);

-- Three months: two closed (m2, m1) and this one (m0), whatever today is.
SELECT to_char(current_date - interval '2 months', 'YYYY-MM') AS m2,
       to_char(current_date - interval '1 month', 'YYYY-MM') AS m1,
       to_char(current_date, 'YYYY-MM') AS m0 \gset

SELECT tb_fed_limits_set('{"bank_id": "colchester", "role": "bank", "suppress_below": 8,
                           "round_to": 5}');
SELECT tb_fed_peers(ARRAY['westminster', 'national'], ARRAY['bank', 'observer'],
                    ARRAY[6000, 0]);
SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g, 'joined_on', :'m2' || '-05',
                                        'address', g || ' Mill Lane, Colchester CO2 7AB'), 'test')
  FROM generate_series(1, 12) g;
SELECT tb_exchange_record(jsonb_build_object('payer', 1, 'earner', g, 'minutes', 60,
                                             'category', 'Lifts', 'performed_on', :'m1' || '-10',
                                             'idempotency_key', 'n' || g), 'test', -100000)
  FROM generate_series(2, 12) g;

-- One message from a peer, next in its stream, applied as the daemon does.
CREATE FUNCTION pg_temp.deliver(p text, body jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_fed_apply(p, jsonb_build_array(jsonb_build_object(
               'seq', in_applied + 1, 'prev', encode(in_head, 'hex'),
               'hash', md5(p || in_applied)::text, 'envelope', 'cafe', 'body', body)), 600)
      FROM fed_peers WHERE peer = p
$$;
CREATE FUNCTION pg_temp.sent(m text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT body FROM fed_reports_sent WHERE month = (m || '-01')::date
     ORDER BY revision DESC LIMIT 1
$$;

-- ---- at the bank ----
SELECT is((SELECT jsonb_agg(q->>'month' ORDER BY q->>'month') FROM jsonb_array_elements(tb_reports_send()) q),
          jsonb_build_array(:'m2', :'m1', :'m0'),
          'a report for every month from the first member''s joining to this one');
SELECT is(tb_reports_send(), '[]', 'and none again while nothing changed');
SELECT results_eq($$SELECT o.body::jsonb->>'kind', o.body::jsonb->>'revision',
                           o.body::jsonb->>'final'
                      FROM fed_outbox o JOIN fed_reports_sent s ON s.sent_seq = o.seq
                     WHERE o.peer = 'national' ORDER BY s.month$$,
                  $$VALUES ('activity_report'::text, '1'::text, 'true'::text),
                           ('activity_report', '1', 'true'), ('activity_report', '1', 'false')$$,
                  'each goes on the channel to the national body: the closed months final');
SELECT is(pg_temp.sent(:'m1')->'hours'->'categories',
          '[{"members": 10, "minutes": 660, "category": "lifts"}]',
          'counted by the shared taxonomy''s codes, people rounded, hours exact');
SELECT is((SELECT count(*) FROM fed_outbox WHERE peer = 'westminster'), 0::bigint,
          'no other bank is sent a report');
SELECT is(pg_temp.sent(:'m1')->'intake'->'received', '0',
          'the report carries the month''s people referred in (none here)');

-- A backdated exchange: November is revised, nothing else.
SELECT tb_exchange_record(jsonb_build_object('payer', 1, 'earner', 2, 'minutes', 30,
                                             'category', 'lifts', 'performed_on', :'m1' || '-20',
                                             'idempotency_key', 'late'), 'test', -100000);
SELECT is((SELECT jsonb_agg(q->>'month') FROM jsonb_array_elements(tb_reports_send()) q),
          jsonb_build_array(:'m1'), 'a backdated exchange revises its month, and no other');
SELECT results_eq($$SELECT to_char(month, 'YYYY-MM'), max(revision) FROM fed_reports_sent
                     GROUP BY month ORDER BY month$$,
                  format($$VALUES (%L::text, 1), (%L, 2), (%L, 1)$$, :'m2', :'m1', :'m0'),
                  'November is at revision 2, the others unchanged');
SELECT is((tb_reports_send(current_date)->0->>'revision')::int, 2,
          'a coordinator''s --send sends the month again, as its next revision');

-- The observer's answers.
SELECT pg_temp.deliver('national', replace(replace('{"kind": "report_answer", "items": [
           {"month": "M1", "revision": 2, "accepted": true, "reason": ""},
           {"month": "M2", "revision": 1, "accepted": false, "reason": "undisclosed_count"},
           {"month": "x", "revision": "y"}]}', 'M1', :'m1'), 'M2', :'m2')::jsonb);
SELECT results_eq($$SELECT to_char(month, 'YYYY-MM'), revision, answer FROM fed_reports_sent
                     WHERE answer IS NOT NULL ORDER BY month$$,
                  format($$VALUES (%L::text, 1, 'undisclosed_count'::text), (%L, 2, 'accepted')$$,
                         :'m2', :'m1'),
                  'the national body''s answers are kept with what was sent');
SELECT is(pg_temp.deliver('national', '{"kind": "xb_claim", "items": [
              {"claim_id": "national:c1", "payer": 1, "minutes": 60, "category": "lifts",
               "performed_on": "2026-01-10", "message": "who is member 1?"}]}')->>'error',
          'not_between_bank_and_observer',
          'a bank refuses anything else from the national body, and keeps nothing of it');
SELECT is((SELECT count(*) FROM xb_claims), 0::bigint, 'no claim is taken in');
SELECT is(tb_network_report_sent((:'m1' || '-01')::date, 8, 5, 'colchester')->'report',
          pg_temp.sent(:'m1'), 'a coordinator sees the report as it was sent');
SELECT is(tb_network_report_sent((:'m1' || '-01')::date, 8, 5, 'colchester')->'changed_since',
          'null',
          'and nothing has changed since');

-- ---- at the observer ----
-- The same database plays the national body now: its peers are banks.
SELECT tb_fed_limits_set('{"bank_id": "national", "role": "observer"}');
SELECT tb_fed_peers(ARRAY['colchester', 'cheshire'], ARRAY['bank', 'bank'], ARRAY[0, 0]);
CREATE TEMP TABLE closed AS SELECT pg_temp.sent(:'m1') AS r;
SELECT is(pg_temp.deliver('colchester', (SELECT r FROM closed))->>'error', NULL,
          'a report is applied');
SELECT results_eq($$SELECT bank, to_char(month, 'YYYY-MM'), revision, final, seq
                      FROM network_reports$$,
                  format($$VALUES ('colchester'::text, %L::text, 2, true, 1::bigint)$$, :'m1'),
                  'and stored with the message that carried it');
SELECT is((SELECT body::jsonb->'items'->0 FROM fed_outbox WHERE peer = 'colchester'),
          jsonb_build_object('month', :'m1', 'reason', '', 'accepted', true, 'revision', 2),
          'the bank is answered');
SELECT is(pg_temp.deliver('colchester', (SELECT r FROM closed))->>'queued', '1',
          'the same revision again is answered too');
SELECT is((SELECT count(*) FROM network_reports), 1::bigint, 'but not stored again');

-- What is refused, and leaves nothing but its hash.
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 3, 'members',
           jsonb_set(r->'members', '{person,active}', '3'))) FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 4, 'hours',
           jsonb_set(r->'hours', '{within,minutes}', '-60'))) FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 5, 'hours',
           jsonb_set(r->'hours', '{grants}', '{"members": null, "minutes": 90}'))) FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 6, 'hours',
           jsonb_set(r->'hours', '{areas}', '[{"district": "CO2 7AB", "members": 10,
                                                "minutes": 60}]'))) FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 7, 'members',
           jsonb_set(r->'members', '{person,total}', '12'))) FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 8, 'hours',
           jsonb_set(r->'hours', '{categories}', (SELECT jsonb_agg(jsonb_build_object(
               'category', 'lifts', 'members', 10, 'minutes', 60)) FROM generate_series(1, 5000)))))
  FROM closed;
SELECT pg_temp.deliver('colchester', r || jsonb_build_object('revision', 9, 'intake',
           r->'intake' || '{"received": 3}')) FROM closed;
SELECT results_eq($$SELECT i->>'revision', i->>'reason'
                      FROM fed_outbox o, jsonb_array_elements(o.body::jsonb->'items') i
                     WHERE o.peer = 'colchester' AND NOT (i->>'accepted')::boolean
                     ORDER BY o.seq$$,
                  $$VALUES ('2'::text, 'stale_revision'::text), ('3', 'undisclosed_count'),
                           ('4', 'negative_count'), ('5', 'undisclosed_count'),
                           ('6', 'malformed'), ('7', 'undisclosed_count'), ('8', 'too_large'),
                           ('9', 'undisclosed_count')$$,
                  'a count of 1 to 7 people, one not rounded, hours of a suppressed cell, '
                  'a negative figure, a full postcode, an oversized report or 3 people '
                  'referred in is refused, with the reason');
-- Hostile figures meet no cast they break: each is refused, the run goes on.
SELECT is(array_agg(pg_temp.deliver('colchester', x)->>'error'), ARRAY[NULL, NULL, NULL, NULL, NULL,
                                                                      NULL, NULL, NULL]::text[],
          'a revision past 2^31, the year 0, a position of 2^63, free text in a date, an '
          'unknown bank, a name twice or hours of no one are applied as refusals')
  FROM (SELECT r || '{"revision": 3000000000}' AS x FROM closed
        UNION ALL SELECT r || '{"revision": 20, "month": "0000-01"}' FROM closed
        UNION ALL SELECT r || jsonb_build_object('revision', 21, 'clearing', jsonb_build_array(
                      r->'clearing'->0 || '{"position_minutes": 9223372036854775807}')) FROM closed
        UNION ALL SELECT r || '{"revision": 22, "from": "Jane Smith, 12 High St"}' FROM closed
        UNION ALL SELECT r || jsonb_build_object('revision', 23, 'clearing', jsonb_build_array(
                      r->'clearing'->0 || '{"bank": "jane-smith-12-high-st"}')) FROM closed
        UNION ALL SELECT r || jsonb_build_object('revision', 24, 'hours', jsonb_set(r->'hours',
                      '{categories}', (r->'hours'->'categories') || (r->'hours'->'categories')))
                    FROM closed
        UNION ALL SELECT r || jsonb_build_object('revision', 25, 'hours', jsonb_set(r->'hours',
                      '{within}', '{"members": 0, "minutes": 37}')) FROM closed
        UNION ALL SELECT r || '{"revision": 26, "final": "yes"}' FROM closed) hostile;
SELECT results_eq($$SELECT i->>'reason'
                      FROM fed_outbox o, jsonb_array_elements(o.body::jsonb->'items') i
                     WHERE o.peer = 'colchester' AND NOT (i->>'accepted')::boolean
                     ORDER BY o.seq OFFSET 8$$,
                  $$VALUES ('malformed'::text), ('malformed'), ('malformed'), ('malformed'),
                           ('unknown_bank'), ('malformed'), ('undisclosed_count'), ('malformed')$$,
                  'with the reason for each');
SELECT is((SELECT count(*) FROM network_reports), 1::bigint, 'and none of them is stored');
SELECT is((SELECT count(*) FROM fed_inbox WHERE peer = 'colchester' AND envelope = ''
              AND body = '{"kind": "activity_report", "refused": "undisclosed_count"}'), 5::bigint,
          'a refused report is kept as its hash only');

-- The books: Cheshire reports its position with Colchester.
SELECT pg_temp.deliver('cheshire', jsonb_build_object(
           'kind', 'activity_report', 'month', :'m1', 'revision', 1, 'final', true,
           'members', r->'members', 'hours', r->'hours',
           'clearing', '[{"bank": "colchester", "position_minutes": 0, "in_flight": 0,
                          "applied_seq": 0, "acked_seq": 0}]')) FROM closed;
CREATE FUNCTION pg_temp.pair() RETURNS text LANGUAGE sql AS $$
    SELECT p->>'state'
      FROM jsonb_array_elements(tb_network_books((current_date - interval '1 month')::date)->'pairs') p
     WHERE p->>'a' = 'cheshire' AND p->>'b' = 'colchester'
$$;
CREATE FUNCTION pg_temp.position(bank text, rev int, other text, minutes int, flight int,
                                 applied int, acked int) RETURNS void LANGUAGE sql AS $$
    SELECT pg_temp.deliver(bank, r || jsonb_build_object('revision', rev, 'clearing',
               jsonb_build_array(jsonb_build_object('bank', other, 'position_minutes', minutes,
                                                    'in_flight', flight, 'applied_seq', applied,
                                                    'acked_seq', acked)))) FROM closed
$$;
SELECT is(pg_temp.pair(), 'no_report',
          'a pair whose report has no position with the other: no report');
SELECT pg_temp.position('colchester', 9, 'cheshire', 90, 0, 4, 5),
       pg_temp.position('cheshire', 2, 'colchester', -90, 0, 5, 4);
SELECT is(pg_temp.pair() || ' ' || (tb_network_books((:'m1' || '-01')::date)->>'network_minutes'),
          'agree 0', 'positions that cancel agree, and the network sums to zero');
SELECT pg_temp.position('cheshire', 3, 'colchester', -60, 0, 3, 4);
SELECT is(pg_temp.pair(), 'in_flight', 'ones resting on other points of the channel are in flight');
SELECT pg_temp.position('cheshire', 4, 'colchester', -60, 0, 5, 4);
SELECT is(pg_temp.pair() || ' ' || (tb_network_books((:'m1' || '-01')::date)->>'diverged'),
          'diverged 1', 'ones on the same points with nothing in flight have diverged');
SELECT is(tb_network_metrics() ~ ('timebankd_network_pair_diverged\{bank="cheshire",with="colchester",'
                                  'month="' || :'m1' || '"\} 1'),
          true, 'and the metric names the pair and the month (this month or last)');
-- A bank removed from the register counts in the books for the months it
-- reported, and not for the others.
INSERT INTO fed_peers (peer, kind, source, removed_at) VALUES ('dorset', 'bank', 'register', now());
SELECT is((SELECT count(*) FROM jsonb_array_elements(tb_network_books((:'m1' || '-01')::date)->'pairs') p
            WHERE 'dorset' IN (p->>'a', p->>'b')), 0::bigint,
          'a bank removed that never reported is not in the books');
SELECT is((SELECT count(*) FROM jsonb_array_elements(tb_network_books((:'m1' || '-01')::date)->'pairs') p
            WHERE 'colchester' IN (p->>'a', p->>'b')), 1::bigint,
          'the banks that reported are');
SELECT finish();
ROLLBACK;
