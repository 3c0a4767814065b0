-- The network's register at the national body: banks added, removed,
-- revoked and their keys rotated, each change kept with who made it; the
-- draft the next publish signs; what it would change; the registers
-- published, each the next serial.
BEGIN;
SELECT plan(18);

CREATE FUNCTION pg_temp.bank(id text, key_byte text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', id, 'name', initcap(id) || ' Time Bank',
                              'address', id || '.example.org:9401', 'kind', 'bank',
                              'signing_pub', repeat(key_byte, 32),
                              'cert_sha256', repeat('ab', 32))
$$;

SELECT is(tb_register_add(pg_temp.bank('colchester', '01'), 'nb')->'keys'->0->>'public_key',
          repeat('01', 32), 'a bank joins with its signing key');
SELECT tb_register_add(pg_temp.bank('westminster', '02'), 'nb');
SELECT throws_ok($$SELECT tb_register_add(pg_temp.bank('colchester', '03'), 'nb')$$,
                 'TB000', 'bank_exists', 'a bank already in the register is refused');
SELECT throws_ok($$SELECT tb_register_add(pg_temp.bank('cheshire', '01'), 'nb')$$,
                 'TB000', 'key_in_use', 'and so is another bank''s key');
SELECT is(tb_register_diff()->'changes',
          '[{"id": "colchester", "change": "added"}, {"id": "westminster", "change": "added"}]',
          'before the first publish, every bank is new');
SELECT is((tb_register_draft(30)->>'serial')::int, 1, 'the first register is serial 1');
SELECT is(jsonb_array_length(tb_register_draft(30)->'banks'), 2, 'with both banks');

-- Published (the daemon signs; here the signed bytes stand in).
SELECT tb_register_store(1, tb_register_draft(30), 'cafe', 'nb');
SELECT is(tb_register_diff()->'changes', '[]', 'once published, nothing waits');
SELECT throws_ok($$SELECT tb_register_store(1, tb_register_draft(30), 'cafe', 'nb')$$,
                 'TB000', 'register_changed', 'a serial is published once');
SELECT is(tb_register_signed(), 'cafe', 'the last register is served as it was signed');

-- A rotation: the old key has an end, the new one none.
SELECT tb_register_rotate('colchester', repeat('04', 32), 30, 'nb');
SELECT results_eq($$SELECT encode(public_key, 'hex'), not_after IS NULL FROM register_keys
                     WHERE bank = 'colchester' ORDER BY not_after NULLS LAST$$,
                  $$VALUES (repeat('01', 32), false), (repeat('04', 32), true)$$,
                  'the old key works for its grace, the new one from now');
SELECT throws_ok($$SELECT tb_register_rotate('colchester', repeat('02', 32), 30, 'nb')$$,
                 'TB000', 'key_in_use', 'a rotation to another bank''s key is refused');
SELECT tb_register_remove('westminster', true, 'nb');
SELECT is(tb_register_diff()->'changes',
          '[{"id": "colchester", "change": "changed", "fields": ["keys"]},
            {"id": "westminster", "change": "removed"}]',
          'what the next publish would change: a key, and a bank gone');
SELECT throws_ok($$SELECT tb_register_remove('westminster', false, 'nb')$$,
                 'TB000', 'bank_not_found', 'a bank no longer in the register is not found');
SELECT is(tb_register_add(pg_temp.bank('westminster', '05'), 'nb')->>'id', 'westminster',
          'a bank removed may join again');
SELECT results_eq($$SELECT action, coalesce(bank, ''), actor FROM register_history ORDER BY n$$,
                  $$VALUES ('add-bank'::text, 'colchester'::text, 'nb'::text),
                           ('add-bank', 'westminster', 'nb'), ('publish', '', 'nb'),
                           ('rotate-key', 'colchester', 'nb'), ('revoke', 'westminster', 'nb'),
                           ('add-bank', 'westminster', 'nb')$$,
                  'every change is kept, with who made it');
-- Refreshed before it goes stale: the last one published, again, as the
-- next serial; not before it is due.
SELECT is(tb_register_refresh_due(20, 90), NULL, 'a register far from its next update waits');
UPDATE register_published
   SET register = jsonb_set(jsonb_set(register, '{next_update_unix}',
                                      to_jsonb(floor(extract(epoch FROM now() + interval '10 days')))),
                            '{banks,0,keys}',
                            jsonb_build_array(jsonb_build_object('public_key', repeat('07', 32),
                                                                 'not_after_unix', 1),
                                              register->'banks'->0->'keys'->0))
 WHERE serial = 1;
SELECT is((tb_register_refresh_due(45, 90)->>'serial')::int, 2,
          'one whose next update is near goes out again as the next serial');
SELECT is(tb_register_refresh_due(45, 90)->'banks'->0->'keys',
          (SELECT jsonb_build_array(register->'banks'->0->'keys'->1) FROM register_published
            WHERE serial = 1),
          'without the keys whose window has ended');
SELECT finish();
ROLLBACK;
