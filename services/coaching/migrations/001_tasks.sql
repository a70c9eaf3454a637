-- The latest attainment per rep key, as kpi last reported it, and when coaching first saw it.
CREATE TABLE IF NOT EXISTS attainment (
    tenant        text        NOT NULL,
    scope         text        NOT NULL,
    scope_id      text        NOT NULL,
    period        text        NOT NULL,
    metric        text        NOT NULL,
    actual        numeric     NOT NULL,
    target        numeric,
    name          text,
    manager_id    text,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    as_of         timestamptz NOT NULL,
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, period, metric)
);
CREATE INDEX IF NOT EXISTS attainment_active ON attainment (period_end) WHERE scope = 'rep';

-- The last check-in per (rep, rule): the cool-down gate, updated atomically with the task insert.
CREATE TABLE IF NOT EXISTS cooldowns (
    tenant       text        NOT NULL,
    rep_id       text        NOT NULL,
    rule         text        NOT NULL,
    last_task_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id, rule)
);

CREATE TABLE IF NOT EXISTS tasks (
    task_id           uuid PRIMARY KEY,
    tenant            text        NOT NULL,
    rep_id            text        NOT NULL,
    manager_id        text,
    rule              text        NOT NULL,
    severity          text        NOT NULL,
    summary           text        NOT NULL,
    evidence          jsonb       NOT NULL,
    suggested_actions jsonb       NOT NULL,
    training          jsonb       NOT NULL,
    status            text        NOT NULL DEFAULT 'open',
    created_at        timestamptz NOT NULL,
    due_at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_rep ON tasks (tenant, rep_id, status);
