-- Erasure reaches every copy of a member's words: what they shared with
-- peers, here and in the messages kept as proof, and peers are told.
BEGIN;
SELECT plan(35);

SELECT tb_member_add(jsonb_build_object(
           'name', 'Ann Smith', 'email', 'ann.smith@example.org', 'phone', '07700 900123',
           'address', '12 Mill Lane, Colchester CO2 7AB', 'notes', 'uses a wheelchair'), 'test');
SELECT tb_member_add('{"name": "Bob Jones"}', 'test');
SELECT tb_fed_peers(ARRAY['westminster', 'cheshire'], ARRAY['bank', 'bank'],
                    ARRAY[100000, 100000]);

-- What Ann shared with Westminster: a claim she made (sent, acknowledged),
-- one Westminster made on her (its message in our inbox, our broker's
-- answer in our outbox, not yet acknowledged), a contact for her, and an
-- exchange. Bob's claim with Cheshire is not hers.
-- Each claim names the messages that carried words about it: ours
-- (sent_seq) and the peer's (received_seq).
INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes, category,
                       description, message, performed_on, state, recorded_by, answer,
                       sent_seq, received_seq)
SELECT 'colchester:c1', 'earner', 'westminster', account_id, 7, 60, 'lifts',
       'Ann Smith drove Mr Patel', 'Ann Smith drove him to the surgery', current_date,
       'declined', 'test', 'Sorry Ann, he says not', 1, NULL
  FROM members WHERE number = 1
UNION ALL
SELECT 'westminster:c5', 'payer', 'westminster', account_id, 9, 60, 'gardening', NULL,
       'Ann Smith had her hedge cut', current_date, 'declined', 'test', 'Ann Smith says no',
       2, 1
  FROM members WHERE number = 1
UNION ALL
SELECT 'colchester:c2', 'earner', 'cheshire', account_id, 3, 60, 'lifts', NULL,
       'Bob Jones drove', current_date, 'open', 'test', NULL, NULL, NULL
  FROM members WHERE number = 2
UNION ALL
SELECT 'colchester:c3', 'earner', 'westminster', account_id, 3, 60, 'lifts', NULL,
       'Bob Jones dug', current_date, 'open', 'test', NULL, NULL, NULL
  FROM members WHERE number = 2;
INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, message, state,
                          recorded_by, answer, item_text)
SELECT 'colchester:k1', 'requester', 'westminster', 'h1', account_id,
       'For Ann Smith, who needs a lift on Tuesdays', 'accepted', 'test', 'Call Ann Smith',
       'Lifts to the surgery'
  FROM members WHERE number = 1;
INSERT INTO xb_exchanges (xid, side, peer, member_account, remote_member, minutes, category,
                          description, performed_on, state, recorded_by)
SELECT 'colchester:1', 'payer', 'westminster', account_id, 4, 60, 'lifts',
       'Lift for Ann Smith', current_date, 'settled', 'test'
  FROM members WHERE number = 1;
SELECT tb_fed_enqueue('westminster', '{"kind": "xb_claim", "items": [{"claim_id":
    "colchester:c1", "payer": 7, "minutes": 60, "message": "Ann Smith drove him"}]}');
SELECT tb_fed_enqueue('westminster', '{"kind": "xb_claim_answer", "items": [{"claim_id":
    "westminster:c5", "reason": "declined", "message": "Ann Smith says no"},
    {"claim_id": "westminster:c6", "reason": "declined", "message": "Not this one"}]}');
UPDATE fed_outbox SET envelope = '\x0a0b0c', hash = '\x01';
UPDATE fed_acked SET out_acked = 1 WHERE peer = 'westminster';
INSERT INTO fed_inbox (peer, seq, hash, envelope, body)
VALUES ('westminster', 1, '\x02', '\x416e6e20536d697468', '{"kind": "xb_claim", "items": [
           {"claim_id": "westminster:c5", "payer": 1, "message": "Ann Smith had her hedge cut"},
           {"claim_id": "westminster:c7", "payer": 2, "message": "Bob Jones had help"}]}'),
       ('westminster', 2, '\x03', '\x0d0e', '{"kind": "test", "n": 2, "text": ""}');

-- The pieces.
SELECT is(tb_scrub('Ann Smith asked (ann.smith@example.org, 07700-900-123); ann lives at '
                   '12 Mill Lane. Annual review done.',
                   ARRAY['Ann Smith', 'Ann', 'Smith', 'ann.smith@example.org', '12 Mill Lane'],
                   ARRAY['07700 900123']),
          '[erased] asked ([erased], [erased]); [erased] lives at [erased]. Annual review done.',
          'the reason loses her name, each word of it, her e-mail, phone and address, '
          'and nothing else');
