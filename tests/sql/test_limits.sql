-- What a peer can make this bank keep, and what it says, held to this
-- bank's own limits (fed_limits, written from the config).
BEGIN;
SELECT plan(22);

SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
  FROM generate_series(1, 2) g;
SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], ARRAY[100000]);
SELECT set_config('tb.max_exchange', '180', true);  -- as tb_fed_apply sets it
SELECT tb_fed_limits_set('{"max_open_claims": 3, "max_open_contacts": 2,
                           "max_directory_items": 4, "inbox_keep_days": 30}');

-- Exchanges and claims: our own max_exchange, and dates within two years.
SELECT is(tb_rule_hours(180, tb_max_exchange()), NULL, 'three hours, the most this bank records');
SELECT is(tb_rule_hours(181, tb_max_exchange()), 'invalid_hours', 'a minute more is refused');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:1', 'earner', 1, 'minutes', 1000000000000,
                                 'category', 'lifts', 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'reason',
          'invalid_hours', 'a proposal of a trillion minutes is refused');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:2', 'earner', 1, 'minutes', 60,
                                 'category', 'lifts', 'performed_on', '1999-01-01'))),
              1)->'xb_answer'->0->>'reason',
          'invalid_request', 'and one dated last century');
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:3', 'earner', 1, 'minutes', 60,
                                 'category', 'lifts', 'performed_on', current_date::text))),
              1)->'xb_answer'->0->>'accepted',
          'true', 'an hour today is settled');
SELECT is((SELECT count(*) FROM xb_claims), 0::bigint, 'no claim yet');
SELECT is(jsonb_array_length(tb_on_xb_claim('westminster', jsonb_build_object('items', (
              SELECT jsonb_agg(jsonb_build_object(
                         'claim_id', 'westminster:c' || g, 'payer', 2, 'earner', 5,
                         'minutes', CASE WHEN g = 1 THEN 1000000000000 ELSE 60 END,
                         'category', 'lifts', 'performed_on', current_date::text,
                         'message', ''))
                FROM generate_series(1, 6) g)), 1)->'xb_claim_answer'), 3,
          'six claims: one of a trillion minutes and two past the share are refused');
SELECT results_eq($$SELECT claim_id, state FROM xb_claims ORDER BY id$$,
                  $$VALUES ('westminster:c2', 'open'), ('westminster:c3', 'open'),
                           ('westminster:c4', 'open')$$,
                  'and only the share of open claims is kept');
SELECT is(tb_on_xb_claim('westminster', '{"items": [{"claim_id": "westminster:c9", "payer": 2,
              "earner": 5, "minutes": 60, "category": "lifts", "message": "",
              "performed_on": "2026-01-01"}]}', 1)->'xb_claim_answer'->0->>'reason',
          'too_many_open', 'a claim past the share is answered why');
SELECT is(jsonb_array_length(tb_on_xb_claim('westminster', jsonb_build_object('items', (
              SELECT jsonb_agg(jsonb_build_object(
                         'claim_id', 'westminster:c' || (100 + g), 'payer', 999, 'earner', 5,
                         'minutes', 60, 'category', 'lifts', 'message', 'x',
                         'performed_on', current_date::text))
                FROM generate_series(1, 50) g)), 1)->'xb_claim_answer'), 50,
          'fifty claims on a member we do not have are each answered');
SELECT is((SELECT count(*) FROM xb_claims), 3::bigint, 'and none is kept');

-- A reversal undoes the whole exchange.
INSERT INTO xb_exchanges (xid, side, peer, member_account, remote_member, minutes, category,
                          performed_on, state, recorded_by)
SELECT 'colchester:77', 'payer', 'westminster', account_id, 4, 90, 'lifts', current_date,
       'settled', 'test' FROM members WHERE number = 2;
