"""Salesforce Change Data Capture events (JSON) for Opportunity, bare or in a CometD or Pub/Sub-style envelope.

Written from the Change Data Capture Developer Guide ("Change Event Message Structure", "ChangeEventHeader Fields",
"Change Event Body Fields", "Gap Events", "Overflow Events") and the Streaming API Developer Guide ("Differences
Between Change Events Received with Streaming API vs. Pub/Sub API").

Decisions:
- One change per record id; `changed_at` is `commitTimestamp`; `event_id` is `{transactionKey}:{sequenceNumber}:
  {recordId}` (a transaction's events are numbered, and one event may name several records). CREATE, UPDATE and
  UNDELETE carry the fields the event carries (UPDATE: only the changed ones); DELETE reports the deal deleted.
- A gap event (GAP_*) says a record changed but not how: it becomes a change without fields (GAP_DELETE: deleted),
  and the pipeline must fetch the record or wait for its next change. An overflow event (GAP_OVERFLOW) names no
  records and yields nothing; nor does a wildcard id (`006*`). Entities other than Opportunity are skipped.
- JSON numbers for date-times are epoch milliseconds and for dates epoch days (Pub/Sub API relays decode Avro that
  way); CometD relays send ISO 8601 strings.
- A field sent as null (a Pub/Sub API event has null for every unchanged field) is "not in this delivery": a
  cleared field cannot be told from an unchanged one, so the last known value stands. So an UPDATE carrying only
  `Probability` changes the probability and leaves the forecast category and close date as they were; likewise
  for the fields the tenant chose to carry (`salesforce_record.py`): an UPDATE carries the changed ones only, and
  the others keep their last known values.
- CDC events carry no org id; a relay may add `OrganizationId` (or `orgId`) to an event or its envelope: `orgs`
  reports it for `salesforce.verify`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from services.ingest.crm import values
from services.ingest.crm.model import Change, DealChange, DealFields, PayloadError
from services.ingest.crm.salesforce_record import CRM, Record, deal_fields

_ORG_KEYS: Final = ("OrganizationId", "orgId")  # where a CDC relay may name the org
_CHANGE_TYPES: Final = frozenset({"CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE",
                                  "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class CdcEvent:
    """One change event of a delivery, out of its envelope."""

    header: Mapping[str, object]
    fields: Mapping[str, object]
    orgs: list[str | None]  # what the event or its envelope says its org is; [] when silent
    where: str


def events(body: bytes) -> list[CdcEvent]:
    """The change events of a JSON body (one event, or a list); PayloadError when it is not JSON or not events."""
    try:
        value = values.load_json(body)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise PayloadError(f"body is not valid JSON: {err}") from err
    except RecursionError as err:
        raise PayloadError("body is JSON nested too deeply") from err
    found = value if isinstance(value, list) else [value]
    return [_event(item, index) for index, item in enumerate(found, 1)]


def _event(item: object, index: int) -> CdcEvent:
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
            return CdcEvent(header=header, fields=item, orgs=orgs, where=where)
        item = item.get("payload", item.get("data"))
    raise PayloadError(f"{where}: not a change event (no ChangeEventHeader)")


def _org(level: Mapping[str, object], where: str) -> str | None:
    value = next(level[key] for key in _ORG_KEYS if key in level)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{where}: the org id is not a string")
    return value


def changes(found: list[CdcEvent], chosen: Collection[str] = ()) -> list[Change]:
    """One deal change per Opportunity record each event names, carrying the fields `chosen` names that the event
    holds; other entities and overflow events yield none."""
    result: list[Change] = []
    for event in found:
        header = Record(event.header, f"{event.where} header")
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
        ignored: list[str] = []
        fields = (
            DealFields()
            if deleted or change_type.startswith("GAP_")
            else deal_fields(Record(event.fields, f"{event.where} ({transaction}:{sequence})"), ignored, chosen)
        )
        result.extend(
            DealChange(crm=CRM, event_id=f"{transaction}:{sequence}:{record_id}", deal_id=record_id,
                       changed_at=committed, fields=fields, deleted=deleted, ignored=tuple(ignored))
            for record_id in _record_ids(header, change_type)
            if not record_id.endswith("*")  # "006*": a field type conversion touched every record; none is named
        )  # fmt: skip
    return result


def _record_ids(header: Record, change_type: str) -> list[str]:
    ids = header.fields.get("recordIds", [] if change_type == "GAP_OVERFLOW" else None)
    if not isinstance(ids, list) or not all(isinstance(record_id, str) and record_id for record_id in ids):
        header.fail("recordIds", "is not a list of record ids")
    return [str(record_id) for record_id in ids]
