-- Figures are computed from the running tallies when they are read, not stored per metric by every batch.
--
-- Each batch used to write all nine metrics of every (scope, id, period) it moved into `attainment`:
-- about 9 rows per moved key, 99 % of them figures nobody set a target for. Now a batch writes one row per
-- moved key (its tally) and, for the figures it publishes (those with a target), one row each in
-- `published_figures`: what was last published and its revision (the `ce_id` of an update is a UUIDv5 of
-- the key and that revision, so the revisions published before this migration carry on, never restart).
-- `attainment` becomes a view with the same columns the read side always used, computed by PostgreSQL with
-- exactly the arithmetic of services/kpi/tally.py (`ratio4`: banker's rounding to four places, 0 when there
-- is nothing to divide by). security_invoker: the reader's row-level security applies, not the owner's.
ALTER TABLE attainment RENAME TO published_figures;
DROP INDEX IF EXISTS attainment_board;

-- numerator / denominator rounded half to even at four decimal places, exactly (integer quotient and
-- remainder, no inexact division); 0 when the denominator is 0.
CREATE OR REPLACE FUNCTION attain_ratio4(n numeric, d numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN d = 0 THEN 0::numeric ELSE round(
        (div(n * 10000, d) + CASE WHEN 2 * mod(n * 10000, d) > d THEN 1
                                  WHEN 2 * mod(n * 10000, d) = d THEN mod(div(n * 10000, d), 2)
                                  ELSE 0 END) / 10000, 4) END
$$;

CREATE VIEW attainment WITH (security_invoker = true) AS
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
    AND g.period = t.period AND g.metric = m.metric;

-- Leaderboards and team lists read one period of one scope.
CREATE INDEX IF NOT EXISTS period_tallies_board ON period_tallies (tenant, period, scope);

-- A key with a target has a tally row even before anything counted for it (the view shows its zeros).
INSERT INTO period_tallies (tenant, scope, scope_id, period)
    SELECT DISTINCT tenant, scope, scope_id, period FROM targets ON CONFLICT DO NOTHING;

-- Tallies are updated in place all day (the running periods' rows); room on each page lets PostgreSQL keep
-- an update on the same page without touching the indexes (a HOT update).
ALTER TABLE period_tallies SET (fillfactor = 80);
