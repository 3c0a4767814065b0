-- Migration 1: the baseline. Tables, indexes, constraints and the rows every
-- bank starts with; the functions, views and triggers that hold the rules
-- are in src/sql/*.sql, applied again at every start.
--
-- Released migrations never change: the daemon records each one's SHA-256
-- and refuses to start if the one it ships differs. A change to a table is
-- a new migration after this one.

-- ---- the ledger -------------------------------------------------------------

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('member', 'organisation', 'community', 'clearing')),
    -- NULL: the bank's default floor (from the config) applies.
    floor_minutes   bigint CHECK (floor_minutes <= 0),
    -- A cache of the journal; the audit proves it equals the sum of entries.
    balance_minutes bigint NOT NULL DEFAULT 0,
    -- Debits reserved but not yet posted (cross-bank exchanges in flight).
    pending_minutes bigint NOT NULL DEFAULT 0 CHECK (pending_minutes >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_one_community ON accounts (kind) WHERE kind = 'community';
INSERT INTO accounts (kind) VALUES ('community');

-- Organisations (a GP practice, a youth centre, a museum taking time
-- credits) are members of kind 'organisation': same numbers, same exchanges,
-- their own floor. referred_by names the organisation that referred a person.
-- An erased member keeps the row, and so the books, without the person.
CREATE TABLE members (
    number       bigint PRIMARY KEY CHECK (number > 0),
    account_id   bigint NOT NULL UNIQUE REFERENCES accounts (id),
    name         text,
    email        text,
    phone        text,
    address      text,
    skills       text,
    needs        text,
    availability text,
    notes        text, -- confidential: special needs, accessibility
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'left')),
    joined_on    date NOT NULL DEFAULT current_date,
    created_by   text NOT NULL,
    updated_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'organisation')),
    referred_by  bigint REFERENCES members (number),
    erased_at    timestamptz,
    erased_by    text,
    erase_reason text,
    CONSTRAINT members_named CHECK (name IS NOT NULL OR erased_at IS NOT NULL)
);
CREATE INDEX members_status ON members (status, number);
CREATE INDEX members_referred_by ON members (referred_by) WHERE referred_by IS NOT NULL;

-- Every movement of hours. Append-only (ledger.sql's triggers); the journal
-- (the view entries) is each transfer's debit and credit.
--
-- The accounts a transfer names have no foreign keys: only the ledger's
-- functions write transfers, to accounts found through their members, and
-- accounts are never deleted. The audit proves the links for the whole
-- journal, which costs less than a lookup per account per exchange.
CREATE TABLE transfers (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('exchange', 'grant', 'reversal')),
    payer_account   bigint NOT NULL,
    earner_account  bigint NOT NULL,
    minutes         bigint NOT NULL CHECK (minutes > 0),
    category        text NOT NULL,
    description     text,
    performed_on    date NOT NULL,
    recorded_by     text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The transfer this reverses: at most once (transfers_reverses).
    reverses        bigint REFERENCES transfers (id),
    reason          text,
    -- The exchanges of one group activity share the request's key.
    group_key       text,
    xb_id           bigint,
    CHECK (payer_account <> earner_account)
);
CREATE INDEX transfers_payer ON transfers (payer_account, id);
CREATE INDEX transfers_earner ON transfers (earner_account, id);
CREATE INDEX transfers_group ON transfers (group_key) WHERE group_key IS NOT NULL;
CREATE INDEX transfers_performed ON transfers (performed_on);
-- Partial, so that only the transfers that name one are in it.
CREATE UNIQUE INDEX transfers_reverses ON transfers (reverses) WHERE reverses IS NOT NULL;

-- ---- the channel: one ordered, hash-chained, exactly-once stream per ------
-- ---- direction per peer --------------------------------------------------
--
-- Outbound: a change writes its message body into fed_outbox in its own
-- transaction (tb_fed_enqueue). The daemon then seals each row once, in
-- order: it signs the envelope, chaining it to the previous one, and stores
-- the exact bytes, so a resend after any crash sends the same message.
-- Inbound: tb_fed_apply applies messages in order and records the sequence
-- and chain head in the same transaction; anything at or below the applied
-- sequence is a duplicate and is skipped.

-- A peer's row is locked by an apply only when it answers proposals; what
-- sealing and acknowledging write has rows of its own (fed_sealed,
-- fed_acked), so that they do not wait behind applies.
CREATE TABLE fed_peers (
    peer             text PRIMARY KEY,
    out_next_seq     bigint NOT NULL DEFAULT 1,  -- the next sequence to hand out
    in_applied       bigint NOT NULL DEFAULT 0,  -- we applied the peer's stream up to here
    in_head          bytea NOT NULL DEFAULT '',  -- hash of the envelope at in_applied
    diverged_at      timestamptz,
    diverged_reason  text,
    kind             text NOT NULL DEFAULT 'bank' CHECK (kind IN ('bank', 'observer')),
    -- Its floor is the exposure limit this bank set for that peer: how many
    -- hours that bank's members may owe ours.
    clearing_account bigint REFERENCES accounts (id),
    -- The peer's last signed checkpoint of its clearing balance for us.
    peer_clearing    bigint,
    peer_clearing_at timestamptz,
    dir_cursor       bigint NOT NULL DEFAULT 0,
    dir_synced_at    timestamptz
);

CREATE TABLE fed_sealed (
    peer       text PRIMARY KEY REFERENCES fed_peers (peer),
    out_sealed bigint NOT NULL DEFAULT 0,  -- sealed (signed) up to here
    out_head   bytea NOT NULL DEFAULT ''   -- hash of the envelope at out_sealed
);

CREATE TABLE fed_acked (
    peer      text PRIMARY KEY REFERENCES fed_peers (peer),
    out_acked bigint NOT NULL DEFAULT 0    -- the peer applied up to here
);

-- Every message is kept, body and signed envelope, at both ends, compressed
-- with lz4 (much faster than PostgreSQL's own, for much the same size). What
-- is queued keeps its body as the JSON text it was written as.
CREATE TABLE fed_outbox (
    peer       text NOT NULL REFERENCES fed_peers (peer),
    seq        bigint NOT NULL,
    body       json COMPRESSION lz4 NOT NULL,
    envelope   bytea COMPRESSION lz4,  -- NULL until sealed
    hash       bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, seq)
);
CREATE INDEX fed_outbox_unsealed ON fed_outbox (peer, seq) WHERE envelope IS NULL;

-- What each peer sent us, as it signed it: proof of what it said.
CREATE TABLE fed_inbox (
    peer       text NOT NULL REFERENCES fed_peers (peer),
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    envelope   bytea COMPRESSION lz4 NOT NULL,
    body       jsonb COMPRESSION lz4 NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, seq)
);

-- Test messages received: they prove the channel without touching the ledger.
CREATE TABLE fed_test_received (
    peer text NOT NULL,
    seq  bigint NOT NULL,
    n    bigint NOT NULL,
    PRIMARY KEY (peer, seq)
);

-- Signing keys peers announced in a rotation, each signed by the key it
-- replaces; the replaced key is accepted beside it until grace_until.
CREATE TABLE fed_peer_keys (
    peer        text NOT NULL REFERENCES fed_peers (peer),
    key_id      text NOT NULL,
    public_key  bytea NOT NULL,
    replaces    text NOT NULL,
    learned_at  timestamptz NOT NULL DEFAULT now(),
    grace_until timestamptz NOT NULL,
    PRIMARY KEY (peer, key_id)
);

-- ---- cross-bank exchanges -----------------------------------------------
--
-- A member of this bank (the payer) received help from a member of a peer
-- bank (the earner), or the other way round. The payer's bank reserves the
-- minutes and proposes; the earner's bank decides, posts and answers, and
-- its answer is final; the payer's bank follows. Every step is applied once,
-- through the channel.
--
-- As with transfers, the member's account, the posting and the peer have no
-- foreign keys: the audit proves them. Settling changes no indexed column,
-- so it is a HOT update, and pages start half full to leave each row room
-- for its settled version.
CREATE TABLE xb_exchanges (
    id              bigserial PRIMARY KEY,
    xid             text NOT NULL UNIQUE,  -- "<payer bank>:<id there>"
    side            text NOT NULL CHECK (side IN ('payer', 'earner')),
    peer            text NOT NULL,
    member_account  bigint,                -- our member, when known
    remote_member   bigint,                -- payer side: the earner's number at the peer
    minutes         bigint NOT NULL CHECK (minutes > 0),
    category        text NOT NULL,
    description     text,                  -- ours only: never sent
    performed_on    date NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'settled', 'rejected')),
    reason          text,
    transfer_id     bigint,
    answer_seq      bigint,                -- earner side: the channel sequence of our answer
    proposed_seq    bigint,                -- payer side: the message that carried it; NULL: not yet
    reverses        text,                  -- the settled exchange this reverses (xb_reverses)
    recorded_by     text NOT NULL,
    idempotency_key text,
    fingerprint     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    claim           text,                  -- the claim it came from, at either bank
    contact         text                   -- the contact request it came from
) WITH (fillfactor = 50);
CREATE INDEX xb_member ON xb_exchanges (member_account, id);
-- Reservations waiting to be proposed; a payer's exchange is proposed before
-- it can be answered, so no decided one stays here.
CREATE INDEX xb_unproposed ON xb_exchanges (peer, id)
    WHERE side = 'payer' AND proposed_seq IS NULL;
CREATE UNIQUE INDEX xb_reverses ON xb_exchanges (reverses) WHERE reverses IS NOT NULL;
-- The earner's side has no key.
CREATE UNIQUE INDEX xb_idempotency_key ON xb_exchanges (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- ---- requests through brokers ---------------------------------------------

-- Claims from the earner's side. A member of this bank helped a member of a
-- peer bank, who has not recorded it: this bank claims the hours. The peer's
-- broker approves (the peer then proposes the exchange as usual, naming the
-- claim) or declines. A claim moves no hours by itself.
CREATE TABLE xb_claims (
    id              bigserial PRIMARY KEY,
    claim_id        text NOT NULL UNIQUE,  -- "<earner bank>:c<id there>"
    side            text NOT NULL CHECK (side IN ('earner', 'payer')),
    peer            text NOT NULL REFERENCES fed_peers (peer),
    member_account  bigint REFERENCES accounts (id),  -- our member, when known
    remote_member   bigint,                -- the other member's number at the peer
    minutes         bigint NOT NULL CHECK (minutes > 0),
    category        text NOT NULL,
    description     text,                  -- ours only: never sent
    message         text,                  -- the claimant's words for the other bank's broker
    performed_on    date NOT NULL,
    state           text NOT NULL CHECK (state IN ('open', 'approved', 'declined')),
    reason          text,                  -- declined: declined, member_not_found, ...
    answer          text,                  -- declined by a broker: the broker's words
    xid             text,                  -- approved: the exchange it became
    sent_seq        bigint,                -- earner side: the message that carried it
    recorded_by     text NOT NULL,
    decided_by      text,
    idempotency_key text UNIQUE,
    fingerprint     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz
);
CREATE INDEX xb_claims_open ON xb_claims (side, id) WHERE state = 'open';
CREATE SEQUENCE xb_claims_number;

-- ---- the shared directory -------------------------------------------------
--
-- Members' offers ("I can do lifts to the surgery on Tuesdays") and requests
-- ("I need help with a form"); those shared with the federation are copied
-- to every peer bank without who made them: an opaque handle, a category, a
-- short text, a postcode district, availability. Peers pull changes since a
-- version cursor.

CREATE TABLE dir_categories (
    code     text PRIMARY KEY,
    label    text NOT NULL,
    position int NOT NULL
);
INSERT INTO dir_categories (code, label, position) VALUES
    ('befriending', 'Befriending and company', 1),
    ('lifts', 'Lifts and transport', 2),
    ('shopping', 'Shopping and errands', 3),
    ('gardening', 'Gardening', 4),
    ('diy', 'DIY and repairs', 5),
    ('housework', 'Housework and cleaning', 6),
    ('cooking', 'Cooking and meals', 7),
    ('phone-support', 'Phone support and check-in calls', 8),
    ('paperwork', 'Paperwork and forms', 9),
    ('it-help', 'IT help: computers, phones, the internet', 10),
    ('tutoring', 'Tutoring and homework', 11),
    ('languages', 'Languages, conversation and translation', 12),
    ('arts-crafts', 'Arts and crafts, sewing and mending', 13),
    ('music', 'Music', 14),
    ('pet-care', 'Pet care and dog walking', 15),
    ('childcare', 'Childcare and family support', 16),
    ('health-wellbeing', 'Health and wellbeing, exercise and walks', 17),
    ('events', 'Events and group activities', 18),
    ('other', 'Other', 99);

-- Every change to an item takes the next version: peers pull what changed
-- since the last version they saw.
CREATE SEQUENCE dir_version;

CREATE TABLE dir_items (
    id             bigserial PRIMARY KEY,
    handle         text NOT NULL UNIQUE,   -- opaque; means nothing elsewhere
    member_account bigint NOT NULL REFERENCES accounts (id),
    kind           text NOT NULL CHECK (kind IN ('offer', 'request')),
    category       text NOT NULL REFERENCES dir_categories (code),
    text           text NOT NULL,
    area           text,
    availability   text,
    visibility     text NOT NULL CHECK (visibility IN ('bank', 'federation')),
    expires_on     date NOT NULL,
    state          text NOT NULL DEFAULT 'active'
                   CHECK (state IN ('active', 'withdrawn', 'expired')),
    version        bigint NOT NULL DEFAULT nextval('dir_version'),
    created_by     text NOT NULL,
    updated_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    tsv            tsvector
);
CREATE INDEX dir_items_version ON dir_items (version);
CREATE INDEX dir_items_member ON dir_items (member_account, id);
CREATE INDEX dir_items_tsv ON dir_items USING gin (tsv);

-- What a peer bank shares, as last pulled.
CREATE TABLE dir_remote (
    peer         text NOT NULL REFERENCES fed_peers (peer),
    handle       text NOT NULL,
    kind         text NOT NULL,
    category     text NOT NULL,
    text         text NOT NULL,
    area         text,
    availability text,
    expires_on   date NOT NULL,
    version      bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    tsv          tsvector NOT NULL,
    PRIMARY KEY (peer, handle)
);
CREATE INDEX dir_remote_tsv ON dir_remote USING gin (tsv);
CREATE INDEX dir_remote_category ON dir_remote (category, area);
CREATE INDEX dir_remote_handle ON dir_remote (handle);

-- Contact through brokers. A broker at the requesting bank asks for contact
-- with the member behind a peer's shared item, for one of their own members;
-- the broker at the providing bank reaches that member and accepts (saying
-- how the members will meet) or declines. Only the brokers' words travel.
CREATE TABLE dir_contacts (
    id             bigserial PRIMARY KEY,
    contact_id     text NOT NULL UNIQUE,   -- "<requesting bank>:k<id there>"
    side           text NOT NULL CHECK (side IN ('requester', 'provider')),
    peer           text NOT NULL REFERENCES fed_peers (peer),
    handle         text NOT NULL,          -- the item, at the providing bank
    member_account bigint REFERENCES accounts (id), -- requester: who asks; provider: the item's
    item_kind      text,
    item_category  text,
    item_text      text,
    message        text NOT NULL,          -- the requesting broker's words
    state          text NOT NULL CHECK (state IN ('open', 'accepted', 'declined')),
    reason         text,                   -- declined: declined, item_not_found
    answer         text,                   -- the providing broker's words
    sent_seq       bigint,
    recorded_by    text NOT NULL,
    decided_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz
);
CREATE INDEX dir_contacts_open ON dir_contacts (side, id) WHERE state = 'open';
CREATE SEQUENCE dir_contacts_number;
