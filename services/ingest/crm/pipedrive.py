"""Pipedrive webhooks: HTTP Basic auth, and the v1 and v2 bodies.

Written from Pipedrive's developer documentation:
- "Guide for Webhooks" (pipedrive.readme.io/docs/guide-for-webhooks): the "HTTP Auth username and password" are
  sent "as Basic Authentication credentials in the header of every HTTP request"; the v1 body (`v`, `meta` with
  `action` added/updated/merged/deleted, `object`, `id` = "ID of the object", `timestamp`, `timestamp_micro`;
  `retry`, `current`, `previous`, `event`); `deleted.[object]` has `current: null`;
- "Guide for Webhooks v2" (pipedrive.readme.io/docs/guide-for-webhooks-v2): the v2 body (`meta` with `action`
  create/change/delete, `entity`, `entity_id`, `id` = "ID of the event triggering the webhook", `attempt` = the
  retry attempt number, `timestamp`, `version` "2.0"; `data`; `previous` with "only the fields that have changed";
  `delete` has `data: null`);
- "Webhooks v2 migration guide": `retry` became `meta.attempt`, `current` became `data`;
- "Custom fields" (pipedrive.readme.io/docs/core-api-concepts-custom-fields): a custom field's key is a
  40-character hash, its own in each account; "Pipedrive API v2 migration guide" (pipedrive.readme.io/docs/
  pipedrive-api-v2-migration-guide, "Custom Fields"): v1 has custom fields at the object's root (a monetary one's
  currency under `<key>_currency`), v2 in a `custom_fields` object, a monetary one as `{"value", "currency"}`;
- changelog "Bug fix in v2 user webhooks payload" (2025-05-20): v2 `meta.timestamp` is RFC 3339 (it was UNIX
  seconds for user webhooks, and the guide's meta table still says "10 character timestamp": both are read);
- the API reference for activities: `due_date` "YYYY-MM-DD", `due_time` "in UTC. Format: HH:MM", `duration` "HH:MM".

Decisions:
- The tenant's secret is the Basic auth password; any user name is accepted. Every configured secret is compared
  (`hmac.compare_digest`), so the previous one keeps working during a rotation.
- `event_id` is identical on Pipedrive's retries and differs per change. v2: `meta.id` is the id of the event, and
  retries count up `meta.attempt` beside it, so the key is `v2:{entity}:{entity_id}:{meta.id}`. v1 has no event id
  (`meta.id` is the object's id and `retry` counts attempts), so the key is the object, the action and
  `meta.timestamp_micro` (the change's own time, which a retry resends unchanged):
  `v1:{object}:{id}:{action}:{timestamp_micro}`; `meta.timestamp` (seconds) if the micro one is absent.
- `changed_at` is the meta timestamp: it exists for deletions too (which have no `current`/`data`), and in v1 it
  equals `current.update_time` with microseconds added, which orders two changes within one second.
- A deal's fields are read from `current` (v1) or `data` (v2), every field present, also on v2 `change` (whose
  `previous` only names what changed): the pipeline orders by `changed_at`, so restating a value is harmless.
  `close_date` is `won_time` for a won deal, `lost_time` for a lost one, else `close_time`. Status `deleted`,
  v2 `is_deleted: true`, and v1 `deleted.deal` / v2 `delete` are deletions. `merged.deal` (v1) is an update of the
  deal merged into; the deal merged away arrives as its own deletion.
- Activities: `kind` from the type key (call, meeting, email, task, demo; lunch, deadline and custom types are
  `other`). `occurred_at` is `due_date` + `due_time` (UTC) — when the call or meeting was scheduled to happen; an
  all-day activity (no `due_time`) uses `marked_as_done_time` when done, else noon UTC of `due_date`, which keeps
  the date in every zone from UTC-11 to UTC+11; `add_time` when there is no due date. An activity counts once it
  is done: planned ones (`done: false`) are skipped until the change that marks them done. Deleted activities are
  skipped: `ActivityChange` cannot express a removal (a done activity deleted later keeps counting).
- The forecast: `expected_close_date` (a date, `YYYY-MM-DD`) is `expected_close`, which the mapping reads as the
  start of that day in the tenant's zone, as it reads any date alone; `probability` (a percentage, 0 to 100, null
  when unset) divided by 100 is `probability`, rounded half-even to 4 places (33.33333 % is 0.3333). Pipedrive has
  no forecast category. A value of either that cannot be read or is out of range (a probability of 150) is left
  out and reported in `DealChange.ignored` (`values.lenient`): the deal's other fields still count.
- The CRM properties the tenant chose to carry (`properties.py`) are fields by key, of deals and activities alike:
  a standard field's key (`origin`, `channel`, an activity's `location`) or a custom field's hash. v1 has custom
  fields at the object's root, v2 (webhooks and API) under `custom_fields`; both are read. A value that is an object
  with a `value` (v2's monetary and address fields) carries that value (a monetary field's amount, as v1 sends it);
  a list of option ids (v2's multiple options) carries them as v1 writes them, `12,13`; an option field carries its
  option's id, not its label. Every delivery carries the whole object, so each one restates every chosen field.
  A value that cannot be carried (longer than 500 characters, another object) is left out and reported
  (`DealChange.ignored`, `ActivityChange.ignored`).
- An empty string (v1 sends `""` for an unset `marked_as_done_time`, `due_time`, `duration`) reads as absent.
- Other entities (person, organization, note, lead...) are skipped, so a `*.*` webhook does not fail.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final, Literal

from services.ingest.crm import properties as chosen_properties
from services.ingest.crm import values
from services.ingest.crm.model import (
    ActivityChange,
    Change,
    DealChange,
    DealFields,
    PayloadError,
    Secret,
    WebhookAuthError,
    WebhookRequest,
)

CRM: Final[Literal["pipedrive"]] = "pipedrive"

Kind = Literal["call", "email", "meeting", "demo", "task", "other"]
_KINDS: Final[dict[str, Kind]] = {
    "call": "call",
    "meeting": "meeting",
    "email": "email",
    "task": "task",
    "demo": "demo",
}
_STATUSES: Final[dict[str, Literal["open", "won", "lost"]]] = {"open": "open", "won": "won", "lost": "lost"}
_V1_UPSERTS: Final = ("added", "updated", "merged")
_V2_UPSERTS: Final = ("create", "change")
_TRACKED: Final = ("deal", "activity")
_ALL_DAY_HOUR: Final = time(12, tzinfo=UTC)


def verify(request: WebhookRequest, secrets: Sequence[Secret], now: datetime) -> None:
    """Accept the request only if its Basic auth password is one of the tenant's secrets.

    `now` is unused: Basic auth carries no timestamp to judge.
    """
    header = request.headers.get("authorization")
    if header is None:
        raise WebhookAuthError("missing Authorization header: the Pipedrive webhook must send HTTP Basic auth")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise WebhookAuthError("Authorization header is not HTTP Basic credentials")
    try:
        credentials = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookAuthError("Authorization header: Basic credentials are not valid base64") from None
    _user, colon, password = credentials.partition(b":")
    if not colon:
        raise WebhookAuthError("Authorization header: Basic credentials are not user:password")
    candidates = [secret.value.encode() for secret in secrets if secret.value]
    if not candidates:
        raise WebhookAuthError("no Pipedrive secret is configured for this tenant")
    matched = False
    for candidate in candidates:  # no early exit: every secret costs the same comparison
        matched |= hmac.compare_digest(password, candidate)
    if not matched:
        raise WebhookAuthError("wrong HTTP Basic auth password")


def parse(request: WebhookRequest, properties: Collection[str] = ()) -> list[Change]:
    """The deal and activity changes in one Pipedrive delivery (v1 or v2 body), carrying the values of
    `properties` (the field keys the tenant chose to carry); [] for other entities."""
    body = _load(request.body)
    meta = _object(body.get("meta"), "meta")
    chosen = tuple(properties)
    if meta.get("version") == "2.0":
        return _parse_v2(body, meta, chosen)
    if body.get("v") == 1 or meta.get("v") == 1:
        return _parse_v1(body, meta, chosen)
    raise PayloadError('body is neither a Pipedrive webhooks v1 ("v": 1) nor v2 (meta.version "2.0") payload')


def _parse_v1(body: dict[str, Any], meta: dict[str, Any], chosen: tuple[str, ...]) -> list[Change]:
    entity = values.text(meta.get("object"), "meta.object")
    if entity not in _TRACKED:
        return []
    action = values.text(meta.get("action"), "meta.action")
    object_id = values.identifier(meta.get("id"), "meta.id")
    micro = meta.get("timestamp_micro")
    if micro is None:
        changed_at = values.instant(meta.get("timestamp"), "meta.timestamp")
        moment = str(meta["timestamp"])
    else:
        changed_at = _from_micro(micro, "meta.timestamp_micro")
        moment = str(micro)
    event_id = f"v1:{entity}:{object_id}:{action}:{moment}"
    if action == "deleted":
        return _deleted(entity, event_id, object_id, changed_at)
    if action not in _V1_UPSERTS:
        raise PayloadError(f"meta.action: unknown v1 action {action!r}")
    return _upserted(entity, _object(body.get("current"), "current"), "current", event_id, object_id, changed_at,
                     chosen)


def _parse_v2(body: dict[str, Any], meta: dict[str, Any], chosen: tuple[str, ...]) -> list[Change]:
    entity = values.text(meta.get("entity"), "meta.entity")
    if entity not in _TRACKED:
        return []
    action = values.text(meta.get("action"), "meta.action")
    object_id = values.identifier(meta.get("entity_id"), "meta.entity_id")
    event_id = f"v2:{entity}:{object_id}:{values.identifier(meta.get('id'), 'meta.id')}"
    changed_at = values.instant(meta.get("timestamp"), "meta.timestamp")
    if action == "delete":
        return _deleted(entity, event_id, object_id, changed_at)
    if action not in _V2_UPSERTS:
        raise PayloadError(f"meta.action: unknown v2 action {action!r}")
    return _upserted(entity, _object(body.get("data"), "data"), "data", event_id, object_id, changed_at, chosen)


def _deleted(entity: str, event_id: str, object_id: str, changed_at: datetime) -> list[Change]:
    if entity == "activity":
        return []
    return [DealChange(crm=CRM, event_id=event_id, deal_id=object_id, changed_at=changed_at, deleted=True)]


def _upserted(
    entity: str, obj: dict[str, Any], where: str, event_id: str, object_id: str, changed_at: datetime,
    chosen: tuple[str, ...],
) -> list[Change]:
    if entity == "activity":
        activity = _activity(obj, where, event_id, object_id, changed_at, chosen)
        return [] if activity is None else [activity]
    if obj.get("status") == "deleted" or obj.get("is_deleted") is True:
        return _deleted(entity, event_id, object_id, changed_at)
    ignored: list[str] = []
    fields = _deal_fields(obj, where, ignored, chosen)
    return [DealChange(crm=CRM, event_id=event_id, deal_id=object_id, changed_at=changed_at, fields=fields,
                       ignored=tuple(ignored))]


def _deal_fields(obj: dict[str, Any], where: str, ignored: list[str], chosen: tuple[str, ...]) -> DealFields:
    status = values.optional_text(obj.get("status"), f"{where}.status")
    if status is not None and status not in _STATUSES:
        raise PayloadError(f"{where}.status: unknown deal status {status!r}")
    close_key = close_time_key(obj, status)
    stage = obj.get("stage_id")
    expected_close, probability = forecast(obj, where, ignored)
    return DealFields(
        amount=_amount(obj.get("value"), f"{where}.value"),
        currency=values.optional_text(obj.get("currency"), f"{where}.currency"),
        stage=None if stage is None else values.identifier(stage, f"{where}.stage_id"),
        status=None if status is None else _STATUSES[status],
        owner=_owner(obj, where),
        close_date=_optional_instant(obj.get(close_key), f"{where}.{close_key}"),
        created_at=_optional_instant(obj.get("add_time"), f"{where}.add_time"),
        name=values.optional_text(obj.get("title"), f"{where}.title"),
        expected_close=expected_close,
        probability=probability,
        properties=carried(obj, chosen, where, ignored),
    )


def carried(obj: Mapping[str, Any], keys: Collection[str], where: str, ignored: list[str]) -> dict[str, str]:
    """The values of the fields `keys` names in a deal or activity (webhook `current`/`data`, or API v2 `data`), as
    text (module docstring): at the root (v1, and every standard field) or under `custom_fields` (v2)."""
    if not keys:
        return {}
    custom = obj.get("custom_fields")
    found = {**obj, **(custom if isinstance(custom, dict) else {})}
    flat = {key: _flat(found[key]) for key in keys if key in found}
    return chosen_properties.carried(flat, keys, f"{where}.", ignored)


def _flat(value: object) -> object:
    """A v2 custom field's value as v1 sends it: an object's `value`, a list of option ids comma-separated."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    if isinstance(value, list) and all(values.is_integer(item) or isinstance(item, str) for item in value):
        return ",".join(str(item) for item in value)
    return value


