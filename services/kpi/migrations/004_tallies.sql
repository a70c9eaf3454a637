-- Running tallies per (scope, scope id, period), moved by deltas as deals and activities change
-- (services/kpi/contributions.py says what counts where). Figures are computed from these.
CREATE TABLE IF NOT EXISTS period_tallies (
    tenant           text    NOT NULL,
    scope            text    NOT NULL,
    scope_id         text    NOT NULL,
    period           text    NOT NULL,
    won_revenue      numeric NOT NULL DEFAULT 0,
    deals_won        bigint  NOT NULL DEFAULT 0,
    deals_lost       bigint  NOT NULL DEFAULT 0,
    pipeline_created numeric NOT NULL DEFAULT 0,
    calls            bigint  NOT NULL DEFAULT 0,
    emails           bigint  NOT NULL DEFAULT 0,
    meetings         bigint  NOT NULL DEFAULT 0,
    activities       bigint  NOT NULL DEFAULT 0,
    unconverted      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, scope, scope_id, period)
);

-- Tenants whose data predates the running tallies: kpi rebuilds their tallies when it starts.
CREATE TABLE IF NOT EXISTS tally_rebuilds (tenant text PRIMARY KEY);
INSERT INTO tally_rebuilds (tenant)
    SELECT tenant FROM deals UNION SELECT tenant FROM activities
    ON CONFLICT DO NOTHING;
