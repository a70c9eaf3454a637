-- A random tag on every outbox row, carried with its seq in the relay's positions record (shared/outbox.py).
-- After a point-in-time restore of the database, the seq sequence goes back and new rows take seqs that
-- rows published before the restore had; a relay that starts then, recovering from the last positions
-- record, must not take those new rows for published ones. Their tags differ: only a row whose seq AND tag
-- match is forgotten. 62 random bits (random() is reseeded in every backend).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS tag bigint NOT NULL DEFAULT (random() * 4611686018427387903)::bigint;
