-- Every roster version kpi applied (issue 16, item 2): a rep's dated teams (`memberships`) are made of
-- them all (services/kpi/roster.py), so the order in which a rep's `rep.upserted` events arrive no
-- longer decides the history. The histories kept so far become versions of their own (event id
-- 'migrated'), at the moments their spans start.
CREATE TABLE IF NOT EXISTS roster_versions (
    tenant   text        NOT NULL,
    rep_id   text        NOT NULL,
    at       timestamptz NOT NULL,
    event_id text        NOT NULL,
    team_id  text        NOT NULL,
    PRIMARY KEY (tenant, rep_id, at, event_id)
);
INSERT INTO roster_versions (tenant, rep_id, at, event_id, team_id)
SELECT tenant, rep_id, valid_from, 'migrated', team_id FROM memberships
ON CONFLICT DO NOTHING;
