-- Issue 6: every milestone kind, per-tenant settings, corrections, period closes.

-- The tenant registry (attain.tenants.v1): API authentication, calendar, base currency.
CREATE TABLE IF NOT EXISTS tenants (
    tenant             text PRIMARY KEY,
    timezone           text    NOT NULL DEFAULT 'UTC',
    fiscal_start_month int     NOT NULL DEFAULT 1,
    currency           text,
    token_sha256       bytea,
    active             boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS recognition_tenants_by_token ON tenants (token_sha256);

-- Names, teams and zones (streak days are the rep's local days).
CREATE TABLE IF NOT EXISTS reps (
    tenant   text        NOT NULL,
    rep_id   text        NOT NULL,
    name     text,
    team_id  text,
    timezone text,
    version  timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id)
);

-- A tenant's settings (thresholds, switched-off kinds, locale, headline templates, corrections).
CREATE TABLE IF NOT EXISTS settings (
    tenant    text PRIMARY KEY,
    overrides jsonb NOT NULL
);

-- Deals as they stand now (newest updated_at wins): first wins, records, the team's largest deal.
CREATE TABLE IF NOT EXISTS deals (
    tenant     text        NOT NULL,
    deal_id    text        NOT NULL,
    rep_id     text        NOT NULL,
    stage      text        NOT NULL,
    amount     numeric     NOT NULL,
    currency   text        NOT NULL,
    closed_at  timestamptz,
    updated_at timestamptz NOT NULL,
    tiebreak   text        NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, deal_id)
);
CREATE INDEX IF NOT EXISTS recognition_won_by_rep ON deals (tenant, rep_id) WHERE stage = 'won' AND NOT deleted;

-- Activities by id (a duplicate counts nothing) for streaks.
CREATE TABLE IF NOT EXISTS activities (
    tenant      text        NOT NULL,
    activity_id text        NOT NULL,
    rep_id      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, activity_id)
);
CREATE INDEX IF NOT EXISTS recognition_activities_by_rep ON activities (tenant, rep_id, occurred_at);

-- The ledger keeps what a celebration said and why; 'baseline' rows were already past when their kind
-- was switched on (never announced); `corrected_at` once a drop below was announced.
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS facts jsonb NOT NULL DEFAULT '{}';
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'celebrated';
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS corrected_at timestamptz;
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS metric text;

-- Which closed periods had their finishes settled (leaderboards, the team's largest deal).
CREATE TABLE IF NOT EXISTS period_closes (
    tenant     text        NOT NULL,
    period     text        NOT NULL,
    settled_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, period)
);
