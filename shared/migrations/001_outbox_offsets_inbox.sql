-- Tables every consuming/emitting service keeps in its own schema (shared/outbox.py, shared/consumer.py).

CREATE TABLE IF NOT EXISTS outbox (
    seq        bigserial PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea       NOT NULL,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Where each consumer group stands, written in the same transaction as the state it produced.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    text   NOT NULL,
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Events already applied, by CloudEvents identity (source + id, per tenant).
CREATE TABLE IF NOT EXISTS inbox (
    tenant      text NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, source, event_id)
);
