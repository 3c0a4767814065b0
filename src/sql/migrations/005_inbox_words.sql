-- A peer's words about a claim or contact that we keep no row for, or that
-- came again after the first: a claim or contact refused on arrival (no
-- such member, too many open, ...) is answered and not kept, and a second
-- answer to one already decided changes nothing, but the message that
-- carried the words stays in fed_inbox as proof. Each is noted here, with
-- the member of ours it named, so that an erasure finds the message and
-- redacts it; a note goes when its message is purged.
CREATE TABLE fed_inbox_words (
    peer           text NOT NULL REFERENCES fed_peers (peer),
    seq            bigint NOT NULL,        -- the message in fed_inbox
    record         text NOT NULL CHECK (record IN ('claim', 'contact')),
    id             text NOT NULL,          -- claim_id or contact_id
    member_account bigint,                 -- our member it named, when one
    PRIMARY KEY (peer, seq, record, id)
);
CREATE INDEX fed_inbox_words_id ON fed_inbox_words (peer, id);
CREATE INDEX fed_inbox_words_member ON fed_inbox_words (member_account)
    WHERE member_account IS NOT NULL;

-- The messages already kept, found once.
INSERT INTO fed_inbox_words (peer, seq, record, id, member_account)
SELECT DISTINCT i.peer, i.seq, 'claim', x->>'claim_id',
       CASE WHEN c.claim_id IS NOT NULL THEN c.member_account
            ELSE (SELECT account_id FROM members m
                   WHERE x->>'payer' ~ '^[0-9]{1,18}$' AND m.number = (x->>'payer')::bigint)
       END
  FROM fed_inbox i
 CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(i.body->'items') = 'array'
                                      THEN i.body->'items' ELSE '[]' END) x
  LEFT JOIN xb_claims c ON c.claim_id = x->>'claim_id' AND c.peer = i.peer
 WHERE i.body->>'kind' IN ('xb_claim', 'xb_claim_answer')
   AND coalesce(x->>'message', '') <> '' AND length(x->>'claim_id') <= 80
   AND c.received_seq IS DISTINCT FROM i.seq
   AND (i.body->>'kind' = 'xb_claim' OR c.claim_id IS NOT NULL);
INSERT INTO fed_inbox_words (peer, seq, record, id, member_account)
SELECT DISTINCT i.peer, i.seq, 'contact', x->>'contact_id',
       CASE WHEN c.contact_id IS NOT NULL THEN c.member_account
            ELSE (SELECT member_account FROM dir_items d WHERE d.handle = x->>'handle')
       END
  FROM fed_inbox i
 CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(i.body->'items') = 'array'
                                      THEN i.body->'items' ELSE '[]' END) x
  LEFT JOIN dir_contacts c ON c.contact_id = x->>'contact_id' AND c.peer = i.peer
 WHERE i.body->>'kind' IN ('dir_contact', 'dir_contact_answer')
   AND coalesce(x->>'message', '') <> '' AND length(x->>'contact_id') <= 80
   AND c.received_seq IS DISTINCT FROM i.seq
   AND (i.body->>'kind' = 'dir_contact' OR c.contact_id IS NOT NULL);
