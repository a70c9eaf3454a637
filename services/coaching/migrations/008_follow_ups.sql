-- Did it help? (issue 18, item 5) Every check-in, and every finding that got none (the comparison group:
-- inside a cool-down, below the material-gap thresholds, or a rep of the tenant's holdout), and what
-- followed it: the rep's pace on the finding's metric when it opened and 7, 14 and 30 working days later,
-- and when the finding recovered (services/coaching/effect.py).
CREATE TABLE IF NOT EXISTS follow_ups (
    tenant         text NOT NULL,
    subject_id     text NOT NULL,  -- a check-in's task id, or a comparison finding's id
    kind           text NOT NULL CHECK (kind IN ('check_in', 'comparison')),
    reason         text,           -- a comparison finding's: cooldown, below_threshold, holdout
    rep_id         text NOT NULL,
    manager_id     text,
    team_id        text,
    rule           text NOT NULL,
    metric         text NOT NULL,
    period         text NOT NULL,
    opened_at      timestamptz NOT NULL,
    pace_0         numeric,
    pace_7         numeric,
    pace_14        numeric,
    pace_30        numeric,
    measured       integer NOT NULL DEFAULT 0,  -- the last milestone measured (0, 7, 14, 30): a pace may be NULL
    recovered_at   timestamptz,
    recovered_days integer,
    PRIMARY KEY (tenant, subject_id)
);
CREATE INDEX IF NOT EXISTS follow_ups_open ON follow_ups (tenant, rep_id)
    WHERE measured < 30 OR recovered_at IS NULL;
CREATE INDEX IF NOT EXISTS follow_ups_opened ON follow_ups (tenant, opened_at);
