-- kpi's revision of each figure (issue 16, item 2): the newest figure of a key is the one with the highest
-- revision, whatever the `as_of` (the clock of the kpi replica that published it). NULL for figures
-- published before kpi carried revisions; those are still ordered by `as_of`.
ALTER TABLE attainment ADD COLUMN IF NOT EXISTS revision bigint;
