-- Members referred between banks (referrals.sql): a move, where the member
-- relocates and the balance travels, or an introduction, a visiting
-- membership beside the home one. A member whose move is open is
-- 'moving': held, so that the balance the other bank decides on is the one
-- that travels. A move's balance is posted as a transfer of kind 'move',
-- naming its referral.
ALTER TABLE members DROP CONSTRAINT members_status_check,
    ADD CONSTRAINT members_status_check
        CHECK (status IN ('active', 'suspended', 'left', 'moving'));

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check,
    ADD CONSTRAINT transfers_kind_check
        CHECK (kind IN ('exchange', 'grant', 'reversal', 'move')),
    ADD COLUMN referral_id bigint;

-- How much of our stream a peer had applied when it read the clearing
-- balance its last checkpoint carried: what we sent after that is in
-- flight to that balance (tb_fed_audit).
ALTER TABLE fed_peers ADD COLUMN peer_clearing_applied bigint;

-- [referrals] of the config: whether a member may arrive owing hours, and
-- how long a referral waits for this bank's coordinator.
ALTER TABLE fed_limits
    ADD COLUMN referral_accept_negative boolean NOT NULL DEFAULT false,
    ADD COLUMN referral_expire_days int NOT NULL DEFAULT 30 CHECK (referral_expire_days > 0);

-- One row per referral at each of its two banks. At the referring bank
-- (side 'referring') it names our member and what was shared, and the
-- member's details stay in members; at the receiving bank it holds what
-- was shared (details, record) only until a coordinator decides: declined,
-- withdrawn, expired or refused, they are erased (erased_at), and the
-- message that carried them is redacted to its hash. The referring bank
-- keeps the signed answer that says so (erased_seq, in fed_inbox).
CREATE TABLE referrals (
    id                bigserial PRIMARY KEY,
    referral_id       text NOT NULL UNIQUE,  -- "<referring bank>:r<id>", unique in the network
    side              text NOT NULL CHECK (side IN ('referring', 'receiving')),
    peer              text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('move', 'introduce')),
    state             text NOT NULL CHECK (state IN ('open', 'accepted', 'declined', 'withdrawn',
                                                     'expired', 'refused')),
    member_account    bigint,  -- ours: the member referred, or the membership made here
    remote_member     bigint,  -- their number at the other bank
    reason            text,    -- the referring coordinator's words
    shared            text[] NOT NULL,
    consent_how       text NOT NULL,
    consent_notes     boolean NOT NULL DEFAULT false,
    consent_by        text NOT NULL,
    consent_at        timestamptz NOT NULL,
    details           jsonb,   -- receiving: the fields shared, until decided
    record            jsonb,   -- the member's record, when shared
    balance_minutes   bigint NOT NULL DEFAULT 0,  -- a move's balance, as it travels
    answer            text,    -- the deciding coordinator's words
    refusal           text,    -- a stable code, when refused on arrival
    decided_by        text,
    decided_at        timestamptz,
    expires_at        timestamptz,
    withdraw_asked_at timestamptz,
    erased_at         timestamptz,
    erased_seq        bigint,
    sent_seq          bigint,  -- the message this bank sent: the referral, or its answer
    received_seq      bigint,  -- the message this bank applied: the referral, or its answer
    transfer_id       bigint,  -- a move's posting here
    recorded_by       text NOT NULL,
    idempotency_key   text UNIQUE,
    fingerprint       text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referrals_state ON referrals (side, state, id);
CREATE INDEX referrals_member ON referrals (member_account) WHERE member_account IS NOT NULL;
-- One open referral of a member to a bank at a time.
CREATE UNIQUE INDEX referrals_one_open ON referrals (member_account, peer)
    WHERE side = 'referring' AND state = 'open';
