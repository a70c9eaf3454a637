-- One calendar for every service (issue 18, item 3): kpi's expected, pace and projection count working
-- days as coaching and recognition do, Monday to Friday in the tenant's zone minus the tenant's holidays
-- and (for a rep's figures) the rep's time off (shared/workdays.py, services/kpi/pace.py).
--
-- The tenant's holiday calendar as its registry entry carries it (tenant.upserted.holidays: country,
-- subdivision, added days, removed days: `shared.workdays.HolidayCalendar.of` reads it back). NULL: no
-- calendar (an entry from before it existed), no holidays. No tally depends on it: a change recounts nothing.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS holidays jsonb;

-- Each time off of a rep (`time_off.set` on sales.roster.v1): local dates, both included. The newest version
-- wins, by event time then event id; a cancelled one stays (an older version arriving late cannot bring it
-- back) but is no day off. The reason is not kept: kpi needs only the days.
CREATE TABLE IF NOT EXISTS leaves (
    tenant      text        NOT NULL,
    time_off_id text        NOT NULL,
    rep_id      text        NOT NULL,
    first_day   date        NOT NULL,
    last_day    date        NOT NULL,
    cancelled   boolean     NOT NULL DEFAULT false,
    version_at  timestamptz NOT NULL,  -- the event's time: the newest (time, event id) version wins
    version_id  text        NOT NULL,
    PRIMARY KEY (tenant, time_off_id),
    CHECK (last_day >= first_day)
);
CREATE INDEX IF NOT EXISTS leaves_by_rep ON leaves (tenant, rep_id, last_day);
