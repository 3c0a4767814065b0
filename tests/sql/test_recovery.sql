-- A bank restored from a backup (recovery.sql): the restore recorded, its
-- streams held until each peer's hello, its own messages taken back and
-- held under their numbers, what they did made again, and what the peer
-- sends again decided as our answers said.
BEGIN;
SELECT plan(41);

SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
  FROM generate_series(1, 3) g;
SELECT tb_grant(jsonb_build_object('member', 1, 'minutes', 600, 'idempotency_key', 'g1'),
                'test', -100000);
SELECT tb_fed_peers(ARRAY['westminster', 'cheshire'], ARRAY['bank', 'bank'], ARRAY[6000, 6000]);
SELECT tb_fed_limits_set('{"bank_id": "colchester"}');
SELECT tb_fed_test_enqueue('westminster', 2, 'sealed before');
UPDATE fed_outbox SET envelope = '\x01', hash = '\xaa' WHERE seq = 1;
UPDATE fed_outbox SET envelope = '\x02', hash = '\xbb' WHERE seq = 2;
UPDATE fed_sealed SET out_sealed = 2, out_head = '\xbb' WHERE peer = 'westminster';
UPDATE fed_acked SET out_acked = 2 WHERE peer = 'westminster';

-- The restore is recorded once.
SELECT is(tb_restored('20261204T090000Z', NULL)->>'recorded', 'true', 'a restore is recorded');
SELECT is(tb_restored('20261204T090000Z', NULL)->>'recorded', 'false', 'once');
SELECT cmp_ok(nextval('xb_exchanges_id_seq'), '>', 1000000000::bigint,
              'exchanges are numbered past what the lost history gave');
SELECT is(tb_member_add('{"name": "New"}', 'test')->>'number', '1004',
          'and new members past the highest held, by a thousand');
SELECT is(tb_fed_recovery_stage(p), 'waiting', 'each peer''s stream is held for its hello')
  FROM fed_peers p WHERE peer = 'westminster';
SELECT tb_fed_test_enqueue(p, 1, 'queued meanwhile') FROM unnest(ARRAY['westminster', 'cheshire']) p;
SELECT is(json_array_length(tb_fed_unsealed(10)), 0, 'and nothing is sealed for it meanwhile');

-- A hello not past what we hold releases it; one past it starts recovering.
SELECT is(tb_fed_behind('cheshire', 0)->>'released', 'true', 'a hello not past it releases');
SELECT is(tb_fed_unsealed(10)::jsonb->0->>'peer', 'cheshire', 'and what waited is sealed');
SELECT is(tb_fed_behind('westminster', 6)->>'stage', 'fetching',
          'a hello past it: our messages 3 to 6 are asked back');
SELECT is(json_array_length(tb_fed_unsealed(10)), 1, 'held still');

-- Taken back: 3 is the one queued here, 4 our proposal, 5 our answer to
-- the peer's, 6 our claim; what was queued at 4 goes after 6.
SELECT tb_fed_enqueue('westminster', '{"kind": "test", "n": 99, "text": "new"}');
-- ...and a broker declines a claim of the peer's meanwhile: its answer is queued.
SELECT tb_on_xb_claim('westminster', '{"items": [{"claim_id": "westminster:c8", "payer": 2,
           "earner": 5, "minutes": 60, "category": "lifts", "performed_on": "2026-12-01",
           "message": ""}]}', 1);
SELECT tb_claim_decline('westminster:c8', '{"reason": "no record of it"}', 'brenda');
SELECT throws_ok($$SELECT tb_fed_recover('westminster', '[{"seq": 3, "hash": "cc",
                     "prev": "00", "envelope": "03", "body": {"kind": "test"}}]')$$,
                 'TB000', NULL, 'a message that does not follow the one held is refused');
SELECT is(tb_fed_recover('westminster', $$[
    {"seq": 3, "hash": "cc", "prev": "bb", "envelope": "03",
     "body": {"kind": "test", "n": 3, "text": "queued meanwhile"}},
    {"seq": 4, "hash": "dd", "prev": "cc", "envelope": "04",
     "body": {"kind": "xb_propose", "items": [
         {"xid": "colchester:77", "earner": 9, "minutes": 90, "category": "lifts",
          "performed_on": "2026-12-01", "reverses": "", "claim": "", "contact": ""},
         {"xid": "colchester:78", "earner": 9, "minutes": 30, "category": "lifts",
          "performed_on": "2026-12-01", "reverses": "", "claim": "", "contact": ""}]},
     "notes": {"colchester:77": {"payer": 1, "recorded_by": "brenda"}}}
    ]$$)->>'done', 'false', 'two taken back, two to come');
