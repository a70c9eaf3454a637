-- Reps whose evaluation is owed: written in the transaction of the batch that touched them (with its
-- offsets), taken and deleted in the transaction that evaluates them (timers.evaluate_owed). A rep touched
-- by many batches before the evaluator comes round is evaluated once.
CREATE TABLE IF NOT EXISTS owed_evaluations (
    tenant text        NOT NULL,
    rep_id text        NOT NULL,
    since  timestamptz NOT NULL,
    PRIMARY KEY (tenant, rep_id)
);
CREATE INDEX IF NOT EXISTS owed_evaluations_oldest ON owed_evaluations (since);
