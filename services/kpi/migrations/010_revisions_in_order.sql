-- A figure's revision from one sequence for the whole schema (issue 16, item 2). It travels in
-- `kpi.attainment.updated` (`revision`) so that coaching and recognition keep the newest figure by kpi's
-- own order, not by `as_of` (the wall clock of whichever replica published it, which may be skewed).
-- Per key it still only grows: an update takes its value once the key's row is locked, in commit order.
-- One sequence rather than a count per key: `kpi rebuild --replace` carries it on past the live schema's,
-- so a figure published after a swap is newer than any published before it (a count would restart at 1,
-- be ignored downstream as old, and repeat the event ids of earlier revisions).
CREATE SEQUENCE IF NOT EXISTS figure_revisions AS bigint;
SELECT setval('figure_revisions', greatest(coalesce((SELECT max(revision) FROM published_figures), 0), 1));
ALTER TABLE published_figures ALTER COLUMN revision TYPE bigint;
ALTER TABLE published_figures ALTER COLUMN revision SET DEFAULT nextval('figure_revisions');
