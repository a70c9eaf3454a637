"""HubSpot's owners, and its deals and engagements changed since a time, through the CRM API v3.

Written from HubSpot's developer documentation:
- "Owners" (https://developers.hubspot.com/docs/api/crm/owners): `GET /crm/v3/owners?limit=100&after=&archived=`,
  `results` (`id`, `email`, `firstName`, `lastName`, `userId`, `archived`), `paging.next.after`. Active owners and
  archived ones are listed apart (`archived=true`): both are read, archived ones inactive. Owners keep no time zone.
- "CRM search" (https://developers.hubspot.com/docs/api/crm/search): `POST /crm/v3/objects/{object}/search` with
  `filterGroups` (`hs_lastmodifieddate` GTE the window start, epoch milliseconds), one sort (`hs_lastmodifieddate`
  ASCENDING), `properties`, `limit` (at most 200; we ask 100) and `after`; the answer's `paging.next.after` is the
  offset of the next page. "Limitations": a query returns at most 10,000 results ("paging past 10,000 results
  returns a 400"), and search endpoints allow about five requests per second per account (`limits.py`). When the
  next page would pass the cap, the search starts again from the latest modification time read (`cursor.py`).
  Archived (deleted) records are not searchable: a deal deleted in HubSpot reaches us through its webhook only.
- Engagements ("Calls", "Meetings", "Email", "Tasks", "Notes" guides): searched one object after another, the
  objects `fetch.HUBSPOT_ENGAGEMENTS` names, each page's deals read with "Associations v4"
  (https://developers.hubspot.com/docs/api/crm/associations, `POST /crm/v4/associations/{object}/deals/batch/read`,
  `results[].from.id`, `results[].to[].toObjectId`), since search answers carry no associations.

Records become changes through `fetch.hubspot_deal` and `fetch.hubspot_engagement`, as a fetched record does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from datetime import datetime
from functools import partial
from typing import Any, Literal

from services.ingest.crm import values
from services.ingest.crm.fetch import (
    HUBSPOT_DEAL_PROPERTIES,
    HUBSPOT_ENGAGEMENT_PROPERTIES,
    HUBSPOT_ENGAGEMENTS,
    CrmAccess,
    asked_for,
    hubspot_deal,
    hubspot_engagement,
)
from services.ingest.crm.model import ActivityChange, DealChange
from services.ingest.crm.reading import cursor, limits, paging
from services.ingest.crm.reading.model import CrmUser, Page, ReadingError
from services.ingest.crm.reading.transport import Calls, Sleep, Transport

SEARCH_CAP = 10_000
MODIFIED = "hs_lastmodifieddate"
Kind = Literal["call", "email", "meeting", "demo", "task", "other"]
_KINDS: dict[str, Kind] = {"call": "call", "meeting": "meeting", "email": "email", "task": "task", "other": "other"}


class HubSpotReader:
    """`CrmReader` for HubSpot (module docstring)."""

    def __init__(self, transport: Transport, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, page_size: int = 100, search_cap: int = SEARCH_CAP,
                 max_wait_s: float = 60.0) -> None:
        self._calls = Calls(transport, limits.hubspot, sleep=sleep, clock=clock, max_wait_s=max_wait_s,
                            min_interval_s=limits.HUBSPOT_SEARCH_INTERVAL_S)
        self._page_size, self._cap = page_size, search_cap
        self._engagements = [(_KINDS[kind], objects) for kind, objects in HUBSPOT_ENGAGEMENTS.items()]

    async def list_users(self, access: CrmAccess) -> list[CrmUser]:
        """Every owner, active ones first, then archived ones (inactive)."""
        users: list[CrmUser] = []
        url = f"{access.base_url}/crm/v3/owners"
        for archived in ("false", "true"):
            after: str | None = None
            while True:
                params = {"limit": "100", "archived": archived, **({"after": after} if after else {})}
                body = paging.answer((await self._calls.call(access, "GET", url, _auth(access), params)).body, url)
                users += [_owner(o, archived == "true") for o in paging.listed(body, "results", url)
                          if isinstance(o, dict) and o.get("id") is not None]
                if (after := _next_after(body)) is None:
                    break
        return users

    async def changed_deals(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                            properties: Collection[str] = ()) -> Page[DealChange]:
        position = paging.start(cursor_text)
        if position.phase > 0:
            return Page((), None, position.top)
        asked = [*asked_for(HUBSPOT_DEAL_PROPERTIES, properties).split(","), MODIFIED]
        results, body = await self._search(access, "deals", position, since, asked)
        changes, refused, position = paging.collect(
            results, position, _identify, lambda r: hubspot_deal(str(r["id"]), r, properties))
        return paging.page(changes, refused, position, self._after(position, body, since, 1))

    async def changed_activities(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                                 properties: Collection[str] = ()) -> Page[ActivityChange]:
        position = paging.start(cursor_text)
        if position.phase >= len(self._engagements):
            return Page((), None, position.top)
        kind, objects = self._engagements[position.phase]
        asked = [*asked_for(HUBSPOT_ENGAGEMENT_PROPERTIES, properties).split(","), MODIFIED]
        results, body = await self._search(access, objects, position, since, asked)
        deals = await self._deals_of(access, objects, results)
        changes, refused, position = paging.collect(
            results, position, _identify, partial(_engagement, kind, objects, deals, properties))
        return paging.page(changes, refused, position,
                           self._after(position, body, since, len(self._engagements)))

    async def _search(self, access: CrmAccess, objects: str, position: cursor.Position, since: datetime,
                      properties: list[str]) -> tuple[list[object], dict[str, Any]]:
        start = position.window or since
        query: dict[str, Any] = {
            "filterGroups": [{"filters": [{"propertyName": MODIFIED, "operator": "GTE",
                                           "value": str(_millis(start))}]}],
            "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
            "properties": properties, "limit": self._page_size,
            **({"after": position.token} if position.token else {}),
        }  # fmt: skip
        url = f"{access.base_url}/crm/v3/objects/{objects}/search"
        response = await self._calls.call(access, "POST", url, _auth(access), json_body=query, paced=True)
        body = paging.answer(response.body, url)
        return paging.listed(body, "results", url), body

    async def _deals_of(self, access: CrmAccess, objects: str, results: list[object]) -> dict[str, list[str]]:
        ids = [str(r["id"]) for r in results if isinstance(r, dict) and r.get("id") is not None]
        if not ids:
            return {}
        url = f"{access.base_url}/crm/v4/associations/{objects}/deals/batch/read"
        response = await self._calls.call(access, "POST", url, _auth(access),
                                          json_body={"inputs": [{"id": i} for i in ids]})
        body = paging.answer(response.body, url)
        found: dict[str, list[str]] = {}
        for item in paging.listed(body, "results", url):
            if isinstance(item, dict) and isinstance(source := item.get("from"), dict):
                found[str(source.get("id"))] = [str(to["toObjectId"]) for to in item.get("to") or []
                                                if isinstance(to, dict) and to.get("toObjectId") is not None]
        return found

    def _after(self, position: cursor.Position, body: dict[str, Any], since: datetime,
               phases: int) -> cursor.Position | None:
        """The position of the next page: the same search's next offset, the search again from the latest time read
        when that offset would pass the cap, the next phase, or None at the end."""
        after = _next_after(body)
        if after is None:
            following = cursor.next_phase(position)
            return None if following.phase >= phases else following
        if after.isdigit() and int(after) + self._page_size > self._cap:
            if position.last is None or position.last == (position.window or since):
                raise ReadingError(f"more than {self._cap} HubSpot records were modified at {position.last}: the "
                                   "search cannot page past them")
            return cursor.restarted(position)
        return cursor.Position(position.phase, position.window, after, position.last, position.at_last,
                               position.top)

def _auth(access: CrmAccess) -> dict[str, str]:
    return {"Authorization": f"Bearer {access.token}"}


def _millis(moment: datetime) -> int:
    return (moment - values.EPOCH) // values.MILLISECOND


def _next_after(body: dict[str, Any]) -> str | None:
    following = (body.get("paging") or {}).get("next") or {}
    after = following.get("after") if isinstance(following, dict) else None
    return None if after in (None, "") else str(after)


def _identify(record: dict[str, Any]) -> tuple[str, datetime]:
    props = record.get("properties") or {}
    modified = props.get(MODIFIED) or record.get("updatedAt")
    return (values.identifier(record.get("id"), "id"),
            values.instant(values.text(modified, f"properties.{MODIFIED}"), f"properties.{MODIFIED}"))


def _owner(owner: dict[str, Any], archived: bool) -> CrmUser:
    name = " ".join(str(part) for part in (owner.get("firstName"), owner.get("lastName")) if part)
    return CrmUser(id=str(owner["id"]), name=name or None, email=owner.get("email") or None, time_zone=None,
                   active=not (archived or owner.get("archived") is True))


def _engagement(kind: Kind, objects: str, deals: dict[str, list[str]], properties: Collection[str],
                record: dict[str, Any]) -> ActivityChange:
    record_id, modified = _identify(record)
    created = record.get("createdAt")
    base = ActivityChange(
        crm="hubspot", event_id=f"fetch:{objects}:{record_id}:{record.get('updatedAt')}", activity_id=record_id,
        changed_at=modified, kind=kind, owner=None,
        occurred_at=values.instant(created, "createdAt") if isinstance(created, str) and created else modified,
    )  # fmt: skip
    body = {**record, "associations": {"deals": {"results": [{"id": d} for d in deals.get(record_id, [])]}}}
    return hubspot_engagement(base, body, properties)
