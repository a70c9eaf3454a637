-- The timers' cross-tenant work, as the schema's owner (SECURITY DEFINER): the working role cannot set the
-- all-tenants scope on itself (shared/db.py), so each timer reaches every tenant only through these, each
-- returning or changing only what it needs; the rest of its work is scoped to one tenant at a time.
-- Each sets `*` for its own statements and restores the caller's scope; `shared.db.secure` pins their
-- search_path and keeps EXECUTE from PUBLIC.

-- Active reps, for the periodic evaluation (services/coaching/timers.py `tick`).
CREATE OR REPLACE FUNCTION sweep_active_reps() RETURNS TABLE (tenant text, rep_id text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT r.tenant, r.rep_id FROM reps r WHERE r.active ORDER BY r.tenant, r.rep_id;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- Reps with an open action-plan step past its due date.
CREATE OR REPLACE FUNCTION sweep_due_plan_reps(at timestamptz) RETURNS TABLE (tenant text, rep_id text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT DISTINCT p.tenant, p.rep_id FROM plan_steps s JOIN action_plans p USING (plan_id)
                 WHERE s.status = 'open' AND s.due_at <= at;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- Live check-ins by rule, every tenant together (a gauge: counts only).
CREATE OR REPLACE FUNCTION sweep_live_tasks_by_rule() RETURNS TABLE (rule text, n bigint)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT t.rule, count(*) FROM tasks t WHERE t.status IN ('open', 'acknowledged') GROUP BY t.rule;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- Check-ins nobody acknowledged by their due date and not escalated yet, locked for the caller's
-- transaction (another replica skips them); the caller escalates them in each tenant's scope.
CREATE OR REPLACE FUNCTION sweep_overdue(at timestamptz, lim integer) RETURNS SETOF tasks
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT * FROM tasks t WHERE t.status = 'open' AND t.escalated_at IS NULL AND t.due_at <= at
                 ORDER BY t.due_at LIMIT lim FOR UPDATE SKIP LOCKED;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- Up to `lim` owed evaluations, oldest first, deleted in the caller's transaction (another replica skips
-- the rows this one holds).
CREATE OR REPLACE FUNCTION sweep_take_owed(lim integer) RETURNS TABLE (tenant text, rep_id text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY DELETE FROM owed_evaluations o WHERE (o.tenant, o.rep_id) IN (
                     SELECT x.tenant, x.rep_id FROM owed_evaluations x ORDER BY x.since LIMIT lim
                     FOR UPDATE SKIP LOCKED)
                 RETURNING o.tenant, o.rep_id;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- The oldest owed evaluations, left in place (a chunk that failed is redone one rep at a time).
CREATE OR REPLACE FUNCTION sweep_peek_owed(lim integer) RETURNS TABLE (tenant text, rep_id text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT o.tenant, o.rep_id FROM owed_evaluations o ORDER BY o.since, o.tenant, o.rep_id LIMIT lim;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- How many evaluations are owed (a gauge).
CREATE OR REPLACE FUNCTION sweep_owed_count() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
    found bigint;
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    SELECT count(*) INTO found FROM owed_evaluations;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
    RETURN found;
END $$;
