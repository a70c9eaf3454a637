-- The forecast kpi sends with a won_revenue figure while its period runs (issue 22): what the `forecast_short`
-- rule and the weekly review read (`shared.events.Forecast`, as JSON). NULL for other metrics, ended periods and
-- figures from before forecasts; a newer figure without one clears it. Nullable and unread by the previous
-- release: it keeps working on this schema.
ALTER TABLE attainment ADD COLUMN IF NOT EXISTS forecast jsonb;
