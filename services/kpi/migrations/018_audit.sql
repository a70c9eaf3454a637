-- The audit log (issue 17, item 7; shared/audit.py): every entry the services wrote on attain.audit.v1, kept
-- for good, read by admins through GET /v1/audit and the control room. The entry's id is the dedup key: a
-- relay's repeat or a replay of the topic inserts nothing.
CREATE TABLE IF NOT EXISTS audit_log (
    tenant      text        NOT NULL,
    audit_id    text        NOT NULL,
    at          timestamptz NOT NULL,
    service     text        NOT NULL,
    action      text        NOT NULL,
    subject     text        NOT NULL,
    actor       jsonb       NOT NULL,
    before      jsonb,
    after       jsonb,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant, audit_id)
);
CREATE INDEX IF NOT EXISTS audit_log_newest ON audit_log (tenant, at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log (tenant, subject, at DESC);
