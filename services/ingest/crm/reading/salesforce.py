"""Salesforce's users, and its Opportunities, Tasks and Events changed since a time, through REST API SOQL queries.

Written from Salesforce's REST API Developer Guide (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/
api_rest/) and SOQL and SOSL Reference:
- "Execute a SOQL Query" (resources_query.htm): `GET /services/data/v61.0/query?q=`; the answer holds `totalSize`,
  `done`, `records` and, while not done, `nextRecordsUrl` (`/services/data/v61.0/query/01g…-2000`), which is
  requested next and is our cursor. Batches are 2,000 records unless `Sforce-Query-Options: batchSize=` asks for
  fewer ("Query Options Header"). A query locator is dropped after 15 minutes unused; following an expired one
  answers `INVALID_QUERY_LOCATOR`, and the query then starts again from the latest modification time read
  (`cursor.py`): a cursor saved before a crash still resumes exactly.
- "Execute a SOQL Query that Includes Deleted Items" (resources_queryall.htm): `GET /services/data/v61.0/queryAll`
  also returns records deleted (or merged away) and still in the Recycle Bin, with `IsDeleted` true, which
  `fetch.salesforce_deal` reads as a deletion. So deletions come in the same ordered stream as the other changes,
  which `sobjects/Opportunity/deleted/?start=&end=` (resources_getdeleted.htm) could not give: it lists ids and
  dates apart, over at most 30 days.
- SOQL "FIELDS()" (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
  sforce_api_calls_soql_select_fields.htm): `FIELDS(STANDARD)` selects every standard field without a LIMIT, so
  `CurrencyIsoCode` comes when the org has multiple currencies and the query does not fail when it has not (naming
  it would); the chosen custom fields (`__c`) are named after it. `WHERE SystemModstamp >= <UTC literal> ORDER BY
  SystemModstamp, Id`: SystemModstamp is indexed and moves with every change, system ones included.
- Users: `SELECT Id, Name, Email, TimeZoneSidKey, IsActive FROM User` (TimeZoneSidKey is an IANA name).
- Rate limits: `limits.salesforce` (`Sforce-Limit-Info`, `403 REQUEST_LIMIT_EXCEEDED`).

Opportunities become changes through `fetch.salesforce_deal`; Tasks and Events the way an Outbound Message's are
read (`salesforce_outbound._activity`, the same fields by API name), a deleted one passed over.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from services.ingest.crm import salesforce_outbound, values
from services.ingest.crm.fetch import SALESFORCE_API, CrmAccess, salesforce_deal
from services.ingest.crm.model import ActivityChange, DealChange
from services.ingest.crm.reading import cursor, limits, paging
from services.ingest.crm.reading.model import CrmUser, Page, ReadingError, ReadingFailed
from services.ingest.crm.reading.transport import Calls, Sleep, Transport
from services.ingest.crm.salesforce_record import Record

USERS: Final = "SELECT Id, Name, Email, TimeZoneSidKey, IsActive FROM User ORDER BY Id"
ACTIVITY_OBJECTS: Final = ("Task", "Event")
_CUSTOM_FIELD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,80}__c")
_PREFIX: Final = f"/services/data/{SALESFORCE_API}/"
T = TypeVar("T")


class SalesforceReader:
    """`CrmReader` for Salesforce (module docstring)."""

    def __init__(self, transport: Transport, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, batch_size: int | None = None,
                 max_wait_s: float = 60.0) -> None:
        self._calls = Calls(transport, limits.salesforce, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
        self._batch = batch_size

    async def list_users(self, access: CrmAccess) -> list[CrmUser]:
        users: list[CrmUser] = []
        body = await self._get(access, f"{access.base_url}{_PREFIX}query", {"q": USERS})
        while True:
            users += [_user(u) for u in paging.listed(body, "records", "User") if isinstance(u, dict) and u.get("Id")]
            following = _next_url(body)
            if following is None:
                return users
            body = await self._get(access, f"{access.base_url}{following}")

    async def changed_deals(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                            properties: Collection[str] = ()) -> Page[DealChange]:
        def convert(record: dict[str, Any]) -> DealChange:
            return salesforce_deal(str(record["Id"]), record, properties)

        return await self._changed(access, since, cursor_text, ("Opportunity",), properties, convert)

    async def changed_activities(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                                 properties: Collection[str] = ()) -> Page[ActivityChange]:
        def convert(record: dict[str, Any]) -> ActivityChange | None:
            record_id, modified = _identify(record)
            sobject = str((record.get("attributes") or {}).get("type") or "")
            return salesforce_outbound._activity(Record(record, f"{sobject} {record_id}"),
                                                 f"fetch:{sobject}:{record_id}:{modified.isoformat()}", record_id,
                                                 sobject, properties)

        return await self._changed(access, since, cursor_text, ACTIVITY_OBJECTS, properties, convert)

    async def _changed(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                          sobjects: tuple[str, ...], properties: Collection[str],
                          convert: Callable[[dict[str, Any]], T | None]) -> Page[T]:
        position = paging.start(cursor_text)
        if position.phase >= len(sobjects):
            return Page((), None, position.top)
        sobject = sobjects[position.phase]
        body, position = await self._records(access, sobject, since, position, properties)
        records = [{**r, "attributes": {**(r.get("attributes") or {}), "type": sobject}} if isinstance(r, dict) else r
                   for r in paging.listed(body, "records", sobject)]
        changes, refused, position = paging.collect(records, position, _identify, convert)
        following = _next_url(body)
        if following is None:
            nxt = cursor.next_phase(position)
            return paging.page(changes, refused, position, None if nxt.phase >= len(sobjects) else nxt)
        return paging.page(changes, refused, position, cursor.Position(
            position.phase, position.window, following, position.last, position.at_last, position.top))

    async def _records(self, access: CrmAccess, sobject: str, since: datetime, position: cursor.Position,
                       properties: Collection[str]) -> tuple[dict[str, Any], cursor.Position]:
        """The batch the position points at: the next one of its query, or the query's first when there is none or
        its locator has expired (then from the latest modification time read)."""
        if position.token is not None:
            try:
                return await self._get(access, f"{access.base_url}{position.token}"), position
            except ReadingFailed as err:
                if not _expired(err):
                    raise
            position = cursor.restarted(position)
        query = soql(sobject, position.window or since, properties)
        return await self._get(access, f"{access.base_url}{_PREFIX}queryAll", {"q": query}), position

    async def _get(self, access: CrmAccess, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access.token}",
                   **({"Sforce-Query-Options": f"batchSize={self._batch}"} if self._batch else {})}
        return paging.answer((await self._calls.call(access, "GET", url, headers, params)).body, url)


def soql(sobject: str, since: datetime, properties: Collection[str] = ()) -> str:
    """The query for `sobject`'s records modified at or after `since` (to the second, rounded down), in order; the
    chosen custom fields named after the standard ones (others are among them; a name that is no field is left out).

    >>> soql("Opportunity", datetime(2026, 1, 5, 9, 30, 15, 500000, tzinfo=UTC), ["Segment__c", "LeadSource"])
    'SELECT FIELDS(STANDARD), Segment__c FROM Opportunity WHERE SystemModstamp >= 2026-01-05T09:30:15Z ORDER BY SystemModstamp, Id'
    """  # noqa: E501 - a doctest's expected line cannot be wrapped
    custom = "".join(f", {name}" for name in dict.fromkeys(properties) if _CUSTOM_FIELD.fullmatch(name))
    literal = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"SELECT FIELDS(STANDARD){custom} FROM {sobject} WHERE SystemModstamp >= {literal} "
            "ORDER BY SystemModstamp, Id")


def _expired(err: ReadingFailed) -> bool:
    errors = err.body if isinstance(err.body, list) else [err.body]
    return err.status == 404 or any(isinstance(e, dict) and e.get("errorCode") == "INVALID_QUERY_LOCATOR"
                                    for e in errors)


def _next_url(body: dict[str, Any]) -> str | None:
    following = body.get("nextRecordsUrl")
    if body.get("done") is True or following in (None, ""):
        return None
    if not isinstance(following, str) or not following.startswith(_PREFIX):
        raise ReadingError(f"nextRecordsUrl {str(following)[:100]!r} is not a path of {_PREFIX}")
    return following


def _identify(record: dict[str, Any]) -> tuple[str, datetime]:
    return (values.identifier(record.get("Id"), "Id"),
            values.instant(values.text(record.get("SystemModstamp"), "SystemModstamp"), "SystemModstamp"))


def _user(user: dict[str, Any]) -> CrmUser:
    return CrmUser(id=str(user["Id"]), name=user.get("Name") or None, email=user.get("Email") or None,
                   time_zone=user.get("TimeZoneSidKey") or None, active=user.get("IsActive") is not False)
