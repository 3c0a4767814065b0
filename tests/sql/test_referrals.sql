-- Referrals between banks, each side in turn. Here as the referring bank
-- (colchester): a referral carries only what was consented, a move holds
-- the member and is refused while anything is open with other banks, and
-- the answers settle it. And as the receiving bank: a referral with a field
-- not consented to is refused whole and nothing is kept; an accepted move
-- posts its balance within this bank's rules; a declined, withdrawn or
-- expired one is erased, its message redacted to its hash.
BEGIN;
SELECT plan(60);

UPDATE fed_limits SET bank_id = 'colchester', role = 'bank';
SELECT tb_fed_peers(ARRAY['westminster', 'cheshire'], ARRAY['bank', 'bank'],
                    ARRAY[600, 600]);
SELECT tb_member_add('{"name": "Ann Smith", "phone": "01206 500100", "email": "ann@example.org",
                       "address": "1 High St, Colchester CO1 1AA", "skills": "driving",
                       "notes": "uses a wheelchair"}', 'test');
SELECT tb_member_add('{"name": "Bob Jones"}', 'test');
SELECT tb_grant('{"member": 1, "minutes": 120, "category": "welcome"}', 'test', -6000);

CREATE FUNCTION pg_temp.deliver(p text, body jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_fed_apply(p, jsonb_build_array(jsonb_build_object(
               'seq', in_applied + 1, 'prev', encode(in_head, 'hex'),
               'hash', md5(p || in_applied)::text, 'envelope', 'cafe', 'body', body)), 600)
      FROM fed_peers WHERE peer = p
$$;
CREATE FUNCTION pg_temp.last_sent(p text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT body::jsonb FROM fed_outbox WHERE peer = p ORDER BY seq DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.status(n bigint) RETURNS text LANGUAGE sql AS $$
    SELECT status FROM members WHERE number = n
$$;

-- ---- the referring bank -------------------------------------------------
SELECT is(tb_referral_send('{"member": 1, "bank": "westminster", "kind": "introduce",
                             "reason": "near her daughter", "share": ["name", "skills"],
                             "consent": "in person"}', 'brenda', 'colchester')->>'state',
          'open', 'an introduction is sent');
SELECT is((SELECT jsonb_object_keys(x) FROM jsonb_array_elements(pg_temp.last_sent('westminster')->'items') i,
                  LATERAL (SELECT i - ARRAY['referral_id', 'kind', 'member', 'reason', 'shared',
                                            'consent_how', 'consent_notes', 'consent_by',
                                            'consent_at', 'record', 'balance_minutes'] AS x) y
            ORDER BY 1 LIMIT 1) || ',' ||
          (SELECT count(*) FROM jsonb_array_elements(pg_temp.last_sent('westminster')->'items') i,
                  jsonb_object_keys(i - ARRAY['referral_id', 'kind', 'member', 'reason', 'shared',
                                              'consent_how', 'consent_notes', 'consent_by',
                                              'consent_at', 'record', 'balance_minutes']))::text,
          'name,2', 'it carries the fields consented and no others');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'skills', 'driving', 'as this bank holds them');
SELECT is(pg_temp.status(1), 'active', 'an introduction does not hold the member');
SELECT throws_ok($$SELECT tb_referral_send('{"member": 1, "bank": "westminster", "kind": "introduce",
                                             "share": ["name"], "consent": "by phone"}', 'brenda', 'colchester')$$,
                 'TB000', 'referral_open', 'a second open referral to the same bank is refused');
SELECT throws_ok($$SELECT tb_referral_send('{"member": 1, "bank": "dorset", "kind": "move",
                                             "share": ["name"], "consent": "by phone"}', 'brenda', 'colchester')$$,
                 'TB000', 'unknown_bank', 'an unknown bank is refused');
SELECT throws_ok($$SELECT tb_referral_send('{"member": 1, "bank": "cheshire", "kind": "move",
                                             "share": ["name"], "consent": "by phone"}', 'brenda', 'colchester')$$,
                 'TB000', 'referral_open', 'a move waits for an open referral');
-- Bob has a claim open with Cheshire: he cannot move yet.
INSERT INTO xb_claims (claim_id, side, peer, member_account, remote_member, minutes, category,
                       performed_on, state, recorded_by)
SELECT 'colchester:c1', 'earner', 'cheshire', account_id, 4, 60, 'lifts', current_date, 'open', 'test'
  FROM members WHERE number = 2;
SELECT throws_ok($$SELECT tb_referral_send('{"member": 2, "bank": "cheshire", "kind": "move",
                                             "share": ["name"], "consent": "in writing"}', 'brenda', 'colchester')$$,
                 'TB000', 'member_has_open', 'a move is refused while a claim is open');
SELECT lives_ok($$UPDATE xb_claims SET state = 'declined' WHERE claim_id = 'colchester:c1'$$,
                'the claim is settled');

-- Westminster accepts the introduction: nothing moves, Ann stays.
SELECT pg_temp.deliver('westminster', jsonb_build_object('kind', 'referral_answer', 'items',
           jsonb_build_array(jsonb_build_object('referral_id', 'colchester:r1', 'state', 'accepted',
                                                'member', 31, 'reason', '', 'message', 'welcome'))));
SELECT is(tb_referral_get('colchester:r1')->>'state', 'accepted', 'the answer settles it');
SELECT is(tb_member_get(1)->'referrals'->0->>'text',
          format('also visiting westminster, member 31 there, since %s', current_date),
          'member show says where she visits');

-- A move to Cheshire with her 2h: held until Cheshire answers.
SELECT is(tb_referral_send('{"member": 1, "bank": "cheshire", "kind": "move", "reason": "moved",
                             "share": ["name", "notes", "record"], "consent": "in writing",
                             "consent_notes": true}', 'brenda', 'colchester')->>'balance_minutes',
          '120', 'a move carries the balance');
SELECT is(pg_temp.last_sent('cheshire')->'items'->0->'record'->>'joined_on', current_date::text,
          'and the record, with consent');
SELECT is(pg_temp.status(1), 'moving', 'the member is held');
SELECT throws_ok($$SELECT tb_exchange_record('{"payer": 1, "earner": 2, "minutes": 30, "category": "lifts"}',
                                      'brenda', -600)$$,
                 'TB000', 'member_inactive', 'a held member exchanges nothing');
SELECT throws_ok($$SELECT tb_member_update(1, '{"status": "suspended"}', 'brenda', -600)$$,
                 'TB000', 'member_moving', 'nor changes status');
SELECT is(tb_referral_withdraw('colchester:r2', 'brenda')->>'state', 'open',
          'a withdrawal waits for the other bank');
SELECT is(pg_temp.last_sent('cheshire')->>'kind', 'referral_withdraw', 'which is asked');
-- Cheshire had accepted before the withdrawal reached it: its answer stands.
SELECT pg_temp.deliver('cheshire', jsonb_build_object('kind', 'referral_answer', 'items',
           jsonb_build_array(jsonb_build_object('referral_id', 'colchester:r2', 'state', 'accepted',
                                                'member', 8, 'reason', '', 'message', ''))));
SELECT is(pg_temp.status(1), 'left', 'accepted, the membership closes');
SELECT is((tb_balance(1, -600))->>'balance_minutes', '0', 'and the balance has gone');
SELECT is((SELECT balance_minutes FROM accounts a JOIN fed_peers p ON p.clearing_account = a.id
            WHERE p.peer = 'cheshire'), 120::bigint, 'against the clearing account for cheshire');
SELECT is((SELECT l->>'other_party' FROM jsonb_array_elements(
               tb_statement(1, current_date, current_date, 'colchester', 'Colchester')->'lines') l
            ORDER BY l->>'transfer' DESC LIMIT 1),
          'cheshire member 8', 'her statement ends with the move');
SELECT ok((tb_audit(-600, -6000))->>'ok' = 'true', 'the books add up');
SELECT is(tb_network_report(current_date, 1, 1)->'moves'->'moved_out',
          '{"members": 1, "minutes": 120, "owed_minutes": 0}',
          'the national body''s report counts the move apart');
SELECT is(tb_network_report(current_date, 1, 1)#>>'{hours,within,minutes}', '0',
          'and not as hours exchanged');

-- ---- the receiving bank -------------------------------------------------
CREATE FUNCTION pg_temp.referral(id text, kind text, extra jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('kind', 'referral', 'items', jsonb_build_array(jsonb_build_object(
               'referral_id', id, 'kind', kind, 'member', 17, 'reason', 'moved to Colchester',
               'shared', '["name", "phone"]'::jsonb, 'consent_how', 'in person',
               'consent_notes', false, 'consent_by', 'wendy', 'consent_at', '2026-12-01T10:00:00Z',
               'name', 'Carol Peters', 'email', '', 'phone', '020 7946 0000', 'address', '',
               'skills', '', 'needs', '', 'availability', '', 'district', '', 'notes', '',
               'balance_minutes', 0) || extra))
$$;
SELECT is(pg_temp.deliver('westminster', pg_temp.referral('westminster:r1', 'introduce',
                                                          '{"notes": "diabetic"}'))->>'queued',
          '1', 'a referral carrying a field not consented to is answered at once');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'reason', 'not_consented', 'refused');
SELECT is((SELECT count(*) FROM referrals WHERE referral_id = 'westminster:r1'), 0::bigint,
          'and nothing of it is kept');
SELECT is((SELECT envelope || convert_to(body::text, 'UTF8') FROM fed_inbox
            WHERE peer = 'westminster' ORDER BY seq DESC LIMIT 1),
          convert_to('{"kind": "referral", "items": [{"referral_id": "westminster:r1"}]}', 'UTF8'),
          'its message is kept without its fields, redacted to its hash');

SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r2', 'move',
                                                       '{"balance_minutes": -90}'));
