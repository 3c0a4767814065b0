-- The national body's activity report: what a bank counts, by the rules
-- every bank counts by, and the disclosure control applied before it
-- leaves (counts of 1 to 7 people suppressed, others rounded to 5).
BEGIN;
SELECT plan(21);

-- The rule's boundaries.
SELECT is(ARRAY(SELECT tb_disclose(n, 8, 5) FROM unnest(ARRAY[0, 1, 7, 8, 12, 13, 17, 18]) n),
          ARRAY[0, NULL, NULL, 10, 10, 15, 15, 20]::bigint[],
          '0 stays 0; 1 to 7 are suppressed; 8 and more go to the nearest 5');
SELECT is(tb_disclose(13, 1, 1), 13::bigint, 'a bank may set another rule');
SELECT is(tb_disclose_cells('[{"k": "a", "members": 12, "minutes": 700},
                              {"k": "b", "members": 3, "minutes": 90},
                              {"k": "c", "members": 9, "minutes": 400},
                              {"k": "d", "members": 0, "minutes": 0}]', 8, 5),
          '[{"k": "a", "members": 10, "minutes": 700},
            {"k": "b", "members": null, "minutes": null},
            {"k": "c", "members": 10, "minutes": null},
            {"k": "d", "members": 0, "minutes": 0}]',
          'a cell of 3 people loses its hours, and so does the smallest other, so that the '
          'total less the rest cannot give them');
SELECT is(tb_disclose_cells('[{"members": 2, "minutes": 90, "given_minutes": 30},
                              {"members": 4, "minutes": 60, "given_minutes": 10},
                              {"members": 20, "minutes": 900, "given_minutes": 10}]', 8, 5),
          '[{"members": null, "minutes": null, "given_minutes": null},
            {"members": null, "minutes": null, "given_minutes": null},
            {"members": 20, "minutes": 900, "given_minutes": 10}]',
          'two suppressed cells hide each other; every figure in minutes goes with its count');

-- Districts.
SELECT is(ARRAY[tb_postcode_district('12 Mill Lane, Colchester CO2 7AB'),
                tb_postcode_district('Flat 2, 9 High St, sw1a 1aa.'),
                tb_postcode_district('CO2 7AB is where I lived, now Leeds'),
                tb_postcode_district(NULL)],
          ARRAY['CO2', 'SW1A', NULL, NULL],
          'a district is read from a postcode that ends the address, and nothing else');

-- A bank: a GP practice and a housing association that refer people in;
-- 20 members who joined in October 2026.
SELECT tb_member_add('{"name": "Rushey Green GP", "kind": "organisation",
                       "org_kind": "gp_practice", "joined_on": "2026-01-05"}', 'test');
SELECT tb_member_add('{"name": "Estuary Housing", "kind": "organisation",
                       "org_kind": "housing", "joined_on": "2026-01-05"}', 'test');
SELECT tb_member_add(jsonb_build_object(
           'name', 'Member ' || g, 'joined_on', '2026-10-0' || (1 + g % 9),
           'address', CASE WHEN g <= 14 THEN g || ' Mill Lane, Colchester CO2 7AB' END,
           'district', CASE WHEN g BETWEEN 15 AND 17 THEN 'CO4' END,
           'referred_by', CASE WHEN g <= 12 THEN 1 WHEN g <= 15 THEN 2 END), 'test')
  FROM generate_series(3, 22) g;
SELECT throws_ok($$SELECT tb_member_add('{"name": "P", "org_kind": "housing"}', 'test')$$,
                 'TB000', 'invalid_field', 'only an organisation has a kind of referrer');
SELECT is(tb_member_get(3)->>'district', 'CO2', 'a member''s district, read from the address');
SELECT is(tb_member_get(16)->>'district', 'CO4', 'or as the coordinator gave it');

-- November: twelve lifts given (members 3 to 14, to member 15), three
-- gardening sessions (15 to 17, to member 3), five shopping trips (18 to
-- 22, to member 4); one more lift, recorded twice and reversed; a grant.
SELECT tb_exchange_record(jsonb_build_object(
           'payer', CASE WHEN g <= 14 THEN 15 WHEN g <= 17 THEN 3 ELSE 4 END, 'earner', g,
           'minutes', 60,
           'category', CASE WHEN g <= 14 THEN 'lifts' WHEN g <= 17 THEN 'gardening'
                            ELSE 'shopping' END,
           'performed_on', '2026-11-1' || (g % 10), 'idempotency_key', 'x' || g),
           'test', -100000)
  FROM generate_series(3, 22) g;
SELECT tb_exchange_record('{"payer": 16, "earner": 3, "minutes": 600, "category": "lifts",
                            "performed_on": "2026-11-20", "idempotency_key": "twice"}',
                          'test', -100000);
