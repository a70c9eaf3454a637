"""Prometheus metrics common to every service; each service adds its own next to its code."""

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "attain_consumed_messages_total",
    "Kafka messages a consumer handled, by outcome (applied, skipped_replay, dead_lettered).",
    ["group", "topic", "outcome"],
)
BATCH_SECONDS = Histogram(
    "attain_consumer_batch_seconds",
    "Time to apply one consumed batch in one PostgreSQL transaction.",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRANSIENT_ERRORS = Counter(
    "attain_transient_errors_total",
    "Retries after a dependency (database, broker) failed; the batch was not committed.",
    ["component"],
)
OUTBOX_PUBLISHED = Counter(
    "attain_outbox_published_total", "Outbox rows published to Kafka.", ["topic"]
)
OUTBOX_PENDING = Gauge("attain_outbox_pending", "Outbox rows not yet published (last seen).")
READY = Gauge("attain_ready", "1 while /readyz answers 200.")
