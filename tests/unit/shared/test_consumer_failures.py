"""Which failures are the record's (dead-letter it) and which are the database's or the broker's (retry the
batch): `shared.consumer.transient`, by exception type and SQLSTATE class."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from shared.consumer import transient
from shared.errors import InvalidMessage


@pytest.mark.parametrize("err", [
    asyncpg.DiskFullError("could not extend file"),  # 53100
    asyncpg.OutOfMemoryError("out of memory"),  # 53200
    asyncpg.TooManyConnectionsError("too many clients"),  # 53300
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    asyncpg.LockNotAvailableError("could not obtain lock"),  # 55P03
    asyncpg.SerializationError("could not serialize access"),  # 40001
    asyncpg.DeadlockDetectedError("deadlock detected"),  # 40P01
    asyncpg.ConnectionDoesNotExistError("connection was closed"),  # 08003
    asyncpg.exceptions.PostgresIOError("could not read block"),  # 58030
    asyncpg.InternalServerError("internal error"),  # XX000
    asyncpg.UndefinedColumnError("column does not exist"),  # 42703: the schema, not the record
    KafkaConnectionError(),
    OSError("connection refused"),
])
def test_a_fault_of_a_dependency_is_transient(err: BaseException) -> None:
    assert transient(err)


@pytest.mark.parametrize("err", [
    asyncpg.NumericValueOutOfRangeError("value out of range"),  # 22003
    asyncpg.CharacterNotInRepertoireError("invalid byte sequence"),  # 22021
    asyncpg.InvalidTextRepresentationError("invalid input syntax"),  # 22P02
    asyncpg.UniqueViolationError("duplicate key"),  # 23505
    asyncpg.CheckViolationError("violates check constraint"),  # 23514
    ValueError("a handler bug or unforeseen data"),
    InvalidMessage("bad payload"),
])
def test_a_fault_that_may_be_the_records_is_not_transient(err: BaseException) -> None:
    assert not transient(err)
