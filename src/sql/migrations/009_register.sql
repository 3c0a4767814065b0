-- The network's register, kept at the national body (the observer): the
-- member banks as they stand, each change with who made it, and every
-- register published, signed, as it went out (proto/register.proto).
CREATE TABLE register_banks (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{1,31}$'),
    name        text NOT NULL,
    address     text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('bank', 'observer')),
    cert_sha256 text CHECK (cert_sha256 ~ '^[0-9a-f]{64}$'),
    added_at    timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz,            -- no longer in the register
    revoked     boolean NOT NULL DEFAULT false
);

-- Its signing keys: a rotation gives the old one an end (the grace) and
-- adds the new one.
CREATE TABLE register_keys (
    bank       text NOT NULL REFERENCES register_banks (id),
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    not_before timestamptz NOT NULL DEFAULT now(),
    not_after  timestamptz,
    PRIMARY KEY (bank, public_key)
);

CREATE TABLE register_history (
    n      bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text NOT NULL,
    action text NOT NULL,
    bank   text,
    detail jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE register_published (
    serial       bigint PRIMARY KEY CHECK (serial >= 1),
    published_at timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    register     jsonb NOT NULL,  -- the Register as JSON (show, diff)
    signed       bytea NOT NULL   -- the SignedRegister's bytes, as they go out
);

-- At a bank: the last good register it took from the national body, as it
-- came (signed), and as JSON to show.
CREATE TABLE fed_register (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    serial    bigint NOT NULL CHECK (serial >= 1),
    signed    bytea NOT NULL,
    register  jsonb NOT NULL,
    from_peer text NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
