-- Safeguarding: help in a category that needs a check is refused to a
-- helper without a valid one, on every path that records or arranges it
-- (an exchange alone, in a batch set-wise, a group, a claim, a peer's
-- proposal, a contact accepted, a match), unless a coordinator overrides
-- with a reason, which is kept. Checks running out are listed; members
-- flagged for care have their exchanges reviewed; the to-do holds it all.
BEGIN;
SELECT plan(44);

SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
  FROM generate_series(1, 4) g;
SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], ARRAY[100000]);
SELECT set_config('tb.max_exchange', '600', true);
SELECT tb_fed_limits_set('{"check_required": ["personal-care", "childcare"]}');
SELECT is(tb_check_required(), ARRAY['personal-care', 'childcare'],
          'the categories that need a check are the config''s');

CREATE FUNCTION pg_temp.exchange(earner int, cat text, extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT tb_exchange_record(jsonb_build_object('payer', 1, 'earner', earner, 'minutes', 60,
                                                 'category', cat) || extra, 'brenda', -600)
$$;

-- ---- an exchange ----------------------------------------------------------
SELECT throws_ok($$SELECT pg_temp.exchange(2, 'personal-care')$$, 'TB000',
                 'safeguarding_check_required',
                 'personal care from a member with no check is refused');
SELECT is((SELECT count(*) FROM transfers), 0::bigint, 'and nothing is posted');
SELECT lives_ok($$SELECT pg_temp.exchange(2, 'gardening')$$,
                'gardening needs no check');
SELECT is(tb_check_add(2, '{"kind": "dbs-enhanced", "reference": "001234567890",
                            "checked_on": "2026-01-10", "expires_on": "2029-01-10"}',
                       'carol')->>'valid', 'true', 'an enhanced DBS check is recorded');
SELECT lives_ok($$SELECT pg_temp.exchange(2, 'personal-care')$$,
                'and the member may then give personal care, to a member who needs no check');
SELECT throws_ok($$SELECT pg_temp.exchange(2, 'personal-care',
                                          '{"performed_on": "2025-12-01"}')$$, 'TB000',
                 'safeguarding_check_required',
                 'but not on a day before the check was made');
SELECT tb_check_add(3, jsonb_build_object('kind', 'dbs-basic', 'checked_on', current_date - 400,
                                          'expires_on', current_date - 1), 'carol');
SELECT throws_ok($$SELECT pg_temp.exchange(3, 'childcare')$$, 'TB000',
                 'safeguarding_check_required', 'an expired check is no check');
SELECT lives_ok($$SELECT pg_temp.exchange(3, 'childcare',
                   '{"safeguarding_override": "her check is renewed; the certificate is due"}')$$,
                'a coordinator may override with a reason');
SELECT is((SELECT reason || '/' || by_actor || '/' || category FROM safeguarding_overrides),
          'her check is renewed; the certificate is due/brenda/childcare',
          'and the override is kept, with who made it');
SELECT is((SELECT t.category FROM safeguarding_overrides o JOIN transfers t ON t.id = o.transfer_id),
          'childcare', 'naming the exchange it let through');

-- ---- set-wise, in a batch ---------------------------------------------------
CREATE FUNCTION pg_temp.batch(earners int[], cat text) RETURNS TABLE (ok boolean, code text)
LANGUAGE sql AS $$
    SELECT b.ok, b.code FROM tb_exchange_batch((
        SELECT jsonb_agg(jsonb_build_object('xb', false, 'actor', 'brenda', 'p',
                   jsonb_build_object('payer', 1, 'earner', e, 'minutes', 10, 'category', cat,
                                      'idempotency_key', 'k' || e || cat || random()))
                   ORDER BY n)
          FROM unnest(earners) WITH ORDINALITY AS x(e, n)), -6000, 'colchester') b
$$;
SELECT is(ARRAY(SELECT code FROM pg_temp.batch(ARRAY[2, 4], 'personal-care')),
          ARRAY[NULL, 'safeguarding_check_required'],
          'in a batch, the one without a check is refused and the other posted');
