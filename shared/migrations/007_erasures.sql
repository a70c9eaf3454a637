-- Erasures (issue 16, item 7): `python -m services.privacy erase` deletes a tenant's or a rep's rows and
-- records here, in the same transaction, when it did. Kafka keeps what was erased in the topics that are
-- never compacted (the sales topics forever, the others until their retention): every consumer, and
-- `kpi rebuild`, skips a record of an erased tenant or rep produced before its erasure (shared/erasure.py),
-- so no replay brings the person back. rep_id '' stands for the whole tenant.
CREATE TABLE IF NOT EXISTS erasures (
    tenant text NOT NULL,
    rep_id text NOT NULL DEFAULT '',
    erased_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id)
);

-- The erasures of the tenants of a batch, as the schema's owner: a consumer batch spans tenants, and the
-- working role cannot set the all-tenants scope on itself (shared/db.py). Sets `*` for its own statement
-- and restores the caller's scope (no SECURITY DEFINER ... SET attain.tenant: a non-superuser owner
-- could not create that).
CREATE OR REPLACE FUNCTION sweep_erasures(tenants text[])
RETURNS TABLE (tenant text, rep_id text, erased_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY SELECT e.tenant, e.rep_id, e.erased_at FROM erasures e WHERE e.tenant = ANY (tenants);
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
