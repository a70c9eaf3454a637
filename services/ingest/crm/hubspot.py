"""HubSpot webhooks: the v3 request signature and the event-array payload.

Written from HubSpot's developer documentation:
- "Validating requests" (developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/
  request-validation, and the legacy-apps page of the same name): the `X-HubSpot-Signature-v3` steps;
- "Introducing version 3 of webhook signatures" (developers.hubspot.com/changelog/…);
- the Webhooks API guide and "Create generic webhook subscriptions" (developers.hubspot.com/docs/apps/legacy-apps/
  public-apps/create-generic-webhook-subscriptions): the payload fields, `object.*` with `objectTypeId`;
- "New subscription types for webhooks" (changelog): the merge fields;
- "Using object APIs" (developers.hubspot.com/docs/guides/crm/using-object-apis): object type ids
  (deals 0-3, tasks 0-27, notes 0-46, meetings 0-47, calls 0-48, emails 0-49).

Decisions:
- `event_id` is built from the fields HubSpot keeps when it retries a delivery (portal, subscription type, object
  type, object, property, `occurredAt`, `eventId`) and leaves out `attemptNumber`, which a retry increments.
  HubSpot documents `eventId` as "not guaranteed to be unique", so it is never the key on its own.
- `stage` is the `dealstage` value as HubSpot sends it. Stage ids are unique within a portal across pipelines,
  so the `pipeline` property is not needed to map a stage to open/won/lost and is ignored.
- HubSpot sends one property per event and sends nothing else about the deal. A deal creation or restore becomes
  a change with no fields; the pipeline waits for the properties. A property HubSpot clears (an empty value) is
  skipped, because `DealFields` has no "cleared" value; the last known value stands.
- The forecast. `closedate` is read as today into `close_date`: HubSpot's "Close date" is when an open deal is
  expected to close and when a closed one closed, so the mapping makes it an open deal's `expected_close_at`
  (mapping.CLOSE_DATE_IS_EXPECTED). `hs_deal_stage_probability` (the deal stage's probability, 0 to 1 as text) is
  `probability`, rounded half-even to 4 places. `hs_forecast_category` is `forecast_category`: PIPELINE, BEST_CASE,
  COMMIT and OMIT (or OMITTED), in any case; CLOSED says nothing an open deal needs, so it gives no change.
  Either one unreadable, out of range or (the category) unknown is left out and reported in `DealChange.ignored`
  (`values.lenient`): it never costs the deal, or the delivery, its other changes.
- The CRM properties the tenant chose to carry (`properties.py`) are deal properties by their internal names
  (`hs_lead_source`, a portal's own `segment`): a property change event of one of them carries its value, as text, in
  `DealFields.properties`; the pipeline keeps the others' last known values (state.py). A chosen property that is
  also one of ours (`dealname`) fills both. Subscribe to each one's property changes in HubSpot, or nothing comes.
  A value longer than 500 characters is left out and reported (`DealChange.ignored`), never cut; an empty one is a
  cleared property, which leaves the last known value standing, as for our own fields. An engagement's chosen
  properties come from HubSpot's CRM API when it is fetched (`fetch.py`): its webhook carries only its id.
- An engagement (call, meeting, email, task; a note counts as `other`) is reported only when it is created, and
  the webhook carries only its id. `occurred_at` is then `occurredAt`, and `owner` and `deal_id` are None. The
  pipeline fills them from HubSpot's CRM API when the tenant has a token; otherwise it dead-letters the
  activity, because it cannot be credited to a rep. Engagement property changes and deletions are skipped.
- A deal merge deletes the merged-away deals and reports the surviving deal (`newObjectId` when HubSpot made a
  new record, else `primaryObjectId`) as present, so attainment does not count a merged deal twice.
- Events for objects we do not track (contacts, companies, tickets…) and subscription types we do not use
  (association changes, privacy deletions) are skipped; they do not make the whole delivery fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from services.ingest.crm import properties as chosen_properties
from services.ingest.crm import values
from services.ingest.crm.model import (
    ActivityChange,
    Change,
    DealChange,
    DealFields,
    Forecast,
    PayloadError,
    Secret,
    WebhookAuthError,
    WebhookRequest,
)

CRM: Final[Literal["hubspot"]] = "hubspot"

SIGNATURE_HEADER: Final = "x-hubspot-signature-v3"
TIMESTAMP_HEADER: Final = "x-hubspot-request-timestamp"
MAX_AGE: Final = timedelta(minutes=5)  # HubSpot: "reject the request if the timestamp is older than 5 minutes"
MAX_AHEAD: Final = timedelta(minutes=5)  # clock skew we tolerate the other way

# The percent-encoded characters HubSpot decodes in the request URI before signing; nothing else is decoded.
_URI_DECODED: Final = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_URI_ENCODED: Final = re.compile("|".join(_URI_DECODED), re.IGNORECASE)  # hex digits are case-insensitive

DEAL_TYPE_ID: Final = "0-3"
ENGAGEMENT_KINDS: Final[dict[str, Literal["call", "email", "meeting", "task", "other"]]] = {
    "0-48": "call", "0-47": "meeting", "0-49": "email", "0-27": "task", "0-46": "other",  # 0-46: notes
}  # fmt: skip

_MILLIS: Final = re.compile(r"-?\d{1,15}")
FORECAST_CATEGORIES: Final[dict[str, Forecast | None]] = {
    "PIPELINE": "pipeline", "BEST_CASE": "best_case", "COMMIT": "commit", "OMIT": "omitted", "OMITTED": "omitted",
    "CLOSED": None,  # a closed deal: its stage says so, and the forecast counts open deals only
}  # fmt: skip


def verify(request: WebhookRequest, secrets: Sequence[Secret], now: datetime) -> None:
    """Accept the request only if `X-HubSpot-Signature-v3` was made with one of `secrets` within five minutes.

    The signed string is method + URI (HubSpot's listed characters decoded) + body + the timestamp header; the
    signature is the base64 of its HMAC-SHA256 under the app's client secret. Raises WebhookAuthError.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature:
        raise WebhookAuthError("missing X-HubSpot-Signature-v3 header")
    if not timestamp:
        raise WebhookAuthError("missing X-HubSpot-Request-Timestamp header")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):
        raise WebhookAuthError("X-HubSpot-Request-Timestamp is not milliseconds since the epoch")
    age = (now - values.EPOCH) // values.MILLISECOND - int(timestamp)
    if age > MAX_AGE // values.MILLISECOND:
        raise WebhookAuthError("X-HubSpot-Request-Timestamp is older than 5 minutes")
    if -age > MAX_AHEAD // values.MILLISECOND:
        raise WebhookAuthError("X-HubSpot-Request-Timestamp is more than 5 minutes in the future")
    keys = [secret.value for secret in secrets if secret.value]
    if not keys:
        raise WebhookAuthError("no HubSpot client secret is configured for this tenant")
    sent = signature.encode()
    if not any(hmac.compare_digest(_signature(key, request, timestamp), sent) for key in keys):
        raise WebhookAuthError("X-HubSpot-Signature-v3 does not match the request")


