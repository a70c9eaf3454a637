"""Salesforce: Outbound Messages (SOAP) and Change Data Capture events (JSON), for Opportunity, Task and Event.

Written from Salesforce's documentation:
- SOAP API Developer Guide, "Understanding Outbound Messaging", "Understanding the Outbound Messaging WSDL"
  (developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm): the
  `notifications` element (namespace http://soap.sforce.com/2005/09/outbound) with `OrganizationId`, `ActionId`,
  `SessionId`, `EnterpriseUrl`, `PartnerUrl` and up to 100 `Notification`s, each an `Id` and an `sObject` whose
  fields are in urn:sobject.enterprise.soap.sforce.com; the `notificationsResponse`/`Ack` answer; "a message may be
  delivered more than once, check the notification IDs";
- Change Data Capture Developer Guide, "Change Event Message Structure", "ChangeEventHeader Fields", "Change Event
  Body Fields", "Gap Events", "Overflow Events"; Streaming API Developer Guide, "Differences Between Change Events
  Received with Streaming API vs. Pub/Sub API".

Decisions:
- Authentication. Outbound Messages carry no signature: the tenant's secret is a token the endpoint URL carries
  (`?token=`), compared in constant time with every offered secret (the current one and, during rotation, the
  previous one). With an org id configured, the message's `OrganizationId` must be that org. Salesforce ids have a
  15-character case-sensitive form and an 18-character form that appends a checksum of the letters' case, so ids
  are compared case-sensitively on their first 15 characters. CDC events carry no org id; a relay may add
  `OrganizationId` (or `orgId`) to an event or its envelope, checked when present, else the token alone proves the
  sender. `now` is unused: nothing in a delivery is timestamped for replay protection.
- Outbound Messages: `event_id` is the `Notification` `Id`, which Salesforce keeps when it retries. `changed_at` is
  `LastModifiedDate`, else `SystemModstamp`; an Opportunity message without either is refused, because its
  changes could not be ordered (add one of them to the outbound message's fields).
- Opportunity: `StageName` is both `stage` and `stage_label`. `IsClosed` false means open; `IsClosed` true with
  `IsWon` tells won from lost; `IsWon` true alone means won; otherwise status is left unknown. `CloseDate` is a
  date (read in the tenant's zone by the pipeline). `IsDeleted` true reports the deal deleted, without fields.
- Task and Event become activities. Kind: Task `TaskSubtype` Call/Email/Task -> call/email/task, any other subtype
  (ListEmail, Cadence...) -> other; without `TaskSubtype`, `Type` Call/Email/Meeting, else task. An Event is a
  meeting. `occurred_at`: Task `CompletedDateTime` (when it was done), else `ActivityDate` (its date), else
  `CreatedDate`; Event `StartDateTime`, else `ActivityDateTime`, else `ActivityDate`, else `CreatedDate`. A date
  alone is read at 12:00 UTC, which is the same calendar day in every zone from UTC-11 to UTC+11. `WhatId` is the
  deal when it is an Opportunity id (key prefix 006). Deleted activities and other sObjects are skipped.
- CDC: one change per record id; `changed_at` is `commitTimestamp`; `event_id` is
  `{transactionKey}:{sequenceNumber}:{recordId}` (a transaction's events are numbered, and one event may name
  several records). CREATE, UPDATE and UNDELETE carry the fields the event carries (UPDATE: only the changed
  ones); DELETE reports the deal deleted. A gap event (GAP_*) says a record changed but not how: it becomes a
  change without fields (GAP_DELETE: deleted), and the pipeline must fetch the record or wait for its next change.
  An overflow event (GAP_OVERFLOW) names no records and yields nothing; nor does a wildcard id (`006*`).
  Entities other than Opportunity are skipped. JSON numbers for date-times are epoch milliseconds and for dates
  epoch days (Pub/Sub API relays decode Avro that way); CometD relays send ISO 8601 strings.
- A field sent as null (a Pub/Sub API event has null for every unchanged field) is "not in this delivery": a
  cleared field cannot be told from an unchanged one, so the last known value stands.
- XML: DOCTYPE and ENTITY declarations are refused before parsing, and again by the parser, so no entity is ever
  expanded (no "billion laughs", no external entities).
"""

