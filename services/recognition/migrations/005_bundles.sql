-- One cheer per win (issue 18, item 4): what one won deal or one figure update reached at once is one
-- celebration. Its lead row keeps status 'celebrated'; the others get status 'bundled' and name the lead
-- here. A milestone older than the tenant's history horizon when found gets status 'history'. Only
-- 'celebrated' rows ever had an event of their own.
ALTER TABLE celebrations ADD COLUMN IF NOT EXISTS bundled_into uuid;