SELECT is(tb_referral_get('westminster:r2')->'details'->>'phone', '020 7946 0000',
          'a referral waits for a coordinator with what was shared');
SELECT throws_ok($$SELECT tb_referral_accept('westminster:r2', '{}', 'chris', -600)$$,
                 'TB000', 'balance_refused', 'a member owing hours is refused unless accept_negative');
UPDATE fed_limits SET referral_accept_negative = true;
SELECT is(tb_referral_accept('westminster:r2', '{"number": 40}', 'chris', -600)->>'member', '40',
          'accepted, the member is made here');
SELECT is((tb_balance(40, -600))->>'balance_minutes', '-90', 'owing what she owed');
SELECT throws_ok($$SELECT tb_referral_accept('westminster:r2', '{}', 'chris', -600)$$,
                 'TB000', 'referral_already_decided', 'accepting twice is refused');
SELECT is(tb_member_get(40)->'referrals'->0->>'text',
          format('moved from westminster, member 17 there, on %s', current_date),
          'member show says where she came from');

SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r3', 'introduce', '{}'));
SELECT is(tb_referral_decline('westminster:r3', '{"reason": "no one near"}', 'chris')->>'state',
          'declined', 'a decline');
SELECT ok(NOT EXISTS (SELECT 1 FROM referrals r, fed_inbox i
                       WHERE (r.details::text || coalesce(r.reason, '') || i.body::text
                              || encode(i.envelope, 'escape')) ~ 'Carol|7946|moved to Colchester'
                         AND r.referral_id = 'westminster:r3' AND i.peer = 'westminster'
                         AND i.seq = r.received_seq),
          'erases what it carried, and its message');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'state', 'declined',
          'and tells the referring bank');

SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r4', 'introduce', '{}'));
SELECT pg_temp.deliver('westminster', '{"kind": "referral_withdraw", "items": [{"referral_id": "westminster:r4"}]}');
SELECT is(tb_referral_get('westminster:r4')->>'state', 'withdrawn', 'a withdrawal');
SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r5', 'introduce', '{}'));
UPDATE referrals SET expires_at = now() - interval '1 day' WHERE referral_id = 'westminster:r5';
SELECT is(tb_referrals_expire(), 1, 'an expiry');
SELECT is((SELECT count(*) FROM referrals WHERE side = 'receiving' AND state <> 'accepted'
                                            AND (details IS NOT NULL OR erased_at IS NULL)),
          0::bigint, 'each erased');

-- What a peer sends is read without raising, whatever it says.
SELECT is(pg_temp.deliver('westminster', pg_temp.referral('westminster:r6', 'introduce',
              '{"consent_at": "2026-13-45T25:61:61Z", "shared": ["name", "name"]}'))->>'error',
          NULL, 'a day that is no day is refused, not raised');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'reason', 'invalid_request',
          'as a malformed referral');
SELECT is(pg_temp.deliver('westminster', pg_temp.referral('westminster:r7', 'introduce',
              '{"consent_notes": "maybe", "balance_minutes": null}'))->>'error', NULL,
          'so is a consent or a balance of the wrong type');
