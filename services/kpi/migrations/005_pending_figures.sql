-- Keys whose tallies moved but whose figures were not sent yet (coalesced under backlog:
-- services/kpi/pacing.py); written in the same transaction as the tallies, so none is lost.
CREATE TABLE IF NOT EXISTS pending_figures (
    tenant   text NOT NULL,
    scope    text NOT NULL,
    scope_id text NOT NULL,
    period   text NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, period)
);
