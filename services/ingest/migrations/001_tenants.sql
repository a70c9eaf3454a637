CREATE TABLE IF NOT EXISTS tenants (
    slug               text PRIMARY KEY,
    token_sha256       bytea NOT NULL UNIQUE,
    timezone           text NOT NULL,
    currency           char(3) NOT NULL,
    fiscal_start_month int NOT NULL DEFAULT 1 CHECK (fiscal_start_month BETWEEN 1 AND 12),
    created_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz
);

-- Per-CRM secrets used to verify native webhooks (HubSpot client secret, Pipedrive basic-auth
-- password, Salesforce URL token). Stored as given: HMAC verification needs the secret itself.
CREATE TABLE IF NOT EXISTS tenant_secrets (
    tenant     text NOT NULL REFERENCES tenants (slug),
    crm        text NOT NULL CHECK (crm IN ('hubspot', 'pipedrive', 'salesforce')),
    secret     text NOT NULL,
    org_id     text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, crm)
);

-- Every event id accepted, so a re-sent event is answered "duplicate" and not published again.
CREATE TABLE IF NOT EXISTS accepted_events (
    tenant      text NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, source, event_id)
);

-- The last known owner of each deal, to key a deal.deleted (which carries no rep) like its upserts.
CREATE TABLE IF NOT EXISTS deal_owners (
    tenant  text NOT NULL,
    deal_id text NOT NULL,
    rep_id  text NOT NULL,
    PRIMARY KEY (tenant, deal_id)
);
