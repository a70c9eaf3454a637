-- Secret rotation: the replaced secret stays valid for a grace period.
ALTER TABLE tenant_secrets ADD COLUMN IF NOT EXISTS previous_secret text;
ALTER TABLE tenant_secrets ADD COLUMN IF NOT EXISTS previous_valid_until timestamptz;

-- The id store is pruned by age (INGEST ID_RETENTION_DAYS).
CREATE INDEX IF NOT EXISTS accepted_events_by_age ON accepted_events (accepted_at);

-- Per tenant and CRM: the CRM's stages as open/won/lost, and the CRM's users as reps.
CREATE TABLE IF NOT EXISTS crm_stage_map (
    tenant text NOT NULL REFERENCES tenants (slug),
    crm    text NOT NULL,
    stage  text NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    PRIMARY KEY (tenant, crm, stage)
);
CREATE TABLE IF NOT EXISTS crm_user_map (
    tenant      text NOT NULL REFERENCES tenants (slug),
    crm         text NOT NULL,
    crm_user_id text NOT NULL,  -- '*' with rep_id '=' maps every other user to the same id
    rep_id      text NOT NULL,
    PRIMARY KEY (tenant, crm, crm_user_id)
);

-- The last known value of each field of each CRM deal, with the CRM's change time per field.
CREATE TABLE IF NOT EXISTS crm_deals (
    tenant          text  NOT NULL,
    crm             text  NOT NULL,
    deal_id         text  NOT NULL,
    fields          jsonb NOT NULL DEFAULT '{}',
    emitted         jsonb,           -- the canonical data last published for it
    emitted_version timestamptz,     -- its updated_at: versions only ever grow
    PRIMARY KEY (tenant, crm, deal_id)
);

-- What could not be turned into a canonical event, and why; resolved when it later could.
CREATE TABLE IF NOT EXISTS crm_dead_letters (
    id          bigserial PRIMARY KEY,
    tenant      text        NOT NULL,
    crm         text        NOT NULL,
    object_type text        NOT NULL CHECK (object_type IN ('deal', 'activity')),
    object_id   text        NOT NULL,
    event_id    text        NOT NULL,
    reason      text        NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS crm_dead_letters_open
    ON crm_dead_letters (tenant, crm, object_type, object_id) WHERE resolved_at IS NULL;

-- Optional CRM API access, used to fetch a record whose webhook lacked fields.
CREATE TABLE IF NOT EXISTS crm_api_tokens (
    tenant   text NOT NULL REFERENCES tenants (slug),
    crm      text NOT NULL,
    token    text NOT NULL,
    base_url text NOT NULL,
    PRIMARY KEY (tenant, crm)
);