SELECT is(tb_scrub('Rang +44 7700 900123, +44 (0)7700 900 123 and 0044-7700-900123; '
                   'ref 907700900123 is not hers; 01206 500100 at work; on 10/12/11',
                   '{}', tb_member_phones(jsonb_populate_record(NULL::members,
                       '{"phone": "0044 7700 900123 / 01206-500100 ext 12"}'))),
          'Rang [erased], [erased] and [erased]; ref 907700900123 is not hers; [erased] at '
          'work; on 10/12/11',
          'a phone number goes in its international forms too, and not inside a longer '
          'number; a phone field may hold two');
SELECT is(tb_scrub('Ann (CO2 7AB, co27ab, CO2  7AB) of Church Walk, Colchester; Flat A1 2nd Floor',
                   tb_member_terms(jsonb_populate_record(NULL::members,
                       '{"address": "Flat 10, 12 High St, CO1 1AB"}'))
                   || tb_member_terms(jsonb_populate_record(NULL::members,
                       '{"address": "4 Church Walk Colchester CO2 7AB"}'))),
          'Ann ([erased], [erased], [erased]) of [erased] [erased], [erased]; [erased] A1 2nd '
          'Floor',
          'a postcode however it is spaced; the streets and towns of an address with no '
          'commas; a postcode is only at the end');
SELECT is(tb_scrub('Mary Jane O''Brien (Mary-Jane, Brien) of Colchester (CO2 7AB), '
                   'wrote ÉLODIE; Mill Lane is long',
                   tb_member_terms(jsonb_populate_record(NULL::members, jsonb_build_object(
                       'name', 'Mary-Jane O''Brien',
                       'address', '12 Mill Lane, Colchester CO2 7AB')))),
          '[erased] [erased] [erased] ([erased], [erased]) of [erased] ([erased]), '
          'wrote ÉLODIE; [erased] [erased] is long',
          'a name goes by each part of it, hyphenated or not; an address by its street, '
          'town and postcode');
SELECT is(tb_scrub('ÉLODIE DUPRÉ rang', ARRAY['Élodie Dupré']), '[erased] rang',
          'whatever the case, in any script');
SELECT is(tb_redact_body('{"kind": "xb_claim", "items": [{"claim_id": "a", "message": "x"},
                          {"claim_id": "b", "message": "y"}]}', '{a}', '{}'),
          '{"kind": "xb_claim", "items": [{"claim_id": "a", "message": ""},
            {"claim_id": "b", "message": "y"}]}'::jsonb,
          'a body loses the words of the records named only');
SELECT is(tb_redact_body('{"kind": "xb_propose", "items": [{"xid": "a", "claim": "a"}]}',
                         '{a}', '{a}'),
          NULL, 'a body with no words of theirs is left alone');
SELECT ok(NOT tb_redacted('{"kind": "xb_claim", "items": [{"claim_id": "a", "minutes": 60}]}',
                          '{"kind": "xb_claim", "items": [{"claim_id": "a", "minutes": 6}]}'),
          'a change to anything but the words is not a redaction');

-- The guards let an erasure clear words, and nothing else.
SELECT throws_ok($$UPDATE xb_claims SET minutes = 1 WHERE claim_id = 'colchester:c1'$$,
                 'TB000', 'claim_already_decided', 'a decided claim still never changes');
SELECT lives_ok($$UPDATE xb_claims SET answer = NULL WHERE claim_id = 'colchester:c1'$$,
                'but its words may be cleared');
SELECT throws_ok($$UPDATE xb_exchanges SET minutes = 1$$, 'TB000', 'journal_append_only',
                 'a settled exchange still never changes');
SELECT throws_ok($$UPDATE fed_inbox SET body = '{"kind": "test", "n": 9, "text": ""}',
                                        envelope = '' WHERE seq = 2$$,
                 'TB000', 'journal_append_only', 'what a peer sent cannot be rewritten');
SELECT throws_ok($$DELETE FROM fed_inbox WHERE seq = 2$$, 'TB000', 'journal_append_only',
                 'nor deleted but by the purge');
SELECT throws_ok($$UPDATE fed_inbox SET envelope = '' WHERE seq = 1$$, 'TB000',
                 'journal_append_only', 'nor its proof dropped for nothing');

-- Ann's hour with Bob, recorded with a key; its fingerprint hashes her words.
SELECT tb_exchange_record('{"payer": 2, "earner": 1, "minutes": 60, "category": "lifts",
                            "description": "Ann Smith drove Bob", "idempotency_key": "ab1"}',
                          'test', -600);

-- Erasing Ann.
SELECT tb_member_update(1, '{"status": "left"}', 'test', 0);
SELECT is(tb_member_erase(1, '{"reason": "Ann Smith asked by phone on 07700900123",
                              "force": true}',
                          'brenda')->'peers_told',
          '["westminster"]', 'Westminster, which shares her records, is told; Cheshire is not');
SELECT is((SELECT erase_reason FROM members WHERE number = 1),
          '[erased] asked by phone on [erased]', 'the reason is kept without her details');
