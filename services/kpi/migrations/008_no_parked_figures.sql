-- Figures are no longer parked: each batch saves and publishes the figures it moved in its own
-- transaction. Keys an older version parked are owed: their tenants are recounted on their next batch
-- (tally_rebuilds), which recomputes and publishes every figure that changed.
INSERT INTO tally_rebuilds (tenant) SELECT DISTINCT tenant FROM pending_figures ON CONFLICT DO NOTHING;
DROP TABLE IF EXISTS pending_figures;
