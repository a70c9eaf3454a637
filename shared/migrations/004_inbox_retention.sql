-- The inbox stays bounded (issue 16, item 7): ids of derived events applied longer ago than
-- INBOX_RETENTION_DAYS are forgotten by every service's inbox-retention timer (shared/inbox.py).
-- A duplicate delivery comes from a zombie or a redelivery after a crash, within seconds or minutes
-- of the first, and offsets commit with the state they guard, so nothing older is delivered again short
-- of an operator resetting a group's offsets far back.
-- (A plain CREATE INDEX: migrations run in a transaction, where CONCURRENTLY cannot; it blocks writes to
-- the inbox while it builds, once.)
CREATE INDEX IF NOT EXISTS inbox_by_age ON inbox (received_at);

-- Every tenant's expired ids, as the schema's owner: the working role cannot set the all-tenants scope on
-- itself (shared/db.py). Sets `*` for its own statement and restores the caller's scope.
CREATE OR REPLACE FUNCTION sweep_expired_inbox(retention interval, lim integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
    removed bigint;
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE received_at < now() - retention LIMIT lim);
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
    RETURN removed;
END $$;
