-- People referred into this bank by a GP practice or a service (intake.sql),
-- and the safeguarding checks brokers carry (safeguarding.sql).

-- [intake] and [safeguarding] of the config: how many days a referral may
-- wait for first contact before it is overdue, and the categories whose
-- helper needs a valid check.
ALTER TABLE fed_limits
    ADD COLUMN intake_overdue_days int NOT NULL DEFAULT 14 CHECK (intake_overdue_days > 0),
    ADD COLUMN check_required text[] NOT NULL DEFAULT '{}';

-- One referral of a person by an organisation of this bank. The person's
-- name, contact details and notes are as confidential as a member's, and
-- are erased with the member they joined as. A referral is received,
-- then contacted, then joined, declined, unreachable or withdrawn; each
-- change is an intake_events row, with who made it.
CREATE TABLE intake (
    id                bigserial PRIMARY KEY,
    org               bigint NOT NULL REFERENCES members (number),
    state             text NOT NULL DEFAULT 'received'
                      CHECK (state IN ('received', 'contacted', 'joined', 'declined',
                                       'unreachable', 'withdrawn')),
    name              text,
    phone             text,
    email             text,
    address           text,
    referrer_name     text,
    referrer_role     text,
    referrer_contact  text,
    reasons           text[] NOT NULL
                      CHECK (cardinality(reasons) > 0
                             AND reasons <@ ARRAY['isolation', 'low-mood', 'long-term-condition',
                                                  'carer', 'bereavement', 'recently-discharged',
                                                  'other']),
    notes             text,
    consent_contact   boolean NOT NULL,
    consent_outcomes  boolean NOT NULL,
    member_account    bigint UNIQUE REFERENCES accounts (id),
    declined_reason   text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    contacted_at      timestamptz,
    joined_on         date,  -- outcomes are counted from this day
    closed_at         timestamptz,
    idempotency_key   text,  -- the referring service's own, unique per organisation
    fingerprint       text,
    erased_at         timestamptz,
    UNIQUE (org, idempotency_key)
);
CREATE INDEX intake_state ON intake (state, id);
CREATE INDEX intake_org ON intake (org, id);
CREATE INDEX intake_received ON intake (received_at);

CREATE TABLE intake_events (
    id         bigserial PRIMARY KEY,
    intake_id  bigint NOT NULL REFERENCES intake (id),
    state      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    by_actor   text NOT NULL,
    detail     text
);
CREATE INDEX intake_events_intake ON intake_events (intake_id, id);

-- A member's safeguarding checks (a DBS check, basic or enhanced). The
-- reference is confidential; a check is valid from checked_on to
-- expires_on, both days included.
CREATE TABLE safeguarding_checks (
    id              bigserial PRIMARY KEY,
    member_account  bigint NOT NULL REFERENCES accounts (id),
    kind            text NOT NULL,
    reference       text,
    checked_on      date NOT NULL,
    expires_on      date,
    recorded_by     text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_on IS NULL OR expires_on >= checked_on)
);
CREATE INDEX safeguarding_checks_member ON safeguarding_checks (member_account, expires_on);

-- A member who needs extra care (confidential): the exchanges they take
-- part in are listed for a broker's review.
ALTER TABLE members ADD COLUMN needs_care boolean NOT NULL DEFAULT false,
                    ADD COLUMN care_reviewed_to bigint NOT NULL DEFAULT 0;

-- A coordinator's decision to let help in a category that needs a check go
-- ahead without one: the exchange or contact it let through, and why.
CREATE TABLE safeguarding_overrides (
    id              bigserial PRIMARY KEY,
    member_account  bigint NOT NULL REFERENCES accounts (id),
    category        text NOT NULL,
    transfer_id     bigint REFERENCES transfers (id),
    contact_id      text,
    reason          text NOT NULL,
    by_actor        text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX safeguarding_overrides_member ON safeguarding_overrides (member_account, id);

-- Personal care (help washing, dressing, eating), which banks most often
-- mark as needing a check, has a category of its own in the directory.
INSERT INTO dir_categories (code, label, position) VALUES ('personal-care', 'Personal care', 19);
