"""CloudEvents 1.0 over Kafka, binary mode (CONTRACT.md, section 3).

The data is the record value (`content-type: application/json`); every other attribute is a
``ce_``-prefixed header. Attain adds two extensions: ``ce_tenant`` (always) and
``ce_tenanttimezone`` (the tenant's IANA zone, on events ingest publishes, so consumers compute
periods in the tenant's zone without reading ingest's tables).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.errors import InvalidMessage

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME = "ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time"
H_TENANT, H_TENANT_TZ = "ce_tenant", "ce_tenanttimezone"
H_CONTENT_TYPE = "content-type"
_SPEC_VERSION, _CONTENT_TYPE = SPEC_VERSION.encode(), CONTENT_TYPE.encode()


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One event as it travels on Kafka: attributes plus the JSON data (already parsed)."""

    id: str
    type: str
    source: str
    time: datetime
    tenant: str
    data: Mapping[str, Any] | BaseModel  # a model is serialised by pydantic-core (the fast path)
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def tenant_timezone(self) -> str | None:
        return self.extensions.get("tenanttimezone")


def message_key(tenant: str, *parts: str) -> bytes:
    """The record key: ``<tenant>:<rep_id>`` (or more parts, e.g. for compacted attainment)."""
    return ":".join((tenant, *parts)).encode()


def encode(event: CloudEvent) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of the Kafka record that carries `event` in binary mode."""
    headers = [
        (H_ID, event.id.encode()),
        (H_TYPE, event.type.encode()),
        (H_SOURCE, event.source.encode()),
        (H_SPECVERSION, _SPEC_VERSION),
        (H_TIME, event.time.isoformat().encode()),
        (H_TENANT, event.tenant.encode()),
        (H_CONTENT_TYPE, _CONTENT_TYPE),
    ]
    if event.extensions:
        headers += [(f"ce_{name}", value.encode()) for name, value in sorted(event.extensions.items())]
    if isinstance(event.data, BaseModel):
        return event.data.model_dump_json().encode(), headers
    return json.dumps(event.data, separators=(",", ":"), default=str).encode(), headers


def encode_model(data: BaseModel) -> dict[str, Any]:
    """The JSON-ready form of a pydantic payload (decimals as exact strings)."""
    return data.model_dump(mode="json")


def decode(headers: Iterable[tuple[str, bytes]], value: bytes | None) -> CloudEvent:
    """Parse a binary-mode record; `InvalidMessage` names what is missing or malformed."""
    attrs: dict[str, str] = {}
    for name, raw in headers:
        try:
            attrs[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as err:
            raise InvalidMessage(f"header {name} is not UTF-8") from err
    content_type = attrs.get(H_CONTENT_TYPE, "").lower()
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        raise InvalidMessage("structured-mode CloudEvents are not accepted: use binary mode")
    missing = [h for h in (H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME, H_TENANT) if not attrs.get(h)]
    if missing:
        raise InvalidMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
    if attrs[H_SPECVERSION] != SPEC_VERSION:
        raise InvalidMessage(f"ce_specversion {attrs[H_SPECVERSION]!r} is not {SPEC_VERSION}")
    try:
        time = datetime.fromisoformat(attrs[H_TIME])
    except ValueError as err:
        raise InvalidMessage(f"ce_time {attrs[H_TIME]!r} is not RFC 3339") from err
    if time.tzinfo is None:
        raise InvalidMessage("ce_time has no UTC offset")
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidMessage(f"value is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise InvalidMessage("value is not a JSON object")
    known = {H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME, H_TENANT}
    extensions = {k[3:]: v for k, v in attrs.items() if k.startswith("ce_") and k not in known}
    return CloudEvent(
        id=attrs[H_ID],
        type=attrs[H_TYPE],
        source=attrs[H_SOURCE],
        time=time,
        tenant=attrs[H_TENANT],
        data=data,
        extensions=extensions,
    )
