"""Reading Attain's CloudEvents off Kafka, and the JSON body a webhook receives for each.

Attain writes CloudEvents 1.0 in Kafka *binary mode*: every attribute is a ``ce_``-prefixed header
(``ce_id``, ``ce_type``, ``ce_source``, ``ce_specversion``, ``ce_time`` and Attain's ``ce_tenant``),
and the record value is the event's data as JSON (``content-type: application/json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REQUIRED = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_tenant")


class InvalidRecord(ValueError):
    """The record is not an Attain CloudEvent (a header missing, the value not a JSON object)."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    source: str
    time: str  # RFC 3339, as the producer wrote it
    tenant: str
    data: dict[str, Any]


def decode(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> Event:
    """The event a binary-mode record carries; `InvalidRecord` says what is wrong with it."""
    attrs: dict[str, str] = {}
    for name, raw in headers:
        try:
            attrs[name.lower()] = (raw or b"").decode()
        except UnicodeDecodeError as err:
            raise InvalidRecord(f"header {name} is not UTF-8") from err
    missing = [name for name in REQUIRED if not attrs.get(name)]
    if missing:
        raise InvalidRecord(f"missing CloudEvents header(s): {', '.join(missing)}")
    if attrs["ce_specversion"] != "1.0":
        raise InvalidRecord(f"ce_specversion {attrs['ce_specversion']!r} is not 1.0")
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidRecord(f"value is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise InvalidRecord("value is not a JSON object")
    return Event(id=attrs["ce_id"], type=attrs["ce_type"], source=attrs["ce_source"], time=attrs["ce_time"],
                 tenant=attrs["ce_tenant"], data=data)


def text_of(event: Event) -> str:
    """One line for humans: the celebration's headline, the check-in's summary."""
    data = event.data
    if event.type == "coaching.task.escalated":
        return f"Escalated: {data.get('summary') or data.get('task_id')}"
    if event.type == "coaching.task.closed":
        outcome = f": {data['outcome']}" if data.get("outcome") else ""
        return f"Check-in with {data.get('rep_id')} closed ({data.get('reason')}){outcome}"
    for name in ("headline", "summary"):  # recognition.milestone.reached, coaching.task.created
        if isinstance(data.get(name), str) and data[name]:
            return str(data[name])
    return f"{event.type} {event.id}"


def build_body(event: Event) -> bytes:
    """The webhook body: Slack-compatible (`text`), with the whole event under `attain` for programs.

    Slack's incoming webhooks read `text` (and `blocks`, if you add them); a program reads `attain`.
    The bytes are what is signed, so they are built once and sent as they are.
    """
    body = {
        "text": text_of(event),
        "attain": {"id": event.id, "type": event.type, "source": event.source, "tenant": event.tenant,
                   "time": event.time, "data": event.data},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
