"""What a consumer loop does with records it may not apply yet or at all (shared/consumer.py,
`ConsumerLoop._put_back` and `_refused`): nothing fetched is lost (every partition still assigned is sought
back to the first record fetched, the next batch's too); a partition this assignment has not claimed yet
(records fetched before the rebalance callback's claim was done, or the callback's claim failed) is claimed
with the assignment's own token and sought where PostgreSQL says; a partition another assignment owns is
paused until this member's next assignment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from shared.consumer import ConsumerLoop, TransactionalConsumer
from shared.settings import ServiceSettings

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeKafka:
    seeks: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)


class Claims(TransactionalConsumer):
    def __init__(self, stored: dict[TopicPartition, int]) -> None:
        super().__init__(pool=None, producer=None, group_id="g-fence-unit", service="t", models={},  # type: ignore[arg-type]
                         handler=None)  # type: ignore[arg-type]
        self.stored, self.claimed = stored, []  # type: ignore[var-annotated]

    async def claim_for(self, tps: set[TopicPartition], token: str) -> dict[TopicPartition, int]:
        assert token == "assignment-7"  # the assignment's own token, not a new one
        self.claimed.append(set(tps))
        return {tp: o for tp, o in self.stored.items() if tp in tps}


def _loop(stored: dict[TopicPartition, int]) -> tuple[ConsumerLoop, Claims]:
    processor = Claims(stored)
    loop = ConsumerLoop(ServiceSettings(), ["t"], processor)
    loop.assigned, loop.token = {A, B, C}, "assignment-7"
    return loop, processor


async def _next_batch() -> Any:
    return {B: [Rec("t", 1, 30), Rec("t", 1, 31)], A: [Rec("t", 0, 12)]}, [], {}


def test_records_fetched_before_the_claim_are_put_back_and_the_partition_claimed_where_postgresql_says() -> None:
    loop, processor = _loop(stored={C: 40})
    loop.placed = {A, B}  # C's claim on assignment had not been done (or failed)
    kafka = FakeKafka()

    async def scenario() -> None:
        upcoming = asyncio.create_task(_next_batch())
        batch = {A: [Rec("t", 0, 10), Rec("t", 0, 11)], C: [Rec("t", 2, 50)]}
        loop._fetch_and_decode = lambda _consumer: asyncio.sleep(0)  # type: ignore[assignment, method-assign, return-value]
        await (await loop._put_back(kafka, batch, upcoming, place={C}))  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert processor.claimed == [{C}]
    # A: this batch's first record; B: the next batch's (nothing was applied); C: where PostgreSQL says
    assert kafka.seeks == {A: 10, B: 30, C: 40}
    assert loop.placed == {A, B, C} and loop.next_offsets == {C: 40}
    assert kafka.paused == set() and loop.ready is False  # (not joined in this test)


def test_a_fenced_partition_this_assignment_had_claimed_is_paused_until_the_next_assignment() -> None:
    loop, processor = _loop(stored={})
    loop.placed, loop.joined = {A, B, C}, True
    kafka = FakeKafka()

    async def scenario() -> None:
        upcoming = asyncio.create_task(_next_batch())
        batch = {A: [Rec("t", 0, 10)], C: [Rec("t", 2, 50)]}
        loop._fetch_and_decode = lambda _consumer: asyncio.sleep(0)  # type: ignore[assignment, method-assign, return-value]
        await (await loop._refused(kafka, batch, upcoming, {("t", 0)}))  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert processor.claimed == []
    assert kafka.seeks == {A: 10, B: 30, C: 50}  # everything fetched is put back
    assert kafka.paused == {A} and loop.fenced == {A} and A not in loop.placed
    assert not loop.ready


def test_a_kafka_commit_hint_for_partitions_all_given_away_is_dropped_not_sent_empty() -> None:
    """aiokafka raises ValueError({}) on an empty commit: a hint whose partitions were all revoked meanwhile
    used to end its task with an exception nobody retrieved (seen in a zombie run's log)."""
    loop, _ = _loop(stored={})
    loop.assigned = {B}
    sent: list[dict[TopicPartition, int]] = []

    class Committing:
        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            if not offsets:
                raise ValueError(offsets)
            sent.append(offsets)

    async def scenario() -> None:
        loop._commit_hint(Committing(), {A: 11})  # type: ignore[arg-type]
        assert loop._hinting is not None
        await loop._hinting  # ends without an exception
        loop._commit_hint(Committing(), {B: 31})  # type: ignore[arg-type]
        await loop._hinting

    asyncio.run(scenario())
    assert sent == [{B: 31}]
