-- The audit log (shared/audit.py): the value each audited subject had after the last change ingest accepted for
-- it (a target, a rep, a team, a period of time off), so that the next change's entry says what it was before.
-- Written in the transaction that accepts the change, with its audit entry on the outbox.
CREATE TABLE IF NOT EXISTS audit_values (
    tenant   text  NOT NULL,
    subject  text  NOT NULL,
    value    jsonb NOT NULL,
    PRIMARY KEY (tenant, subject)
);
