-- KPIs a tenant defines (issue 22, item 5: `services/kpi/custom.py`): a filter over deals or activities and an
-- aggregation, counted per (scope, id, period) by signed deltas like the built-in metrics' tallies.
--
-- The CRM properties a record carries (what a KPI may filter on), as the newest version has them.
ALTER TABLE deals ADD COLUMN IF NOT EXISTS properties jsonb;
ALTER TABLE activities ADD COLUMN IF NOT EXISTS properties jsonb;

CREATE TABLE IF NOT EXISTS custom_kpis (
    tenant      text        NOT NULL,
    kpi_id      text        NOT NULL,
    definition  jsonb       NOT NULL,  -- custom.KpiDefinition: name, source, filter, aggregation
    defined_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, kpi_id)
);

-- n records, their total (money in the base currency, or seconds), the deals left out of the total (no rate)
CREATE TABLE IF NOT EXISTS custom_tallies (
    tenant      text    NOT NULL,
    kpi_id      text    NOT NULL,
    scope       text    NOT NULL,
    scope_id    text    NOT NULL,
    period      text    NOT NULL,
    n           bigint  NOT NULL DEFAULT 0,
    total       numeric NOT NULL DEFAULT 0,
    unconverted bigint  NOT NULL DEFAULT 0,
    -- the key's columns first: a batch reads a key's tallies of every KPI at once (a fresh tenant's tables have
    -- no statistics yet, and a plan that reads an index by part of the key and filters the rest costs seconds)
    PRIMARY KEY (tenant, scope, scope_id, period, kpi_id)
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS custom_tallies_board ON custom_tallies (tenant, period, scope);

-- `distinct_deals`: how many of a key's counted records each deal has (a deal counts while it has any)
CREATE TABLE IF NOT EXISTS custom_deals (
    tenant   text   NOT NULL,
    kpi_id   text   NOT NULL,
    scope    text   NOT NULL,
    scope_id text   NOT NULL,
    period   text   NOT NULL,
    deal_id  text   NOT NULL,
    n        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, kpi_id, scope, scope_id, period, deal_id)
);

-- The read side's figures of these KPIs: the `attainment` view, in migration 017 (`attain_kpi_value`).
