"""Helpers of the reader tests: a clock that never waits, and reading every page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading.model import Page


@dataclass
class FakeTime:
    """`sleep` records the pause and moves `clock` on: no test waits."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Read = Callable[[CrmAccess, datetime, str | None], Awaitable[Page[Any]]]


async def drain(read: Read, access: CrmAccess, since: datetime, cursor: str | None = None,
                pages: int | None = None) -> tuple[list[Any], str | None, list[Page[Any]]]:
    """Every record of the pages from `cursor` on (at most `pages` of them), the cursor after the last, the pages."""
    records: list[Any] = []
    seen: list[Page[Any]] = []
    while pages is None or len(seen) < pages:
        page = await read(access, since, cursor)
        seen.append(page)
        records += page.records
        cursor = page.cursor
        if cursor is None:
            break
    return records, cursor, seen
