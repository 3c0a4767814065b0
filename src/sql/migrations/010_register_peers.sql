-- Peers from the network's register beside those of the config: where each
-- came from, when it left (removed from the register, or from the config),
-- and whether this bank exchanges hours with it ([federation]
-- exchange_with); the register's peers' exposure limits. And at the
-- national body, a signing key is one bank's, ever (tb_register_add and
-- tb_register_rotate check it; the index holds it when two run at once).
CREATE UNIQUE INDEX register_keys_public_key ON register_keys (public_key);

ALTER TABLE fed_peers
    ADD COLUMN source text NOT NULL DEFAULT 'config' CHECK (source IN ('config', 'register')),
    ADD COLUMN removed_at timestamptz,
    ADD COLUMN exchanges boolean NOT NULL DEFAULT true;

ALTER TABLE fed_limits
    ADD COLUMN exchange_with text[],   -- NULL: every peer
    ADD COLUMN register_exposure_limit bigint NOT NULL DEFAULT 6000
        CHECK (register_exposure_limit >= 0),
    ADD COLUMN register_limits jsonb NOT NULL DEFAULT '{}'; -- {"bank": minutes}
