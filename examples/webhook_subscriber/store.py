"""Which events were delivered: a SQLite file, so a restarted subscriber does not send them again.

One row per CloudEvents id, written right after the receiver answered 2xx (``delivered``) or refused the
event for good (``rejected``). The file is local to one subscriber process: to run several replicas in
one consumer group, put this table in a database they share (PostgreSQL: the same table, with
``INSERT ... ON CONFLICT DO NOTHING``), or a partition that moves between replicas may repeat a delivery.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    event_id     TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    http_status  INTEGER,
    attempts     INTEGER NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    recorded_at  TEXT NOT NULL
)
"""


class DeliveryStore:
    """The ids already dealt with. Each write is committed (and fsynced) before it returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: every statement is durable
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def status(self, event_id: str) -> Status | None:
        row = self._db.execute("SELECT status FROM deliveries WHERE event_id = ?", (event_id,)).fetchone()
        return Status(row[0]) if row else None

    def record(self, event_id: str, status: Status, *, http_status: int | None, attempts: int, topic: str,
               partition: int, offset: int) -> None:
        self._db.execute(
            'INSERT OR IGNORE INTO deliveries (event_id, status, http_status, attempts, topic, partition, "offset",'
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, status.value, http_status, attempts, topic, partition, offset,
             datetime.now(UTC).isoformat(timespec="milliseconds")),
        )

    def prune(self, keep_days: float) -> int:
        """Forget ids recorded more than `keep_days` ago (longer than the topics keep records); how many."""
        cutoff = datetime.now(UTC).timestamp() - keep_days * 86_400
        cursor = self._db.execute("DELETE FROM deliveries WHERE recorded_at < ?",
                                  (datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="milliseconds"),))
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())

    def close(self) -> None:
        self._db.close()
