-- A KPI's figure from its tally, for the read side's `attainment` view (`custom.value` says the same in Python
-- for the figures a batch publishes, which it reads from `custom_tallies` by key: joined to a list of keys,
-- the view's two branches were scanned whole, 1 s per batch at 34,000 tallies in the benchmark).
-- (its body names attain_ratio4, so its search_path is the schema's, whoever calls it: a view's caller may have
-- another, and a function's body is resolved when it runs)
CREATE OR REPLACE FUNCTION attain_kpi_value(aggregation text, n bigint, total numeric, unconverted bigint,
                                            distinct_deals bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    SELECT CASE aggregation
        WHEN 'sum' THEN total
        WHEN 'average' THEN attain_ratio4(total, n - unconverted)
        WHEN 'distinct_deals' THEN distinct_deals::numeric
        ELSE n::numeric END
$$;

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
    attain_kpi_value(k.definition->>'aggregation', c.n, c.total, c.unconverted,
                     CASE WHEN k.definition->>'aggregation' = 'distinct_deals' THEN (
                         SELECT count(*) FROM custom_deals d WHERE d.tenant = c.tenant AND d.kpi_id = c.kpi_id
                         AND d.scope = c.scope AND d.scope_id = c.scope_id AND d.period = c.period AND d.n > 0) END),
    g.value
FROM custom_tallies c
JOIN custom_kpis k ON k.tenant = c.tenant AND k.kpi_id = c.kpi_id
LEFT JOIN targets g ON g.tenant = c.tenant AND g.scope = c.scope AND g.scope_id = c.scope_id
    AND g.period = c.period AND g.metric = c.kpi_id;
