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
    PRIMARY KEY (tenant, kpi_id, scope, scope_id, period)
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

-- The read side's figures: the built-in metrics from the running tallies (migration 009) and every defined
-- KPI from its own (`custom.value`: average over the records with an amount, 0 when none).
CREATE OR REPLACE VIEW attainment WITH (security_invoker = true) AS
SELECT t.tenant, t.scope, t.scope_id, t.period, m.metric, m.actual, g.value AS target
FROM period_tallies t
CROSS JOIN LATERAL (VALUES
    ('won_revenue', t.won_revenue),
    ('deals_won', t.deals_won::numeric),
    ('win_rate', attain_ratio4(t.deals_won, t.deals_won + t.deals_lost)),
    ('pipeline_created', t.pipeline_created),
    ('avg_deal_size', attain_ratio4(t.won_revenue, t.deals_won)),
    ('calls', t.calls::numeric),
    ('emails', t.emails::numeric),
    ('meetings', t.meetings::numeric),
    ('activities', t.activities::numeric)
) AS m(metric, actual)
LEFT JOIN targets g ON g.tenant = t.tenant AND g.scope = t.scope AND g.scope_id = t.scope_id
    AND g.period = t.period AND g.metric = m.metric
UNION ALL
SELECT c.tenant, c.scope, c.scope_id, c.period, c.kpi_id,
    CASE k.definition->>'aggregation'
        WHEN 'sum' THEN c.total
        WHEN 'average' THEN attain_ratio4(c.total, c.n - c.unconverted)
        WHEN 'distinct_deals' THEN (SELECT count(*) FROM custom_deals d WHERE d.tenant = c.tenant
            AND d.kpi_id = c.kpi_id AND d.scope = c.scope AND d.scope_id = c.scope_id AND d.period = c.period
            AND d.n > 0)::numeric
        ELSE c.n::numeric END,
    g.value
FROM custom_tallies c
JOIN custom_kpis k ON k.tenant = c.tenant AND k.kpi_id = c.kpi_id
LEFT JOIN targets g ON g.tenant = c.tenant AND g.scope = c.scope AND g.scope_id = c.scope_id
    AND g.period = c.period AND g.metric = c.kpi_id;