def _signature(secret: str, request: WebhookRequest, timestamp: str) -> bytes:
    uri = _URI_ENCODED.sub(lambda match: _URI_DECODED[match.group(0).upper()], request.url)
    signed = request.method.upper().encode() + uri.encode() + request.body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())


def parse(request: WebhookRequest, properties: Collection[str] = ()) -> list[Change]:
    """The deal and activity changes in a delivery (a JSON array of up to 100 events), in delivery order; a deal's
    changes of `properties` (the names the tenant chose to carry) carry their values.

    Raises PayloadError, naming the event and field, when the body is not what HubSpot documents.
    """
    try:
        body = values.load_json(request.body)
    except (ValueError, RecursionError) as err:
        raise PayloadError(f"body is not JSON: {err}") from err
    if not isinstance(body, list):
        raise PayloadError("body is not a JSON array of events")
    changes: list[Change] = []
    for index, raw in enumerate(body):
        if not isinstance(raw, dict):
            raise PayloadError(f"event {index} is not a JSON object")
        changes.extend(_changes(_Event(index, raw), frozenset(properties)))
    return changes


@dataclass(frozen=True, slots=True)
class _Event:
    """One event of a delivery, with typed access that names the event and field when it fails."""

    index: int
    raw: dict[str, object]

    def fail(self, problem: str) -> PayloadError:
        return PayloadError(f"event {self.index}: {problem}")

    def integer(self, key: str) -> int:
        value = self.raw.get(key)
        if value is None:
            raise self.fail(f"missing {key}")
        if not values.is_integer(value):
            raise self.fail(f"{key} is not an integer")
        return value

    def text(self, key: str) -> str:
        value = self.optional_text(key)
        if value is None:
            raise self.fail(f"missing {key}")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{key} is not a string")
        return value

    def subscription_type(self) -> str:
        # The Webhooks guide's own example names the field `eventType`; deliveries name it `subscriptionType`.
        if "subscriptionType" not in self.raw and "eventType" in self.raw:
            return self.text("eventType")
        return self.text("subscriptionType")

    def changed_at(self) -> datetime:
        return _instant(self, self.integer("occurredAt"))

    def event_id(self, *suffix: object) -> str:
        parts: list[object] = [
            self.integer("portalId"), self.subscription_type(), self.optional_text("objectTypeId") or "",
            self.integer("objectId") if "objectId" in self.raw else "", self.optional_text("propertyName") or "",
            self.integer("occurredAt"),
            self.integer("eventId"), *suffix,
        ]  # fmt: skip
        return ":".join(str(part) for part in parts)


