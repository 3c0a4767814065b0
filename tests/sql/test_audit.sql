-- The audit: each check fails when the data it guards is changed behind
-- the rules' back, as a faulty tool with database access might, names what
-- it found, and the other checks stay ok. Each corruption is undone by
-- rolling back to the savepoint before it.
BEGIN;
SELECT plan(17);

SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
  FROM generate_series(1, 2) g;
SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], ARRAY[600]);
SELECT tb_exchange_record('{"payer": 1, "earner": 2, "minutes": 120, "category": "lifts",
                            "idempotency_key": "e1"}', 'test', -600);
SELECT tb_xb_record('{"bank": "westminster", "payer": 2, "earner": 5, "minutes": 30,
                      "category": "lifts", "idempotency_key": "x1"}', 'test', -600, 'colchester');

-- The invariants that fail, each with what it found.
CREATE FUNCTION pg_temp.failing() RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(c->>'invariant', c->'failing'), '{}')
      FROM jsonb_array_elements(tb_audit(-600, -100000)->'checks') c
     WHERE NOT (c->>'ok')::boolean
$$;
CREATE FUNCTION pg_temp.acct(num bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT account_id FROM members WHERE number = num
$$;

SELECT is(pg_temp.failing(), '{}', 'the books as the rules left them pass');

SAVEPOINT s;
UPDATE accounts SET balance_minutes = balance_minutes + 7 WHERE id = pg_temp.acct(1);
SELECT is(pg_temp.failing()->'1', '[]', 'a balance changed alone: the sum is not zero');
SELECT is(pg_temp.failing()->'2', '["member 1: balance -113, journal -120"]',
          'and its journal disagrees');
ROLLBACK TO s;

UPDATE accounts SET balance_minutes = balance_minutes + 30 WHERE id = pg_temp.acct(1);
UPDATE accounts SET balance_minutes = balance_minutes - 30 WHERE id = pg_temp.acct(2);
SELECT is(pg_temp.failing(), '{"2": ["member 1: balance -90, journal -120", "member 2: balance 90, journal 120"]}',
          'balances that still sum to zero, but not to their journals');
ROLLBACK TO s;

UPDATE accounts SET pending_minutes = 45 WHERE id = pg_temp.acct(1);
SELECT is(pg_temp.failing(), '{"3": ["member 1: 45m pending, reservations 0h"]}',
          'a pending debit no reservation explains');
ROLLBACK TO s;

UPDATE accounts SET pending_minutes = 0 WHERE id = pg_temp.acct(2);
SELECT is(pg_temp.failing(), '{"3": ["member 2: 0h pending, reservations 30m"]}',
          'a reservation in flight with its pending debit gone');
ROLLBACK TO s;

UPDATE accounts SET floor_minutes = -60 WHERE id = pg_temp.acct(1);
SELECT is(pg_temp.failing(), '{"3": ["member 1: balance -2h with 0h pending, floor -1h"]}',
          'a balance below its floor');
ROLLBACK TO s;

ALTER TABLE transfers DISABLE TRIGGER transfers_post;
INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, performed_on,
                       recorded_by, idempotency_key, fingerprint)
     VALUES ('exchange', pg_temp.acct(1), 999999, 5, 'x', current_date, 't', 'bad', 'x');
SELECT ok(pg_temp.failing()->'2' ? 'transfer 2: no account 999999',
          'a transfer to an account that is not there');
ROLLBACK TO s;

ALTER TABLE xb_exchanges DISABLE TRIGGER xb_decided;
UPDATE xb_exchanges SET member_account = 999999, state = 'pending';
SELECT ok(pg_temp.failing()->'2' ? 'cross-bank exchange colchester:1: no account 999999',
          'a cross-bank exchange of an account that is not there');
ROLLBACK TO s;

ALTER TABLE xb_exchanges DISABLE TRIGGER xb_decided;
UPDATE xb_exchanges SET transfer_id = 999999;
SELECT ok(pg_temp.failing()->'2' ? 'cross-bank exchange colchester:1: no transfer 999999',
          'one that names a transfer that is not there');
ROLLBACK TO s;

ALTER TABLE xb_exchanges DISABLE TRIGGER xb_decided;
UPDATE xb_exchanges SET peer = 'nowhere';
SELECT ok(pg_temp.failing()->'2' ? 'cross-bank exchange colchester:1: no peer nowhere',
          'one with a peer that is not there');
ROLLBACK TO s;

SELECT is(pg_temp.failing(), '{}', 'each corruption undone, the books pass again');

-- The clearing positions: what is in flight with each peer.
SELECT is((tb_fed_audit()->'peers'->0->>'in_flight')::bigint, 30::bigint,
          'a reservation not yet answered is in flight');
SELECT is((tb_fed_audit()->'peers'->0->>'position')::bigint, 0::bigint,
          'and not yet in the clearing position');
UPDATE xb_exchanges SET proposed_seq = 5 WHERE xid = 'colchester:1';
SELECT tb_on_xb_answer('westminster', '{"items": [{"xid": "colchester:1", "accepted": true}]}', 1);
SELECT is((tb_fed_audit()->'peers'->0->>'position')::bigint, 30::bigint,
          'settled, it is');
SELECT tb_fed_peer_clearing('westminster', 0, 4, 0);
SELECT is((tb_fed_audit()->'peers'->0->>'in_flight')::bigint, 30::bigint,
          'a checkpoint the peer read before it applied our proposal: still in flight to it');
UPDATE fed_sealed SET out_sealed = 5 WHERE peer = 'westminster';  -- as sent
SELECT tb_fed_peer_clearing('westminster', -30, 5, 1);
SELECT is((tb_fed_audit()->'peers'->0->>'in_flight')::bigint, 0::bigint,
          'and not once the peer says it had applied it');

SELECT * FROM finish();
ROLLBACK;
