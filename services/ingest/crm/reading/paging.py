"""Turning one page of API records into changes, the same way for every CRM. Pure.

Each record is identified (id and modification time, by the vendor's reader), skipped when the position says it was
read already (`cursor.seen`), converted, and the position moved on. A record the converter refuses (`PayloadError`)
is reported in `refused`, and one it returns None for (a planned Pipedrive activity, a deleted Salesforce task) is
passed over; both still move the position, so neither is read again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from services.ingest.crm.model import PayloadError
from services.ingest.crm.reading import cursor
from services.ingest.crm.reading.model import Page, ReadingError, Refused

log = logging.getLogger(__name__)
T = TypeVar("T")
Record = dict[str, Any]


def collect(records: Iterable[object], position: cursor.Position,
            identify: Callable[[Record], tuple[str, datetime]],
            convert: Callable[[Record], T | None]) -> tuple[list[T], list[Refused], cursor.Position]:
    """The changes of `records` not read before, the records refused, and the position after them."""
    changes: list[T] = []
    refused: list[Refused] = []
    for index, raw in enumerate(records):
        if not isinstance(raw, dict):
            refused.append(Refused(f"#{index}", f"not a JSON object: {str(raw)[:100]}"))
            continue
        try:
            record_id, modified = identify(raw)
        except PayloadError as err:
            refused.append(Refused(str(raw.get("id", raw.get("Id", f"#{index}"))), str(err)))
            continue
        if cursor.seen(position, record_id, modified):
            continue
        position = cursor.read(position, record_id, modified)
        try:
            change = convert(raw)
        except PayloadError as err:
            log.warning("crm api record unreadable", extra={"record": record_id, "error": str(err)})
            refused.append(Refused(record_id, str(err)))
            continue
        if change is not None:
            changes.append(change)
    return changes, refused, position


def start(cursor_text: str | None) -> cursor.Position:
    """The position a caller's cursor encodes (the start when None)."""
    return cursor.Position() if cursor_text is None else cursor.decode(cursor_text)


def answer(body: object, where: str) -> dict[str, Any]:
    """A successful answer's JSON object; ReadingError when the CRM answered something else."""
    if not isinstance(body, dict):
        raise ReadingError(f"{where}: the answer is not a JSON object")
    return body


def listed(body: dict[str, Any], key: str, where: str) -> list[object]:
    """The list under `key` of an answer (absent or null: empty); ReadingError when it is something else."""
    found = body.get(key)
    if found is None:
        return []
    if not isinstance(found, list):
        raise ReadingError(f"{where}: {key} is not a list")
    return found


def page(changes: list[T], refused: list[Refused], position: cursor.Position,
         following: cursor.Position | None) -> Page[T]:
    """The page of `changes`: its cursor is `following` (None at the end), its high-water mark `position`'s."""
    return Page(tuple(changes), None if following is None else cursor.encode(following), position.top,
                tuple(refused))
