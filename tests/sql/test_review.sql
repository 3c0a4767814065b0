-- [directory] review: an item shared with the federation leaves the bank
-- only once a broker approved it as it reads, and waits meanwhile.
BEGIN;
SELECT plan(16);

SELECT tb_member_add('{"name": "Ann"}', 'test');
SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], ARRAY[100000]);

CREATE FUNCTION page_items() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(x - 'version' - 'expires_on' ORDER BY x->>'version')
      FROM jsonb_array_elements(tb_dir_page('westminster', 0, 100)::jsonb->'items') x
$$;

SELECT is(tb_dir_add('offer', '{"member": 1, "category": "lifts", "text": "Lifts to the GP",
                                "visibility": "federation"}', 'brenda', true)->>'review',
          'waiting', 'a shared offer waits for review');
SELECT is(page_items(), jsonb_build_array(jsonb_build_object(
              'handle', (SELECT handle FROM dir_items WHERE id = 1), 'withdrawn', true)),
          'peers see nothing of it');
SELECT is(jsonb_array_length(tb_dir_list('offer', NULL, 'waiting', NULL, 10)->'items'), 1,
          'it is listed as waiting');
SELECT is(tb_on_dir_contact('westminster', jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('contact_id', 'westminster:k1', 'message', 'hello',
                                 'handle', (SELECT handle FROM dir_items WHERE id = 1)))),
              1)->'dir_contact_answer'->0->>'reason',
          'item_not_found', 'nor can it be asked for');
SELECT is(tb_dir_approve('offer', 1, 'bob', (SELECT version FROM dir_items WHERE id = 1))->>'approved_by', 'bob', 'a broker approves it');
SELECT is(page_items()->0->>'text', 'Lifts to the GP', 'and peers see it');
SELECT is(jsonb_array_length(tb_dir_list('offer', NULL, 'waiting', NULL, 10)->'items'), 0,
          'nothing waits');
SELECT throws_ok($$SELECT tb_dir_approve('offer', 1, 'bob', NULL)$$, 'TB000', 'item_not_waiting',
                 'approving twice is refused');
SELECT is(tb_dir_update('offer', 1, jsonb_build_object('expires_on', current_date + 10),
                        'brenda', true)->>'review',
          'approved', 'a new date keeps the approval: peers see the same words');
SELECT is(tb_dir_update('offer', 1, '{"text": "Lifts to the GP, Mondays"}', 'brenda', true)
              ->>'review', 'waiting', 'new words wait for review again');
SELECT is(page_items()->0->>'withdrawn', 'true', 'and peers lose the old words meanwhile');
SELECT throws_ok(format($$SELECT tb_dir_approve('offer', 1, 'bob', %s)$$,
                        (SELECT version FROM dir_items WHERE id = 1) - 1),
                 'TB000', 'item_changed',
                 'a broker who read the item before its change cannot approve it unseen');
SELECT is((SELECT approved_at FROM dir_items WHERE id = 1), NULL, 'it still waits');
SELECT is(tb_dir_add('request', '{"member": 1, "category": "lifts", "text": "A lift",
                                  "visibility": "federation"}', 'brenda', false)->>'review',
          'approved', 'with review off, a shared item is approved by whoever wrote it');
SELECT is(tb_dir_add('request', '{"member": 1, "category": "lifts", "text": "A lift"}',
                     'brenda', true)->>'review',
          NULL, 'an item kept in the bank needs no review');
SELECT throws_ok($$SELECT tb_dir_approve('request', 3, 'bob', NULL)$$, 'TB000', 'item_not_waiting',
                 'and cannot be approved');
SELECT finish();
ROLLBACK;
