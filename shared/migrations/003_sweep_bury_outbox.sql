-- Cross-tenant work goes through narrow functions that run as the schema's owner (SECURITY DEFINER): the
-- tenant policy honours the all-tenants scope `*` only for the table's owner, so a working role cannot
-- widen its own scope (shared/db.py). Each `sweep_*` function sets `*` for its own statements and restores
-- the caller's scope; `shared.db.secure` pins its search_path and keeps EXECUTE from PUBLIC.

-- The outbox relay: delete a published batch and move the rows Kafka refused for good to outbox_dead,
-- whichever tenants they belong to (shared/outbox.py).
CREATE OR REPLACE FUNCTION sweep_bury_outbox(positions text, refused bigint[], errors text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    WITH gone AS (DELETE FROM outbox WHERE seq = ANY(string_to_array(positions, ',')::bigint[]) OR seq = ANY(refused)
                  RETURNING *)
    INSERT INTO outbox_dead (seq, tenant, topic, key, value, header_pack, headers, created_at, error)
    SELECT g.seq, coalesce(g.tenant, (SELECT h ->> 1 FROM jsonb_array_elements(g.headers) AS h
                                      WHERE h ->> 0 = 'ce_tenant' LIMIT 1), ''),
           g.topic, g.key, g.value, g.header_pack, g.headers, g.created_at, d.error
    FROM gone g JOIN unnest(refused, errors) AS d(seq, error) ON d.seq = g.seq;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
