-- A peer's words are kept only with a record that holds them (the rules'
-- tb_inbox_kept): a claim or contact refused on arrival, one sent again,
-- or an answer to one already decided keeps no words, and its message is
-- kept redacted to its hash, as an erasure leaves it. The messages kept
-- before this lose such words now: an item's words stay only when it is
-- the first in its message with its id, a record of a member not erased
-- holds it, and that record names this message as the one that carried it.
--
-- A claim or contact refused on arrival that named a member of ours is
-- noted, without its words, so that the member's erasure tells the peer,
-- whose own copy of the request holds its words about them.
CREATE TABLE fed_refused_records (
    peer           text NOT NULL REFERENCES fed_peers (peer),
    record         text NOT NULL CHECK (record IN ('claim', 'contact')),
    id             text NOT NULL CHECK (length(id) BETWEEN 1 AND 80),
    member_account bigint NOT NULL,  -- our member it named
    noted_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, record, id)
);
CREATE INDEX fed_refused_records_member ON fed_refused_records (member_account);

INSERT INTO fed_refused_records (peer, record, id, member_account, noted_at)
SELECT i.peer, CASE WHEN i.body->>'kind' = 'xb_claim' THEN 'claim' ELSE 'contact' END,
       coalesce(x->>'claim_id', x->>'contact_id'),
       CASE WHEN i.body->>'kind' = 'xb_claim'
            THEN (SELECT account_id FROM members m
                   WHERE x->>'payer' ~ '^[0-9]{1,18}$' AND m.number = (x->>'payer')::bigint)
            ELSE (SELECT member_account FROM dir_items d WHERE d.handle = x->>'handle') END,
       i.applied_at
  FROM fed_inbox i
 CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(i.body->'items') = 'array'
                                      THEN i.body->'items' ELSE '[]' END) x
 WHERE i.body->>'kind' IN ('xb_claim', 'dir_contact') AND jsonb_typeof(x) = 'object'
   AND length(coalesce(x->>'claim_id', x->>'contact_id')) BETWEEN 1 AND 80
   AND NOT EXISTS (SELECT 1 FROM xb_claims c WHERE c.claim_id = x->>'claim_id')
   AND NOT EXISTS (SELECT 1 FROM dir_contacts c WHERE c.contact_id = x->>'contact_id')
   AND CASE WHEN i.body->>'kind' = 'xb_claim'
            THEN EXISTS (SELECT 1 FROM members m
                          WHERE x->>'payer' ~ '^[0-9]{1,18}$' AND m.number = (x->>'payer')::bigint)
            ELSE EXISTS (SELECT 1 FROM dir_items d WHERE d.handle = x->>'handle') END
ON CONFLICT DO NOTHING;

ALTER TABLE fed_inbox DISABLE TRIGGER USER;
WITH item AS (
    SELECT i.peer, i.seq, x, n, coalesce(x->>'claim_id', x->>'contact_id') AS id,
           i.body->>'kind' IN ('xb_claim', 'xb_claim_answer') AS claim,
           row_number() OVER (PARTITION BY i.peer, i.seq, coalesce(x->>'claim_id',
                                                                   x->>'contact_id')
                              ORDER BY n) AS nth
      FROM fed_inbox i
     CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(i.body->'items') = 'array'
                                          THEN i.body->'items' ELSE '[]' END)
                WITH ORDINALITY AS t(x, n)
     WHERE i.body->>'kind' IN ('xb_claim', 'xb_claim_answer', 'dir_contact',
                               'dir_contact_answer')),
judged AS (
    SELECT peer, seq, x, n,
           jsonb_typeof(x) = 'object' AND coalesce(x->>'message', '') <> ''
           AND NOT (nth = 1
                    AND CASE WHEN claim
                             THEN EXISTS (SELECT 1 FROM xb_claims c
                                           WHERE c.claim_id = item.id AND c.peer = item.peer
                                             AND c.received_seq = item.seq
                                             AND NOT EXISTS (
                                                 SELECT 1 FROM members m
                                                  WHERE m.account_id = c.member_account
                                                    AND m.erased_at IS NOT NULL))
                             ELSE EXISTS (SELECT 1 FROM dir_contacts c
                                           WHERE c.contact_id = item.id AND c.peer = item.peer
                                             AND c.received_seq = item.seq
                                             AND NOT EXISTS (
                                                 SELECT 1 FROM members m
                                                  WHERE m.account_id = c.member_account
                                                    AND m.erased_at IS NOT NULL))
                        END) AS out
      FROM item),
redacted AS (
    SELECT peer, seq,
           jsonb_agg(CASE WHEN out THEN x || '{"message": ""}' ELSE x END ORDER BY n) AS items
      FROM judged
     GROUP BY peer, seq
    HAVING bool_or(out))
UPDATE fed_inbox i SET body = jsonb_set(i.body, '{items}', r.items), envelope = ''
  FROM redacted r
 WHERE i.peer = r.peer AND i.seq = r.seq;
ALTER TABLE fed_inbox ENABLE TRIGGER USER;
