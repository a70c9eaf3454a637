"""From request body to canonical events: pure functions, no I/O.

Each item gets a verdict: the validated event, or a reason naming the field that is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.events import CANONICAL_EVENT, CanonicalEvent, DealDeletedEvent, DealUpsertedEvent

NDJSON = "application/x-ndjson"


class BodyError(ValueError):
    """The body as a whole cannot be read (not JSON, wrong shape, too many events)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    index: int
    id: str | None
    event: CanonicalEvent | None = None
    reason: str | None = None
    line: int | None = None  # NDJSON: the line the event stood on


def parse_body(body: bytes, content_type: str, max_events: int) -> list[Any]:
    """The items of a JSON object, JSON array or NDJSON body; `BodyError` says where it breaks."""
    if not body.strip():
        raise BodyError("the body is empty: send one event object, a JSON array of them, or NDJSON")
    try:
        text = body.decode()
    except UnicodeDecodeError as err:
        raise BodyError(f"the body is not UTF-8 (byte {err.start})") from err
    if content_type.split(";", maxsplit=1)[0].strip().lower() == NDJSON:
        items = []
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is valid in JSON strings
            if line.strip():
                try:
                    items.append(json.loads(line, parse_float=str))
                except json.JSONDecodeError as err:
                    raise BodyError(f"line {number} is not valid JSON: {err.msg} (column {err.colno})") from err
                except RecursionError as err:
                    raise BodyError(f"line {number} is JSON nested too deeply to read") from err
    else:
        try:
            parsed = json.loads(text, parse_float=str)
        except json.JSONDecodeError as err:
            raise BodyError(f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
        except RecursionError as err:  # not a JSONDecodeError: uncaught, it was a 500
            raise BodyError("the body is JSON nested too deeply to read") from err
        items = parsed if isinstance(parsed, list) else [parsed]
    if len(items) > max_events:
        raise BodyError(f"{len(items)} events in one request; the limit is {max_events}")
    return items


def judge(index: int, item: Any) -> Verdict:
    """Validate one item against the contract."""
    event_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
    if not isinstance(item, dict):
        return Verdict(index, None, reason=f"event {index} is not a JSON object")
    try:
        return Verdict(index, event_id, event=CANONICAL_EVENT.validate_python(item))
    except ValidationError as err:
        return Verdict(index, event_id, reason=_reason(err))


def judge_line(index: int, line: bytes, number: int) -> Verdict:
    """Validate one NDJSON line (parsed by pydantic-core straight into exact Decimals)."""
    try:
        event = CANONICAL_EVENT.validate_json(line)
        return Verdict(index, event.id, event=event, line=number)
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            problem = "is JSON nested too deeply to read" if "recursion" in first["msg"] else "is not valid JSON"
            return Verdict(index, None, reason=f"line {number} {problem}: {first['msg']}", line=number)
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            item = None
        event_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        reason = f"event {index} is not a JSON object" if not isinstance(item, dict) else _reason(err)
        return Verdict(index, event_id, reason=reason, line=number)


def too_far_ahead(event: CanonicalEvent, latest: datetime) -> str | None:
    """Why `event` is refused for a moment past `latest` (ingest's clock plus `MAX_EVENT_AHEAD_S`), or None.

    The moments checked are the ones services order versions by: `time` (a rep's, target's or team's version)
    and a deal's `updated_at`. One far in the future would win over every later correction, forever.
    Example: with `latest` 2026-11-19T10:00:00Z, a target.set with time 2099-01-01T00:00:00Z is refused with
    "time: must not be later than 2026-11-19T10:00:00+00:00 (ingest's clock plus MAX_EVENT_AHEAD_S); got
    2099-01-01T00:00:00+00:00"."""
    moments = [("time", event.time)]
    if isinstance(event, DealUpsertedEvent | DealDeletedEvent):
        moments.append(("data.updated_at", event.data.updated_at))
    for name, moment in moments:
        if moment > latest:
            return (f"{name}: must not be later than {latest.isoformat()} (ingest's clock plus MAX_EVENT_AHEAD_S);"
                    f" got {moment.isoformat()}")
    return None


def refuse_future(verdicts: Sequence[Verdict], latest: datetime) -> list[Verdict]:
    """`verdicts`, each valid event dated past `latest` turned into a rejection (`too_far_ahead`)."""
    judged = []
    for verdict in verdicts:
        reason = too_far_ahead(verdict.event, latest) if verdict.event is not None else None
        judged.append(verdict if reason is None else replace(verdict, event=None, reason=reason))
    return judged


def _reason(err: ValidationError) -> str:
    for error in err.errors():
        if error["type"] == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            return f"type: unknown event type {tag!r}; expected one of {error['ctx']['expected_tags']}"
        if error["type"] == "union_tag_not_found":
            return "type: field required"
    problems = []
    for e in err.errors():
        # drop the discriminator tag from the path: `data.amount`, not `deal.upserted.data.amount`
        loc = e["loc"][1:] if e["loc"] and "." in str(e["loc"][0]) else e["loc"]
        problems.append(f"{'.'.join(str(p) for p in loc) or '(event)'}: {e['msg']}")
    return "; ".join(problems)
