"""The consumer loop: records in partition order, each delivered (or refused) before its offset is committed.

For each record: decode it; skip it if it is another tenant's than the settings name (the topics carry every
tenant's events; one URL receives one organisation's) or if its event id is in the store (delivered or rejected
before);
otherwise deliver it, retrying as long as the receiver fails transiently (the partition waits: nothing
after it is sent meanwhile, so the order within a key holds); record the outcome in the store; commit
the offset. Partitions of one batch are worked on concurrently, each in order.

On SIGTERM or SIGINT no new delivery starts; a POST in flight finishes (it is bounded by the HTTP
timeout) and is recorded and committed; a delivery waiting to retry is abandoned, uncommitted, so the
next run starts with it. Then the consumer leaves its group and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from examples.webhook_subscriber.config import Settings
from examples.webhook_subscriber.delivery import GaveUp, WebhookSender
from examples.webhook_subscriber.events import InvalidRecord, build_body, decode
from examples.webhook_subscriber.store import DeliveryStore, Status

log = logging.getLogger("webhook_subscriber")


class ShuttingDown(Exception):
    """Raised in place of a retry's sleep once shutdown has begun: the delivery is left for the next run."""


def interruptible_sleep(stop: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    """A sleep for the retries that ends early, with `ShuttingDown`, when `stop` is set."""

    async def sleep(seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise ShuttingDown

    return sleep


class Subscriber:
    def __init__(self, consumer: AIOKafkaConsumer, sender: WebhookSender, store: DeliveryStore,
                 stop: asyncio.Event, tenants: frozenset[str]) -> None:
        if not tenants:
            raise ValueError("a subscriber delivers the events of the tenants it is given, and was given none")
        self._tenants = tenants
        self._consumer = consumer
        self._sender = sender
        self._store = store
        self._stop = stop
        self.counts: Counter[str] = Counter()
        self.exit_code = 0

    async def run(self) -> int:
        """Consume until `stop` is set; 0, or 1 when a delivery gave up (`--max-attempts`)."""
        while not self._stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=200)
            async with asyncio.TaskGroup() as group:
                for tp, records in batches.items():
                    group.create_task(self._partition(tp, records))
        return self.exit_code

    async def _partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if self._stop.is_set():
                return
            try:
                await self._handle(record)
            except ShuttingDown:
                log.info("shutting down: delivery left for the next run", extra=_where(record))
                return
            except GaveUp as err:
                log.error("delivery gave up: stopping, its offset uncommitted",
                          extra={**_where(record), "error": str(err)})
                self.exit_code = 1
                self._stop.set()
                return
            if not await self._commit(tp, record.offset + 1):
                return

    async def _handle(self, record: ConsumerRecord) -> None:
        where = _where(record)
        try:
            event = decode(record.headers, record.value)
        except InvalidRecord as err:
            self.counts["invalid"] += 1
            log.error("record is not an Attain CloudEvent: skipped", extra={**where, "error": str(err)})
            return
        context = {**where, "webhook_id": event.id, "type": event.type, "tenant": event.tenant}
        if event.tenant not in self._tenants:  # another organisation's: never to this URL
            self.counts["other_tenant"] += 1
            log.debug("another tenant's event: skipped", extra=context)
            return
        previous = self._store.status(event.id)
        if previous is not None:
            self.counts["duplicate"] += 1
            log.info("already dealt with: skipped", extra={**context, "status": previous.value})
            return
        outcome = await self._sender.deliver(event.id, build_body(event), context)
        status = Status.DELIVERED if outcome.delivered else Status.REJECTED
        self._store.record(event.id, status, http_status=outcome.http_status, attempts=outcome.attempts,
                           topic=record.topic, partition=record.partition, offset=record.offset)
        self.counts[status.value] += 1
        result = {**context, "http_status": outcome.http_status, "attempts": outcome.attempts}
        if outcome.delivered:
            log.info("delivered", extra=result)
        else:
            log.error("rejected by the receiver: recorded as failed, not retried", extra=result)

    async def _commit(self, tp: TopicPartition, offset: int) -> bool:
        """Commit `offset` for `tp`; False when the group rebalanced meanwhile (the partition may have moved)."""
        try:
            await self._consumer.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as err:
            log.warning("commit failed (the group rebalanced): the rest of the batch is fetched again",
                        extra={"topic": tp.topic, "partition": tp.partition, "offset": offset, "error": str(err)})
            with contextlib.suppress(IllegalStateError):  # still ours: read on from the next record, not past it
                self._consumer.seek(tp, offset)
            return False
        return True


def _where(record: ConsumerRecord) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


async def serve(settings: Settings, stop: asyncio.Event) -> int:
    """Run the subscriber with `settings` until `stop` is set; the process's exit status."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None:
        log.warning("no WEBHOOK_SECRET: deliveries are not signed")
    store = DeliveryStore(settings.webhook_state)
    pruned = store.prune(settings.webhook_keep_days)
    try:
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
            sender = WebhookSender(client, settings.webhook_url, secret,
                                   initial_backoff_s=settings.webhook_initial_backoff_s,
                                   max_backoff_s=settings.webhook_max_backoff_s,
                                   retry_after_cap_s=settings.webhook_retry_after_cap_s,
                                   max_attempts=settings.webhook_max_attempts, sleep=interruptible_sleep(stop))
            consumer = AIOKafkaConsumer(
                *settings.topics,
                **settings.kafka_options(),
                group_id=settings.webhook_group,
                client_id="attain-webhook-subscriber",
                enable_auto_commit=False,  # an offset is committed only once its event is dealt with
                isolation_level="read_committed",  # Attain writes these topics in transactions
                auto_offset_reset=settings.webhook_start_at,
            )
            subscriber = Subscriber(consumer, sender, store, stop, settings.tenants)
            try:
                await consumer.start()  # raises when the brokers cannot be reached: exit 1
                log.info("started", extra={"topics": settings.topics, "tenants": sorted(settings.tenants),
                                           "group": settings.webhook_group,
                                           "state": str(settings.webhook_state), "pruned": pruned,
                                           "remembered": store.counts()})
                exit_code = await subscriber.run()
                log.info("stopped", extra={"counts": dict(subscriber.counts), "exit_code": exit_code})
                return exit_code
            finally:
                await consumer.stop()  # leaves the group; commits nothing (auto-commit is off)
    finally:
        store.close()
