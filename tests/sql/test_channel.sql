-- What a peer's messages do: dispatch by kind, answers to our proposals
-- (only the first to each of our waiting exchanges counts), and the
-- answers to claims and contacts.
BEGIN;
SELECT plan(23);

SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
  FROM generate_series(1, 3) g;
SELECT tb_grant(jsonb_build_object('member', 1, 'minutes', 600, 'idempotency_key', 'g1'),
                'test', -100000);
SELECT tb_fed_peers(ARRAY['westminster', 'cheshire'], ARRAY['bank', 'bank'], ARRAY[600, 600]);

-- Dispatch.
SELECT is(tb_fed_handle('westminster', 1, '{"kind": "no_such_kind"}', 1), NULL,
          'a kind this bank does not know is answered NULL');
SELECT is(tb_fed_handle('westminster', 1, '{"kind": "test", "n": 7}', 1), '{}'::jsonb,
          'the test kind is handled');
SELECT is((SELECT n FROM fed_test_received WHERE peer = 'westminster'), 7::bigint,
          'and touches only its own table');
SELECT is(tb_fed_apply('westminster', jsonb_build_array(jsonb_build_object(
              'seq', 1, 'prev', '', 'hash', 'aa', 'envelope', 'bb',
              'body', '{"kind": "no_such_kind"}'::jsonb)))->>'error', 'unknown_kind',
          'a run stops at a message of an unknown kind');
SELECT is(tb_fed_apply('westminster', jsonb_build_array(jsonb_build_object(
              'seq', 3, 'prev', '', 'hash', 'aa', 'envelope', 'bb',
              'body', '{"kind": "test", "n": 1}'::jsonb)))->>'error', 'gap',
          'and at a gap in the stream');

-- Answers to our proposals: three waiting exchanges of member 1's.
SELECT tb_xb_record(jsonb_build_object('bank', 'westminster', 'payer', 1, 'earner', 9,
                                       'minutes', 60, 'category', 'lifts',
                                       'idempotency_key', 'x' || g), 'broker', -600, 'colchester')
  FROM generate_series(1, 3) g;
SELECT tb_xb_record(jsonb_build_object('bank', 'cheshire', 'payer', 1, 'earner', 9,
                                       'minutes', 60, 'category', 'lifts',
                                       'idempotency_key', 'c1'), 'broker', -600, 'colchester');
SELECT is((SELECT pending_minutes FROM accounts a JOIN members m ON m.account_id = a.id
            WHERE m.number = 1), 240::bigint, 'four hours reserved');
SELECT is(tb_on_xb_answer('westminster', '{"items": [
              {"xid": "colchester:1", "accepted": true, "reason": ""},
              {"xid": "colchester:1", "accepted": false, "reason": "member_inactive"},
              {"xid": "colchester:2", "reason": "exposure_limit"},
              {"xid": "colchester:4", "accepted": true, "reason": ""},
              {"xid": "colchester:99", "accepted": true, "reason": ""},
              {"xid": "westminster:1", "accepted": true, "reason": ""}]}', 1), '{}'::jsonb,
          'a message of answers is applied');
SELECT results_eq($$SELECT xid, state, coalesce(reason, '') FROM xb_exchanges ORDER BY id$$,
                  $$VALUES ('colchester:1', 'settled', ''),
                           ('colchester:2', 'rejected', 'exposure_limit'),
                           ('colchester:3', 'pending', ''),
                           ('colchester:4', 'pending', '')$$,
                  'the first answer to each of ours decides it (one that says nothing of '
                  'accepted rejects, with its reason); another peer''s exchange, one '
                  'unknown and one not ours change nothing');
SELECT is((SELECT balance_minutes || '/' || pending_minutes FROM accounts a
             JOIN members m ON m.account_id = a.id WHERE m.number = 1), '540/120',
          'the settled hour is paid, the rejected one released, two still reserved');
SELECT is((SELECT balance_minutes FROM accounts
            WHERE id = (SELECT clearing_account FROM fed_peers WHERE peer = 'westminster')),
          60::bigint, 'and westminster''s clearing account earned it');
SELECT is(tb_on_xb_answer('westminster', '{"items": [
              {"xid": "colchester:1", "accepted": false, "reason": "late"}]}', 2), '{}'::jsonb,
          'an answer to a decided exchange is taken');
SELECT is((SELECT state FROM xb_exchanges WHERE xid = 'colchester:1'), 'settled',
          'and changes nothing');
SELECT is((tb_audit(-600, -100000))->>'ok', 'true', 'the books still balance');