SELECT tb_reverse((SELECT id FROM transfers WHERE idempotency_key = 'twice'),
                  '{"reason": "recorded twice", "idempotency_key": "r"}', 'test', -100000,
                  -100000);
SELECT tb_grant('{"member": 3, "minutes": 180, "performed_on": "2026-11-02",
                  "idempotency_key": "g"}', 'test', -100000);
-- A lift Ann (member 3) gave a Westminster member, settled here.
SELECT tb_fed_peers(ARRAY['westminster', 'national'], ARRAY['bank', 'observer'],
                    ARRAY[6000, 0]);
SELECT tb_on_xb_propose('westminster', '{"items": [{"xid": "westminster:1", "earner": 3,
                            "minutes": 45, "category": "lifts",
                            "performed_on": "2026-11-25"}]}', 1);

CREATE TEMP TABLE r AS SELECT tb_network_report('2026-11-01', 8, 5) AS r;
SELECT is((SELECT r->'members' FROM r),
          '{"person": {"total": 20, "active": 20, "new": 0, "left": 0},
            "organisation": {"total": null, "active": 0, "new": 0, "left": 0}}',
          'members: 20 on the books and active; two organisations, suppressed');
SELECT is((SELECT r->'hours'->'within' FROM r), '{"members": 20, "minutes": 1200}',
          'hours within the bank: the twenty that stand, not the reversed one');
SELECT is((SELECT r->'hours'->'grants' FROM r), '{"members": null, "minutes": null}',
          'the grant is counted apart, and one member''s hours are suppressed with them');
SELECT is((SELECT r->'hours'->'peers' FROM r),
          '[{"bank": "westminster", "given": {"members": null, "minutes": null},
                                    "received": {"members": 0, "minutes": 0}}]',
          'hours with each peer bank (not the national body), one member''s suppressed');
SELECT is((SELECT r->'hours'->'categories' FROM r),
          '[{"category": "gardening", "members": null, "minutes": null},
            {"category": "lifts", "members": 10, "minutes": 765},
            {"category": "shopping", "members": null, "minutes": null}]',
          'by category, at the bank of whoever gave the hour, the cross-bank lift too');
SELECT is((SELECT r->'hours'->'areas' FROM r),
          '[{"district": "CO2", "members": 10, "minutes": 765},
            {"district": "CO4", "members": null, "minutes": null},
            {"district": "unknown", "members": null, "minutes": null}]',
          'by the giver''s district; no postcode leaves');
SELECT is((SELECT r->'referrals' FROM r),
          '[{"kind": "gp_practice", "received": 0, "members": 10, "active": 10, "minutes": null,
             "given_minutes": null, "received_minutes": null},
            {"kind": "social_services", "received": 0, "members": 0, "active": 0, "minutes": 0,
             "given_minutes": 0, "received_minutes": 0},
            {"kind": "mental_health", "received": 0, "members": 0, "active": 0, "minutes": 0,
             "given_minutes": 0, "received_minutes": 0},
            {"kind": "housing", "received": 0, "members": null, "active": null, "minutes": null,
             "given_minutes": null, "received_minutes": null},
            {"kind": "other", "received": 0, "members": 0, "active": 0, "minutes": 0,
             "given_minutes": 0, "received_minutes": 0}]',
          'referrals by the kind of organisation: three housing referrals are suppressed, '
          'and so are the GP practice''s hours, which would give theirs away');
SELECT is((SELECT r->'clearing' FROM r),
          '[{"bank": "westminster", "position_minutes": -45, "in_flight": 0,
             "applied_seq": 0, "acked_seq": 0}]',
          'the position with each peer at the month''s end');
SELECT is((SELECT count(*) FROM r, unnest(ARRAY['members', 'total', 'active', 'new', 'left',
                                                  'received']) k,
                  jsonb_path_query(r, ('strict $.**.' || k)::jsonpath) c
            WHERE jsonb_typeof(c) = 'number' AND (c::text)::bigint % 5 <> 0), 0::bigint,
          'every count of people is 0, suppressed or a multiple of 5');
SELECT ok((SELECT r::text FROM r) !~ 'Member|Mill Lane|7AB|Rushey',
          'nothing member-level is in it');

-- October: members joined, and nothing was exchanged.
SELECT is(tb_network_report('2026-10-15', 8, 5)->'members'->'person',
          '{"total": 20, "active": 0, "new": 20, "left": 0}', 'a month with no activity');
SELECT is(tb_network_report('2026-09-01', 8, 5)->'hours'->'within',
          '{"members": 0, "minutes": 0}', 'and one before anyone joined');

-- A member who leaves is counted in the month they left.
SELECT tb_member_update(22, '{"status": "left"}', 'test', 0);
SELECT is(tb_member_get(22)->>'left_on', current_date::text, 'the day they left is kept');
SELECT finish();
ROLLBACK;
