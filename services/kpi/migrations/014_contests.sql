-- Contests (issue 22, item 4: `services/kpi/contests.py`): what an admin defined, where the clock put it, and
-- what was last published of it. Standings are recounted from `deals` and `activities` whenever a record in
-- the window changes, and stored with the revision they were published under; once `final` they are frozen.
CREATE TABLE IF NOT EXISTS contests (
    tenant          text        NOT NULL,
    contest_id      text        NOT NULL,
    name            text        NOT NULL,
    metric          text        NOT NULL,
    participants    text        NOT NULL CHECK (participants IN ('reps', 'teams')),
    participant_ids text[]      NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    rank_by         text        NOT NULL DEFAULT 'amount' CHECK (rank_by IN ('amount', 'attainment')),
    target          numeric,
    targets         jsonb       NOT NULL DEFAULT '{}',  -- participant id -> its own contest target
    prizes          text[]      NOT NULL DEFAULT '{}',
    settle_s        int         NOT NULL DEFAULT 900 CHECK (settle_s >= 0),
    status          text        NOT NULL DEFAULT 'scheduled'
                                CHECK (status IN ('scheduled', 'running', 'final', 'cancelled')),
    standings       jsonb       NOT NULL DEFAULT '[]',  -- as last published (ContestStanding)
    digest          text,                               -- `contests.digest` of the last published state
    revision        bigint      NOT NULL DEFAULT 0,
    defined_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant, contest_id),
    CHECK (ends_at > starts_at)
);
-- what the contest clock (kpi's timer) looks for: a start or an end that has come
CREATE INDEX IF NOT EXISTS contests_open ON contests (starts_at, ends_at) WHERE status IN ('scheduled', 'running');