def _changes(event: _Event, chosen: frozenset[str]) -> list[Change]:
    object_name, _, action = event.subscription_type().partition(".")
    if object_name == "object":
        type_id = event.text("objectTypeId")
        if type_id == DEAL_TYPE_ID:
            return _deal_changes(event, action, chosen)
        if type_id in ENGAGEMENT_KINDS and action == "creation":
            return [_activity(event, ENGAGEMENT_KINDS[type_id])]
        return []
    if object_name == "deal":
        return _deal_changes(event, action, chosen)
    return []


def _deal_changes(event: _Event, action: str, chosen: frozenset[str]) -> list[Change]:
    def change(deal_id: int, *, fields: DealFields | None = None, deleted: bool = False, key: str,
               ignored: tuple[str, ...] = ()) -> DealChange:
        return DealChange(crm=CRM, event_id=key, deal_id=str(deal_id), changed_at=event.changed_at(),
                          fields=fields or DealFields(), deleted=deleted, ignored=ignored)  # fmt: skip

    if action in {"creation", "restore"}:
        return [change(event.integer("objectId"), key=event.event_id())]
    if action == "deletion":
        return [change(event.integer("objectId"), deleted=True, key=event.event_id())]
    if action == "propertyChange":
        ignored: list[str] = []
        fields = _deal_fields(event, ignored, chosen)
        if fields is None and not ignored:
            return []
        return [change(event.integer("objectId"), fields=fields, key=event.event_id(), ignored=tuple(ignored))]
    if action == "merge":
        primary = event.integer("primaryObjectId")
        survivor = event.integer("newObjectId") if event.raw.get("newObjectId") is not None else primary
        merged = event.raw.get("mergedObjectIds")
        if not isinstance(merged, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in merged):
            raise event.fail("mergedObjectIds is not a list of integers")
        losers = sorted({primary, *merged} - {survivor})
        changes: list[Change] = [change(survivor, key=event.event_id(survivor))]
        changes += [change(loser, deleted=True, key=event.event_id(loser)) for loser in losers]
        return changes
    return []  # association changes and other actions say nothing about the deal's fields


