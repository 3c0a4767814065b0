-- What this bank lets a peer make it keep, and how long it keeps the proof
-- of what peers said: the daemon writes its config here at every start and
-- reload (tb_fed_limits_set), and the rules read it.
CREATE TABLE fed_limits (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    max_open_claims     int NOT NULL DEFAULT 1000 CHECK (max_open_claims >= 0),
    max_open_contacts   int NOT NULL DEFAULT 1000 CHECK (max_open_contacts >= 0),
    max_directory_items int NOT NULL DEFAULT 5000 CHECK (max_directory_items >= 0),
    inbox_keep_days     int NOT NULL DEFAULT 2192 CHECK (inbox_keep_days >= 30)
);
INSERT INTO fed_limits DEFAULT VALUES;

-- Open requests a peer has made here, counted per peer.
CREATE INDEX xb_claims_open_peer ON xb_claims (peer, side) WHERE state = 'open';
CREATE INDEX dir_contacts_open_peer ON dir_contacts (peer, side) WHERE state = 'open';
CREATE INDEX fed_inbox_applied ON fed_inbox (applied_at);
