-- The locale a tenant's figures are formatted in (a Babel identifier such as en, de_DE, fr_FR), set by
-- `tenants create --locale` and `tenants locale` and announced with the tenant on attain.tenants.v1.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS locale text NOT NULL DEFAULT 'en';
