-- Single sign-on with OpenID Connect (services/ingest/sso.py; docs/security.md, "Single sign-on").

-- Per tenant: its identity provider, the client ingest signs in as (the secret sealed with CRM_SECRET_KEYS, as
-- the CRM secrets are: secret_box.py), which of the provider's groups are admins and viewers, and how long a
-- session token lives (minutes; fractions are for tests).
CREATE TABLE IF NOT EXISTS sso_configs (
    tenant          text PRIMARY KEY REFERENCES tenants (slug),
    issuer          text NOT NULL,
    client_id       text NOT NULL,
    client_secret   text NOT NULL,
    admin_groups    text[] NOT NULL DEFAULT '{}',
    viewer_groups   text[] NOT NULL DEFAULT '{}',
    session_minutes numeric NOT NULL DEFAULT 60 CHECK (session_minutes > 0 AND session_minutes <= 1440),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Who is who: each rep of the roster as its last accepted rep.upserted said (written in the transaction that
-- accepts it, services/ingest/intake.py), by lower-case e-mail, for the role of a signed-in person.
CREATE TABLE IF NOT EXISTS people (
    tenant     text NOT NULL,
    rep_id     text NOT NULL,
    email      text,
    manager_id text,
    active     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant, rep_id)
);
CREATE INDEX IF NOT EXISTS people_by_email ON people (tenant, email);

-- A session token minted at sign-in, with the provider's refresh token (sealed) that renews it.
CREATE TABLE IF NOT EXISTS sso_sessions (
    tenant        text NOT NULL,
    token_id      text NOT NULL,
    email         text NOT NULL,
    refresh_token text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, token_id)
);
