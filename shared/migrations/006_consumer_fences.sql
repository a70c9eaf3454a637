-- Fencing for consumer groups (shared/consumer.py): which assignment owns each partition now. A consumer
-- that is given partitions writes a fresh token here for them; every batch reads the tokens of its
-- partitions (FOR SHARE, in its transaction) and is refused when one is not its own: a zombie (paused past
-- its session, its partitions reassigned) tries to write and is refused, instead of relying on the stored
-- offsets to make its late batch a no-op. A claim waits for a batch in flight to finish.
CREATE TABLE IF NOT EXISTS consumer_fences (
    group_id   text NOT NULL,
    topic      text NOT NULL,
    partition  int  NOT NULL,
    token      text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
