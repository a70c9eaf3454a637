-- Forecasts (issue 22): what kpi keeps of an open deal to look ahead, and what it published of a forecast.
--
-- `deal.upserted`'s optional expected close, probability and forecast category, and its stage label, with the
-- deal's newest version (NULL for versions stored before they existed, or sent without them).
ALTER TABLE deals ADD COLUMN IF NOT EXISTS stage_label text;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS expected_close_at timestamptz;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS probability numeric;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS forecast_category text;
-- the open deals a forecast reads: a rep's, by expected close
CREATE INDEX IF NOT EXISTS deals_open_by_rep ON deals (tenant, rep_id, expected_close_at)
    WHERE stage = 'open' AND NOT deleted;

-- Every stage label a deal was seen in, in any version (a set: the same whatever order versions arrive in).
-- A deal without a CRM probability is given the rep's win rate among closed deals that once stood in its
-- stage (`services/kpi/outlook.py`): "of the deals that reached Proposal, 7 of 12 were won".
CREATE TABLE IF NOT EXISTS deal_stages (
    tenant      text NOT NULL,
    deal_id     text NOT NULL,
    stage_label text NOT NULL,
    PRIMARY KEY (tenant, deal_id, stage_label)
);

-- What was last published of a won_revenue figure's forecast (a digest): a figure is published again when
-- its forecast changed, even if its actual and target did not (an open deal's probability moved).
ALTER TABLE published_figures ADD COLUMN IF NOT EXISTS forecast_digest text;
