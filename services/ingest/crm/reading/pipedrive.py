"""Pipedrive's users, and its deals and activities changed since a time, through API v1 (users) and v2.

Written from Pipedrive's API reference (https://developers.pipedrive.com/docs/api/v1):
- Users, `GET /v1/users`: `{"success": true, "data": [...]}`, each with `id`, `name`, `email`, `active_flag`,
  `timezone_name` (IANA). Not paged.
- Deals v2, `GET /api/v2/deals?updated_since=&sort_by=update_time&sort_direction=asc&limit=500&cursor=`: "only deals
  with an `update_time` later than or equal to this time" (RFC 3339), cursor pagination ("Pagination",
  https://pipedrive.readme.io/docs/core-api-concepts-pagination: `additional_data.next_cursor`, null on the last
  page; `limit` at most 500). Without `status` the list holds every deal not deleted; `status=deleted` lists the
  deals deleted in the last 30 days, read as a second phase, so deletions reach us too.
- Activities v2, `GET /api/v2/activities` with the same parameters.
- Rate limits: `limits.pipedrive`. Every call authenticates with the `x-api-token` header, as `fetch.py` does.

Deals become changes through `fetch.pipedrive_deal`; activities the way a v2 webhook's `data` is read
(`pipedrive._activity`, the same fields), so a planned activity (`done: false`) is passed over until it is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from services.ingest.crm import pipedrive, values
from services.ingest.crm.fetch import CrmAccess, pipedrive_deal
from services.ingest.crm.model import ActivityChange, DealChange
from services.ingest.crm.reading import cursor, limits, paging
from services.ingest.crm.reading.model import CrmUser, Page
from services.ingest.crm.reading.transport import Calls, Sleep, Transport

PAGE_SIZE = 500
_DEAL_PHASES: tuple[dict[str, str], ...] = ({}, {"status": "deleted"})


class PipedriveReader:
    """`CrmReader` for Pipedrive (module docstring)."""

    def __init__(self, transport: Transport, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, page_size: int = PAGE_SIZE,
                 max_wait_s: float = 60.0) -> None:
        self._calls = Calls(transport, limits.pipedrive, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
        self._page_size = page_size

    async def list_users(self, access: CrmAccess) -> list[CrmUser]:
        url = f"{access.base_url}/v1/users"
        body = paging.answer((await self._calls.call(access, "GET", url, _auth(access))).body, url)
        return [_user(u) for u in paging.listed(body, "data", url) if isinstance(u, dict) and u.get("id") is not None]

    async def changed_deals(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                            properties: Collection[str] = ()) -> Page[DealChange]:
        position = paging.start(cursor_text)
        if position.phase >= len(_DEAL_PHASES):
            return Page((), None, position.top)
        results, body = await self._list(access, "deals", since, position, _DEAL_PHASES[position.phase])
        changes, refused, position = paging.collect(
            results, position, _identify, lambda r: pipedrive_deal(str(r["id"]), {"data": r}, properties))
        return paging.page(changes, refused, position, _after(position, body, len(_DEAL_PHASES)))

    async def changed_activities(self, access: CrmAccess, since: datetime, cursor_text: str | None,
                                 properties: Collection[str] = ()) -> Page[ActivityChange]:
        position = paging.start(cursor_text)
        if position.phase >= 1:
            return Page((), None, position.top)
        results, body = await self._list(access, "activities", since, position, {})
        chosen = tuple(properties)

        def convert(record: dict[str, Any]) -> ActivityChange | None:
            record_id, modified = _identify(record)
            return pipedrive._activity(record, "data", f"fetch:activity:{record_id}:{record.get('update_time')}",
                                       record_id, modified, chosen)

        changes, refused, position = paging.collect(results, position, _identify, convert)
        return paging.page(changes, refused, position, _after(position, body, 1))

    async def _list(self, access: CrmAccess, entity: str, since: datetime, position: cursor.Position,
                    extra: dict[str, str]) -> tuple[list[object], dict[str, Any]]:
        url = f"{access.base_url}/api/v2/{entity}"
        params = {"updated_since": _rfc3339(since), "sort_by": "update_time", "sort_direction": "asc",
                  "limit": str(self._page_size), **extra, **({"cursor": position.token} if position.token else {})}
        body = paging.answer((await self._calls.call(access, "GET", url, _auth(access), params)).body, url)
        return paging.listed(body, "data", url), body


def _after(position: cursor.Position, body: dict[str, Any], phases: int) -> cursor.Position | None:
    following = (body.get("additional_data") or {}).get("next_cursor")
    if following in (None, ""):
        nxt = cursor.next_phase(position)
        return None if nxt.phase >= phases else nxt
    return cursor.Position(position.phase, position.window, str(following), position.last, position.at_last,
                           position.top)


def _auth(access: CrmAccess) -> dict[str, str]:
    return {"x-api-token": access.token}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # seconds: Pipedrive's own precision


def _identify(record: dict[str, Any]) -> tuple[str, datetime]:
    return (values.identifier(record.get("id"), "data.id"),
            values.instant(record.get("update_time"), "data.update_time"))


def _user(user: dict[str, Any]) -> CrmUser:
    return CrmUser(id=str(user["id"]), name=user.get("name") or None, email=user.get("email") or None,
                   time_zone=user.get("timezone_name") or None, active=user.get("active_flag") is not False)
