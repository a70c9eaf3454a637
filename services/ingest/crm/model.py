"""What a CRM webhook delivery means, independent of the vendor's format.

A vendor module (`hubspot.py`, `pipedrive.py`, `salesforce.py`) provides two pure functions:

    verify(request: WebhookRequest, secrets: Sequence[Secret], now: datetime) -> None
        raises WebhookAuthError (the sender is not who it claims) — answered 401;
    parse(request: WebhookRequest) -> list[DealChange | ActivityChange]
        raises PayloadError (the body is not what the vendor documents) — answered 400.

Changes carry only what the delivery carried (HubSpot sends one property per event, Pipedrive's
and Salesforce CDC's updates only what changed); the pipeline keeps each deal's last known state
per field, ordered by the CRM's own change time, and emits a complete `deal.upserted`.

`parse` also takes `properties`, the names of the CRM properties the tenant chose to carry
(`properties.py`): a change carries the values of those the delivery holds, by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Crm = Literal["hubspot", "pipedrive", "salesforce"]
Forecast = Literal["pipeline", "best_case", "commit", "omitted"]  # shared.events.ForecastCategory


class WebhookError(Exception):
    """Base of what a vendor module raises; the message is returned to the sender."""


class WebhookAuthError(WebhookError):
    """Missing or wrong signature/credentials, or a stale timestamp."""


class PayloadError(WebhookError):
    """The body does not match the vendor's documented format; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of an HTTP request that vendors sign or send data in."""

    method: str
    url: str  # the full URL as the CRM called it, query string included
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Secret:
    """A tenant's secret for one CRM; during rotation the previous one is still offered."""

    value: str
    org_id: str | None = None  # Salesforce: the OrganizationId every message must carry


@dataclass(frozen=True, slots=True)
class DealFields:
    """Deal fields a delivery may carry; None means "not in this delivery", never "cleared"."""

    amount: Decimal | None = None
    currency: str | None = None  # ISO 4217
    stage: str | None = None  # the CRM's own stage id (mapped per tenant to open/won/lost)
    stage_label: str | None = None  # the CRM's stage name, when sent
    status: Literal["open", "won", "lost"] | None = None  # when the CRM states it (Pipedrive, Salesforce)
    owner: str | None = None  # the CRM user id owning the deal (mapped per tenant to a rep)
    close_date: datetime | date | None = None  # a date alone is read in the tenant's zone
    created_at: datetime | None = None
    name: str | None = None
    # The forecast of an open deal. HubSpot's and Salesforce's close date is also the expected one (mapping.py);
    # `expected_close` is for a CRM that keeps it apart (Pipedrive's `expected_close_date`).
    expected_close: datetime | date | None = None
    probability: Decimal | None = None  # 0 to 1, at most 4 places (`values.probability`)
    forecast_category: Forecast | None = None
    # The tenant's chosen CRM properties this delivery holds, as text (`properties.carried`); a name left out is
    # "not in this delivery", as None is for the fields above, so its last known value stands.
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DealChange:
    """Some fields of one deal changed (or it was deleted) at `changed_at` in the CRM."""

    crm: Crm
    event_id: str  # the vendor's id of this change/delivery: the idempotency key
    deal_id: str
    changed_at: datetime  # the CRM's own change time: orders changes of one deal
    fields: DealFields = field(default_factory=DealFields)
    deleted: bool = False
    # Optional values left out of `fields` because they could not be read or lie outside the contract
    # (`values.lenient`), each a message naming the field; the pipeline logs and counts them.
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActivityChange:
    """An activity was logged (or changed) in the CRM."""

    crm: Crm
    event_id: str
    activity_id: str
    changed_at: datetime
    kind: Literal["call", "email", "meeting", "demo", "task", "other"]
    owner: str | None  # CRM user id
    occurred_at: datetime
    deal_id: str | None = None  # the CRM's deal id
    duration_s: int | None = None
    properties: dict[str, str] = field(default_factory=dict)  # the tenant's chosen CRM properties, as text
    ignored: tuple[str, ...] = ()  # property values left out (as `DealChange.ignored`); logged and counted


Change = DealChange | ActivityChange


def storable(changes: list[Change]) -> None:
    """Raise PayloadError naming the fields of `changes` that hold a NUL: PostgreSQL text and JSON cannot store
    one, so it is the sender's fault (400), not a failure of ours (500)."""
    for change in changes:
        parts = (change, change.fields) if isinstance(change, DealChange) else (change,)
        named = [f.name for part in parts for f in fields(part)
                 if isinstance(value := getattr(part, f.name), str) and "\x00" in value]
        if named:
            raise PayloadError(f"{', '.join(named)}: must not contain the NUL character (\\u0000)")
