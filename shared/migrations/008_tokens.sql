-- Tokens with roles (issue 17; docs/contract.md "Tokens and roles"). In ingest this is the record: the CLI and
-- the admin API create, rotate and revoke tokens here, and every change is announced, signed, on the registry
-- (`tenant.upserted`, its `tokens`). In kpi, coaching and recognition it is a copy of the registry's list:
-- each announcement replaces the tenant's rows, so a revoked token is gone within one relay and one batch.
-- Only the SHA-256 digest of a token is kept. Readable in every scope (db.REGISTRY): a bearer token is looked
-- up before its tenant is known.
CREATE TABLE IF NOT EXISTS tokens (
    tenant       text NOT NULL,
    token_id     text NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'integration', 'manager', 'rep', 'viewer')),
    rep_id       text,
    manager_id   text,
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant, token_id),
    CHECK ((role = 'rep') = (rep_id IS NOT NULL)),
    CHECK ((role = 'manager') = (manager_id IS NOT NULL))
);

-- A deployment from before: each tenant's one token becomes its admin token ('initial'). ingest re-announces
-- every tenant at start, so the readers' copies follow from the registry; this only bridges the moments
-- between a reader's migration and that announcement. Its tenants table names the tenant `slug` in ingest.
DO $$
BEGIN
    IF to_regclass('tenants') IS NULL THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'tenants' AND column_name = 'slug') THEN
        INSERT INTO tokens (tenant, token_id, token_sha256, role, name)
        SELECT slug, 'initial', token_sha256, 'admin', 'the token the tenant was created with'
        FROM tenants WHERE revoked_at IS NULL ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO tokens (tenant, token_id, token_sha256, role, name)
        SELECT tenant, 'initial', token_sha256, 'admin', 'the token the tenant was created with'
        FROM tenants WHERE token_sha256 IS NOT NULL ON CONFLICT DO NOTHING;
    END IF;
END $$;
