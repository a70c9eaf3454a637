-- The locale the registry (tenant.upserted.locale) says a tenant's figures are formatted in, for the
-- read side: a Babel identifier such as en, de_DE. Tenants known before it, or only from events, read 'en'.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS locale text NOT NULL DEFAULT 'en';
