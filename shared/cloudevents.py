"""CloudEvents 1.0 over Kafka, binary mode (CONTRACT.md, section 3).

The data is the record value (`content-type: application/json`); every other attribute is a
``ce_``-prefixed header. Attain adds two extensions: ``ce_tenant`` (always) and
``ce_tenanttimezone`` (the tenant's IANA zone, on events ingest publishes, so consumers compute
periods in the tenant's zone without reading ingest's tables).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
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


_REQUIRED = (H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME, H_TENANT)
# The slots of a CloudEvent, set directly: `decode` builds one per consumed record, and a frozen dataclass's
# __init__ costs three times as much for the same object.
_NEW = object.__new__
_ID, _TYPE, _SOURCE, _TIME, _TENANT, _DATA, _EXTENSIONS = (
    getattr(CloudEvent, name).__set__ for name in ("id", "type", "source", "time", "tenant", "data", "extensions"))
if set(CloudEvent.__dataclass_fields__) != {"id", "type", "source", "time", "tenant", "data", "extensions"}:
    raise TypeError("decode sets every field of CloudEvent: add the new one there")


def decode_json_object(event_type: str, value: bytes | None) -> dict[str, Any]:
    """A record value as the JSON object it must be (whatever the type); `InvalidMessage` says what it is
    instead."""
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidMessage(f"value is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise InvalidMessage("value is not a JSON object")
    return data


def decode(headers: Iterable[tuple[str, bytes]], value: bytes | None,
           data: Callable[[str, bytes | None], Mapping[str, Any] | BaseModel] = decode_json_object) -> CloudEvent:
    """Parse a binary-mode record; `InvalidMessage` names what is missing or malformed, headers first.

    Header names are case-insensitive (the last of a repeated name wins) and every header must be UTF-8.
    `data(type, value)` makes the event's data of the value once the headers are valid: by default the
    JSON object; a consumer passes its decoder, which may raise `InvalidMessage` too."""
    attrs: dict[str, str] = {}
    name = ""
    try:
        for name, raw in headers:
            attrs[name.lower()] = raw.decode() if raw is not None else ""
    except UnicodeDecodeError as err:
        raise InvalidMessage(f"header {name} is not UTF-8") from err
    pop = attrs.pop  # what is left after the attributes and the content type are taken: other headers
    id_, type_, source, version, moment, tenant = (pop(H_ID, ""), pop(H_TYPE, ""), pop(H_SOURCE, ""),
                                                   pop(H_SPECVERSION, ""), pop(H_TIME, ""), pop(H_TENANT, ""))
    if pop(H_CONTENT_TYPE, "").lower().startswith(STRUCTURED_CONTENT_TYPE):
        raise InvalidMessage("structured-mode CloudEvents are not accepted: use binary mode")
    if not (id_ and type_ and source and version and moment and tenant):
        given = dict(zip(_REQUIRED, (id_, type_, source, version, moment, tenant), strict=True))
        raise InvalidMessage(f"missing CloudEvents header(s): {', '.join(h for h in _REQUIRED if not given[h])}")
    if version != SPEC_VERSION:
        raise InvalidMessage(f"ce_specversion {version!r} is not {SPEC_VERSION}")
    try:
        time = datetime.fromisoformat(moment)
    except ValueError as err:
        raise InvalidMessage(f"ce_time {moment!r} is not RFC 3339") from err
    if time.tzinfo is None:
        raise InvalidMessage("ce_time has no UTC offset")
    content = data(type_, value)
    event = _NEW(CloudEvent)
    _ID(event, id_)
    _TYPE(event, type_)
    _SOURCE(event, source)
    _TIME(event, time)
    _TENANT(event, tenant)
    _DATA(event, content)
    _EXTENSIONS(event, {k[3:]: v for k, v in attrs.items() if k[:3] == "ce_"})
    return event