SELECT results_eq($$SELECT seq, body::jsonb->>'text' FROM fed_outbox
                     WHERE peer = 'westminster' AND body::jsonb->>'kind' = 'test' ORDER BY seq$$,
                  $$VALUES (1::bigint, 'sealed before'), (2, 'sealed before'),
                           (3, 'queued meanwhile'), (7, 'new')$$,
                  'the one queued here is that one; the new one goes after the peer''s last');
SELECT is((SELECT sent_seq FROM xb_claims WHERE claim_id = 'westminster:c8'), 8::bigint,
          'and so does the answer to a claim declined meanwhile, the claim naming it');
SELECT is((SELECT envelope FROM fed_outbox WHERE peer = 'westminster' AND seq = 3), '\x03'::bytea,
          'held as it was sealed');
SELECT is((SELECT out_next_seq FROM fed_peers WHERE peer = 'westminster'), 9::bigint,
          'numbering goes on after it');
SELECT results_eq($$SELECT xid, state, proposed_seq, recorded_by FROM xb_exchanges$$,
                  $$VALUES ('colchester:77', 'pending', 4::bigint, 'brenda')$$,
                  'our proposal is rebuilt from its note, reserved and pending');
SELECT is((SELECT pending_minutes FROM accounts a JOIN members m ON m.account_id = a.id
            WHERE m.number = 1), 90::bigint, 'its payer''s minutes reserved again');
SELECT is((SELECT what FROM fed_recovery_lost WHERE seq_from = 4),
          'exchange colchester:78, 30m with westminster member 9 on 2026-12-01: its payer is '
          'not known here (proposed before proposals carried a sender note, or sealed with a '
          'key this bank no longer holds)',
          'one without its note is named');
SELECT is(tb_fed_recover('westminster', $$[
    {"seq": 5, "hash": "ee", "prev": "dd", "envelope": "05",
     "body": {"kind": "xb_answer", "items": [
         {"xid": "westminster:5", "accepted": true, "reason": ""},
         {"xid": "westminster:6", "accepted": false, "reason": "member_inactive"}]}},
    {"seq": 6, "hash": "ff", "prev": "ee", "envelope": "06",
     "body": {"kind": "xb_claim", "items": [
         {"claim_id": "colchester:c4", "payer": 12, "earner": 2, "minutes": 60,
          "category": "gardening", "performed_on": "2026-12-01", "message": "hedge"}]}},
    {"seq": 6, "hash": "ff", "prev": "ee", "envelope": "06",
     "body": {"kind": "referral", "items": [
         {"referral_id": "colchester:r40", "kind": "move", "member": 2, "reason": "moving",
          "shared": ["name"], "consent_how": "in person", "consent_notes": false,
          "consent_by": "brenda", "consent_at": "2026-12-01T10:00:00Z", "name": "Member 2",
          "balance_minutes": 0}]}}
    ]$$)->>'done', 'true', 'all held again');
SELECT is((SELECT count(*) FROM referrals), 0::bigint, 'a message held already is not done twice');
SELECT is(tb_fed_recovery_stage(p), 'agreeing', 'then it waits for the peer''s checkpoint')
  FROM fed_peers p WHERE peer = 'westminster';
SELECT results_eq($$SELECT out_sealed, encode(out_head, 'hex') FROM fed_sealed
                     WHERE peer = 'westminster'$$,
                  $$VALUES (6::bigint, 'ff')$$, 'held up to the peer''s last');
SELECT is((SELECT out_acked FROM fed_acked WHERE peer = 'westminster'), 6::bigint,
          'as acknowledged');
SELECT results_eq($$SELECT claim_id, side, state, sent_seq FROM xb_claims WHERE side = 'earner'$$,
                  $$VALUES ('colchester:c4', 'earner', 'open', 6::bigint)$$,
                  'our claim is made again');

-- The peer sends its proposals again: decided as we answered them.
UPDATE members SET status = 'suspended' WHERE number = 3;
SELECT is(tb_on_xb_propose('westminster', '{"items": [
              {"xid": "westminster:5", "earner": 3, "minutes": 60, "category": "lifts",
               "performed_on": "2026-12-01"},
              {"xid": "westminster:6", "earner": 2, "minutes": 60, "category": "lifts",
               "performed_on": "2026-12-01"},
              {"xid": "westminster:7", "earner": 2, "minutes": 60, "category": "lifts",
               "performed_on": "2026-12-01"}]}', 8)->'xb_answer'->0->>'xid',
          'westminster:7', 'only the one we never answered is answered');
SELECT results_eq($$SELECT xid, state, coalesce(reason, ''), answer_seq FROM xb_exchanges
                     WHERE side = 'earner' ORDER BY xid$$,
                  $$VALUES ('westminster:5', 'settled', '', 5::bigint),
                           ('westminster:6', 'rejected', 'member_inactive', 5::bigint),
                           ('westminster:7', 'settled', '', 8::bigint)$$,
                  'each as our answer said, though member 3 is suspended now');
