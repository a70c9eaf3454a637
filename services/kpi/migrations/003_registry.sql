-- The tenant registry as ingest publishes it (attain.tenants.v1): who may read, by token digest.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS token_sha256 bytea;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS tenants_by_token ON tenants (token_sha256);
CREATE INDEX IF NOT EXISTS attainment_board ON attainment (tenant, period, metric, scope, actual DESC);
