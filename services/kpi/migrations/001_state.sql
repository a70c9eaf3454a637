-- What kpi knows of each tenant: its zone and fiscal year start (from the events' CloudEvents extensions).
CREATE TABLE IF NOT EXISTS tenants (
    tenant             text PRIMARY KEY,
    timezone           text NOT NULL,
    fiscal_start_month int  NOT NULL DEFAULT 1
);

-- Each deal's current state: a row only changes when an event's updated_at is newer.
CREATE TABLE IF NOT EXISTS deals (
    tenant     text        NOT NULL,
    deal_id    text        NOT NULL,
    rep_id     text        NOT NULL,
    amount     numeric     NOT NULL,
    currency   char(3)     NOT NULL,
    stage      text        NOT NULL,
    created_at timestamptz,
    closed_at  timestamptz,
    updated_at timestamptz NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, deal_id)
);
CREATE INDEX IF NOT EXISTS deals_won_by_rep ON deals (tenant, rep_id, closed_at) WHERE stage = 'won' AND NOT deleted;

CREATE TABLE IF NOT EXISTS activities (
    tenant      text        NOT NULL,
    activity_id text        NOT NULL,
    rep_id      text        NOT NULL,
    kind        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    deal_id     text,
    duration_s  int,
    PRIMARY KEY (tenant, activity_id)
);
CREATE INDEX IF NOT EXISTS activities_by_rep ON activities (tenant, rep_id, occurred_at);

CREATE TABLE IF NOT EXISTS reps (
    tenant     text        NOT NULL,
    rep_id     text        NOT NULL,
    name       text        NOT NULL,
    team_id    text        NOT NULL,
    manager_id text,
    timezone   text        NOT NULL,
    active     boolean     NOT NULL,
    version    timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id)
);

CREATE TABLE IF NOT EXISTS targets (
    tenant   text        NOT NULL,
    scope    text        NOT NULL,
    scope_id text        NOT NULL,
    metric   text        NOT NULL,
    period   text        NOT NULL,
    value    numeric     NOT NULL,
    version  timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, metric, period)
);

-- The figures last emitted per key: an update is emitted only when they change.
CREATE TABLE IF NOT EXISTS attainment (
    tenant     text        NOT NULL,
    scope      text        NOT NULL,
    scope_id   text        NOT NULL,
    period     text        NOT NULL,
    metric     text        NOT NULL,
    actual     numeric     NOT NULL,
    target     numeric,
    revision   int         NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, period, metric)
);
