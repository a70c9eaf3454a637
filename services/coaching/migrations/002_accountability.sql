-- Issue 5: what coaching needs beyond attainment to notice slips early and follow them up.

-- The tenant registry (attain.tenants.v1): API authentication, calendar, base currency.
CREATE TABLE IF NOT EXISTS tenants (
    tenant             text PRIMARY KEY,
    timezone           text    NOT NULL DEFAULT 'UTC',
    fiscal_start_month int     NOT NULL DEFAULT 1,
    currency           text,
    token_sha256       bytea,
    active             boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS coaching_tenants_by_token ON tenants (token_sha256);

-- The roster: who manages whom (escalation goes to the manager's manager), each rep's zone.
CREATE TABLE IF NOT EXISTS reps (
    tenant      text        NOT NULL,
    rep_id      text        NOT NULL,
    name        text,
    team_id     text,
    manager_id  text,
    timezone    text,
    active      boolean     NOT NULL DEFAULT true,
    version     timestamptz NOT NULL,
    known_since timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id)
);

-- Deals as they stand now (newest updated_at wins) and when anything last happened on each.
CREATE TABLE IF NOT EXISTS deals (
    tenant           text        NOT NULL,
    deal_id          text        NOT NULL,
    rep_id           text        NOT NULL,
    stage            text        NOT NULL,
    amount           numeric     NOT NULL,
    currency         text        NOT NULL,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL,
    tiebreak         text        NOT NULL,
    deleted          boolean     NOT NULL DEFAULT false,
    last_activity_at timestamptz,
    PRIMARY KEY (tenant, deal_id)
);
CREATE INDEX IF NOT EXISTS deals_by_rep ON deals (tenant, rep_id);

-- Activities by id (a duplicate delivery inserts nothing); old ones may be pruned.
CREATE TABLE IF NOT EXISTS activities (
    tenant      text        NOT NULL,
    activity_id text        NOT NULL,
    rep_id      text        NOT NULL,
    kind        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    deal_id     text,
    PRIMARY KEY (tenant, activity_id)
);
CREATE INDEX IF NOT EXISTS activities_by_rep ON activities (tenant, rep_id, occurred_at);

-- Fair pace: tenant holidays and each rep's time off, as local dates.
CREATE TABLE IF NOT EXISTS holidays (
    tenant text NOT NULL,
    day    date NOT NULL,
    name   text NOT NULL,
    PRIMARY KEY (tenant, day)
);
CREATE TABLE IF NOT EXISTS time_off (
    tenant    text NOT NULL,
    rep_id    text NOT NULL,
    first_day date NOT NULL,
    last_day  date NOT NULL,
    reason    text,
    PRIMARY KEY (tenant, rep_id, first_day),
    CHECK (last_day >= first_day)
);

-- Thresholds: a tenant's overrides (team_id '') and each team's, on top of the defaults.
CREATE TABLE IF NOT EXISTS policies (
    tenant    text  NOT NULL,
    team_id   text  NOT NULL DEFAULT '',
    overrides jsonb NOT NULL,
    PRIMARY KEY (tenant, team_id)
);

-- The per-tenant catalogue of suggested actions and training per rule.
CREATE TABLE IF NOT EXISTS catalogue (
    tenant            text  NOT NULL,
    rule              text  NOT NULL,
    suggested_actions jsonb NOT NULL,
    training          jsonb NOT NULL,
    PRIMARY KEY (tenant, rule)
);

-- The cool-down gate remembers the severity, so a worse finding inside the cool-down may raise it.
ALTER TABLE cooldowns ADD COLUMN IF NOT EXISTS severity text NOT NULL DEFAULT 'warning';

-- The task lifecycle: open -> acknowledged -> completed, or closed (recovered/superseded); escalated
-- when still unacknowledged past its due date.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS rep_name text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS team_id text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}';
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS completed_at timestamptz;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS outcome text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS escalated_at timestamptz;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS escalated_to text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS closed_at timestamptz;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS close_reason text;
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (due_at) WHERE status = 'open' AND escalated_at IS NULL;
CREATE INDEX IF NOT EXISTS tasks_by_manager ON tasks (tenant, manager_id, created_at);

-- Action plans: steps with a metric, a target and a due date; progress follows activities and deals.
CREATE TABLE IF NOT EXISTS action_plans (
    plan_id    uuid PRIMARY KEY,
    tenant     text        NOT NULL,
    rep_id     text        NOT NULL,
    task_id    uuid,
    title      text        NOT NULL,
    status     text        NOT NULL DEFAULT 'open',
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_by_rep ON action_plans (tenant, rep_id, status);
CREATE TABLE IF NOT EXISTS plan_steps (
    step_id    uuid PRIMARY KEY,
    plan_id    uuid        NOT NULL REFERENCES action_plans (plan_id),
    position   int         NOT NULL,
    title      text        NOT NULL,
    metric     text        NOT NULL,
    target     numeric     NOT NULL,
    starts_at  timestamptz NOT NULL,
    due_at     timestamptz NOT NULL,
    progress   numeric     NOT NULL DEFAULT 0,
    status     text        NOT NULL DEFAULT 'open',
    settled_at timestamptz
);
CREATE INDEX IF NOT EXISTS steps_open ON plan_steps (due_at) WHERE status = 'open';

-- One weekly review per (scope, id, ISO week), whichever replica gets there first.
CREATE TABLE IF NOT EXISTS reviews (
    tenant       text        NOT NULL,
    scope        text        NOT NULL,
    scope_id     text        NOT NULL,
    week         text        NOT NULL,
    review_id    uuid        NOT NULL,
    body         jsonb       NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, week)
);
