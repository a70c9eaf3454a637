-- Issue 15: batched handling, tenant settings cached per replica, leaderboards from recognition's own state.

-- Every write to a tenant's settings or registry entry takes a new number from one sequence, whoever makes
-- it (the API, a registry event, a sales event's calendar, a fix by hand): a replica's cache compares the
-- numbers once per batch and reloads only what changed. The numbers are compared for equality only.
CREATE SEQUENCE IF NOT EXISTS config_version;
ALTER TABLE settings ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT nextval('config_version');
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT nextval('config_version');
CREATE OR REPLACE FUNCTION next_config_version() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.version := nextval('config_version');
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS settings_version ON settings;
CREATE TRIGGER settings_version BEFORE UPDATE ON settings FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION next_config_version();
DROP TRIGGER IF EXISTS tenants_version ON tenants;
CREATE TRIGGER tenants_version BEFORE UPDATE ON tenants FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION next_config_version();

-- What leaderboards need beyond targeted figures (kpi publishes only those now): exchange rates from the
-- registry, each deal's creation (pipeline_created) and each activity's kind (calls, emails, meetings).
-- Rows stored before this migration have none of them (NULL): see docs/architecture.md, recognition.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS rates jsonb NOT NULL DEFAULT '[]';
ALTER TABLE deals ADD COLUMN IF NOT EXISTS created_at timestamptz;
ALTER TABLE activities ADD COLUMN IF NOT EXISTS kind text;
