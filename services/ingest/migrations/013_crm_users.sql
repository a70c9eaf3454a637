-- Users from the CRM (issue 21; services/ingest/crm/users_sync.py, users_rules.py, users_store.py).

-- Per tenant and CRM: whether the CRM's users become reps by themselves (`automatic`: matched to reps by e-mail,
-- new ones created and mapped) or are only proposed (`manual`), the team new reps join, and the sync's state: when
-- a webhook last asked for one (a record held back by an owner not mapped), when one last started (at most one per
-- CRM_USERS_SYNC_RETRY_S: the debounce), when one last succeeded (as of its start) and its last error.
CREATE TABLE IF NOT EXISTS crm_user_sync (
    tenant       text        NOT NULL REFERENCES tenants (slug),
    crm          text        NOT NULL CHECK (crm IN ('hubspot', 'pipedrive', 'salesforce')),
    mode         text        NOT NULL DEFAULT 'automatic' CHECK (mode IN ('automatic', 'manual')),
    team_id      text        NOT NULL DEFAULT 'unassigned' CHECK (team_id <> ''),
    requested_at timestamptz,
    attempted_at timestamptz,
    synced_at    timestamptz,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, crm)
);

-- The sync timer's cross-tenant work, as the schema's owner (SECURITY DEFINER, as 006_sweeps.sql): which tenants'
-- CRMs to sync at `as_of`: those ingest can read (an API token, or an OAuth connection), of an active tenant in
-- automatic mode, not attempted within `retry`, and never synced, synced longer than `every` ago, or asked for
-- since the last sync. Returns tenant and CRM only.
CREATE OR REPLACE FUNCTION sweep_crm_users_due(as_of timestamptz, every interval, retry interval)
RETURNS TABLE (tenant text, crm text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY
        SELECT a.tenant, a.crm
        FROM (SELECT k.tenant, k.crm FROM crm_api_tokens k
              UNION SELECT o.tenant, o.crm FROM crm_oauth o WHERE o.status = 'connected') a
        JOIN tenants t ON t.slug = a.tenant AND t.revoked_at IS NULL
        LEFT JOIN crm_user_sync s ON s.tenant = a.tenant AND s.crm = a.crm
        WHERE coalesce(s.mode, 'automatic') = 'automatic'
          AND (s.attempted_at IS NULL OR s.attempted_at <= as_of - retry)
          AND (s.synced_at IS NULL OR s.synced_at <= as_of - every OR s.requested_at > s.synced_at)
        ORDER BY s.synced_at NULLS FIRST, a.tenant, a.crm;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
