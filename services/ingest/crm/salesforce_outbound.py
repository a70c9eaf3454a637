"""Salesforce Outbound Messages (SOAP): the `notifications` envelope and its Opportunity, Task and Event records.

Written from the SOAP API Developer Guide, "Understanding Outbound Messaging" and "Understanding the Outbound
Messaging WSDL" (see `salesforce.py`).

Decisions:
- `event_id` is the `Notification` `Id`, which Salesforce keeps when it retries. `changed_at` is `LastModifiedDate`,
  else `SystemModstamp`; an Opportunity message without either is refused, because its changes could not be
  ordered (add one of them to the outbound message's fields).
- Opportunity: `StageName` is both `stage` and `stage_label`. `IsClosed` false means open; `IsClosed` true with
  `IsWon` tells won from lost; `IsWon` true alone means won; otherwise status is left unknown. `CloseDate` is a
  date (read in the tenant's zone by the pipeline). `IsDeleted` true reports the deal deleted, without fields.
  `Probability` and `ForecastCategoryName` are the forecast (`salesforce_record.py` says how they are read).
- Task and Event become activities. Kind: Task `TaskSubtype` Call/Email/Task -> call/email/task, any other subtype
  (ListEmail, Cadence...) -> other; without `TaskSubtype`, `Type` Call/Email/Meeting, else task. An Event is a
  meeting. `occurred_at`: Task `CompletedDateTime` (when it was done), else `ActivityDate` (its date), else
  `CreatedDate`; Event `StartDateTime`, else `ActivityDateTime`, else `ActivityDate`, else `CreatedDate`. A date
  alone is read at 12:00 UTC, which is the same calendar day in every zone from UTC-11 to UTC+11. `WhatId` is the
  deal when it is an Opportunity id (key prefix 006). Deleted activities and other sObjects are skipped.
- The fields the tenant chose to carry (`salesforce_record.py`) are read from every Opportunity, Task and Event
  that holds them: add each one to the outbound message's fields, or it never arrives.
- XML: DOCTYPE and ENTITY declarations are refused before parsing, and again by the parser, so no entity is ever
  expanded (no "billion laughs", no external entities).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time
from typing import Final, Literal
from xml.etree import ElementTree  # hardened below: DOCTYPE/ENTITY refused before and while parsing

from services.ingest.crm.model import ActivityChange, Change, DealChange, DealFields, PayloadError
from services.ingest.crm.salesforce_record import CRM, Record, carried, deal_fields

SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND: Final = "http://soap.sforce.com/2005/09/outbound"
SOBJECT: Final = "urn:sobject.enterprise.soap.sforce.com"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"

OPPORTUNITY_PREFIX: Final = "006"  # key prefix of Opportunity ids
_TYPE_BY_PREFIX: Final = {"006": "Opportunity", "00T": "Task", "00U": "Event"}  # when xsi:type is missing
_TASK_KINDS: Final[dict[str, Literal["call", "email", "task"]]] = {"Call": "call", "Email": "email", "Task": "task"}
_TASK_TYPES: Final[dict[str, Literal["call", "email", "meeting"]]] = {
    "Call": "call", "Email": "email", "Meeting": "meeting",
}  # fmt: skip

_DECLARATION: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NOON: Final = time(12, tzinfo=UTC)


class _NoDoctype(ElementTree.TreeBuilder):
    """Stops the parser at a DOCTYPE, before any entity in it is declared: for encodings the pre-scan cannot read."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise PayloadError("XML DOCTYPE declarations are refused")


def notifications(body: bytes) -> ElementTree.Element:
    """The `notifications` element of an Outbound Message; PayloadError when the body is not one."""
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
    found = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if found is None:
        raise PayloadError(f"not an Outbound Message: the SOAP Body holds no notifications element ({OUTBOUND})")
    return found


def changes(message: ElementTree.Element, chosen: Collection[str] = ()) -> list[Change]:
    """The deal and activity changes of every `Notification` of `message` (its `notifications` element), in order,
    carrying the fields `chosen` names that each record holds; other sObjects are skipped."""
    found = message.findall(f"{{{OUTBOUND}}}Notification")
    if not found:
        raise PayloadError("the notifications element holds no Notification")
    result: list[Change] = []
    for index, notification in enumerate(found, 1):
        notification_id = child_text(notification, OUTBOUND, "Id")
        if notification_id is None:
            raise PayloadError(f"Notification {index} has no Id")
        sobject = notification.find(f"{{{OUTBOUND}}}sObject")
        if sobject is None:
            raise PayloadError(f"Notification {notification_id} has no sObject")
        fields = {child.tag.removeprefix(f"{{{SOBJECT}}}"): _element_text(child)
                  for child in sobject if child.tag.startswith(f"{{{SOBJECT}}}")}  # fmt: skip
        record = Record(fields, f"Notification {notification_id}")
        record_id = record.required_text("Id")
        sobject_type = _sobject_type(sobject, record_id)
        change: Change | None = None
        if sobject_type == "Opportunity":
            change = _deal(record, notification_id, record_id, chosen)
        elif sobject_type in ("Task", "Event"):
            change = _activity(record, notification_id, record_id, sobject_type, chosen)
        if change is not None:
            result.append(change)
    return result


def _deal(record: Record, notification_id: str, deal_id: str, chosen: Collection[str]) -> DealChange:
    changed_at = record.timestamp("LastModifiedDate") or record.timestamp("SystemModstamp")
    if changed_at is None:
        record.fail("LastModifiedDate", "and SystemModstamp are missing: add one to the outbound message's fields")
    deleted = record.boolean("IsDeleted") is True
    ignored: list[str] = []
    fields = DealFields() if deleted else deal_fields(record, ignored, chosen)
    return DealChange(crm=CRM, event_id=notification_id, deal_id=deal_id, changed_at=changed_at, fields=fields,
                      deleted=deleted, ignored=tuple(ignored))  # fmt: skip


def _activity(record: Record, event_id: str, activity_id: str, sobject_type: str,
              chosen: Collection[str]) -> ActivityChange | None:
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
    ignored: list[str] = []
    return ActivityChange(crm=CRM, event_id=event_id, activity_id=activity_id, changed_at=changed_at,
                          kind=kind, owner=record.text("OwnerId"), occurred_at=occurred_at,
                          deal_id=what if what and what.startswith(OPPORTUNITY_PREFIX) else None,
                          duration_s=duration, properties=carried(record, chosen, ignored),
                          ignored=tuple(ignored))  # fmt: skip


def _noon(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, _NOON)


def _sobject_type(sobject: ElementTree.Element, record_id: str) -> str | None:
    declared = sobject.get(f"{{{XSI}}}type")  # "sf:Opportunity": the prefix is bound to the sObject namespace
    if declared:
        return declared.rpartition(":")[2]
    return _TYPE_BY_PREFIX.get(record_id[:3])


def child_text(parent: ElementTree.Element, namespace: str, name: str) -> str | None:
    """The text of `parent`'s child `{namespace}name`; None when it is absent, nil or blank."""
    child = parent.find(f"{{{namespace}}}{name}")
    return None if child is None else _element_text(child)


def _element_text(element: ElementTree.Element) -> str | None:
    if element.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    return (element.text or "").strip() or None
