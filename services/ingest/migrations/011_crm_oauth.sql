-- OAuth 2.0 connections to a tenant's CRM (issue 21; services/ingest/crm/oauth.py, oauth_rules.py, oauth_store.py).
-- Secrets are sealed with CRM_SECRET_KEYS (shared/secret_box.py): the client's secret, the access and refresh
-- tokens, and a pending authorization's PKCE verifier. Both tables have a `tenant` column, so shared/db.py gives
-- them row-level security.

-- Per tenant and CRM: the OAuth client (app) the tenant registered at its CRM, where its endpoints are when not
-- the vendor's (`auth_base`, an origin: a Salesforce sandbox, a local stand-in), the tokens and until when the
-- access token works, the tenant's API base URL (Pipedrive's api_domain, Salesforce's instance_url), the scopes
-- granted; its status (oauth_rules.py) with the last error the control room shows, and when to refresh again
-- after failures (backoff).
CREATE TABLE IF NOT EXISTS crm_oauth (
    tenant        text        NOT NULL REFERENCES tenants (slug),
    crm           text        NOT NULL CHECK (crm IN ('hubspot', 'pipedrive', 'salesforce')),
    client_id     text        NOT NULL,
    client_secret text        NOT NULL,              -- sealed
    auth_base     text,                              -- NULL: the vendor's documented endpoints
    scopes        text[]      NOT NULL DEFAULT '{}', -- asked for (empty: the CRM's default); granted once connected
    access_token  text,                              -- sealed
    refresh_token text,                              -- sealed
    expires_at    timestamptz,                       -- the access token's
    api_base_url  text,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'connected', 'revoked', 'error')),
    last_error    text,
    error_at      timestamptz,
    failures      integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),  -- failed refreshes in a row
    retry_at      timestamptz,                       -- no refresh before this (backoff)
    connected_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((last_error IS NULL) = (error_at IS NULL)),
    CHECK (status <> 'connected' OR (access_token IS NOT NULL AND refresh_token IS NOT NULL
                                     AND expires_at IS NOT NULL)),
    PRIMARY KEY (tenant, crm)
);
CREATE INDEX IF NOT EXISTS crm_oauth_due ON crm_oauth (expires_at) WHERE status IN ('connected', 'error');

-- An authorization started and not yet come back: its state (what the callback must carry), the PKCE verifier
-- (sealed) and the redirect URI the code is exchanged with. Taken once by its callback (deleted); refused and
-- forgotten after 10 minutes (oauth_rules.PENDING_TTL).
CREATE TABLE IF NOT EXISTS crm_oauth_pending (
    tenant        text        NOT NULL,
    crm           text        NOT NULL,
    state         text        NOT NULL,
    code_verifier text        NOT NULL,              -- sealed
    redirect_uri  text        NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, crm, state),
    FOREIGN KEY (tenant, crm) REFERENCES crm_oauth (tenant, crm) ON DELETE CASCADE
);

-- The refresh timer's cross-tenant work, as the schema's owner (SECURITY DEFINER, as 006_sweeps.sql): which
-- connections must be refreshed at `as_of` (their access token expires within `margin`, or their expiry is unknown)
-- and may be (no backoff pending); revoked and pending connections are left alone. Returns tenant and CRM only.
CREATE OR REPLACE FUNCTION sweep_crm_oauth_due(as_of timestamptz, margin interval)
RETURNS TABLE (tenant text, crm text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY
        SELECT o.tenant, o.crm FROM crm_oauth o
        WHERE o.status IN ('connected', 'error') AND o.refresh_token IS NOT NULL
          AND (o.expires_at IS NULL OR o.expires_at <= as_of + margin)
          AND (o.retry_at IS NULL OR o.retry_at <= as_of)
        ORDER BY o.expires_at NULLS FIRST, o.tenant, o.crm;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