SELECT is((SELECT balance_minutes FROM accounts a JOIN members m ON m.account_id = a.id
            WHERE m.number = 3), 60::bigint, 'and posted once');
SELECT is((SELECT count(*) FROM fed_recovered_answers), 0::bigint, 'nothing left waiting');

-- Our referral, taken back: open again, its member held as when it was sent.
SELECT tb_fed_behind('westminster', 7);
SELECT is(tb_fed_recover('westminster', $$[
    {"seq": 7, "hash": "a7", "prev": "ff", "envelope": "07",
     "body": {"kind": "referral", "items": [
         {"referral_id": "colchester:r40", "kind": "move", "member": 2, "reason": "moving",
          "shared": ["name"], "consent_how": "in person", "consent_notes": false,
          "consent_by": "brenda", "consent_at": "2026-12-01T10:00:00Z", "name": "Member 2",
          "balance_minutes": 0}]}}]$$)->>'done', 'true', 'one more, a referral');
SELECT results_eq($$SELECT r.referral_id, r.state, r.sent_seq, m.status FROM referrals r
                     JOIN members m ON m.account_id = r.member_account$$,
                  $$VALUES ('colchester:r40', 'open', 7::bigint, 'moving')$$,
                  'our referral is open again, its member held');

-- The peer's checkpoint agrees: the recovery is over.
SELECT is(tb_fed_checkpoint_check('westminster', 0, ''), 'recovered', 'its checkpoint ends it');
SELECT is(tb_fed_recovery_stage(p), NULL, 'and its stream goes on')
  FROM fed_peers p WHERE peer = 'westminster';
SELECT is(json_array_length(tb_fed_unsealed(10)), 3, 'what waited is sealed');

-- A proposal sent again that is not the one we answered is decided afresh.
INSERT INTO fed_recovered_answers (peer, id, seq, answer)
     VALUES ('westminster', 'westminster:9', 5,
             '{"xid": "westminster:9", "accepted": true, "reason": "", "proposal": "00ff"}');
SELECT is(tb_on_xb_propose('westminster', '{"items": [
              {"xid": "westminster:9", "earner": 3, "minutes": 600, "category": "lifts",
               "performed_on": "2026-12-01"}]}', 9)->'xb_answer'->0->>'reason',
          'member_inactive', 'a proposal not as we answered it is decided afresh');
SELECT ok((SELECT what FROM fed_recovery_lost WHERE seq_from = 5 ORDER BY id DESC LIMIT 1)
              LIKE 'exchange westminster:9: westminster sent it again, but not as we answered%',
          'and named');
SELECT is(tb_xb_proposal_digest('{"xid": "westminster:9", "earner": 3, "minutes": 600,
              "category": "lifts", "performed_on": "2026-12-01"}'),
          tb_xb_proposal_digest('{"xid": "westminster:9", "earner": 3, "minutes": 600,
              "category": "lifts", "performed_on": "2026-12-01", "reverses": "",
              "sender_note": "ab"}'),
          'the digest is of what a proposal says, however it is written');

-- A contact request of the peer's we accepted before the restore, sent
-- again: accepted again, and not answered again.
INSERT INTO dir_items (handle, member_account, kind, category, text, availability, visibility,
                       expires_on, created_by, updated_by, approved_by, approved_at)
SELECT 'hk1', account_id, 'offer', 'lifts', 'Lifts to the surgery', '', 'federation',
       current_date + 30, 'test', 'test', 'test', now()
  FROM members WHERE number = 1;
INSERT INTO fed_recovered_answers (peer, id, seq, answer)
     VALUES ('westminster', 'westminster:k3', 6,
             '{"contact_id": "westminster:k3", "accepted": true, "reason": "",
               "message": "Ben will ring"}');
SELECT is(jsonb_array_length(tb_on_dir_contact('westminster', '{"items": [{"contact_id":
              "westminster:k3", "handle": "hk1", "message": "a lift please"}]}', 10)
              ->'dir_contact_answer'), 0, 'a contact request we answered is not answered again');
SELECT results_eq($$SELECT state, answer, sent_seq FROM dir_contacts
                     WHERE contact_id = 'westminster:k3'$$,
                  $$VALUES ('accepted', 'Ben will ring', 6::bigint)$$,
                  'it is accepted as we accepted it, by the message that said so');

-- A bank not restored that hears it is behind: the pair is diverged.
SELECT is(tb_fed_behind('westminster', 100)->>'diverged', 'true',
          'a bank that was not restored takes nothing back');
SELECT ok((SELECT diverged_reason FROM fed_peers WHERE peer = 'westminster')
              LIKE '%this bank was not put back to an earlier point%', 'and says why');

SELECT * FROM finish();
ROLLBACK;
