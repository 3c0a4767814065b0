-- A peer's words are kept only with a record that holds them: a claim or
-- contact refused on arrival, sent again or answered again keeps none, and
-- its message is kept redacted to its hash; one refused that named a member
-- of ours is noted, so that the member's erasure tells the peer. A peer's
-- erasure clears the free text of the records it names that it shares with
-- us, our own descriptions too, and nothing else.
BEGIN;
SELECT plan(17);

SELECT tb_member_add('{"name": "Ann Smith"}', 'test');
SELECT tb_member_add('{"name": "Bob Jones"}', 'test');
SELECT tb_fed_peers(ARRAY['westminster', 'cheshire'], ARRAY['bank', 'bank'],
                    ARRAY[100000, 100000]);

-- One message from a peer, next in its stream, applied as the daemon does.
CREATE FUNCTION pg_temp.deliver(p text, body jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_fed_apply(p, jsonb_build_array(jsonb_build_object(
               'seq', in_applied + 1, 'prev', encode(in_head, 'hex'),
               'hash', md5(p || in_applied)::text, 'envelope', 'cafe', 'body', body)), 600)
      FROM fed_peers WHERE peer = p
$$;
CREATE FUNCTION pg_temp.claim(id text, payer int, minutes int, message text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('claim_id', id, 'payer', payer, 'earner', 7, 'minutes', minutes,
                              'category', 'lifts', 'performed_on', current_date::text,
                              'message', message)
$$;

-- Ann's claim on Westminster, and records of ours that name Westminster's.
INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes, category,
                       description, message, performed_on, state, recorded_by, sent_seq)
SELECT 'colchester:c5', 'earner', 'westminster', account_id, 7, 60, 'lifts',
       'Ann drove Mr Patel', 'Ann drove him to the surgery', current_date, 'open', 'test', 1
  FROM members WHERE number = 1;
INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_text, message,
                          state, recorded_by, received_seq)
SELECT 'westminster:k2', 'provider', 'westminster', 'hb', account_id, 'Bob''s lifts on Fridays',
       'Carol Peters needs a lift', 'open', 'test', NULL::bigint
  FROM members WHERE number = 2
UNION ALL
SELECT 'colchester:k3', 'requester', 'westminster', 'hc', account_id,
       'Carol Peters digs gardens', 'For Bob', 'open', 'test', NULL
  FROM members WHERE number = 2;
INSERT INTO xb_exchanges (xid, side, peer, member_account, remote_member, minutes, category,
                          description, performed_on, state, recorded_by, claim)
SELECT 'colchester:9', 'payer', 'westminster', account_id, 7, 60, 'lifts',
       'Lift for Bob to the dentist', current_date, 'settled', 'test', NULL
  FROM members WHERE number = 2
UNION ALL
SELECT 'colchester:10', 'payer', 'westminster', account_id, 7, 60, 'gardening',
       'Carol Peters dug the garden', current_date, 'settled', 'test', 'westminster:c2'
  FROM members WHERE number = 1;

-- What Westminster sends.
SELECT pg_temp.deliver('westminster', jsonb_build_object('kind', 'xb_claim', 'items',
           jsonb_build_array(pg_temp.claim('westminster:c1', 999, 60, 'Carol Peters drove'),
                             pg_temp.claim('westminster:c2', 1, 60, 'Carol Peters dug'),
                             pg_temp.claim('elsewhere:c1', 1, 60, 'Carol, not theirs'),
                             pg_temp.claim('westminster:c4', 2, 60, ''))));
SELECT pg_temp.deliver('westminster', jsonb_build_object('kind', 'xb_claim', 'items',
           jsonb_build_array(pg_temp.claim('westminster:c2', 1, 60, 'Carol Peters, again'))));
SELECT pg_temp.deliver('westminster', '{"kind": "dir_contact", "items": [
           {"contact_id": "westminster:k1", "handle": "nothing", "message": "Carol Peters asks"}]}');
SELECT pg_temp.deliver('westminster', '{"kind": "xb_claim_answer", "items": [
           {"claim_id": "colchester:c5", "reason": "declined", "message": "Not Mr Patel, Ann"}]}');