def forecast(deal: Mapping[str, Any], where: str, ignored: list[str]) -> tuple[date | None, Decimal | None]:
    """The expected close date and probability of a deal (webhook `current`/`data`, or API v2 `data`), each None
    when unset or, with its problem appended to `ignored`, when it cannot be read or is out of range."""
    expected, chance = deal.get("expected_close_date"), deal.get("probability")
    return (
        None if expected in (None, "") else values.lenient(
            lambda: values.day(expected, f"{where}.expected_close_date"), ignored),
        None if chance in (None, "") else values.lenient(
            lambda: values.probability(chance, f"{where}.probability", percent=True), ignored),
    )  # fmt: skip


def close_time_key(deal: Mapping[str, Any], status: str | None) -> str:
    """Which field of a deal (webhook `current`/`data`, or API v2 `data`) says when it closed: `won_time` for a won
    deal, `lost_time` for a lost one, `close_time` otherwise or when that one is empty."""
    key = {"won": "won_time", "lost": "lost_time"}.get(status or "", "close_time")
    return key if deal.get(key) else "close_time"


def _activity(
    obj: dict[str, Any], where: str, event_id: str, object_id: str, changed_at: datetime, chosen: tuple[str, ...]
) -> ActivityChange | None:
    if obj.get("is_deleted") is True or obj.get("active_flag") is False or obj.get("done") in (False, 0):
        return None  # removed, or planned and not done yet: nothing has happened to count
    type_key = values.optional_text(obj.get("type"), f"{where}.type")
    deal = obj.get("deal_id")
    ignored: list[str] = []
    return ActivityChange(
        crm=CRM,
        event_id=event_id,
        activity_id=object_id,
        changed_at=changed_at,
        kind=_KINDS.get(type_key or "", "other"),
        owner=_owner(obj, where),
        occurred_at=_occurred_at(obj, where),
        deal_id=None if deal is None else values.identifier(deal, f"{where}.deal_id"),
        duration_s=_duration(obj.get("duration"), f"{where}.duration"),
        properties=carried(obj, chosen, where, ignored),
        ignored=tuple(ignored),
    )


