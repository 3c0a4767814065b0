-- What 011 left out, found once it had been released: where the peer's own
-- stream stood when it read the clearing balance its last checkpoint
-- carried (with peer_clearing_applied, how much of ours it had applied),
-- so that what either side posted after it is counted in flight
-- (tb_fed_audit); and the referral messages to a peer that wait for its
-- acknowledgement before an erasure redacts them (tb_referral_forget), as
-- claims and contacts do.
ALTER TABLE fed_peers ADD COLUMN peer_clearing_seq bigint;
ALTER TABLE fed_redact_waiting ADD COLUMN referrals text[] NOT NULL DEFAULT '{}';
