"""A CRM deal's last known state, field by field: pure functions.

Each field keeps its value and the CRM's change time; a change only overwrites a field with an
older (or equal) time, so a late, older delivery never undoes a newer one, and a win that carries
only the stage still knows its amount and owner from earlier deliveries. Stored as JSON:
``{"amount": {"v": "1200.50", "t": "2026-11-02T10:00:00+00:00"}, ...}``. A CRM property the tenant chose to
carry is a field of its own, under ``"property:<name>"``: a change that carries one property (a HubSpot property
change, a Change Data Capture UPDATE) keeps the others' last known values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.ingest.crm.model import DealChange

DELETED = "_deleted"
PROPERTY = "property:"  # the prefix of a CRM property's field (no field name of DealFields holds a colon)
FieldState = dict[str, dict[str, Any]]


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def merge(state: FieldState, change: DealChange) -> FieldState:
    """The state after `change`: each field it carries wins unless the state's is newer."""
    merged = dict(state)
    at = change.changed_at.astimezone(UTC)
    carried = {f.name: getattr(change.fields, f.name) for f in fields(change.fields) if f.name != "properties"}
    carried = {name: value for name, value in carried.items() if value is not None}
    carried |= {PROPERTY + name: value for name, value in change.fields.properties.items()}
    carried[DELETED] = change.deleted
    for name, value in carried.items():
        known = merged.get(name)
        if known is None or datetime.fromisoformat(known["t"]) <= at:
            merged[name] = {"v": _encode(value), "t": at.isoformat()}
    return merged


@dataclass(frozen=True, slots=True)
class DealView:
    """What is known of a deal now, and when each part of it last changed."""

    amount: Decimal | None
    currency: str | None
    stage: str | None
    stage_label: str | None
    status: str | None
    status_at: datetime | None  # when the CRM last changed stage or status
    owner: str | None
    close_date: datetime | date | None
    created_at: datetime | None
    name: str | None
    deleted: bool
    latest: datetime  # the newest change time of any field
    expected_close: datetime | date | None
    probability: Decimal | None
    forecast_category: str | None
    properties: Mapping[str, str] = field(default_factory=dict)  # every CRM property known, by name


def view(state: FieldState) -> DealView:
    def value(name: str) -> Any:
        return state.get(name, {}).get("v")

    def when(name: str) -> datetime | None:
        return datetime.fromisoformat(state[name]["t"]) if name in state else None

    def moment(name: str) -> datetime | date | None:
        raw = value(name)
        if isinstance(raw, dict):
            return date.fromisoformat(raw["date"])
        return datetime.fromisoformat(raw) if raw else None

    changes = [t for t in (when(name) for name in state) if t is not None]
    stage_times = [t for t in (when("stage"), when("status")) if t is not None]
    created = moment("created_at")
    return DealView(
        amount=Decimal(value("amount")) if value("amount") is not None else None,
        currency=value("currency"),
        stage=value("stage"),
        stage_label=value("stage_label"),
        status=value("status"),
        status_at=max(stage_times) if stage_times else None,
        owner=value("owner"),
        close_date=moment("close_date"),
        created_at=created if isinstance(created, datetime) else None,
        name=value("name"),
        deleted=bool(value(DELETED)),
        latest=max(changes) if changes else datetime.min.replace(tzinfo=UTC),
        expected_close=moment("expected_close"),
        probability=Decimal(value("probability")) if value("probability") is not None else None,
        forecast_category=value("forecast_category"),
        properties={name.removeprefix(PROPERTY): known["v"] for name, known in sorted(state.items())
                    if name.startswith(PROPERTY)},
    )