def _deal_fields(event: _Event, ignored: list[str], chosen: frozenset[str]) -> DealFields | None:
    name = event.text("propertyName")
    read = _DEAL_PROPERTIES.get(name)
    optional = _FORECAST_PROPERTIES.get(name)
    if read is None and optional is None and name not in chosen:
        return None  # not a field of ours (including `pipeline`: stage ids are unique within a portal)
    value = event.optional_text("propertyValue")
    if not value:
        return None  # cleared in HubSpot: DealFields cannot say "cleared", so the last known value stands
    carried = chosen_properties.carried({name: value}, [name] if name in chosen else [], f"event {event.index}: ",
                                        ignored)
    fields: DealFields | None = None
    if optional is not None:  # never refuses the delivery (module docstring, "The forecast")
        fields = values.lenient(lambda: optional(value, f"event {event.index}: {name}"), ignored)
    elif read is not None:
        fields = read(event, value)
    return replace(fields or DealFields(), properties=carried) if carried else fields


_DEAL_PROPERTIES: Final[dict[str, Callable[[_Event, str], DealFields]]] = {
    "amount": lambda event, value: DealFields(amount=_amount(event, value)),
    "deal_currency_code": lambda event, value: DealFields(currency=_currency(event, value)),
    "dealstage": lambda _, value: DealFields(stage=value),
    "hubspot_owner_id": lambda _, value: DealFields(owner=value),
    "closedate": lambda event, value: DealFields(close_date=_when(event, "closedate", value)),
    "createdate": lambda event, value: DealFields(created_at=_created(event, value)),
    "dealname": lambda _, value: DealFields(name=value),
}


def forecast_category(value: str, where: str) -> Forecast | None:
    """A HubSpot forecast category (`hs_forecast_category`) as the contract's, None for CLOSED; PayloadError for a
    category we do not know (a portal's own, say)."""
    key = value.strip().upper()
    if key not in FORECAST_CATEGORIES:
        raise PayloadError(f"{where}: {value!r} is not a forecast category we map "
                           f"({', '.join(FORECAST_CATEGORIES)})")
    return FORECAST_CATEGORIES[key]


def _category_fields(value: str, where: str) -> DealFields | None:
    category = forecast_category(value, where)
    return None if category is None else DealFields(forecast_category=category)


_FORECAST_PROPERTIES: Final[dict[str, Callable[[str, str], DealFields | None]]] = {
    "hs_deal_stage_probability": lambda value, where: DealFields(probability=values.probability(value, where)),
    "hs_forecast_category": _category_fields,
}


def _activity(event: _Event, kind: Literal["call", "email", "meeting", "task", "other"]) -> ActivityChange:
    changed_at = event.changed_at()
    return ActivityChange(crm=CRM, event_id=event.event_id(), activity_id=str(event.integer("objectId")),
                          changed_at=changed_at, kind=kind, owner=None, occurred_at=changed_at)  # fmt: skip


def _amount(event: _Event, value: str) -> Decimal:
    try:
        return values.decimal(value, "amount")
    except PayloadError as err:
        raise event.fail(f"amount {value!r} is not a decimal number") from err


def _currency(event: _Event, value: str) -> str:
    try:
        return values.currency(value.upper(), "deal_currency_code")
    except PayloadError as err:
        raise event.fail(f"deal_currency_code {value!r} is not an ISO 4217 code") from err


def _created(event: _Event, value: str) -> datetime:
    created = _when(event, "createdate", value)
    if isinstance(created, datetime):
        return created
    return datetime(created.year, created.month, created.day, tzinfo=UTC)


def _when(event: _Event, name: str, value: str) -> datetime | date:
    """HubSpot sends dates as milliseconds since the epoch; ISO 8601 is accepted too (a bare date stays a date)."""
    text = value.strip()
    if _MILLIS.fullmatch(text):
        return _instant(event, int(text))
    try:
        return values.day(text, name) if len(text) == 10 else values.instant(text, name)
    except PayloadError as err:
        raise event.fail(f"{name} {value!r} is neither epoch milliseconds nor ISO 8601") from err


def _instant(event: _Event, millis: int) -> datetime:
    try:
        return values.instant(millis, "milliseconds", unit=values.MILLISECOND)
    except PayloadError as err:
        raise event.fail(f"{millis} milliseconds since the epoch is out of range") from err
