-- One calendar for every service (issue 18, item 3): a streak neither breaks nor grows on a day off, the
-- tenant's holidays (its registry entry's calendar) or the rep's time off (`time_off.set` on
-- sales.roster.v1), as kpi's pace and coaching's rules count them.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS holidays jsonb;
CREATE TABLE IF NOT EXISTS leaves (
    tenant      text NOT NULL,
    time_off_id text NOT NULL,
    rep_id      text NOT NULL,
    first_day   date NOT NULL,
    last_day    date NOT NULL,
    cancelled   boolean NOT NULL DEFAULT false,
    version_at  timestamptz NOT NULL,  -- the event's time: the newest (time, event id) version wins
    version_id  text NOT NULL,
    PRIMARY KEY (tenant, time_off_id),
    CHECK (last_day >= first_day)
);
CREATE INDEX IF NOT EXISTS leaves_by_rep ON leaves (tenant, rep_id, last_day);
