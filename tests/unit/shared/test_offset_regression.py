"""Which partitions end below the offset a group stored (shared/consumer.py, `offset_regressions`)."""

from __future__ import annotations

from aiokafka import TopicPartition

from shared.consumer import offset_regressions

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)


def test_a_partition_ending_below_the_stored_offset_regressed() -> None:
    assert offset_regressions({A: 2, B: 10, C: 11}, {A: 3, B: 10, C: 4}) == {A}


def test_an_unknown_end_or_an_unstored_partition_says_nothing() -> None:
    assert offset_regressions({A: None, B: 0}, {A: 3}) == set()
