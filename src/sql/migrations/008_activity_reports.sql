-- The national body's activity reports (proto/report.proto).
--
-- The config's part the rules need: this daemon's own id and role, and the
-- disclosure rule of [reports]: a bank applies it to what it sends, the
-- observer refuses what does not meet it. Written at every start and
-- reload with the peers' limits (tb_fed_limits_set).
ALTER TABLE fed_limits
    ADD COLUMN bank_id text NOT NULL DEFAULT '',
    ADD COLUMN role text NOT NULL DEFAULT 'bank' CHECK (role IN ('bank', 'observer')),
    ADD COLUMN suppress_below int NOT NULL DEFAULT 8 CHECK (suppress_below >= 1),
    ADD COLUMN round_to int NOT NULL DEFAULT 5 CHECK (round_to >= 1);

-- At a bank: each report sent to an observer, as it left (the channel's
-- JSON of its body), with the message that carried it and the observer's
-- answer. A month's reports are numbered from 1; digest is of its
-- figures, so that a change to a month already reported is seen
-- (tb_report_digest).
CREATE TABLE fed_reports_sent (
    peer        text NOT NULL REFERENCES fed_peers (peer),
    month       date NOT NULL CHECK (month = date_trunc('month', month)),
    revision    int NOT NULL CHECK (revision >= 1),
    final       boolean NOT NULL,
    digest      text NOT NULL,
    body        jsonb NOT NULL,
    sent_seq    bigint NOT NULL,
    made_at     timestamptz NOT NULL DEFAULT now(),
    answer      text,             -- accepted, or why it was refused; NULL until answered
    answered_at timestamptz,
    PRIMARY KEY (peer, month, revision)
);

-- At the observer: every report a bank sent, every revision. The signed
-- envelope that carried it stays in fed_inbox (peer, seq) as proof, kept
-- as long as the report is (tb_fed_inbox_purge).
CREATE TABLE network_reports (
    bank        text NOT NULL REFERENCES fed_peers (peer),
    month       date NOT NULL CHECK (month = date_trunc('month', month)),
    revision    int NOT NULL CHECK (revision >= 1),
    final       boolean NOT NULL,
    report      jsonb NOT NULL,
    seq         bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bank, month, revision),
    UNIQUE (bank, seq)
);
CREATE INDEX network_reports_month ON network_reports (month);