SELECT isnt(current_setting('tb.batch_path', true), 'set-wise', 'having gone item by item');
SELECT is(ARRAY(SELECT ok FROM pg_temp.batch(ARRAY[2, 2], 'personal-care')), ARRAY[true, true],
          'a batch of helpers who all hold checks posts');
SELECT is(current_setting('tb.batch_path', true), 'set-wise', 'set-wise');

-- ---- a group, a claim, a peer's proposal -------------------------------------
SELECT throws_ok($$SELECT tb_exchange_group('{"payer": 1, "category": "personal-care",
                     "earners": [{"earner": 2, "minutes": 30}, {"earner": 4, "minutes": 30}]}',
                     'brenda', -600)$$, 'TB000', 'safeguarding_check_required',
                 'a group with one helper unchecked is refused whole');
SELECT throws_ok($$SELECT tb_claim_record('{"earner": 4, "payer": 9, "bank": "westminster",
                     "minutes": 60, "category": "personal-care"}', 'brenda', 'colchester')$$,
                 'TB000', 'safeguarding_check_required',
                 'a claim for personal care our unchecked member gave is refused');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:1', 'earner', 4, 'minutes', 60,
                                 'category', 'personal-care',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'reason',
          'safeguarding_check_required',
          'and so is a peer''s proposal that our unchecked member gave it');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:2', 'earner', 2, 'minutes', 60,
                                 'category', 'personal-care',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'accepted',
          'true', 'one our checked member gave is settled');
SELECT is(tb_xb_propose_batch('westminster', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:3', 'earner', 4, 'minutes', 60,
                                 'category', 'childcare', 'performed_on', 'not a date')), 1),
          NULL, 'set-wise, a proposal with a bad date goes item by item, never raising');

-- ---- a contact accepted, a match ---------------------------------------------
SELECT tb_dir_add('offer', jsonb_build_object('member', 4, 'category', 'personal-care',
                  'text', 'help with washing and dressing', 'visibility', 'federation'),
                  'brenda', false);
INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                          item_category, item_text, message, state, recorded_by)
SELECT 'westminster:k' || g, 'provider', 'westminster', 'h' || g,
       (SELECT account_id FROM members WHERE number = 4), 'offer', 'personal-care',
       'help with washing', 'could you help our member?', 'open', 'federation:westminster'
  FROM generate_series(1, 2) g;
SELECT throws_ok($$SELECT tb_contact_answer('westminster:k1', true,
                                            '{"message": "call on Tuesday"}', 'brenda')$$,
                 'TB000', 'safeguarding_check_required',
                 'a contact for personal care from an unchecked member is not accepted');
SELECT is((SELECT state FROM dir_contacts WHERE contact_id = 'westminster:k1'), 'open',
          'and stays open');
SELECT is(tb_contact_answer('westminster:k1', false, '{"message": "not now"}', 'brenda')->>'state',
          'declined', 'it can be declined');
SELECT is(tb_contact_answer('westminster:k2', true,
                            '{"message": "call on Tuesday", "safeguarding_override": "checked in person by the coordinator"}',
                            'carol')->>'state', 'accepted', 'or accepted on an override');
SELECT is((SELECT contact_id FROM safeguarding_overrides WHERE contact_id IS NOT NULL),
          'westminster:k2', 'which is kept with the contact');
SELECT tb_dir_add('request', jsonb_build_object('member', 1, 'category', 'personal-care',
                  'text', 'help washing', 'visibility', 'bank'), 'brenda', false);
SELECT is((tb_dir_match((SELECT id FROM dir_items WHERE kind = 'request'), 'colchester', 0, 10)
           ->>'withheld_for_safeguarding'), '1',
          'a match leaves out the offer of a member with no check, and says so');
SELECT is(jsonb_array_length(tb_dir_match((SELECT id FROM dir_items WHERE kind = 'request'),
                                          'colchester', 0, 10)->'items'), 0,
          'and offers nobody unchecked');

-- Our member offering help with a peer's request: asked for, and paid.
INSERT INTO dir_remote (peer, handle, kind, category, text, expires_on, version, tsv)
VALUES ('westminster', 'r1', 'request', 'personal-care', 'help with a bath', current_date + 9,
        1, to_tsvector('english', 'bath'));