SELECT pg_temp.deliver('westminster', '{"kind": "xb_claim_answer", "items": [
           {"claim_id": "colchester:c5", "reason": "declined", "message": "Really not, Ann"}]}');
SELECT is((SELECT in_applied FROM fed_peers WHERE peer = 'westminster'), 5::bigint,
          'five messages from Westminster applied');
SELECT results_eq($$SELECT claim_id, state, received_seq FROM xb_claims
                     WHERE peer = 'westminster' ORDER BY claim_id$$,
                  $$VALUES ('colchester:c5', 'declined', 4::bigint),
                           ('westminster:c2', 'open', 1), ('westminster:c4', 'open', 1)$$,
                  'the claims kept, each with the message that carried it');
SELECT results_eq($$SELECT seq, envelope, body->'items'->0->>'message', body->'items'->1->>'message',
                           body->'items'->2->>'message', body->'items'->3->>'message'
                      FROM fed_inbox WHERE peer = 'westminster' ORDER BY seq$$,
                  $$VALUES (1::bigint, '\x'::bytea, ''::text, 'Carol Peters dug'::text, ''::text,
                            ''::text),
                           (2, '\x', '', NULL, NULL, NULL), (3, '\x', '', NULL, NULL, NULL),
                           (4, '\xcafe', 'Not Mr Patel, Ann', NULL, NULL, NULL),
                           (5, '\x', '', NULL, NULL, NULL)$$,
                  'the words of what was refused, sent again or answered again are not kept, '
                  'nor the envelope that holds them; those a record keeps are');
SELECT results_eq($$SELECT peer, record, id, m.number
                      FROM fed_refused_records f JOIN members m ON m.account_id = f.member_account$$,
                  $$VALUES ('westminster'::text, 'claim'::text, 'elsewhere:c1'::text, 1::bigint)$$,
                  'a refused claim that named our member is noted, without its words');

-- Cheshire's claim on Ann, refused (too long an exchange), and one of Bob's.
SELECT pg_temp.deliver('cheshire', jsonb_build_object('kind', 'xb_claim', 'items',
           jsonb_build_array(pg_temp.claim('cheshire:c1', 1, 6000, 'Thanks Ann Smith'),
                             pg_temp.claim('cheshire:c2', 2, 6000, 'Thanks Bob'))));
SELECT is((SELECT count(*) FROM xb_claims WHERE peer = 'cheshire'), 0::bigint,
          'Cheshire''s claims are refused and not kept');

-- Westminster erases Carol, naming what it shares with us of hers.
SELECT pg_temp.deliver('westminster', '{"kind": "erasure", "items": [
           {"record": "claim", "id": "westminster:c1"}, {"record": "claim", "id": "westminster:c2"},
           {"record": "claim", "id": "colchester:c5"}, {"record": "contact", "id": "westminster:k1"},
           {"record": "contact", "id": "westminster:k2"}, {"record": "contact", "id": "colchester:k3"},
           {"record": "exchange", "id": "colchester:9"}, {"record": "exchange", "id": "colchester:10"}]}');
SELECT results_eq($$SELECT seq, envelope, body->'items'->1->>'message'
                      FROM fed_inbox WHERE peer = 'westminster' AND seq IN (1, 4) ORDER BY seq$$,
                  $$VALUES (1::bigint, '\x'::bytea, ''::text), (4, '\x', NULL)$$,
                  'every message whose words a record named kept is redacted');
SELECT results_eq($$SELECT claim_id, description, message, answer FROM xb_claims
                     WHERE peer = 'westminster' ORDER BY claim_id$$,
                  $$VALUES ('colchester:c5', NULL::text, NULL::text, NULL::text),
                           ('westminster:c2', NULL, NULL, NULL),
                           ('westminster:c4', NULL, NULL, NULL)$$,
                  'the claims named lose their words, our own description too');
SELECT results_eq($$SELECT contact_id, item_text, message, state FROM dir_contacts
                     ORDER BY contact_id$$,
                  $$VALUES ('colchester:k3', NULL::text, NULL::text, 'open'::text),
                           ('westminster:k2', NULL, NULL, 'open')$$,
                  'so do the contacts, and nothing else of them changes');
