-- Ties between two versions of a deal with the same updated_at are broken by the event id (larger wins),
-- so every replay and every delivery order ends in the same state.
-- Collation "C" compares code points, as every other place that orders these ids does (Python, Kafka).
ALTER TABLE deals ADD COLUMN IF NOT EXISTS tiebreak text COLLATE "C" NOT NULL DEFAULT '';

-- Dated roster: a rep belongs to `team_id` from `valid_from` until their next membership row.
CREATE TABLE IF NOT EXISTS memberships (
    tenant     text        NOT NULL,
    rep_id     text        NOT NULL,
    valid_from timestamptz NOT NULL,
    team_id    text        NOT NULL,
    PRIMARY KEY (tenant, rep_id, valid_from)
);

-- Base currency per tenant and exchange rates into it (1 unit of `currency` = `rate` base units).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS currency char(3);
CREATE TABLE IF NOT EXISTS fx_rates (
    tenant     text    NOT NULL,
    currency   char(3) NOT NULL,
    valid_from date    NOT NULL,
    rate       numeric NOT NULL CHECK (rate > 0),
    PRIMARY KEY (tenant, currency, valid_from)
);

CREATE INDEX IF NOT EXISTS deals_created_by_rep ON deals (tenant, rep_id, created_at) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS deals_closed_by_rep ON deals (tenant, rep_id, closed_at) WHERE NOT deleted;