SELECT throws_ok($$SELECT tb_contact_request('{"handle": "r1", "for": 4,
                     "message": "our member could help"}', 'brenda', 'colchester')$$,
                 'TB000', 'safeguarding_check_required',
                 'offering an unchecked member for a peer''s personal-care request is refused');
SELECT is(tb_contact_request('{"handle": "r1", "for": 4, "message": "our member could help",
                               "safeguarding_override": "a nurse, checked by the NHS"}',
                             'carol', 'colchester')->>'state', 'open',
          'or asked on an override');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:4', 'contact', 'colchester:k1',
                                 'minutes', 60, 'category', 'personal-care',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'reason',
          'contact_not_found', '(a proposal names an accepted contact only)');
UPDATE dir_contacts SET state = 'accepted' WHERE contact_id = 'colchester:k1';
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:5', 'contact', 'colchester:k1',
                                 'minutes', 60, 'category', 'childcare',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'reason',
          'safeguarding_check_required',
          'the override was for personal care: a proposal from the contact for childcare is refused');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:6', 'contact', 'colchester:k1',
                                 'minutes', 60, 'category', 'Personal-Care',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'accepted',
          'true', 'one for personal care is settled on the override');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:7', 'earner', 4, 'minutes', 60,
                                 'category', 'Personal Care ',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'accepted',
          'true', '(a category the taxonomy does not have is not one that needs a check)');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:8', 'earner', 4, 'minutes', 60,
                                 'category', ' PERSONAL-CARE',
                                 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'reason',
          'safeguarding_check_required', 'but the one that does, in capitals, is');

-- ---- checks running out, care, the to-do ------------------------------------
SELECT tb_check_add(4, jsonb_build_object('kind', 'dbs-basic', 'checked_on', current_date - 1000,
                                          'expires_on', current_date + 10), 'carol');
SELECT tb_check_add(2, jsonb_build_object('kind', 'dbs-basic', 'checked_on', current_date - 1000,
                                          'expires_on', current_date + 5), 'carol');
SELECT tb_check_add(2, jsonb_build_object('kind', 'dbs-basic', 'checked_on', current_date,
                                          'expires_on', current_date + 1000), 'carol');
SELECT is((SELECT jsonb_agg(x->'member' ORDER BY x->>'member')
             FROM jsonb_array_elements(tb_checks_expiring(30)->'items') x), '[3, 4]',
          'checks running out in 30 days, or run out, are listed; one renewed is not');
SELECT is((SELECT x->>'expired' FROM jsonb_array_elements(tb_checks_expiring(30)->'items') x
            WHERE x->>'member' = '3'), 'true', 'one run out says so');
SELECT is(tb_check_list(2)->'items'->0->>'reference', NULL,
          'the newest check first');
SELECT tb_member_update(3, '{"needs_care": true}', 'carol', -600);
SELECT is((tb_member_get(3)->>'needs_care'), 'true', 'a member is flagged as needing care');
SELECT is(jsonb_array_length(tb_care_review()->'items'), 1,
          'the exchange they took part in is listed for review');
SELECT tb_care_reviewed(3, NULL, 'brenda');
SELECT is(jsonb_array_length(tb_care_review()->'items'), 0, 'and once reviewed, is not');
SELECT throws_ok($$SELECT tb_care_reviewed(4, NULL, 'brenda')$$, 'TB000', 'not_flagged',
                 'a member not flagged has nothing to review');
SELECT ok(tb_todo(-600, 120, true) ?& ARRAY['intake_overdue', 'intake_waiting', 'claims',
                                              'contacts', 'referrals', 'items_waiting',
                                              'near_floor', 'checks_expiring', 'care_quiet',
                                              'care_review', 'peers'],
          'the to-do holds every list a coordinator works through');
SELECT is(tb_todo(-600, 120, true)->'checks_expiring'->0->>'member', '3',
          'it lists the checks running out');
SELECT is(tb_todo(-600, 120, true)->'contacts', '[]', 'and the open contacts (none now)');

SELECT * FROM finish();
ROLLBACK;
