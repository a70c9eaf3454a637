-- The retention timer's cross-tenant work, as the schema's owner (SECURITY DEFINER): the working role
-- cannot set the all-tenants scope on itself (shared/db.py). Sets `*` for its own statement and restores
-- the caller's scope; `shared.db.secure` pins its search_path and keeps EXECUTE from PUBLIC.

-- Forget up to `lim` accepted event ids older than `retention` (the same expiry for every tenant);
-- returns how many (services/ingest/retention.py).
CREATE OR REPLACE FUNCTION sweep_expired_ids(retention interval, lim integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
    removed bigint;
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    DELETE FROM accepted_events WHERE ctid IN (SELECT ctid FROM accepted_events
                                               WHERE accepted_at < now() - retention LIMIT lim);
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
    RETURN removed;
END $$;