SELECT is(tb_on_xb_propose('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('xid', 'westminster:4', 'minutes', 30, 'category', 'lifts',
                                 'performed_on', current_date::text,
                                 'reverses', 'colchester:77'))),
              1)->'xb_answer'->0->>'reason',
          'invalid_hours', 'a reversal of part of an exchange is refused');

-- Directory pages: the share of items, expiry within two years, a cursor that follows.
SELECT is((tb_dir_apply('westminster', jsonb_build_object('since', 0, 'next', 6, 'more', false,
              'items', (SELECT jsonb_agg(jsonb_build_object(
                            'handle', 'h' || g, 'kind', 'offer', 'category', 'lifts',
                            'text', 'lifts', 'expires_on', (current_date + 30)::text,
                            'version', g))
                          FROM generate_series(1, 6) g)))->>'dropped')::int, 2,
          'of six new items, two are past the share');
SELECT is((SELECT count(*) FROM dir_remote), 4::bigint, 'four are kept');
SELECT is((tb_dir_apply('westminster', jsonb_build_object('since', 6, 'next', 8, 'more', false,
              'items', jsonb_build_array(jsonb_build_object(
                  'handle', 'h1', 'kind', 'offer', 'category', 'lifts', 'text', 'lifts',
                  'expires_on', '9999-12-31', 'version', 8)))))->>'applied', '0',
          'an expiry past two years is not kept');
SELECT is(tb_dir_apply('westminster', jsonb_build_object('since', 8, 'next', 9000000000000000000,
              'more', false, 'items', '[]'::jsonb))->>'refused',
          'its cursor does not follow its items', 'a cursor pushed far ahead is refused');
SELECT is(tb_dir_cursor('westminster'), 8::bigint, 'and moves nothing');

-- What peers sent is kept as proof for inbox_keep_days.
INSERT INTO fed_inbox (peer, seq, hash, envelope, body, applied_at)
SELECT 'westminster', g, '\x00', '\x00', '{}', now() - interval '40 days'
  FROM generate_series(1, 3) g;
UPDATE fed_peers SET in_applied = 3 WHERE peer = 'westminster';
SELECT is(tb_fed_inbox_purge(), 2::bigint,
          'old messages go, but the last, which a checkpoint may name, stays');

-- Forgetting a learned key keeps the chain of the keys it announced.
INSERT INTO fed_peer_keys (peer, key_id, public_key, replaces, grace_until)
VALUES ('westminster', 'k2', '\x02', 'k1', now()), ('westminster', 'k3', '\x03', 'k2', now());
SELECT is(tb_fed_key_forget('westminster', 'k2', true)->>'state', 'forgotten', 'k2 forgotten');
SELECT is((SELECT replaces FROM fed_peer_keys WHERE key_id = 'k3'), 'k1',
          'and k3 now chains from k1, which announced k2');

-- A run with more answers than one message holds: each exchange knows
-- the message that carries its answer.
SELECT is(tb_fed_apply('westminster', jsonb_build_array(jsonb_build_object(
              'seq', in_applied + 1, 'prev', encode(in_head, 'hex'), 'hash', 'ab', 'envelope', 'cafe',
              'body', jsonb_build_object('kind', 'xb_propose', 'items', (
                  SELECT jsonb_agg(jsonb_build_object(
                             'xid', 'westminster:' || (1000 + g), 'earner', 1, 'minutes', 1,
                             'category', 'lifts', 'performed_on', current_date::text,
                             'reverses', '', 'claim', '', 'contact', ''))
                    FROM generate_series(1, 1001) g)))), 180)->>'error', NULL)
  FROM fed_peers WHERE peer = 'westminster';
SELECT results_eq($$SELECT count(DISTINCT answer_seq), count(*) FROM xb_exchanges
                     WHERE xid = ANY (ARRAY(SELECT 'westminster:' || (1000 + g)
                                              FROM generate_series(1, 1001) g))$$,
                  $$VALUES (2::bigint, 1001::bigint)$$,
                  '1001 answers go in two messages, each exchange naming its own');
SELECT * FROM finish();
ROLLBACK;
