-- The outbox relay without a JSON round trip, and with a place for the records Kafka refuses for good
-- (shared/outbox.py).

-- Headers packed in one value the relay decodes in C into what aiokafka takes (a MessagePack array of
-- [name, value] pairs: `shared.outbox._pack`), no JSON on either side. Rows written before this migration
-- (or by a replica not yet upgraded) have only `headers` (jsonb): the relay reads both forms.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS header_pack bytea;
ALTER TABLE outbox ALTER COLUMN headers DROP NOT NULL;
-- Whose event a row is, readable without decoding anything (an operator's "what is pending for tenant X",
-- the tenant of a dead row). The outbox stays out of row-level security (shared/db.py, UNSCOPED): only the
-- relay reads it, across tenants by nature.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS tenant text;
UPDATE outbox SET tenant = (SELECT h ->> 1 FROM jsonb_array_elements(headers) AS h WHERE h ->> 0 = 'ce_tenant' LIMIT 1)
WHERE tenant IS NULL AND headers IS NOT NULL;

-- Rows Kafka refused for good (too large for the topic, invalid, unknown or forbidden topic), moved here in
-- the transaction that deletes the batch they came with, so that they block nobody. `tenant` is the
-- event's ('' when unknown), so row-level security covers the table. To publish
-- one again once its cause is fixed, insert it back into `outbox` (with a new seq).
CREATE TABLE IF NOT EXISTS outbox_dead (
    seq           bigint      PRIMARY KEY,
    tenant        text        NOT NULL,
    topic         text        NOT NULL,
    key           bytea       NOT NULL,
    value         bytea       NOT NULL,
    header_pack   bytea,
    headers       jsonb,
    created_at    timestamptz NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now(),
    error         text        NOT NULL
);
