"""What a consumer loop does with a batch fenced off (shared/consumer.py, `ConsumerLoop._refused`): nothing
fetched is lost (every partition still assigned is sought back to the first record fetched, the next batch's
too), a partition another assignment owns is paused until the next assignment, and one this member never
managed to claim is claimed and resumed where PostgreSQL says."""

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
        assert self.fences is not None
        self.fences.update({(tp.topic, tp.partition): "mine" for tp in tps})
        return {tp: o for tp, o in self.stored.items() if tp in tps}


def test_a_fenced_batch_is_put_back_owned_partitions_paused_unclaimed_ones_claimed() -> None:
    processor = Claims(stored={C: 40})
    loop = ConsumerLoop(ServiceSettings(), ["t"], processor)
    loop.assigned, loop.token = {A, B, C}, "assignment-7"
    assert processor.fences is not None
    processor.fences.update({("t", 0): "mine", ("t", 1): "mine"})  # C's claim on assignment had failed
    kafka = FakeKafka()

    async def scenario() -> None:
        async def next_batch() -> Any:
            return {B: [Rec("t", 1, 30), Rec("t", 1, 31)], A: [Rec("t", 0, 12)]}, [], {}

        upcoming = asyncio.create_task(next_batch())
        await asyncio.sleep(0)  # fetched meanwhile
        batch = {A: [Rec("t", 0, 10), Rec("t", 0, 11)], C: [Rec("t", 2, 50)]}
        loop._fetch_and_decode = lambda _consumer: asyncio.sleep(0)  # type: ignore[assignment, method-assign, return-value]
        after = await loop._refused(kafka, batch, upcoming, {("t", 0), ("t", 2)})  # type: ignore[arg-type]
        await after

    asyncio.run(scenario())
    assert processor.claimed == [{C}]
    # A: this batch's first record; B: the next batch's (it applied nothing); C: where PostgreSQL says
    assert kafka.seeks == {A: 10, B: 30, C: 40}
    assert kafka.paused == {A} and loop.fenced == {A}  # another assignment owns A now
    assert not loop.ready
