-- The rules, each answering its reason or NULL, and the readers of what a
-- peer sent, which never raise.
BEGIN;
SELECT plan(48);

SELECT is(tb_rule_active('active'), NULL, 'an active member may take part');
SELECT is(tb_rule_active('suspended'), 'member_inactive', 'a suspended one may not');
SELECT is(tb_rule_active('left'), 'member_inactive', 'nor one who left');
SELECT is(tb_rule_parties(3, 4), NULL, 'two members may exchange');
SELECT is(tb_rule_parties(3, 3), 'same_member', 'one member may not pay themself');
SELECT is(tb_rule_date(current_date), NULL, 'an exchange may be done today');
SELECT is(tb_rule_date(current_date + 1), 'invalid_date', 'not tomorrow');
SELECT is(tb_rule_date(NULL), NULL, 'no date is today');
SELECT is(tb_rule_floor(0, 600, -600), NULL, 'spending down to the floor is allowed');
SELECT is(tb_rule_floor(0, 601, -600), 'below_floor', 'a minute past it is not');
SELECT is(tb_rule_peer('bank', 9, true, NULL), NULL, 'a linked bank takes proposals');
SELECT is(tb_rule_peer('observer', NULL, true, NULL), 'unknown_bank', 'the national body does not');
SELECT is(tb_rule_peer(NULL, NULL, NULL, NULL), 'unknown_bank', 'nor a bank we do not know');
SELECT is(tb_rule_peer('bank', 9, true, now()), 'peer_diverged', 'nor a bank whose books diverged');
SELECT is(tb_rule_bank('bank', NULL, true), 'unknown_bank', 'nor a bank with no clearing account');
SELECT is(tb_rule_bank('bank', 9, false), 'not_exchanging',
          'nor a bank removed from the register or not in exchange_with');
SELECT is(tb_rule_named(7, NULL), NULL, 'a member we have may be named');
SELECT is(tb_rule_named(NULL, NULL), 'member_not_found', 'one we do not have may not');
SELECT is(tb_rule_named(7, now()), 'member_not_found', 'nor one erased');
SELECT is(tb_rule_hours(1, 1440), NULL, 'a minute is hours');
SELECT is(tb_rule_hours(0, 1440), 'invalid_hours', 'no minutes are not');
SELECT is(tb_rule_hours(NULL, 1440), 'invalid_hours', 'nor what was not a number');
SELECT is(tb_rule_exposure(-100, 500, -600), NULL, 'a peer may owe up to its limit');
SELECT is(tb_rule_exposure(-100, 501, -600), 'exposure_limit', 'and no more');
SELECT is(tb_rule_sent(current_date::text, 'lifts'), NULL, 'today, with a category');
SELECT is(tb_rule_sent((current_date + 1)::text, 'lifts'), NULL,
          'tomorrow: the peer''s today may be ahead of ours');
SELECT is(tb_rule_sent((current_date + 2)::text, 'lifts'), 'invalid_request', 'not after');
SELECT is(tb_rule_sent('2026-02-29', 'lifts'), 'invalid_request', 'no such day');
SELECT is(tb_safe_date('2024-02-29'), '2024-02-29'::date, 'a leap day is a day');
SELECT is(tb_rule_sent((current_date - 730)::text, 'lifts'), NULL, 'two years back');
SELECT is(tb_rule_sent((current_date - 731)::text, 'lifts'), 'invalid_request',
          'not before');
SELECT is(tb_rule_sent('2026-01-01', ''), 'invalid_request', 'no category');
SELECT is(tb_rule_sent('2026-01-01', repeat('x', 41)), 'invalid_request', 'one too long');
SELECT is(tb_rule_sent('2026-01-01', E'a\tb'), 'invalid_request', 'a control character');
SELECT is(tb_rule_sent(NULL, NULL), 'invalid_request', 'nothing at all');

SELECT is(tb_peer_number('123', 12), 123::bigint, 'a number');
SELECT is(tb_peer_number('1234567890123', 12), NULL, 'too many digits is no number');
SELECT is(tb_peer_number('-1', 12), NULL, 'a sign is no number');
SELECT is(tb_peer_number('', 12), NULL, 'nor is nothing');
SELECT is(tb_safe_date('1900-02-29'), NULL, '1900 was not a leap year');
SELECT is(tb_safe_date('2000-02-29'), '2000-02-29'::date, '2000 was');
SELECT is(tb_safe_date('0000-01-01'), NULL, 'there was no year 0');
SELECT ok(tb_peer_id('westminster', 'westminster:12', ''), 'a peer names its own exchange');
SELECT ok(NOT tb_peer_id('westminster', 'colchester:12', ''), 'not another''s');
SELECT ok(NOT tb_peer_id('westminster', 'westminster:', ''), 'nor an empty number');
SELECT ok(NOT tb_peer_id('westminster', 'westminster:' || repeat('9', 19), ''),
          'nor one of 19 digits');
SELECT ok(tb_peer_id('westminster', 'westminster:c5', 'c')
          AND NOT tb_peer_id('westminster', 'westminster:5', 'c'), 'a claim carries its tag');
SELECT ok(NOT tb_peer_id('west.*', 'westminster:5', ''), 'a bank id is no pattern');

SELECT * FROM finish();
ROLLBACK;
