-- Contests (issue 22, item 4): each contest's latest revision as kpi published it on kpi.contests.v1 (an older
-- or equal revision changes nothing), and what recognition needs of it between two revisions: the participant
-- leading alone now and since when (the `as_of` of the first revision it led alone in), and the last leader
-- whose lead was celebrated. Only the timer's sweep reads across tenants (below).
CREATE TABLE IF NOT EXISTS contests (
    tenant            text        NOT NULL,
    contest_id        text        NOT NULL,
    revision          bigint      NOT NULL,
    status            text        NOT NULL,
    ends_at           timestamptz NOT NULL,
    latest            jsonb       NOT NULL,  -- the kpi.contest.updated data of `revision`, as published
    leader            text,                  -- the sole leader while the contest runs (NULL: nobody, or a tie)
    leader_since      timestamptz,
    celebrated_leader text,                  -- NULL until a lead was celebrated
    PRIMARY KEY (tenant, contest_id)
);
-- what the lead timer looks for every few seconds: a running contest led by someone not celebrated last
CREATE INDEX IF NOT EXISTS contests_led ON contests (tenant, contest_id)
    WHERE status = 'running' AND leader IS NOT NULL AND leader IS DISTINCT FROM celebrated_leader;

-- The tenants with such a contest not yet past its end, for the lead timer (services/recognition/handlers.py
-- `settle_contest_leads`), as the schema's owner: see shared/db.py and coaching's 005_sweeps.sql.
CREATE OR REPLACE FUNCTION sweep_contest_leads(at timestamptz) RETURNS TABLE (tenant text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT DISTINCT c.tenant FROM contests c
                 WHERE c.status = 'running' AND c.leader IS NOT NULL AND c.leader IS DISTINCT FROM c.celebrated_leader
                   AND c.ends_at > at ORDER BY c.tenant;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- A milestone that may recur in one period: a contest's lead (period the contest's id) is celebrated once per
-- lead, and the ledger tells its leads apart by since when the leader led (`occasion`, '' for every other
-- milestone, whose key and celebration id are what they were). The "once" key gains it.
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS occasion text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX IF NOT EXISTS celebrations_once
    ON celebrations (tenant, scope, scope_id, milestone, period, occasion);
ALTER TABLE celebrations DROP CONSTRAINT IF EXISTS celebrations_tenant_scope_scope_id_milestone_period_key;
