-- The contest clock's cross-tenant read (services/kpi/contesting.py `tick`), as the schema's owner (SECURITY
-- DEFINER): kpi's working role sees one tenant's rows at a time (row-level security, shared/db.py), so the
-- clock finds the contests whose start or end (plus settling time) has come through this, and then works on
-- each in its tenant's scope. It sets `*` for its own statement and restores the caller's scope.
CREATE OR REPLACE FUNCTION sweep_due_contests(at timestamptz) RETURNS TABLE (tenant text, contest_id text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT c.tenant, c.contest_id FROM contests c
                 WHERE (c.status = 'scheduled' AND c.starts_at <= at)
                    OR (c.status = 'running' AND c.ends_at + c.settle_s * interval '1 second' <= at)
                 ORDER BY 1, 2;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
