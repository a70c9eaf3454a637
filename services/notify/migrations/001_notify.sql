-- notify (issue 19): what it keeps of the registry and the roster, the control room's team channels, each
-- person's preferences, and every delivery: one row per (event, recipient, channel), its idempotency key
-- UNIQUE, so a replayed event inserts nothing new (ON CONFLICT DO NOTHING in the batch's transaction).

-- The tenant registry (attain.tenants.v1): tokens (shared 008), the tenant's zone, currency and locale.
CREATE TABLE IF NOT EXISTS tenants (
    tenant       text PRIMARY KEY,
    timezone     text    NOT NULL DEFAULT 'UTC',
    currency     text,
    locale       text    NOT NULL DEFAULT 'en',
    token_sha256 bytea,
    active       boolean NOT NULL DEFAULT true
);

-- The roster's people (sales.roster.v1 rep.upserted): who they are, where mail reaches them, their zone.
CREATE TABLE IF NOT EXISTS people (
    tenant     text        NOT NULL,
    person_id  text        NOT NULL,
    name       text        NOT NULL,
    email      text,
    timezone   text        NOT NULL,
    manager_id text,
    team_id    text,
    active     boolean     NOT NULL DEFAULT true,
    version    timestamptz NOT NULL,
    PRIMARY KEY (tenant, person_id)
);

-- Where a team's public messages go (set in the control room). The webhook URLs are credentials (whoever
-- holds one may post to the channel): sealed with NOTIFY_SECRET_KEYS (`fernet:...`, shared/secret_box.py).
CREATE TABLE IF NOT EXISTS team_channels (
    tenant        text NOT NULL,
    team_id       text NOT NULL,
    slack_webhook text,  -- sealed
    slack_channel text,  -- a channel id for chat.postMessage with the tenant's bot token (not a secret)
    teams_webhook text,  -- sealed
    PRIMARY KEY (tenant, team_id)
);

-- The tenant's own connections: a Slack app's bot token (direct messages found by e-mail, team channels by
-- id) and a generic webhook receiver signed the Standard Webhooks way. Token and secret sealed.
CREATE TABLE IF NOT EXISTS tenant_channels (
    tenant          text PRIMARY KEY,
    slack_bot_token text,  -- sealed
    webhook_url     text,
    webhook_secret  text   -- sealed (whsec_...)
);

-- Check-ins still open, for each manager's digest of their reps' open check-ins (created and escalated
-- add, closed removes), and the days a manager's digest was made for.
CREATE TABLE IF NOT EXISTS open_check_ins (
    tenant     text        NOT NULL,
    task_id    text        NOT NULL,
    rep_id     text        NOT NULL,
    manager_id text,
    summary    text        NOT NULL,
    severity   text        NOT NULL,
    due_at     timestamptz,
    opened_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, task_id)
);

-- Each person's choices (`services.notify.model.Preferences`); absent: the defaults.
CREATE TABLE IF NOT EXISTS preferences (
    tenant              text    NOT NULL,
    person_id           text    NOT NULL,
    channels            jsonb   NOT NULL DEFAULT '{}',  -- kind -> [channel, ...]
    public_celebrations boolean NOT NULL DEFAULT true,
    quiet_start         time    NOT NULL DEFAULT '20:00',
    quiet_end           time    NOT NULL DEFAULT '08:00',
    weekends_quiet      boolean NOT NULL DEFAULT true,
    daily_cap           int     NOT NULL DEFAULT 20 CHECK (daily_cap >= 1),
    PRIMARY KEY (tenant, person_id)
);

-- Every message: pending until sent, `failed` between transient failures (pending again at
-- next_attempt_at), `dead` with its reason when it cannot be delivered (kept, retried when fixed).
CREATE TABLE IF NOT EXISTS deliveries (
    tenant          text        NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,  -- the event's data as it came: rendered when it is sent
    recipient       text        NOT NULL,  -- a person id, or team:<team_id>
    channel         text        NOT NULL CHECK (channel IN ('email', 'slack', 'teams', 'webhook')),
    kind            text        NOT NULL,
    deliver_at      timestamptz NOT NULL,
    -- folded: past the recipient's daily cap, sent inside their digest (digest_key) instead
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'folded')),
    digest_key      text,
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (tenant, idempotency_key)
);
-- what the worker looks for: due, not yet delivered
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (tenant, status, created_at);
-- a person's deliveries of a day, for their daily cap
CREATE INDEX IF NOT EXISTS deliveries_by_recipient ON deliveries (tenant, recipient, deliver_at);

-- The tenants with a due delivery, for the delivery worker (services/notify/worker.py), as the schema's
-- owner: see shared/db.py and recognition's 007_contests.sql.
CREATE OR REPLACE FUNCTION sweep_due_deliveries(at timestamptz) RETURNS TABLE (tenant text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT DISTINCT d.tenant FROM deliveries d
                 WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= at ORDER BY d.tenant;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;

-- The tenants with a check-in open, for the managers' digests (services/notify/digests.py).
CREATE OR REPLACE FUNCTION sweep_open_check_ins() RETURNS TABLE (tenant text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT DISTINCT o.tenant FROM open_check_ins o ORDER BY o.tenant;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