-- Claims: westminster declines one of ours twice; contacts: it answers ours.
INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes, category,
                       performed_on, state, recorded_by)
SELECT 'colchester:c' || g, 'earner', 'westminster', account_id, 4, 60, 'lifts',
       current_date, 'open', 'test'
  FROM members, generate_series(1, 2) g WHERE number = 2;
SELECT is(tb_on_xb_claim_answer('westminster', '{"items": [
              {"claim_id": "colchester:c1", "reason": "", "message": "not known here"},
              {"claim_id": "colchester:c1", "reason": "other", "message": "again"}]}', 3),
          '{"_kept": {"items": [
              {"claim_id": "colchester:c1", "reason": "", "message": "not known here"},
              {"claim_id": "colchester:c1", "reason": "other", "message": ""}]}}'::jsonb,
          'claim answers are applied: the first to a claim keeps its words, the one after '
          'does not');
SELECT results_eq($$SELECT claim_id, state, coalesce(reason, ''), coalesce(answer, '')
                      FROM xb_claims ORDER BY id$$,
                  $$VALUES ('colchester:c1', 'declined', 'declined', 'not known here'),
                           ('colchester:c2', 'open', '', '')$$,
                  'the first decline decides a claim, with the broker''s words');
SELECT throws_ok($$UPDATE xb_claims SET state = 'open' WHERE claim_id = 'colchester:c1'$$,
                 'TB000', 'claim_already_decided', 'a decided claim never changes');
INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                          item_category, item_text, message, state, recorded_by)
SELECT 'colchester:k' || g, 'requester', 'westminster', 'h' || g, account_id, 'offer',
       'lifts', 'lifts to the surgery', 'could you help?', 'open', 'test'
  FROM members, generate_series(1, 2) g WHERE number = 3;
SELECT is(tb_on_dir_contact_answer('westminster', '{"items": [
              {"contact_id": "colchester:k1", "accepted": true, "message": "call Wendy"},
              {"contact_id": "colchester:k2", "reason": "busy", "message": ""},
              {"contact_id": "colchester:k1", "accepted": false}]}', 4),
          '{}'::jsonb, 'contact answers are applied');
SELECT results_eq($$SELECT contact_id, state, coalesce(reason, ''), coalesce(answer, '')
                      FROM dir_contacts ORDER BY id$$,
                  $$VALUES ('colchester:k1', 'accepted', '', 'call Wendy'),
                           ('colchester:k2', 'declined', 'busy', '')$$,
                  'the first answer decides a contact; one that says nothing of '
                  'accepted declines, with its reason');
SELECT throws_ok($$DELETE FROM dir_contacts WHERE contact_id = 'colchester:k2'$$,
                 'TB000', 'contact_already_decided', 'a decided contact is never removed');

-- Long lists go in messages that fit the frame.
SELECT is((SELECT array_agg(jsonb_array_length(part) ORDER BY seq)
             FROM tb_fed_enqueue_items('cheshire', 'xb_answer',
                      (SELECT jsonb_agg(jsonb_build_object('xid', 'cheshire:' || g,
                                                           'accepted', true))
                         FROM generate_series(1, 2500) g))),
          ARRAY[1000, 1000, 500], 'answers go at most 1000 to a message');
SELECT ok((SELECT bool_and(octet_length(part::text) < 300000) AND count(*) = 3
             FROM tb_fed_enqueue_items('cheshire', 'xb_claim',
                      (SELECT jsonb_agg(jsonb_build_object('claim_id', 'colchester:c' || g,
                                                           'message', repeat('é', 500)))
                         FROM generate_series(1, 600) g))),
          'and long texts in as many messages as keep each under 300 kB');
SELECT is((SELECT count(*) FROM tb_fed_enqueue_items('cheshire', 'test', '[{"n": 1}]')),
          1::bigint, 'a short list is one message');
INSERT INTO dir_items (handle, member_account, kind, category, text, availability, visibility,
                       expires_on, created_by, updated_by, approved_by, approved_at)
SELECT 'h' || g, account_id, 'offer', 'lifts', repeat('🚗', 500), repeat('ö', 300),
       'federation', current_date + 30, 'test', 'test', 'test', now()
  FROM members, generate_series(1, 300) g WHERE number = 2;
SELECT ok((SELECT octet_length((p->'items')::text) < 524288 + 3000
                  AND jsonb_array_length(p->'items') < 300 AND (p->>'more')::boolean
             FROM (SELECT tb_dir_page('westminster', 0, 1000)::jsonb AS p) page),
          'a directory page ends where its texts pass 512 KiB, and says there is more');

SELECT * FROM finish();
ROLLBACK;
