-- A bank runs the register's banks as its peers: each one listed but
-- itself and those its config names, with the register's default exposure
-- limit or its own; removed when the register no longer lists it, and
-- back when it does again; exchange_with narrows whom hours, directory and
-- contacts go to.
BEGIN;
SELECT plan(16);

UPDATE fed_limits SET bank_id = 'dorset', role = 'bank';
SELECT tb_fed_peers(ARRAY['national'], ARRAY['observer'], ARRAY[0::bigint]);

CREATE FUNCTION pg_temp.hold(serial bigint, ids text[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO fed_register (serial, signed, register, from_peer)
    SELECT serial, '\x00', jsonb_build_object('serial', serial, 'banks',
               (SELECT jsonb_agg(jsonb_build_object('id', id, 'kind',
                                     CASE WHEN id = 'national' THEN 'observer' ELSE 'bank' END))
                  FROM unnest(ids) id)), 'national'
    ON CONFLICT (id) DO UPDATE SET serial = EXCLUDED.serial, register = EXCLUDED.register
$$;
CREATE FUNCTION pg_temp.floor_of(bank text) RETURNS bigint LANGUAGE sql AS $$
    SELECT a.floor_minutes FROM fed_peers p JOIN accounts a ON a.id = p.clearing_account
     WHERE p.peer = bank
$$;

SELECT is(tb_register_peers()->'peers', '[]', 'with no register held, no peer comes of one');

SELECT pg_temp.hold(1, ARRAY['national', 'colchester', 'westminster', 'dorset']);
SELECT is((SELECT jsonb_agg(p->>'peer' ORDER BY p->>'peer')
             FROM jsonb_array_elements(tb_register_peers()->'peers') p),
          '["colchester", "westminster"]',
          'every bank listed is a peer, but this one and the config''s');
SELECT results_eq($$SELECT peer, source FROM fed_peers ORDER BY peer$$,
                  $$VALUES ('colchester'::text, 'register'::text),
                           ('national', 'config'), ('westminster', 'register')$$,
                  'each says where it came from');
SELECT is(pg_temp.floor_of('colchester'), -6000::bigint,
          'a register peer owes at most the default exposure limit');

SELECT tb_fed_limits_set('{"register_exposure_limit": 3000, "register_limits": {"colchester": 1200}}');
SELECT is(pg_temp.floor_of('colchester'), -1200::bigint, 'or its own limit, from the config');
SELECT is(pg_temp.floor_of('westminster'), -3000::bigint, 'and the default follows the config');

-- exchange_with: Westminster's shared items go, and nothing new goes there.
INSERT INTO dir_remote (peer, handle, kind, category, text, expires_on, version, tsv)
VALUES ('westminster', 'w1', 'offer', 'gardening', 'Weeding', current_date + 30, 1, '');
SELECT tb_fed_limits_set('{"exchange_with": ["colchester"]}');
SELECT results_eq($$SELECT peer, exchanges FROM fed_peers WHERE kind = 'bank' ORDER BY peer$$,
                  $$VALUES ('colchester'::text, true), ('westminster', false)$$,
                  'exchange_with names whom hours are exchanged with');
SELECT is((SELECT count(*) FROM dir_remote WHERE peer = 'westminster'), 0::bigint,
          'and the directory of a bank not exchanged with is not kept');
SELECT is(tb_not_exchanging_text('westminster'),
          'this bank exchanges no hours with westminster: it is not in [federation] exchange_with',
          'the reason says why');
SELECT tb_fed_limits_set('{"exchange_with": null}');

-- Removed from the register, then back.
SELECT pg_temp.hold(2, ARRAY['national', 'colchester', 'dorset']);
SELECT is((SELECT jsonb_agg(jsonb_build_array(p->>'peer', p->'removed') ORDER BY p->>'peer')
             FROM jsonb_array_elements(tb_register_peers()->'peers') p),
          '[["colchester", false], ["westminster", true]]',
          'a bank no longer listed goes, and is shown as removed');
SELECT results_eq($$SELECT removed_at IS NOT NULL, exchanges FROM fed_peers
                     WHERE peer = 'westminster'$$,
                  $$VALUES (true, false)$$, 'it is removed, and nothing new goes to it');
SELECT is(tb_not_exchanging_text('westminster'),
          'this bank exchanges no hours with westminster: it is no longer in the network''s register',
          'and the reason says so');
SELECT pg_temp.hold(3, ARRAY['national', 'colchester', 'westminster', 'dorset']);
SELECT tb_register_peers();
SELECT results_eq($$SELECT removed_at IS NULL, exchanges, source FROM fed_peers
                     WHERE peer = 'westminster'$$,
                  $$VALUES (true, true, 'register'::text)$$, 'listed again, it is a peer again');

-- A register that does not list this bank: it is no member, and no bank of
-- it is a peer.
SELECT pg_temp.hold(4, ARRAY['national', 'colchester', 'westminster']);
SELECT is((SELECT jsonb_agg(p->>'peer' ORDER BY p->>'peer')
             FROM jsonb_array_elements(tb_register_peers()->'peers') p
            WHERE NOT (p->>'removed')::boolean),
          NULL, 'a bank the register does not list has none of its banks as peers');
SELECT pg_temp.hold(5, ARRAY['national', 'colchester', 'westminster', 'dorset']);
SELECT tb_register_peers();

-- A bank the config names stays the config's.
SELECT tb_fed_peers(ARRAY['national', 'colchester'], ARRAY['observer', 'bank'], ARRAY[0, 600::bigint]);
SELECT tb_register_peers();
SELECT results_eq($$SELECT source, pg_temp.floor_of('colchester') FROM fed_peers
                     WHERE peer = 'colchester'$$,
                  $$VALUES ('config'::text, -600::bigint)$$,
                  'the config''s word stands over the register''s');
-- A bank the config named, and now only the register lists, stays a peer
-- with its directory: it is the register's.
INSERT INTO dir_remote (peer, handle, kind, category, text, expires_on, version, tsv)
VALUES ('colchester', 'c1', 'offer', 'lifts', 'Lifts', current_date + 30, 1, '');
SELECT tb_fed_peers(ARRAY['national'], ARRAY['observer'], ARRAY[0::bigint]);
SELECT tb_register_peers();
SELECT results_eq($$SELECT p.source, p.removed_at IS NULL, count(r.handle)
                     FROM fed_peers p LEFT JOIN dir_remote r ON r.peer = p.peer
                    WHERE p.peer = 'colchester' GROUP BY p.source, p.removed_at$$,
                  $$VALUES ('register'::text, true, 1::bigint)$$,
                  'a bank the config no longer names but the register lists keeps its directory');
SELECT finish();
ROLLBACK;