from __future__ import annotations

import codecs
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, NoReturn
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree  # hardened below: DOCTYPE/ENTITY refused before and while parsing

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

CRM: Final[Literal["salesforce"]] = "salesforce"
CONTENT_TYPE: Final = "text/xml; charset=utf-8"  # of ack() and nack_fault()

SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND: Final = "http://soap.sforce.com/2005/09/outbound"
SOBJECT: Final = "urn:sobject.enterprise.soap.sforce.com"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"

OPPORTUNITY_PREFIX: Final = "006"  # key prefix of Opportunity ids
_TYPE_BY_PREFIX: Final = {"006": "Opportunity", "00T": "Task", "00U": "Event"}  # when xsi:type is missing
_ORG_KEYS: Final = ("OrganizationId", "orgId")  # where a CDC relay may name the org
_CHANGE_TYPES: Final = frozenset({"CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE",
                                  "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})  # fmt: skip
_TASK_KINDS: Final[dict[str, Literal["call", "email", "task"]]] = {"Call": "call", "Email": "email", "Task": "task"}
_TASK_TYPES: Final[dict[str, Literal["call", "email", "meeting"]]] = {
    "Call": "call", "Email": "email", "Meeting": "meeting",
}  # fmt: skip

_DECLARATION: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER: Final = re.compile(r"[+-]?\d{1,18}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NOON: Final = time(12, tzinfo=UTC)

_ACK: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    b"</soapenv:Body></soapenv:Envelope>"
)


# --- authentication ---------------------------------------------------------------------------------------------


def verify(request: WebhookRequest, secrets: Sequence[Secret], now: datetime) -> None:
    """Check the URL's `?token=` against the tenant's secrets, and the message's org against the matching one's.

    Raises WebhookAuthError: no token, a token matching no secret, or (with an org id configured) a message from
    another org, one naming no org, or one whose org cannot be read.
    """
    token = _token(request)
    if not token:
        raise WebhookAuthError("missing token: the endpoint URL must carry ?token=<the tenant's Salesforce secret>")
    secret = _matching(token, secrets)
    if secret is None:
        raise WebhookAuthError("wrong token")
    if not secret.org_id:
        return
    try:
        claimed = _claimed_orgs(request)
    except PayloadError as err:
        raise WebhookAuthError(f"cannot read the OrganizationId: {err}") from err
    for org in claimed:
        if org is None:
            raise WebhookAuthError("the message carries no OrganizationId")
        if not same_org(org, secret.org_id):
            raise WebhookAuthError(f"wrong OrganizationId {org!r}")


def same_org(claimed: str, configured: str) -> bool:
    """Whether two org ids name the same org: case-sensitive on the 15 characters both id forms share."""
    return hmac.compare_digest(claimed.strip()[:15].encode(), configured.strip()[:15].encode())


def _token(request: WebhookRequest) -> str | None:
    if "token" in request.query:
        return request.query["token"]
    values = parse_qs(urlsplit(request.url).query).get("token")
    return values[0] if values else None


def _matching(token: str, secrets: Sequence[Secret]) -> Secret | None:
    given = token.encode()
    found = None
    for secret in secrets:  # every secret is compared, so the time taken does not tell which one matched
        if hmac.compare_digest(given, secret.value.encode()) and secret.value and found is None:
            found = secret
    return found


def _claimed_orgs(request: WebhookRequest) -> list[str | None]:
    if _format(request) == "xml":
        return [_child_text(_notifications(request.body), OUTBOUND, "OrganizationId")]
    return [org for event in _cdc_events(request.body) for org in event.orgs]


# --- parsing ----------------------------------------------------------------------------------------------------


def parse(request: WebhookRequest) -> list[Change]:
    """The deal and activity changes an Outbound Message or a batch of CDC events carries.

    Raises PayloadError naming what is wrong: not XML or JSON, a refused DOCTYPE, not a notifications envelope,
    a missing Id, a bad Amount, a malformed change event...
    """
    if _format(request) == "xml":
        return _outbound_changes(_notifications(request.body))
    return _cdc_changes(_cdc_events(request.body))


def _format(request: WebhookRequest) -> Literal["xml", "json"]:
    head = request.body.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json"
    if not head:
        raise PayloadError("empty body")
    content_type = request.headers.get("content-type", "")
    raise PayloadError(
        f"body is neither an Outbound Message (XML) nor change events (JSON); content type {content_type!r}"
    )


# --- Outbound Messages ------------------------------------------------------------------------------------------


class _NoDoctype(ElementTree.TreeBuilder):
    """Stops the parser at a DOCTYPE, before any entity in it is declared: for encodings the pre-scan cannot read."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise PayloadError("XML DOCTYPE declarations are refused")


def _notifications(body: bytes) -> ElementTree.Element:
    if _DECLARATION.search(body):
        raise PayloadError("XML DOCTYPE/ENTITY declarations are refused")
    parser = ElementTree.XMLParser(target=_NoDoctype())  # noqa: S314 - see _NoDoctype and the pre-scan above
    try:
        parser.feed(body)
        root: ElementTree.Element = parser.close()
    except ElementTree.ParseError as err:
        raise PayloadError(f"body is not well-formed XML: {err}") from err
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise PayloadError(f"not a SOAP 1.1 envelope: the root element is {root.tag}")
    notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise PayloadError(f"not an Outbound Message: the SOAP Body holds no notifications element ({OUTBOUND})")
    return notifications


def _outbound_changes(notifications: ElementTree.Element) -> list[Change]:
    found = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if not found:
        raise PayloadError("the notifications element holds no Notification")
    changes: list[Change] = []
    for index, notification in enumerate(found, 1):
        notification_id = _child_text(notification, OUTBOUND, "Id")
        if notification_id is None:
            raise PayloadError(f"Notification {index} has no Id")
        sobject = notification.find(f"{{{OUTBOUND}}}sObject")
        if sobject is None:
            raise PayloadError(f"Notification {notification_id} has no sObject")
        fields = {child.tag.removeprefix(f"{{{SOBJECT}}}"): _element_text(child)
                  for child in sobject if child.tag.startswith(f"{{{SOBJECT}}}")}  # fmt: skip
        record = _Record(fields, f"Notification {notification_id}")
        record_id = record.required_text("Id")
        sobject_type = _sobject_type(sobject, record_id)
        change: Change | None = None
        if sobject_type == "Opportunity":
            change = _outbound_deal(record, notification_id, record_id)
        elif sobject_type in ("Task", "Event"):
            change = _activity(record, notification_id, record_id, sobject_type)
        if change is not None:
            changes.append(change)
    return changes


def _outbound_deal(record: _Record, notification_id: str, deal_id: str) -> DealChange:
    changed_at = record.timestamp("LastModifiedDate") or record.timestamp("SystemModstamp")
    if changed_at is None:
        record.fail("LastModifiedDate", "and SystemModstamp are missing: add one to the outbound message's fields")
    deleted = record.boolean("IsDeleted") is True
    fields = DealFields() if deleted else _deal_fields(record)
    return DealChange(crm=CRM, event_id=notification_id, deal_id=deal_id, changed_at=changed_at, fields=fields,
                      deleted=deleted)  # fmt: skip


def _activity(record: _Record, event_id: str, activity_id: str, sobject_type: str) -> ActivityChange | None:
    if record.boolean("IsDeleted"):
        return None
    created = record.timestamp("CreatedDate")
    changed_at = record.timestamp("LastModifiedDate") or record.timestamp("SystemModstamp") or created
    kind: Literal["call", "email", "meeting", "task", "other"]
    if sobject_type == "Task":
        subtype = record.text("TaskSubtype")
        kind = _TASK_KINDS.get(subtype, "other") if subtype else _TASK_TYPES.get(record.text("Type") or "", "task")
        occurred_at = record.timestamp("CompletedDateTime") or _noon(record.day("ActivityDate")) or created
        duration = record.integer("CallDurationInSeconds")
    else:
        kind = "meeting"
        occurred_at = (record.timestamp("StartDateTime") or record.timestamp("ActivityDateTime")
                       or _noon(record.day("ActivityDate")) or created)  # fmt: skip
        minutes = record.integer("DurationInMinutes")
        duration = None if minutes is None else minutes * 60
    if occurred_at is None or changed_at is None:
        record.fail("CreatedDate", "is missing, and so is every other time of the activity")
    if duration is not None and duration < 0:
        record.fail("duration", f"is negative ({duration} s)")
    what = record.text("WhatId")
    return ActivityChange(crm=CRM, event_id=event_id, activity_id=activity_id, changed_at=changed_at,
                          kind=kind, owner=record.text("OwnerId"), occurred_at=occurred_at,
                          deal_id=what if what and what.startswith(OPPORTUNITY_PREFIX) else None,
                          duration_s=duration)  # fmt: skip


def _sobject_type(sobject: ElementTree.Element, record_id: str) -> str | None:
    declared = sobject.get(f"{{{XSI}}}type")  # "sf:Opportunity": the prefix is bound to the sObject namespace
    if declared:
        return declared.rpartition(":")[2]
    return _TYPE_BY_PREFIX.get(record_id[:3])


def _child_text(parent: ElementTree.Element, namespace: str, name: str) -> str | None:
    child = parent.find(f"{{{namespace}}}{name}")
    return None if child is None else _element_text(child)


def _element_text(element: ElementTree.Element) -> str | None:
    if element.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    return (element.text or "").strip() or None


# --- Change Data Capture ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CdcEvent:
    header: Mapping[str, object]
    fields: Mapping[str, object]
    orgs: list[str | None]  # what the event or its envelope says its org is; [] when silent
    where: str


def _cdc_events(body: bytes) -> list[_CdcEvent]:
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise PayloadError(f"body is not valid JSON: {err}") from err
    except RecursionError as err:
        raise PayloadError("body is JSON nested too deeply") from err
    events = value if isinstance(value, list) else [value]
    return [_cdc_event(item, index) for index, item in enumerate(events, 1)]


def _no_constant(name: str) -> NoReturn:
    raise PayloadError(f"body is not valid JSON: {name} is not a number")


def _cdc_event(item: object, index: int) -> _CdcEvent:
    """One change event, bare or in its CometD (`{"data": {"payload", "event"}}`) or Pub/Sub-style envelope."""
    where = f"change event {index}"
    levels = []
    while isinstance(item, dict):
        levels.append(item)
        if "ChangeEventHeader" in item:
            header = item["ChangeEventHeader"]
            if not isinstance(header, dict):
                raise PayloadError(f"{where}: ChangeEventHeader is not an object")
            orgs = [_org(level, where) for level in levels if any(key in level for key in _ORG_KEYS)]
            return _CdcEvent(header=header, fields=item, orgs=orgs, where=where)
        item = item.get("payload", item.get("data"))
    raise PayloadError(f"{where}: not a change event (no ChangeEventHeader)")


def _org(level: Mapping[str, object], where: str) -> str | None:
    value = next(level[key] for key in _ORG_KEYS if key in level)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{where}: the org id is not a string")
    return value


def _cdc_changes(events: list[_CdcEvent]) -> list[Change]:
    changes: list[Change] = []
    for event in events:
        header = _Record(event.header, f"{event.where} header")
        if header.required_text("entityName") != "Opportunity":
            continue
        change_type = header.required_text("changeType")
        if change_type not in _CHANGE_TYPES:
            header.fail("changeType", f"{change_type!r} is not a documented change type")
        committed = header.timestamp("commitTimestamp")
        transaction = header.text("transactionKey")
        sequence = header.integer("sequenceNumber")
        if committed is None or transaction is None or sequence is None:
            header.fail("commitTimestamp, transactionKey and sequenceNumber", "are required")
        deleted = change_type in ("DELETE", "GAP_DELETE")
        fields = (
            DealFields()
            if deleted or change_type.startswith("GAP_")
            else _deal_fields(_Record(event.fields, f"{event.where} ({transaction}:{sequence})"))
        )
        changes.extend(
            DealChange(crm=CRM, event_id=f"{transaction}:{sequence}:{record_id}", deal_id=record_id,
                       changed_at=committed, fields=fields, deleted=deleted)
            for record_id in _record_ids(header, change_type)
            if not record_id.endswith("*")  # "006*": a field type conversion touched every record; none is named
        )  # fmt: skip
    return changes


def _record_ids(header: _Record, change_type: str) -> list[str]:
    ids = header.values.get("recordIds", [] if change_type == "GAP_OVERFLOW" else None)
    if not isinstance(ids, list) or not all(isinstance(record_id, str) and record_id for record_id in ids):
        header.fail("recordIds", "is not a list of record ids")
    return [str(record_id) for record_id in ids]


# --- field values -----------------------------------------------------------------------------------------------


def _deal_fields(record: _Record) -> DealFields:
    stage = record.text("StageName")
    return DealFields(
        amount=record.decimal("Amount"),
        currency=record.currency("CurrencyIsoCode"),
        stage=stage,
        stage_label=stage,
        status=_status(record.boolean("IsWon"), record.boolean("IsClosed")),
        owner=record.text("OwnerId"),
        close_date=record.day("CloseDate"),
        created_at=record.timestamp("CreatedDate"),
        name=record.text("Name"),
    )


def _status(is_won: bool | None, is_closed: bool | None) -> Literal["open", "won", "lost"] | None:
    if is_closed is False:
        return "open"
    if is_closed and is_won is not None:
        return "won" if is_won else "lost"
    return "won" if is_won else None  # a won opportunity is closed; IsWon false alone may be open or lost


def _noon(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, _NOON)


@dataclass(frozen=True, slots=True)
class _Record:
    """Field values of one record or header, SOAP text or JSON values alike, read with errors naming the field."""

    values: Mapping[str, object]
    where: str

    def fail(self, name: str, problem: str) -> NoReturn:
        raise PayloadError(f"{self.where}: {name} {problem}")

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"is not a string: {value!r}")
        return value.strip() or None

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            self.fail(name, "is missing")
        return value

    def currency(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not _CURRENCY.fullmatch(value):
            self.fail(name, f"is not an ISO 4217 code: {value!r}")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.values.get(name)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in ("true", "false", "1", "0"):
            return value.strip() in ("true", "1")
        self.fail(name, f"is not a boolean: {value!r}")

    def decimal(self, name: str) -> Decimal | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            value = Decimal(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)
        if not isinstance(value, Decimal) or not value.is_finite():
            self.fail(name, f"is not a number: {value!r}")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > 0:  # SOAP doubles may come as 1.5E7: write 15000000
            try:
                value = value.quantize(Decimal(1))
            except InvalidOperation:
                self.fail(name, f"is out of range: {value}")
        return value

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
        self.fail(name, f"is not an integer: {value!r}")

    def timestamp(self, name: str) -> datetime | None:
        value = self.values.get(name)
        if value is None:
            return None
        try:
            if isinstance(value, int) and not isinstance(value, bool):  # epoch milliseconds
                return _EPOCH + timedelta(milliseconds=value)
            if isinstance(value, str):
                moment = datetime.fromisoformat(value.strip())
                if moment.tzinfo is None:
                    self.fail(name, f"has no UTC offset: {value!r}")
                return moment
        except (ValueError, OverflowError):
            pass
        self.fail(name, f"is not a date-time: {value!r}")

    def day(self, name: str) -> date | None:
        value = self.values.get(name)
        if value is None:
            return None
        try:
            if isinstance(value, int) and not isinstance(value, bool):  # epoch days
                return _EPOCH.date() + timedelta(days=value)
            if isinstance(value, str) and _DATE.fullmatch(value.strip()):
                return date.fromisoformat(value.strip())
        except (ValueError, OverflowError):
            pass
        self.fail(name, f"is not a date: {value!r}")


# --- answers ----------------------------------------------------------------------------------------------------


def ack() -> tuple[bytes, str]:
    """The acknowledgement Salesforce expects for a whole message; without it, it retries for up to 24 hours."""
    return _ACK, CONTENT_TYPE


def nack_fault(message: str) -> tuple[bytes, str]:
    """A SOAP 1.1 Fault saying why a message was refused; Salesforce retries it (it acknowledges nothing)."""
    text = _NOT_XML_CHAR.sub("\ufffd", message).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:Client</faultcode><faultstring>{text}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return body.encode(), CONTENT_TYPE
