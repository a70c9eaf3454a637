"""Which partitions end below the offset a group stored (shared/consumer.py, `offset_regressions`)."""

from __future__ import annotations

from aiokafka import TopicPartition

from shared.consumer import ConsumerLoop, TransactionalConsumer, offset_regressions
from shared.settings import ServiceSettings

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)


def test_a_partition_ending_below_the_stored_offset_regressed() -> None:
    assert offset_regressions({A: 2, B: 10, C: 11}, {A: 3, B: 10, C: 4}) == {A}


def test_an_unknown_end_or_an_unstored_partition_says_nothing() -> None:
    assert offset_regressions({A: None, B: 0}, {A: 3}) == set()


class _Consumer:
    """aiokafka's consumer as `_hold_regressions` sees it: `highwater` asserts the partition is assigned."""

    def __init__(self, assigned: set[TopicPartition], ends: dict[TopicPartition, int]) -> None:
        self.assigned, self.ends, self.paused = assigned, ends, set()  # type: ignore[var-annotated]

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return self.ends[tp]

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)


def test_a_batch_fetched_before_a_rebalance_does_not_crash_the_check() -> None:
    """A batch may hold records of a partition given away meanwhile (a rebalance): asking its end raised
    aiokafka's "Partition is not assigned" and stopped the service (found by `make chaos` zombie)."""
    loop = ConsumerLoop(ServiceSettings(), ["t"], TransactionalConsumer(
        pool=None, producer=None, group_id="g-regress-unit", service="t", models={}, handler=None))  # type: ignore[arg-type]
    loop.next_offsets = {A: 5, B: 5}
    consumer = _Consumer({A}, {A: 2})
    assert loop._hold_regressions(consumer, {A: [], B: []}) == {A}  # type: ignore[arg-type]
    assert consumer.paused == {A}