def _occurred_at(obj: dict[str, Any], where: str) -> datetime:
    due_date = obj.get("due_date")
    if not due_date:
        return values.instant(obj.get("add_time"), f"{where}.add_time")
    day = values.day(due_date, f"{where}.due_date")
    if due_time := obj.get("due_time"):
        at = _clock(due_time, f"{where}.due_time")
        return datetime.combine(day, at.replace(tzinfo=UTC))
    done_at = _optional_instant(obj.get("marked_as_done_time"), f"{where}.marked_as_done_time")
    return done_at if done_at is not None else datetime.combine(day, _ALL_DAY_HOUR)


def _owner(obj: dict[str, Any], where: str) -> str | None:
    """v2 names the owner `owner_id` (an id); v1 names it `user_id`, an id or a user object with `id`."""
    key = "owner_id" if "owner_id" in obj else "user_id"
    value = obj.get(key)
    if isinstance(value, dict):
        return values.identifier(value.get("id"), f"{where}.{key}.id")
    return None if value is None else values.identifier(value, f"{where}.{key}")


# ---------------------------------------------------------------------------------------------- JSON values


def _load(raw: bytes) -> dict[str, Any]:
    try:
        body = values.load_json(raw)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"body is not JSON: {err}") from None
    return _object(body, "body")


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object, got {values.kind(value)}")
    return value


def _amount(value: object, where: str) -> Decimal | None:
    return None if value is None else values.decimal(value, where)


def _optional_instant(value: object, where: str) -> datetime | None:
    return None if value is None or value == "" else values.instant(value, where)  # v1 sends "" for "not set"


def _from_micro(value: object, where: str) -> datetime:
    if not values.is_integer(value):
        raise PayloadError(f"{where}: expected integer microseconds, got {values.kind(value)}")
    return values.instant(value, where, unit=values.MICROSECOND)


def _clock(value: object, where: str) -> time:
    try:
        return time.fromisoformat(values.text(value, where))
    except ValueError:
        raise PayloadError(f"{where}: {value!r} is not an HH:MM time") from None


def _duration(value: object, where: str) -> int | None:
    if value is None or value == "":
        return None
    parts = values.text(value, where).split(":")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise PayloadError(f"{where}: {value!r} is not an HH:MM duration")
    hours, minutes, seconds = (int(part) for part in [*parts, "0"][:3])
    return hours * 3600 + minutes * 60 + seconds
