-- Reading a tenant's CRM through its API (issue 21; services/ingest/crm/backfill.py, reconcile.py, backfill_store.py).
-- Every table has a `tenant` column, so shared/db.py gives it row-level security.

-- Per tenant, CRM and kind: the latest backfill job. `since` is where the reading starts (the start of the tenant's
-- fiscal year unless the request named one); `cursor` the reader's opaque position after the last page whose effect
-- is stored, written in the same transaction as that effect (the events claimed and published, the deals' states),
-- so a job killed midway resumes at the next page and publishes nothing twice. `runner` and `lease_until`: the replica
-- working on it (renewed each page; another may take the job over once the lease has run out). `resume_at`: no work
-- before it (a CRM's rate limit asked to wait, or a failed call's backoff).
CREATE TABLE IF NOT EXISTS crm_backfills (
    tenant        text        NOT NULL REFERENCES tenants (slug),
    crm           text        NOT NULL CHECK (crm IN ('hubspot', 'pipedrive', 'salesforce')),
    kind          text        NOT NULL CHECK (kind IN ('deals', 'activities')),
    requested_at  timestamptz NOT NULL,
    requested_by  text,
    since         timestamptz NOT NULL,
    phase         text        NOT NULL DEFAULT 'queued'
                  CHECK (phase IN ('queued', 'reading', 'throttled', 'retrying', 'finished')),
    cursor        text,                              -- NULL: the first page (or, once done, the last was read)
    high_water    timestamptz,                       -- the latest modification time read
    pages         integer     NOT NULL DEFAULT 0 CHECK (pages >= 0),
    read_count    bigint      NOT NULL DEFAULT 0 CHECK (read_count >= 0),      -- records read from the API
    published     bigint      NOT NULL DEFAULT 0 CHECK (published >= 0),       -- canonical events published
    refused       bigint      NOT NULL DEFAULT 0 CHECK (refused >= 0),         -- records no converter could read
    dead_lettered bigint      NOT NULL DEFAULT 0 CHECK (dead_lettered >= 0),   -- read, not mappable yet
    status        text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    error         text,                              -- the last failure (the job's, when failed)
    failures      integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),        -- failed attempts in a row
    resume_at     timestamptz,
    runner        text,
    lease_until   timestamptz,
    started_at    timestamptz,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    CHECK (status <> 'failed' OR error IS NOT NULL),
    CHECK ((status = 'running') = (finished_at IS NULL)),
    PRIMARY KEY (tenant, crm, kind)
);

-- Per tenant, CRM and kind: the reconciliation pass's watermark (the high-water mark of what the last successful
-- pass read, settled: nothing newer than the settle time is read, its webhook may still be on its way), and what
-- the passes found the webhooks had missed (published by reconciliation: `source` "reconciliation").
CREATE TABLE IF NOT EXISTS crm_reconciliations (
    tenant        text        NOT NULL REFERENCES tenants (slug),
    crm           text        NOT NULL CHECK (crm IN ('hubspot', 'pipedrive', 'salesforce')),
    kind          text        NOT NULL CHECK (kind IN ('deals', 'activities')),
    watermark     timestamptz,                       -- NULL: no pass yet
    passes        bigint      NOT NULL DEFAULT 0 CHECK (passes >= 0),
    last_pass_at  timestamptz,
    last_read     bigint      NOT NULL DEFAULT 0 CHECK (last_read >= 0),
    last_missed   bigint      NOT NULL DEFAULT 0 CHECK (last_missed >= 0),
    missed_total  bigint      NOT NULL DEFAULT 0 CHECK (missed_total >= 0),
    last_error    text,
    error_at      timestamptz,
    runner        text,
    lease_until   timestamptz,
    CHECK ((last_error IS NULL) = (error_at IS NULL)),
    PRIMARY KEY (tenant, crm, kind)
);

-- Every activity ingest published, by the CRM's own id, whichever way it came (webhook, backfill, reconciliation):
-- a webhook's activity carries the vendor's change id, an API reading's its own, so the id alone cannot tell that a
-- backfilled activity is one a webhook brought already. A reading publishes only an activity not in here (the
-- consumers keep an activity's first version too, by its id).
CREATE TABLE IF NOT EXISTS crm_activities (
    tenant      text        NOT NULL,
    crm         text        NOT NULL,
    activity_id text        NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, crm, activity_id)
);

-- The timers' cross-tenant work, as the schema's owner (SECURITY DEFINER, as 006_sweeps.sql).
-- Backfill jobs a runner may take at `as_of`: running, not waiting, no live lease. Returns their keys only.
CREATE OR REPLACE FUNCTION sweep_crm_backfills_due(as_of timestamptz)
RETURNS TABLE (tenant text, crm text, kind text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY
        SELECT b.tenant, b.crm, b.kind FROM crm_backfills b
        WHERE b.status = 'running' AND (b.resume_at IS NULL OR b.resume_at <= as_of)
          AND (b.lease_until IS NULL OR b.lease_until < as_of)
        ORDER BY b.requested_at, b.tenant, b.crm, b.kind;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- The (tenant, CRM) pairs with API access (a token, or a connected OAuth connection) of active tenants whose
-- reconciliation of some kind is due at `as_of` (never passed, or last passed `every` ago) and not leased.
CREATE OR REPLACE FUNCTION sweep_crm_reconcile_due(as_of timestamptz, every interval)
RETURNS TABLE (tenant text, crm text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY
        SELECT a.tenant, a.crm FROM (
            SELECT t.tenant, t.crm FROM crm_api_tokens t
            UNION SELECT o.tenant, o.crm FROM crm_oauth o WHERE o.status = 'connected'
        ) a JOIN tenants n ON n.slug = a.tenant AND n.revoked_at IS NULL
        WHERE (SELECT count(*) FROM crm_reconciliations r
               WHERE r.tenant = a.tenant AND r.crm = a.crm AND r.last_pass_at > as_of - every) < 2
          AND NOT EXISTS (SELECT 1 FROM crm_reconciliations r
                          WHERE r.tenant = a.tenant AND r.crm = a.crm AND r.lease_until >= as_of)
        ORDER BY a.tenant, a.crm;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
