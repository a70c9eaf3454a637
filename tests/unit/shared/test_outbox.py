"""How the outbox relay reads one attempt's produce batches: which rows are dead, which are suspects, and
when the attempt is simply retried (shared/outbox.py, `judge`)."""

from __future__ import annotations

from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAuthorizationFailedError,
    UnknownError,
)

from shared.outbox import channel, judge, refused_for_good


def test_a_refused_batch_of_one_row_names_that_row_dead() -> None:
    verdict = judge([([7], MessageSizeTooLargeError()), ([8, 9], None)])
    assert list(verdict.dead) == [7]
    assert isinstance(verdict.dead[7], MessageSizeTooLargeError)
    assert (verdict.suspects, verdict.other) == (set(), None)


def test_the_rows_of_a_refused_batch_of_several_are_suspects_not_dead() -> None:
    verdict = judge([([1, 2, 3], MessageSizeTooLargeError()), ([4], None)])
    assert (verdict.dead, verdict.suspects, verdict.cleared) == ({}, {1, 2, 3}, {4})


def test_a_suspect_delivered_alone_is_cleared_and_one_refused_alone_is_dead() -> None:
    verdict = judge([([1], None), ([2], InvalidTopicError()), ([3, 4], OutOfOrderSequenceNumber())])
    assert (verdict.cleared, set(verdict.dead), verdict.suspects) == ({1}, {2}, set())
    assert isinstance(verdict.other, OutOfOrderSequenceNumber)  # what followed the refusal: sent again


def test_failures_of_the_producer_or_the_broker_blame_no_row() -> None:
    for error in (OutOfOrderSequenceNumber(), ProducerFenced(), KafkaConnectionError(), UnknownError()):
        verdict = judge([([1], error), ([2, 3], error)])
        assert (verdict.dead, verdict.suspects) == ({}, set())
        assert verdict.other is error


def test_a_refused_positions_record_blames_no_row() -> None:
    verdict = judge([([1, 2], None), ([], TopicAuthorizationFailedError())])
    assert (verdict.dead, verdict.suspects) == ({}, set())
    assert isinstance(verdict.other, TopicAuthorizationFailedError)


def test_only_refusals_of_a_record_count_as_for_good() -> None:
    assert [refused_for_good(e) for e in (MessageSizeTooLargeError(), TopicAuthorizationFailedError(),
                                          ProducerFenced(), OutOfOrderSequenceNumber(), UnknownError(),
                                          KafkaConnectionError())] == [True, True, False, False, False, False]


def test_the_notification_channel_is_per_schema() -> None:
    assert channel("kpi") != channel("coaching")
    assert len(channel("x" * 63)) == 63  # PostgreSQL's limit for a channel name: longer fails the insert