SELECT results_eq($$SELECT xid, description, minutes, state FROM xb_exchanges ORDER BY xid$$,
                  $$VALUES ('colchester:10', NULL::text, 60::bigint, 'settled'::text),
                           ('colchester:9', NULL, 60, 'settled')$$,
                  'and the exchanges: their descriptions, never their hours');

-- Ann's erasure here: Cheshire's claim on her is still open.
SELECT pg_temp.deliver('cheshire', jsonb_build_object('kind', 'xb_claim', 'items',
           jsonb_build_array(pg_temp.claim('cheshire:c3', 1, 60, 'Thanks Ann'))));
SELECT tb_member_update(1, '{"status": "left"}', 'test', 0);
SELECT is(tb_member_erase(1, '{}', 'brenda')->'peers_told', '["cheshire", "westminster"]',
          'Cheshire, whose claims named her, is told as well as Westminster');
SELECT is((SELECT body::jsonb FROM fed_outbox WHERE peer = 'cheshire'
            AND body::jsonb->>'kind' = 'erasure'),
          '{"kind": "erasure", "items": [{"id": "cheshire:c1", "record": "claim"},
                                          {"id": "cheshire:c3", "record": "claim"}]}'::jsonb,
          'Cheshire is told which claims: the one refused on arrival too');
SELECT results_eq($$SELECT state, reason, message FROM xb_claims WHERE claim_id = 'cheshire:c3'$$,
                  $$VALUES ('declined'::text, 'member_not_found'::text, NULL::text)$$,
                  'her open claim is declined as for a member not found, its words gone');
SELECT is((SELECT body::jsonb->'items' FROM fed_outbox WHERE peer = 'cheshire'
            AND body::jsonb->>'kind' = 'xb_claim_answer' ORDER BY seq DESC LIMIT 1),
          '[{"claim_id": "cheshire:c3", "reason": "member_not_found", "message": ""}]'::jsonb,
          'and Cheshire hears so');
SELECT results_eq($$SELECT peer, id FROM fed_refused_records$$,
                  $$VALUES ('cheshire'::text, 'cheshire:c2'::text)$$,
                  'her notes have done their work; Bob''s stays');

-- A decline for her, sent before Cheshire heard, keeps no words here.
INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes, category,
                       message, performed_on, state, recorded_by, sent_seq)
SELECT 'colchester:c8', 'earner', 'cheshire', account_id, 4, 60, 'lifts', NULL, current_date,
       'open', 'test', 1
  FROM members WHERE number = 1;
SELECT pg_temp.deliver('cheshire', '{"kind": "xb_claim_answer", "items": [
           {"claim_id": "colchester:c8", "reason": "declined", "message": "No, Ann Smith"}]}');
SELECT results_eq($$SELECT c.state, c.answer, i.envelope, i.body->'items'->0->>'message'
                      FROM xb_claims c JOIN fed_inbox i ON i.peer = c.peer AND i.seq = c.received_seq
                     WHERE c.claim_id = 'colchester:c8'$$,
                  $$VALUES ('declined'::text, NULL::text, '\x'::bytea, ''::text)$$,
                  'an answer about an erased member decides the claim and keeps no words');

-- The notes are bounded.
SELECT tb_note_refused('westminster', 'claim', repeat('x', 81), 2),
       tb_note_refused('westminster', 'claim', 'westminster:c9', NULL),
       tb_note_refused('westminster', 'claim', NULL, 2);
SELECT tb_note_refused('westminster', 'claim', 'westminster:n' || n, 2)
  FROM generate_series(1, 150) n;
SELECT is((SELECT count(*) FROM fed_refused_records WHERE peer = 'westminster'), 100::bigint,
          'a note takes an id no longer than any we keep, a member of ours, and at most '
          '100 for one member from one peer');
SELECT lives_ok($$SELECT pg_temp.deliver('westminster', '{"kind": "dir_contact", "items": [
                      {"contact_id": 7, "message": ["x"]}, "x"]}')$$,
                'a contact of the wrong shape notes nothing and breaks nothing');
SELECT finish();
ROLLBACK;
