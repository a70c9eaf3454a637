-- Issue 15: a tenant's configuration is cached in each coaching process (config.py) and checked per
-- evaluation with one primary-key read of this table. Every write to what the cache holds (the registry's
-- tenant row, policies, the catalogue, holidays) gives the tenant a new random version in the writer's
-- own transaction, through the triggers below, whatever the write path (API, registry events, psql).
-- Random, not a counter: a version that a rolled-back transaction produced is never produced again, and
-- two databases (two replays in one process) never share one.
CREATE TABLE IF NOT EXISTS config_versions (
    tenant  text PRIMARY KEY,
    version uuid NOT NULL
);

CREATE OR REPLACE FUNCTION bump_config_version() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    affected text;
BEGIN
    affected := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant ELSE NEW.tenant END;
    INSERT INTO config_versions (tenant, version) VALUES (affected, gen_random_uuid())
        ON CONFLICT (tenant) DO UPDATE SET version = EXCLUDED.version;
    IF TG_OP = 'UPDATE' AND OLD.tenant IS DISTINCT FROM NEW.tenant THEN
        INSERT INTO config_versions (tenant, version) VALUES (OLD.tenant, gen_random_uuid())
            ON CONFLICT (tenant) DO UPDATE SET version = EXCLUDED.version;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS config_version ON tenants;
CREATE TRIGGER config_version AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
DROP TRIGGER IF EXISTS config_version ON policies;
CREATE TRIGGER config_version AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
DROP TRIGGER IF EXISTS config_version ON catalogue;
CREATE TRIGGER config_version AFTER INSERT OR UPDATE OR DELETE ON catalogue
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
DROP TRIGGER IF EXISTS config_version ON holidays;
CREATE TRIGGER config_version AFTER INSERT OR UPDATE OR DELETE ON holidays
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
