-- One calendar for every service (issue 18, item 3). The tenant's holiday calendar comes with its registry
-- entry (country, subdivision, added and removed days: `shared.workdays.HolidayCalendar.to_json()`), and a
-- rep's time off with `time_off.set` events on sales.roster.v1, which kpi and recognition read as well.
-- The `holidays` and `time_off` tables keep what was entered through coaching's API before; they still count
-- as days off here (kpi and recognition never saw them: re-enter them with `tenants holidays` and
-- `time_off.set`).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS holidays jsonb;
CREATE TABLE IF NOT EXISTS leaves (
    tenant      text NOT NULL,
    time_off_id text NOT NULL,
    rep_id      text NOT NULL,
    first_day   date NOT NULL,
    last_day    date NOT NULL,
    reason      text,
    cancelled   boolean NOT NULL DEFAULT false,
    version_at  timestamptz NOT NULL,  -- the event's time: the newest (time, event id) version wins
    version_id  text NOT NULL,
    PRIMARY KEY (tenant, time_off_id),
    CHECK (last_day >= first_day)
);
CREATE INDEX IF NOT EXISTS leaves_by_rep ON leaves (tenant, rep_id, last_day);
