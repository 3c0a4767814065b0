-- Erasure reaches what a member's words were copied into. A contact's
-- message may be cleared. Each claim and contact knows the messages that
-- carried words about it, so that an erasure redacts those and reads no
-- other: sent_seq, which was the requesting side's message, is now also
-- the deciding side's answer (a broker's words), and received_seq is the
-- peer's message (its request, or its broker's answer). A message to a
-- peer not yet acknowledged waits in fed_redact_waiting to be redacted
-- once it is (until then the peer may need it sent again).
ALTER TABLE dir_contacts ALTER COLUMN message DROP NOT NULL;
ALTER TABLE xb_claims ADD COLUMN received_seq bigint;
ALTER TABLE dir_contacts ADD COLUMN received_seq bigint;

CREATE TABLE fed_redact_waiting (
    peer     text NOT NULL REFERENCES fed_peers (peer),
    seq      bigint NOT NULL,
    claims   text[] NOT NULL,
    contacts text[] NOT NULL,
    PRIMARY KEY (peer, seq)
);

-- The messages already kept, found once. A decided claim or contact never
-- changes but for this, so its guard stands aside meanwhile.
ALTER TABLE xb_claims DISABLE TRIGGER USER;
ALTER TABLE dir_contacts DISABLE TRIGGER USER;
UPDATE xb_claims c SET received_seq = m.seq
  FROM (SELECT i.peer, i.seq, x->>'claim_id' AS id
          FROM fed_inbox i, jsonb_array_elements(i.body->'items') x
         WHERE i.body->>'kind' IN ('xb_claim', 'xb_claim_answer')) m
 WHERE c.peer = m.peer AND c.claim_id = m.id;
UPDATE dir_contacts c SET received_seq = m.seq
  FROM (SELECT i.peer, i.seq, x->>'contact_id' AS id
          FROM fed_inbox i, jsonb_array_elements(i.body->'items') x
         WHERE i.body->>'kind' IN ('dir_contact', 'dir_contact_answer')) m
 WHERE c.peer = m.peer AND c.contact_id = m.id;
UPDATE xb_claims c SET sent_seq = m.seq
  FROM (SELECT o.peer, o.seq, x->>'claim_id' AS id
          FROM fed_outbox o, jsonb_array_elements(o.body::jsonb->'items') x
         WHERE o.body::jsonb->>'kind' = 'xb_claim_answer') m
 WHERE c.side = 'payer' AND c.peer = m.peer AND c.claim_id = m.id;
UPDATE dir_contacts c SET sent_seq = m.seq
  FROM (SELECT o.peer, o.seq, x->>'contact_id' AS id
          FROM fed_outbox o, jsonb_array_elements(o.body::jsonb->'items') x
         WHERE o.body::jsonb->>'kind' = 'dir_contact_answer') m
 WHERE c.side = 'provider' AND c.peer = m.peer AND c.contact_id = m.id;
ALTER TABLE xb_claims ENABLE TRIGGER USER;
ALTER TABLE dir_contacts ENABLE TRIGGER USER;
