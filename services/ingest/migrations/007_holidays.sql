-- A tenant's holiday calendar (issue 18, item 3): its country's and subdivision's public holidays plus the
-- days it added, minus the ones it removed, as `shared.workdays.HolidayCalendar.to_json()`. Set by
-- `tenants create --country/--subdivision` and `tenants holidays`, announced with the tenant on
-- attain.tenants.v1, so every service counts the same working days. NULL: no holidays.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS holidays jsonb;
