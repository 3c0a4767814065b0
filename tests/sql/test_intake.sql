-- People referred in by a GP practice or a service: each state and each
-- refusal; the outcomes read from a ledger built with known dates; the
-- letter, only with consent; and the commissioners' report with its
-- suppression boundaries.
BEGIN;
SELECT plan(78);

SELECT tb_member_add('{"name": "Castle Surgery", "kind": "organisation",
                       "org_kind": "gp_practice"}', 'test');                    -- 1
SELECT tb_member_add('{"name": "Housing Options", "kind": "organisation",
                       "org_kind": "housing"}', 'test');                        -- 2
SELECT tb_member_add('{"name": "Ann Smith"}', 'test');                          -- 3
SELECT tb_member_add('{"name": "Bob Jones"}', 'test');                          -- 4

CREATE FUNCTION pg_temp.refer(body jsonb, scope bigint DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT (tb_intake_add(body, 'brenda', scope)->>'id')::bigint
$$;
CREATE FUNCTION pg_temp.state(n bigint) RETURNS text LANGUAGE sql AS $$
    SELECT state FROM intake WHERE id = n
$$;

-- ---- the referral and its states ------------------------------------------
SELECT is(pg_temp.refer('{"org": 1, "name": "Edna Clarke", "phone": "01206 500200",
                          "reasons": ["isolation", "bereavement"],
                          "referrer_name": "Dr Byng", "referrer_role": "GP",
                          "notes": "lost her husband in March", "consent_contact": true,
                          "consent_outcomes": true, "idempotency_key": "castle-0001"}'),
          1::bigint, 'a GP practice refers a person');
SELECT is(pg_temp.state(1), 'received', 'the referral is received');
SELECT is((tb_intake_get(1, NULL)->'snomed'->>'code'), '871731000000106',
          'received carries the SNOMED CT concept for a referral to social prescribing');
SELECT is((tb_intake_get(1, NULL)->'history'->0->>'by'), 'brenda', 'and who recorded it');
SELECT is(pg_temp.refer('{"org": 1, "name": "Edna Clarke", "phone": "01206 500200",
                          "reasons": ["isolation", "bereavement"],
                          "referrer_name": "Dr Byng", "referrer_role": "GP",
                          "notes": "lost her husband in March", "consent_contact": true,
                          "consent_outcomes": true, "idempotency_key": "castle-0001"}'),
          1::bigint, 'the same referral sent again with its key is the same referral');
SELECT is((SELECT count(*) FROM intake), 1::bigint, 'and is not kept twice');
SELECT throws_ok($$SELECT pg_temp.refer('{"org": 1, "name": "Someone Else", "reasons": ["carer"],
                                          "idempotency_key": "castle-0001"}')$$,
                 'TB000', 'idempotency_conflict', 'a different referral under that key is refused');
SELECT throws_ok($$SELECT pg_temp.refer('{"org": 3, "name": "Fay", "reasons": ["carer"]}')$$,
                 'TB000', 'not_an_organisation', 'a referral from a member who is not an organisation');
SELECT throws_ok($$SELECT pg_temp.refer('{"org": 99, "name": "Fay", "reasons": ["carer"]}')$$,
                 'TB000', 'not_an_organisation', 'or from no member at all');
SELECT throws_ok($$SELECT pg_temp.refer('{"org": 1, "name": "Fay", "reasons": ["loneliness"]}')$$,
                 'TB000', 'invalid_reason', 'a reason not on the list is refused');
SELECT is((SELECT count(*) FROM intake), 1::bigint, 'none of them kept anything');
SELECT is((SELECT count(*) FROM intake_events), 1::bigint, 'nor any change');

SELECT throws_ok($$SELECT tb_intake_move(1, 'joined', '{}', 'brenda', NULL)$$,
                 'TB000', 'invalid_transition', 'joining before contact skips a state');
SELECT throws_ok($$SELECT tb_intake_move(1, 'declined', '{"reason": "busy"}', 'brenda', NULL)$$,
                 'TB000', 'invalid_transition', 'and so does declining');
SELECT is(tb_intake_move(1, 'contacted', '{}', 'brenda', NULL)->>'state', 'contacted',
          'the person is contacted');
SELECT isnt((SELECT contacted_at FROM intake WHERE id = 1), NULL, 'and when is kept');
SELECT throws_ok($$SELECT tb_intake_move(1, 'contacted', '{}', 'brenda', NULL)$$,
                 'TB000', 'invalid_transition', 'contacted twice is refused');
SELECT is(tb_intake_move(1, 'joined', '{}', 'carol', NULL)->>'state', 'joined',
          'and joins');
SELECT is((SELECT name || '/' || phone || '/' || notes || '/' || referred_by
             FROM members WHERE account_id = (SELECT member_account FROM intake WHERE id = 1)),
          'Edna Clarke/01206 500200/lost her husband in March/1',
          'the member is made from the referral, referred by the practice');
SELECT is((SELECT string_agg(state || ':' || by_actor, ',' ORDER BY id) FROM intake_events
            WHERE intake_id = 1), 'received:brenda,contacted:brenda,joined:carol',
          'each change is kept with who made it');
SELECT throws_ok($$SELECT tb_intake_move(1, 'contacted', '{}', 'brenda', NULL)$$,
                 'TB000', 'invalid_transition', 'a joined referral never goes back');

SELECT pg_temp.refer('{"org": 1, "name": "Frank", "reasons": ["low-mood"],
                       "consent_contact": true}');                              -- 2
SELECT tb_intake_move(2, 'contacted', '{}', 'brenda', NULL);
SELECT throws_ok($$SELECT tb_intake_move(2, 'joined', '{"member": 5}', 'brenda', NULL)$$,
                 'TB000', 'member_already_referred',
                 'a member already linked to another referral cannot be joined to this one');
SELECT is(tb_intake_move(2, 'joined', '{"member": 4}', 'brenda', NULL)->>'member', '4',
          'an existing member can be matched instead');
SELECT is((SELECT referred_by FROM members WHERE number = 4), 1::bigint,
          'and is counted as referred by the practice');

SELECT pg_temp.refer('{"org": 1, "name": "Gwen", "reasons": ["carer"],
                       "consent_contact": true}');                              -- 3
SELECT tb_intake_move(3, 'contacted', '{}', 'brenda', NULL);
SELECT is(tb_intake_move(3, 'declined', '{"reason": "too busy caring for her mother"}',
                         'brenda', NULL)->'snomed'->>'code', '871711000000103',
          'declined carries the SNOMED CT concept for social prescribing declined');
SELECT is((SELECT declined_reason FROM intake WHERE id = 3), 'too busy caring for her mother',
          'with the person''s reason');

SELECT pg_temp.refer('{"org": 2, "name": "Harry", "reasons": ["other"]}');    -- 4
SELECT throws_ok($$SELECT tb_intake_move(4, 'contacted', '{}', 'brenda', NULL)$$,
                 'TB000', 'no_consent', 'a person who did not consent to contact is not contacted');
SELECT is(tb_intake_move(4, 'unreachable', '{}', 'brenda', NULL)->>'state', 'unreachable',
          'a referral can be unreachable before any contact');
SELECT pg_temp.refer('{"org": 2, "name": "Ivy", "reasons": ["other"]}');      -- 5

-- ---- a referrer's token ---------------------------------------------------
SELECT is(pg_temp.refer('{"name": "Jack", "reasons": ["isolation"], "consent_contact": true}', 1),
          6::bigint, 'a referrer''s token refers for its own organisation');
SELECT is((SELECT org FROM intake WHERE id = 6), 1::bigint, 'with no org given');
SELECT throws_ok($$SELECT pg_temp.refer('{"org": 2, "name": "Kim", "reasons": ["carer"]}', 1)$$,
                 'TB000', 'other_organisation', 'but not for another');
SELECT throws_ok($$SELECT tb_intake_get(5, 1)$$, 'TB000', 'intake_not_found',
                 'and reads no other organisation''s referrals: to it there is none');
SELECT throws_ok($$SELECT tb_intake_list(NULL, false, 2, 1, NULL, 50)$$, 'TB000',
                 'other_organisation', 'nor lists them');
SELECT is((SELECT count(*) FROM jsonb_array_elements(tb_intake_list(NULL, false, NULL, 1, NULL, 50)->'items')),
          4::bigint, 'its list holds its own organisation''s four');
SELECT ok(NOT (tb_intake_get(1, 1) ?| ARRAY['name', 'phone', 'notes', 'referrer']),
          'and what it reads of one is the status, not the person''s details or notes');
SELECT is(tb_intake_add('{"name": "Someone", "reasons": ["carer"], "idempotency_key": "castle-0001"}',
                        'housing-system', 2)->>'org', '2',
          'a key is each organisation''s own: another may use it, and reads nothing through it');
DELETE FROM intake_events WHERE intake_id = (SELECT id FROM intake WHERE org = 2 AND idempotency_key = 'castle-0001');
DELETE FROM intake WHERE org = 2 AND idempotency_key = 'castle-0001';
SELECT throws_ok($$SELECT tb_intake_move(6, 'contacted', '{}', 'gp-system', 1)$$, 'TB000',
                 'forbidden', 'a referrer cannot move a referral on');
SELECT is(tb_intake_move(6, 'withdrawn', '{}', 'gp-system', 1)->>'state', 'withdrawn',
          'but may withdraw its own');

-- ---- overdue --------------------------------------------------------------
UPDATE intake SET received_at = now() - interval '15 days' WHERE id = 5;
SELECT ok(tb_intake_overdue((SELECT i FROM intake i WHERE id = 5)),
          'a referral not contacted in 15 days is overdue');
UPDATE intake SET received_at = now() - interval '13 days' WHERE id = 5;
SELECT ok(NOT tb_intake_overdue((SELECT i FROM intake i WHERE id = 5)), 'in 13 days it is not');
UPDATE fed_limits SET intake_overdue_days = 10;
SELECT is((SELECT jsonb_agg(x->'id') FROM jsonb_array_elements(
              tb_intake_list(NULL, true, NULL, NULL, NULL, 50)->'items') x), '[5]',
          'overdue_days is the bank''s: at 10 days it is listed as overdue');
UPDATE fed_limits SET intake_overdue_days = 14;

-- ---- outcomes from a ledger with known dates --------------------------------
-- Edna (referral 1) joined 400 days ago: an exchange in her first weeks, one
-- in her third month, none in her sixth, one in her eighth, and one that
-- was reversed, which does not count.
UPDATE intake SET joined_on = current_date - 400, received_at = now() - interval '410 days',
                  contacted_at = now() - interval '405 days' WHERE id = 1;
CREATE FUNCTION pg_temp.edna() RETURNS bigint LANGUAGE sql AS $$
    SELECT number FROM members WHERE name = 'Edna Clarke'
$$;
SELECT tb_grant(jsonb_build_object('member', pg_temp.edna(), 'minutes', 600,
                                   'category', 'welcome'), 'test', -100000);
SELECT tb_exchange_record(jsonb_build_object('payer', 3, 'earner', pg_temp.edna(),
       'minutes', 60, 'category', 'befriending',
       'performed_on', current_date - 390), 'test', -600);
SELECT tb_exchange_record(jsonb_build_object('payer', pg_temp.edna(), 'earner', 3,
       'minutes', 30, 'category', 'lifts',
       'performed_on', tb_months_after(current_date - 400, 2) + 3), 'test', -600);
SELECT tb_exchange_record(jsonb_build_object('payer', 3, 'earner', pg_temp.edna(),
       'minutes', 120, 'category', 'gardening',
       'performed_on', tb_months_after(current_date - 400, 7) + 1), 'test', -600);
SELECT tb_reverse((tb_exchange_record(jsonb_build_object('payer', 3, 'earner', pg_temp.edna(),
       'minutes', 45, 'category', 'gardening',
       'performed_on', tb_months_after(current_date - 400, 5) + 2), 'test', -600)->>'id')::bigint,
       '{"reason": "recorded in error"}', 'test', -600, -100000);
CREATE FUNCTION pg_temp.outcome() RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_intake_outcomes((SELECT i FROM intake i WHERE id = 1), current_date)
$$;
SELECT is(pg_temp.outcome()->>'first_exchange', (current_date - 390)::text,
          'the first exchange is the first after joining');
SELECT is(pg_temp.outcome()->'active_3_months', 'true',
          'an exchange in the third month: active at 3 months');
SELECT is(pg_temp.outcome()->'active_6_months', 'false',
          'none standing in the sixth (the one there was reversed): not active at 6 months');
SELECT is(pg_temp.outcome()->'periods'->0, jsonb_build_object('months', 3, 'complete', true,
              'given_minutes', 60, 'received_minutes', 30),
          'the first 3 months: an hour given, half an hour received');
SELECT is(pg_temp.outcome()->'periods'->2->>'given_minutes', '180',
          'the first 12 months: three hours given, the reversed exchange left out');
SELECT is(tb_intake_outcomes((SELECT i FROM intake i WHERE id = 1),
                             tb_months_after(current_date - 400, 3) - 1)->'active_3_months',
          'null', 'the day before the 3 months are up, whether they were active is not known');
SELECT is(tb_intake_outcomes((SELECT i FROM intake i WHERE id = 3), current_date), NULL,
          'a referral that did not join has no outcomes');

-- ---- the letter ------------------------------------------------------------
SELECT ok(tb_intake_letter(1, NULL, 'Colchester Time Bank')->>'text' LIKE
          '%Edna Clarke%joined the time bank%Active at 3 months: yes.%Active at 6 months: no.%',
          'the letter says what became of the person referred');
SELECT ok(tb_intake_letter(1, NULL, 'Colchester Time Bank')->>'text' NOT LIKE '%Ann Smith%',
          'and names no other member, not even the one she exchanged with');
SELECT is(tb_intake_letter(1, 1, 'Colchester Time Bank')->>'active_3_months', 'true',
          'the referrer''s own token can ask for it');
SELECT throws_ok($$SELECT tb_intake_letter(2, NULL, 'Colchester Time Bank')$$, 'TB000',
                 'no_consent', 'there is no letter without the person''s consent to outcomes');
SELECT ok(NOT (tb_intake_get(2, 1) ? 'outcomes'),
          'and the referrer''s status of that referral carries no outcomes');

-- ---- the commissioners' report -------------------------------------------
-- Castle Surgery: referrals 1, 2, 3, 6 above and four more (8); Housing
-- Options: 4, 5 and five more (7).
SELECT pg_temp.refer(jsonb_build_object('org', 1, 'name', 'P' || g, 'reasons', '["isolation"]'::jsonb))
  FROM generate_series(1, 4) g;
SELECT pg_temp.refer(jsonb_build_object('org', 2, 'name', 'Q' || g, 'reasons', '["other"]'::jsonb))
  FROM generate_series(1, 5) g;
CREATE FUNCTION pg_temp.report(disclose boolean) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_report_intake(current_date - 1000, current_date, NULL, disclose)
$$;
SELECT is(pg_temp.report(false)->'organisations'->0->>'received', '8',
          'internally, the practice''s 8 referrals are counted exactly');
SELECT is(pg_temp.report(false)->'organisations'->1->>'received', '7', 'and housing''s 7');
SELECT is(pg_temp.report(false)->'organisations'->0->>'joined', '2', 'two of them joined');
SELECT is(pg_temp.report(false)->'organisations'->0->>'contacted_in_time', '3',
          'contacted within 14 days: 3 (Edna in 5 days, Frank and Gwen the same day; Jack never)');
SELECT is(pg_temp.report(false)->'organisations'->0->>'median_days_to_contact', '0.0',
          'the median days to first contact: 0, of 5, 0 and 0');
SELECT is(pg_temp.report(false)->'organisations'->0->>'median_days_to_first_exchange', '20.0',
          'and to the first exchange: Edna''s 20, the only one who has exchanged');
SELECT is(pg_temp.report(true)->'organisations'->0->>'received', '10',
          'disclosed, a count of 8 is rounded to 10');
SELECT is(pg_temp.report(true)->'organisations'->1->'received', 'null',
          'a count of 7 is suppressed');
SELECT is(pg_temp.report(true)->'organisations'->0->'joined', 'null',
          'and so is a count of 2');
SELECT is(pg_temp.report(true)->'organisations'->0->'given_minutes', 'null',
          'with the hours of the people it counts');
SELECT is(pg_temp.report(true)->'organisations'->1->>'declined', '0', 'zero stays zero');
SELECT is(pg_temp.report(false)->'organisations'->0->>'given_minutes', '180',
          'internally, the hours given by those who joined');
SELECT is((SELECT jsonb_agg(r->>'reason') FROM jsonb_array_elements(pg_temp.report(false)->'reasons') r),
          '["isolation", "low-mood", "carer", "bereavement", "other"]',
          'per reason, in the list''s order, a referral with two counted under each');
SELECT is(pg_temp.report(false)->'total'->>'received', '15', 'and in all');
SELECT is(pg_temp.report(true)->'total'->'median_days_to_first_exchange', 'null',
          'a median of one person''s days is suppressed, however many were received');
SELECT is(tb_report_intake(current_date - 3, current_date, NULL, true)->>'from',
          date_trunc('month', current_date - 3)::date::text,
          'a report for outside the bank is of whole months, so that no day can be told apart');
-- Complementary suppression: with one organisation's hours suppressed, the
-- other's go too, so the total less those shown gives neither.
UPDATE fed_limits SET suppress_below = 2, round_to = 1;
UPDATE intake SET consent_contact = true WHERE name = 'Q1';
SELECT tb_intake_move(id, 'contacted', '{}', 'brenda', NULL) FROM intake WHERE name = 'Q1';
SELECT tb_intake_move(id, 'joined', '{}', 'brenda', NULL) FROM intake WHERE name = 'Q1';
SELECT is((SELECT jsonb_agg(o->'given_minutes') FROM jsonb_array_elements(
               tb_report_intake(current_date - 1000, current_date, NULL, true)->'organisations') o),
          '[null, null]', 'one organisation''s hours hidden hides the next smallest too');
UPDATE fed_limits SET suppress_below = 8, round_to = 5;

-- ---- the national body's activity report ----------------------------------
SELECT is(tb_intake_month(date_trunc('month', current_date)::date, current_date, 8, 5)->'received',
          '15', 'the month''s referrals received, rounded to 5 as they leave the bank');
SELECT is(tb_intake_month(date_trunc('month', tb_months_after(current_date - 400, 3))::date,
                          (date_trunc('month', tb_months_after(current_date - 400, 3))
                           + interval '1 month - 1 day')::date, 1, 1)
          - ARRAY['received', 'contacted', 'joined', 'declined', 'unreachable', 'withdrawn',
                  'reached_6_months', 'active_6_months'],
          '{"active_3_months": 1, "reached_3_months": 1}',
          'in the month Edna reached 3 months, she is counted as reaching it, and active');
SELECT is(tb_intake_month(date_trunc('month', tb_months_after(current_date - 400, 3))::date,
                          (date_trunc('month', tb_months_after(current_date - 400, 3))
                           + interval '1 month - 1 day')::date, 8, 5)->'reached_3_months',
          'null', 'which, as one person, is suppressed when it leaves');

-- ---- erasure ----------------------------------------------------------------
SELECT throws_ok($$SELECT tb_intake_erase(5, 'carol')$$, 'TB000', 'intake_open',
                 'an open referral is closed before it is erased');
SELECT throws_ok($$SELECT tb_intake_erase(1, 'carol')$$, 'TB000', 'intake_joined',
                 'a joined one goes with its member''s erasure');
SELECT is(tb_intake_erase(3, 'carol')->>'name', NULL, 'a declined person''s details are erased');
SELECT is((SELECT declined_reason FROM intake WHERE id = 3), NULL, 'their reason too');
SELECT is((SELECT state FROM intake WHERE id = 3), 'declined', 'and the state stays, for the reports');

SELECT * FROM finish();
ROLLBACK;
