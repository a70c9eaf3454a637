"""Prometheus metrics common to every service; each service adds its own next to its code."""

import logging

from prometheus_client import Counter, Gauge, Histogram

_log = logging.getLogger("attain.timers")

CONSUMED = Counter(
    "attain_consumed_messages_total",
    "Kafka messages a consumer handled, by event type (ce_type; 'unknown' when absent) and outcome "
    "(applied, skipped_replay, skipped_tombstone, skipped_erased, dead_lettered).",
    ["group", "topic", "type", "outcome"],
)
TOMBSTONES_SKIPPED = Counter(
    "attain_tombstones_skipped_total",
    "Records without a value (Kafka tombstones: an erasure, or compaction's delete marker) a consumer "
    "acknowledged without applying them; never dead-lettered.",
    ["topic"],
)
CONSUMER_FENCED = Counter(
    "attain_consumer_fenced_total",
    "Batches refused because another assignment of the group owns one of their partitions now (a zombie: paused"
    " or cut off past its session while the partition went elsewhere). Nothing of such a batch is written.",
    ["group"],
)
OFFSET_REGRESSION = Gauge(
    "attain_consumer_offset_regression",
    "1 while a partition is paused because its end lies below the offset PostgreSQL stored for the group (the "
    "topic was recreated or the cluster migrated): its records would be skipped as replays. Recover with "
    "`python -m shared.offsets reset`, then restart.",
    ["group", "topic", "partition"],
)
CONSUMER_LAG = Gauge(
    "attain_consumer_lag",
    "Records of an assigned partition not yet consumed (last stable offset - position), measured by the "
    "consumer itself after each poll; a partition's series goes when the partition is revoked.",
    ["group", "topic", "partition"],
)
EVENT_AGE_SECONDS = Histogram(
    "attain_consumer_event_age_seconds",
    "Processing latency: from a record's append to Kafka until its batch committed (newest record of each "
    "partition in a batch).",
    ["group", "topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
HTTP_SECONDS = Histogram(
    "attain_http_request_duration_seconds",
    "HTTP request latency by route template (\"unmatched\" for no route), method and status code.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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
TIMER_FAILURES = Counter(
    "attain_timer_failures_total",
    "Passes of a periodic job (timer) that failed on something else than a dependency; it runs again next time.",
    ["component"],
)
STOP_ABANDONED = Counter(
    "attain_stop_abandoned_tasks_total",
    "Background tasks a stopping service went on without after cancelling them for STOP_GIVE_UP_S (a bug).",
)
OUTBOX_PUBLISHED = Counter(
    "attain_outbox_published_total", "Events published to Kafka from the outbox, by topic and event type.",
    ["topic", "type"]
)
OUTBOX_PENDING = Gauge("attain_outbox_pending", "Outbox rows not yet published (last seen).")
OUTBOX_ABORTED_ON_STOP = Counter(
    "attain_outbox_aborted_on_stop_total",
    "Open outbox transactions a stopping relay aborted, so that read_committed readers are not held back.",
)
OUTBOX_DEAD = Counter(
    "attain_outbox_dead_total",
    "Outbox rows Kafka refused for good (too large, invalid, unknown or forbidden topic), moved to outbox_dead.",
    ["topic", "error"],
)
READY = Gauge("attain_ready", "1 while /readyz answers 200.")


def count_timer_failure(component: str, err: BaseException, is_transient: bool) -> None:
    """A periodic job's failed pass: a dependency's (`attain_transient_errors_total`, a warning) or anything
    else (`attain_timer_failures_total`, logged with its traceback). Either way the job runs again."""
    if is_transient:
        TRANSIENT_ERRORS.labels(component).inc()
        _log.warning("%s failed, will retry", component, extra={"error": repr(err)})
    else:
        TIMER_FAILURES.labels(component).inc()
        _log.error("%s failed, will run again next time", component, exc_info=err, extra={"error": repr(err)})
REGISTRY_REJECTED = Counter(
    "attain_registry_rejected_total",
    "Records of the tenant registry (attain.tenants.v1) not applied because they are not signed by a key of"
    " REGISTRY_VERIFY_KEYS (unsigned, malformed, unknown_key, bad_signature); each is dead-lettered.",
    ["reason"],
)
