-- Salesforce Change Data Capture through the Streaming API, without a relay (issue 21;
-- services/ingest/crm/salesforce_stream.py, services/ingest/crm/stream_store.py). One row per tenant and channel
-- ('/data/OpportunityChangeEvent'): the replay id of the last event whose effect is stored, written in the same
-- transaction as that effect, so a restart resumes exactly after it; the last failure the client reported; and
-- whether events may have been missed (the stored replay id fell out of Salesforce's retention window), since when,
-- until a reconciliation covers that time.
CREATE TABLE IF NOT EXISTS crm_streams (
    tenant     text        NOT NULL REFERENCES tenants (slug),
    channel    text        NOT NULL,
    replay_id  bigint,                               -- NULL: no event stored yet
    updated_at timestamptz NOT NULL,                 -- when replay_id was last stored
    last_error text,
    error_at   timestamptz,
    gap        boolean     NOT NULL DEFAULT false,
    gap_since  timestamptz,                          -- events after this time may be missing
    CHECK (gap = (gap_since IS NOT NULL)),
    CHECK ((last_error IS NULL) = (error_at IS NULL)),
    PRIMARY KEY (tenant, channel)
);

-- The stream supervisor's cross-tenant read, as the schema's owner (SECURITY DEFINER, as 006_sweeps.sql): the
-- tenants (not revoked) whose Salesforce OAuth connection is connected, so each gets one subscription
-- (services/ingest/crm/stream_supervisor.py). Returns the tenant only.
CREATE OR REPLACE FUNCTION sweep_crm_streaming_tenants()
RETURNS TABLE (tenant text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    caller_scope text := current_setting('attain.tenant', true);
BEGIN
    PERFORM set_config('attain.tenant', '*', true);
    RETURN QUERY
        SELECT o.tenant FROM crm_oauth o JOIN tenants t ON t.slug = o.tenant
        WHERE o.crm = 'salesforce' AND o.status = 'connected' AND t.revoked_at IS NULL
        ORDER BY o.tenant;
    PERFORM set_config('attain.tenant', coalesce(caller_scope, ''), true);
END $$;
