"""The position a page's cursor encodes, and the pure rules that move it. No I/O.

A reading walks one or more *phases* (HubSpot: one search per engagement object; Pipedrive: live deals, then
deleted ones; Salesforce: Task, then Event), each a query for the records modified at or after a *window* start,
sorted by modification time, paged by the vendor's own token. A query may have to be started again mid-way:
HubSpot's search stops at 10,000 results, a Salesforce query locator expires. It then restarts from the latest
modification time read (`last`), and the records already read are skipped: every one modified before `last`, and
those modified exactly at `last` whose ids are in `at_last`. So each record is yielded once, however often the
query restarts, and a cursor saved after any page resumes exactly there.

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
>>> p = read(read(Position(), "7", t), "8", t)
>>> seen(p, "7", t), seen(p, "9", t), decode(encode(p)) == p
(True, False, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime

from services.ingest.crm.reading.model import CursorInvalid

VERSION = 1


@dataclass(frozen=True, slots=True)
class Position:
    """Where a reading stands (module docstring)."""

    phase: int = 0
    window: datetime | None = None  # where the current query starts; None: the caller's `since`
    token: str | None = None  # the vendor's next-page token (HubSpot `after`, Pipedrive cursor, Salesforce URL)
    last: datetime | None = None  # the latest modification time read in this phase
    at_last: tuple[str, ...] = ()  # the ids read that were modified exactly at `last`
    top: datetime | None = None  # the latest modification time read in any phase: the page's high-water mark


def seen(position: Position, record_id: str, modified: datetime) -> bool:
    """Whether a record the query returns was already read in this phase (before a restart, or on an earlier page)."""
    last = position.last
    return last is not None and (modified < last or (modified == last and record_id in position.at_last))


def read(position: Position, record_id: str, modified: datetime) -> Position:
    """The position once the record is read."""
    top = modified if position.top is None else max(position.top, modified)
    if position.last is None or modified > position.last:
        return replace(position, last=modified, at_last=(record_id,), top=top)
    if modified == position.last and record_id not in position.at_last:
        return replace(position, at_last=(*position.at_last, record_id), top=top)
    return replace(position, top=top)


def restarted(position: Position) -> Position:
    """The position for starting the phase's query again from the latest modification time read."""
    return replace(position, window=position.last, token=None)


def next_phase(position: Position) -> Position:
    """The position at the start of the next phase (the high-water mark carries over)."""
    return Position(phase=position.phase + 1, top=position.top)


def encode(position: Position) -> str:
    """The cursor a caller stores: compact JSON, opaque to it."""
    return json.dumps({
        "v": VERSION, "phase": position.phase, "token": position.token,
        "window": _iso(position.window), "last": _iso(position.last), "at": list(position.at_last),
        "top": _iso(position.top),
    }, separators=(",", ":"))  # fmt: skip


def decode(cursor: str) -> Position:
    """The position a cursor encodes; CursorInvalid for one no reader wrote."""
    try:
        raw = json.loads(cursor)
        if not isinstance(raw, dict) or raw.get("v") != VERSION:
            raise ValueError("not a cursor of this version")
        token, at, phase = raw["token"], raw["at"], raw["phase"]
        if not (token is None or isinstance(token, str)) or not isinstance(phase, int) or not isinstance(at, list):
            raise ValueError("mistyped fields")
        return Position(phase=phase, window=_moment(raw["window"]), token=token, last=_moment(raw["last"]),
                        at_last=tuple(str(i) for i in at), top=_moment(raw["top"]))
    except (ValueError, KeyError, TypeError) as err:
        raise CursorInvalid(f"not a reading cursor: {err}") from err


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: object) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    if moment.utcoffset() is None:
        raise ValueError("a time without offset")
    return moment
