-- [directory] search: words ranked by relevance, a common word ranked over a
-- bounded set of its matches and said to be broad, a browse newest first.
BEGIN;
SELECT plan(17);

SELECT tb_member_add('{"name": "Ann"}', 'test');
SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], ARRAY[100000]);

CREATE FUNCTION remote(n int, words text, days int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO dir_remote (peer, handle, kind, category, text, area, expires_on, version,
                            tsv, received_at)
    SELECT 'westminster', 'w' || words || g, 'offer', 'gardening', words, 'SW1',
           current_date + 30, g, tb_dir_tsv('offer', 'gardening', 'Gardening', words, NULL, 'SW1'),
           now() - days * interval '1 day'
      FROM generate_series(1, n) g
$$;
CREATE FUNCTION search(q text, area text DEFAULT NULL, off int DEFAULT 0) RETURNS jsonb
LANGUAGE sql AS $$ SELECT tb_dir_search(q, NULL, area, NULL, NULL, 'colchester', off, 50) $$;

SELECT remote(30, 'weeding', 2);
SELECT remote(1, 'weeding weeding hedges', 3);
SELECT tb_dir_add('offer', '{"member": 1, "category": "gardening", "text": "Weeding on Sundays",
                            "visibility": "bank"}', 'brenda', false);

SELECT is(search('weeding')->'items'->0->>'handle', 'wweeding weeding hedges1',
          'the item that says the word most ranks first');
SELECT is(jsonb_array_length(search('weeding')->'items'), 32,
          'every match is listed: ours and the peer''s');
SELECT is(search('weeding')->>'broad', 'false', 'a search with fewer matches than the bound is not broad');
SELECT is((SELECT count(*) FROM jsonb_array_elements(search('weeding')->'items') x
            WHERE x->>'bank' = 'colchester' AND x->>'member' = '1'), 1::bigint,
          'our own item comes with its member''s number');
SELECT is(search('hedges weeding')->'items'->0->>'handle', 'wweeding weeding hedges1',
          'all the words must match');
SELECT is(jsonb_array_length(search('weeding', 'SW1')->'items'), 31,
          'the area filters by prefix');

SELECT is(jsonb_array_length(search('weeding', 'SW2')->'items'), 0, 'and leaves out others');
SELECT is(jsonb_array_length(tb_dir_search('weeding', 'gardening', 's', NULL, 'offer', 'colchester',
                                           0, 50)->'items'), 31,
          'kind, category and area narrow together, the area in either case');
SELECT is(jsonb_array_length(tb_dir_search('weeding', 'lifts', NULL, NULL, NULL, 'colchester',
                                           0, 50)->'items'), 0, 'another category: none');
SELECT is(jsonb_array_length(tb_dir_search('weeding', 'no such', 'S''W', NULL, NULL,
                                           'colchester', 0, 50)->'items'), 0,
          'a category or area no item can hold matches nothing');
SELECT is(jsonb_array_length(search('area:SW1')->'items'), 0, 'words cannot ask for a key');

-- A common word: 2,500 of the peer's items say it.
SELECT remote(2500, 'mowing', 1);
SELECT is(search('mowing')->>'broad', 'true', 'more matches than are ranked: broad');
SELECT is(jsonb_array_length(search('mowing')->'items'), 50, 'a page of them');
SELECT is(search('mowing')->>'next_cursor', '50', 'and the next page');
SELECT is(search('mowing', NULL, 1950)->>'next_cursor', NULL,
          'the pages end with the ranked set');
SELECT is(search('weeding')->>'broad', 'false', 'a rarer word beside it is not broad');

-- No words: a browse, newest first, of every match.
SELECT is(tb_dir_search(NULL, 'gardening', NULL, 'westminster', NULL, 'colchester', 2500, 50)
            ->'items'->0->>'handle', 'wweeding1', 'a browse lists every match, newest first');

SELECT * FROM finish();
ROLLBACK;
