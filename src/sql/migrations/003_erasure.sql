-- Erasure reaches what a member's words were copied into: a contact's
-- message may be cleared, and a message to a peer that carried such words
-- but was not yet acknowledged waits here to be redacted once it is (until
-- then the peer may need it sent again).
ALTER TABLE dir_contacts ALTER COLUMN message DROP NOT NULL;

CREATE TABLE fed_redact_waiting (
    peer     text NOT NULL REFERENCES fed_peers (peer),
    seq      bigint NOT NULL,
    claims   text[] NOT NULL,
    contacts text[] NOT NULL,
    PRIMARY KEY (peer, seq)
);