SELECT is(pg_temp.deliver('westminster', pg_temp.referral('westminster:r8', 'introduce',
              '{"shared": ["name", "district"], "phone": "", "district": "Jane Doe 12 High St"}'))->>'error',
          NULL, 'and a district that is not one');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'reason', 'invalid_request',
          'is refused: it would leave in the activity report');
SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r9', 'introduce',
           jsonb_build_object('shared', '["name", "notes"]'::jsonb, 'consent_notes', true,
                              'phone', '', 'notes', repeat('n', 4000))));
SELECT is(tb_referral_get('westminster:r9')->>'state', 'open',
          'notes as long as a member''s may be are taken');
-- The same id again, with notes not consented: not taken twice, nor kept.
SELECT pg_temp.deliver('westminster', pg_temp.referral('westminster:r9', 'introduce',
                                                       '{"notes": "second copy"}'));
SELECT ok(NOT EXISTS (SELECT 1 FROM fed_inbox WHERE body::text ~ 'second copy'),
          'a referral seen before keeps none of its fields');
-- A withdrawal and a proposal in one run: the answers go out together.
CREATE FUNCTION pg_temp.deliver_run(p text, bodies jsonb[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT tb_fed_apply(p, (SELECT jsonb_agg(jsonb_build_object(
               'seq', f.in_applied + n, 'prev', CASE WHEN n = 1 THEN encode(f.in_head, 'hex')
                                                      ELSE md5(p || (f.in_applied + n - 1)) END,
               'hash', md5(p || (f.in_applied + n)), 'envelope', 'cafe', 'body', b) ORDER BY n)
                              FROM unnest(bodies) WITH ORDINALITY AS t(b, n)), 600)
      FROM fed_peers f WHERE f.peer = p
$$;
SELECT tb_member_add('{"name": "Dan Earner", "number": 50}', 'test');
SELECT is(pg_temp.deliver_run('westminster', ARRAY[
              '{"kind": "referral_withdraw", "items": [{"referral_id": "westminster:r9"}]}'::jsonb,
              '{"kind": "xb_propose", "items": [{"xid": "westminster:77", "earner": 50, "minutes": 30, "category": "lifts", "performed_on": "2026-12-01", "reverses": "", "claim": "", "contact": ""}]}'::jsonb])
              ->>'error', NULL,
          'a withdrawal beside a proposal in one run applies');
SELECT is(tb_referral_get('westminster:r9')->>'state', 'withdrawn', 'the withdrawal is done');
SELECT is((SELECT count(*) FROM fed_outbox WHERE peer = 'westminster'
             AND body::jsonb->>'kind' IN ('referral_answer', 'xb_answer')
             AND seq >= (SELECT max(seq) - 1 FROM fed_outbox WHERE peer = 'westminster')),
          2::bigint, 'and both answers are queued');
-- While a member is moving, nothing changes their balance.
SELECT tb_member_add('{"name": "Eve Mover", "number": 60}', 'test');
SELECT tb_exchange_record('{"payer": 50, "earner": 60, "minutes": 45, "category": "lifts"}', 'test', -600);
SELECT tb_referral_send('{"member": 60, "bank": "cheshire", "kind": "move",
                          "share": ["name"], "consent": "by phone"}', 'brenda', 'colchester');
SELECT throws_ok(format('SELECT tb_reverse(%s, ''{"reason": "mistake"}'', ''brenda'', -600, -6000)',
                        (SELECT max(id) FROM transfers WHERE kind = 'exchange')),
                 'TB000', 'member_moving', 'a reversal waits for the move');
SELECT throws_ok(format('SELECT tb_reverse(%s, ''{"reason": "mistake"}'', ''brenda'', -600, -6000)',
                        (SELECT min(id) FROM transfers WHERE kind = 'move')),
                 'TB000', 'not_reversible', 'a move is not reversed');
-- A claim a peer makes of a moving member is refused: nothing is left open.
SELECT is(pg_temp.deliver('westminster', jsonb_build_object('kind', 'xb_claim', 'items',
              jsonb_build_array(jsonb_build_object(
                  'claim_id', 'westminster:c1', 'payer', 60, 'earner', 9, 'minutes', 60,
                  'category', 'lifts', 'performed_on', current_date::text,
                  'message', ''))))->>'error', NULL, 'a claim of a moving member');
SELECT is(pg_temp.last_sent('westminster')->'items'->0->>'reason', 'member_inactive',
          'is refused');
-- Cheshire leaves the register: withdrawn, the move ends here at once.
UPDATE fed_peers SET removed_at = now() WHERE peer = 'cheshire';
SELECT is(tb_referral_withdraw((SELECT referral_id FROM referrals r JOIN members m
                                   ON m.account_id = r.member_account
                                 WHERE m.number = 60 AND r.state = 'open'), 'brenda')->>'state',
          'withdrawn', 'a referral to a bank that left the register ends when withdrawn');
SELECT is(pg_temp.status(60), 'active', 'and the member is free');
UPDATE fed_peers SET removed_at = NULL WHERE peer = 'cheshire';
-- An introduction not yet acknowledged when its member is erased: its
-- message is redacted once it is.
SELECT tb_member_add('{"name": "Fay Gone", "number": 70, "phone": "07700 900070"}', 'test');
SELECT tb_referral_send('{"member": 70, "bank": "cheshire", "kind": "introduce",
                          "share": ["name", "phone"], "consent": "by phone"}', 'brenda', 'colchester');
SELECT tb_member_update(70, '{"status": "left"}', 'brenda', -600);
SELECT tb_member_erase(70, '{}', 'brenda');
SELECT is((SELECT referrals FROM fed_redact_waiting WHERE peer = 'cheshire'),
          ARRAY[(SELECT referral_id FROM referrals r JOIN members m ON m.account_id = r.member_account
                  WHERE m.number = 70)], 'the referral waits to be redacted');
UPDATE fed_sealed SET out_sealed = (SELECT max(seq) FROM fed_outbox WHERE peer = 'cheshire')
 WHERE peer = 'cheshire';
SELECT tb_fed_acked('cheshire', (SELECT max(seq) FROM fed_outbox WHERE peer = 'cheshire'));
SELECT tb_fed_redact_waiting();
SELECT ok(NOT EXISTS (SELECT 1 FROM fed_outbox WHERE body::text ~ 'Fay|900070'),
          'and is, once acknowledged; the withdrawal went with it');

-- A member accepted here and erased later: the message that brought them goes too.
SELECT tb_member_update(40, '{"status": "left"}', 'chris', -600);
SELECT tb_member_erase(40, '{"force": true, "reason": "asked"}', 'chris');
SELECT ok(NOT EXISTS (SELECT 1 FROM fed_inbox WHERE body::text ~ 'Carol|7946'
                         OR encode(envelope, 'escape') ~ 'Carol'),
          'an erased member''s referral keeps none of their fields');

SELECT * FROM finish();
ROLLBACK;
