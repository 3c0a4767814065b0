-- A restored bank takes back from its peers what it sent them after its
-- restored point (recovery.sql).

-- Each restore, recorded at the first start after it (timebankd --restore
-- leaves its stamp for that start): every number this bank gives from then
-- on starts past those the lost history may have given, and each peer's
-- stream is held until the peer's hello says whether this bank is behind.
CREATE TABLE restores (
    stamp        text PRIMARY KEY,                  -- YYYYMMDDTHHMMSSZ of the restore
    target       text,                              -- --to, or NULL: the newest point archived
    restored_at  timestamptz NOT NULL DEFAULT now(),
    member_floor bigint NOT NULL,                   -- new members are numbered past it
    register_floor bigint NOT NULL DEFAULT 0        -- the national body: registers too
);

ALTER TABLE fed_peers ADD COLUMN recovered_at timestamptz; -- our messages to it held again

-- Our answers to a peer's requests, taken back from it: the peer applied
-- them, so when it sends the requests again each is decided as it was
-- answered, not afresh.
CREATE TABLE fed_recovered_answers (
    peer   text NOT NULL REFERENCES fed_peers (peer),
    id     text NOT NULL,                           -- the xid answered
    seq    bigint NOT NULL,                         -- the message that carried the answer
    answer jsonb NOT NULL,
    PRIMARY KEY (peer, id)
);

-- What a recovery could not bring back, by peer and sequence range.
CREATE TABLE fed_recovery_lost (
    id       bigserial PRIMARY KEY,
    peer     text NOT NULL REFERENCES fed_peers (peer),
    seq_from bigint NOT NULL,
    seq_to   bigint NOT NULL,
    what     text NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fed_recovery_lost_peer ON fed_recovery_lost (peer, seq_from);
