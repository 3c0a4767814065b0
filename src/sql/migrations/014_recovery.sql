-- A bank put back to an earlier point (a restore) learns from a peer's hello
-- that the peer applied more of its messages than it holds: from then until
-- it holds them again, nothing new is sealed for that peer, so that no
-- sequence ever names two messages (invariant 7).
ALTER TABLE fed_peers
    ADD COLUMN recover_from bigint,         -- the first of our messages we lack
    ADD COLUMN recover_to bigint,           -- the last the peer applied
    ADD COLUMN recovering_since timestamptz;
