-- The latest attainment per key, as kpi last reported it.
CREATE TABLE IF NOT EXISTS attainment (
    tenant     text    NOT NULL,
    scope      text    NOT NULL,
    scope_id   text    NOT NULL,
    period     text    NOT NULL,
    metric     text    NOT NULL,
    actual     numeric NOT NULL,
    target     numeric,
    attainment numeric,
    name       text,
    as_of      timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, scope_id, period, metric)
);

-- Every milestone ever celebrated; the primary key is the "once, ever" guarantee.
CREATE TABLE IF NOT EXISTS celebrations (
    celebration_id uuid PRIMARY KEY,
    tenant         text        NOT NULL,
    scope          text        NOT NULL,
    scope_id       text        NOT NULL,
    milestone      text        NOT NULL,
    period         text        NOT NULL,
    value          numeric     NOT NULL,
    headline       text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    UNIQUE (tenant, scope, scope_id, milestone, period)
);
CREATE INDEX IF NOT EXISTS celebrations_by_scope ON celebrations (tenant, scope_id, period);