SELECT results_eq($$SELECT claim_id, description, message, answer FROM xb_claims
                     ORDER BY claim_id$$,
                  $$VALUES ('colchester:c1', NULL::text, NULL::text, NULL::text),
                           ('colchester:c2', NULL, 'Bob Jones drove', NULL),
                           ('colchester:c3', NULL, 'Bob Jones dug', NULL),
                           ('westminster:c5', NULL, NULL, NULL)$$,
                  'her claims lose their words, both ways; Bob''s keeps his');
SELECT results_eq($$SELECT message, answer, item_text FROM dir_contacts$$,
                  $$VALUES (NULL::text, NULL::text, NULL::text)$$, 'so does her contact');
SELECT is((SELECT description FROM xb_exchanges), NULL, 'and her cross-bank exchange');
SELECT is((SELECT count(*) FROM transfers WHERE fingerprint IS NOT NULL
                                            OR description IS NOT NULL), 0::bigint,
          'her exchange loses its words and the fingerprint that hashed them');
SELECT throws_ok($$SELECT tb_exchange_record('{"payer": 2, "earner": 1, "minutes": 60,
                      "category": "lifts", "description": "Ann Smith drove Bob",
                      "idempotency_key": "ab1"}', 'test', -600)$$,
                 'TB000', 'idempotency_key_erased',
                 'a retry with its key cannot be told from a new request: refused');
SELECT is((SELECT count(*) FROM transfers WHERE idempotency_key LIKE 'ab1%'), 1::bigint,
          'and nothing is recorded twice');
SELECT results_eq($$SELECT seq, envelope, body->'items'->0->>'message',
                           body->'items'->1->>'message'
                      FROM fed_inbox ORDER BY seq$$,
                  $$VALUES (1::bigint, '\x'::bytea, ''::text, 'Bob Jones had help'::text),
                           (2, '\x0d0e', NULL, NULL)$$,
                  'the message Westminster sent about her is redacted to its hash; '
                  'the other items and messages are kept');
SELECT is((SELECT hash FROM fed_inbox WHERE seq = 1), '\x02'::bytea, 'the hash stays');
SELECT results_eq($$SELECT seq, envelope, body::jsonb->'items'->0->>'message'
                      FROM fed_outbox WHERE peer = 'westminster' AND seq <= 2 ORDER BY seq$$,
                  $$VALUES (1::bigint, '\x'::bytea, ''::text),
                           (2, '\x0a0b0c', 'Ann Smith says no')$$,
                  'what we sent about her is redacted once acknowledged; the rest waits');
SELECT results_eq($$SELECT peer, seq, claims FROM fed_redact_waiting$$,
                  $$VALUES ('westminster'::text, 2::bigint, '{westminster:c5}'::text[])$$,
                  'the unacknowledged message waits for its acknowledgement');
SELECT is((SELECT body::jsonb FROM fed_outbox WHERE peer = 'westminster' AND seq = 3),
          '{"kind": "erasure", "items": [
             {"id": "colchester:c1", "record": "claim"}, {"id": "westminster:c5", "record": "claim"},
             {"id": "colchester:k1", "record": "contact"},
             {"id": "colchester:1", "record": "exchange"}]}'::jsonb,
          'Westminster is told which records, and nothing of her');
SELECT is((SELECT count(*) FROM fed_outbox WHERE peer = 'cheshire'), 0::bigint,
          'Cheshire is told nothing');

UPDATE fed_acked SET out_acked = 2 WHERE peer = 'westminster';
SELECT is(tb_fed_inbox_purge(), 0::bigint, 'the daily purge deletes nothing this young');
SELECT results_eq($$SELECT envelope, body::jsonb->'items'->0->>'message',
                           body::jsonb->'items'->1->>'message'
                      FROM fed_outbox WHERE peer = 'westminster' AND seq = 2$$,
                  $$VALUES ('\x'::bytea, ''::text, 'Not this one'::text)$$,
                  'but redacts the message acknowledged since');
SELECT is((SELECT count(*) FROM fed_redact_waiting), 0::bigint, 'and nothing waits');

-- At a peer: an erasure names only records it shares with the sender.
SELECT is(tb_fed_handle('cheshire', 1, '{"kind": "erasure", "items": [
              {"record": "claim", "id": "colchester:c2"},
              {"record": "claim", "id": "colchester:c3"}]}', 1), '{}'::jsonb,
          'an erasure from Cheshire is applied');
SELECT is((SELECT message FROM xb_claims WHERE claim_id = 'colchester:c2'), NULL,
          'it clears the claim it shares with Cheshire');
SELECT is((SELECT message FROM xb_claims WHERE claim_id = 'colchester:c3'), 'Bob Jones dug',
          'and not one it does not');
SELECT lives_ok($$SELECT tb_fed_handle('cheshire', 2, '{"kind": "erasure", "items": "x"}', 1)$$,
                'an erasure of the wrong shape changes nothing and breaks nothing');
SELECT finish();
ROLLBACK;
