"""What reading a CRM's API yields, whichever CRM it is: users, and pages of changed deals and activities.

A reader (`hubspot.py`, `pipedrive.py`, `salesforce.py`) honours `CrmReader`:

    list_users(access) -> list[CrmUser]
        every user (HubSpot: owner) of the CRM, active or not, with e-mail and time zone where the CRM keeps one;
    changed_deals(access, since, cursor, properties) -> Page[DealChange]
    changed_activities(access, since, cursor, properties) -> Page[ActivityChange]
        one page of the records modified at or after `since`, in modification order. `cursor` is None for the first
        page, then the previous page's `cursor`; a page whose `cursor` is None is the last. A caller persists the
        cursor after each page (with what it did with the page, in one transaction) and, after a crash, calls again
        with the same `since` and the saved cursor: the reading goes on exactly where that page ended.

A record the converter cannot read (`PayloadError`) is reported in `Page.refused`, never raised, so a backfill goes
on past it. A failure of the call itself (refused address, timeout, an answer that is not the vendor's documented
one) raises `ReadingError`; a rate limit longer than the reader waits raises `RateLimited`, with how long to wait:
the caller keeps its cursor and comes back later.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.model import ActivityChange, DealChange

T = TypeVar("T")


class ReadingError(Exception):
    """The CRM's API could not be read: the call was refused, failed, or was not answered as documented."""


class ReadingFailed(ReadingError):
    """The CRM answered with a status other than success (after the retries its rate limits allow)."""

    def __init__(self, status: int, body: object, url: str) -> None:
        super().__init__(f"{url}: status {status}: {str(body)[:300]}")
        self.status, self.body, self.url = status, body, url


class RateLimited(ReadingError):
    """The CRM asks for a longer pause than the reader waits in place (a daily budget spent): come back later."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"the CRM's rate limit asks to wait {wait_s:.0f} s")
        self.wait_s = wait_s


class CursorInvalid(ReadingError):
    """A cursor that no reader wrote (or an older format): start again from the last high-water mark."""


@dataclass(frozen=True, slots=True)
class CrmUser:
    """A user of the CRM (HubSpot: an owner), as deals and activities name it in `owner`."""

    id: str
    name: str | None
    email: str | None
    time_zone: str | None  # IANA name where the CRM keeps one (Pipedrive, Salesforce); HubSpot owners have none
    active: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """A record read from the API that its converter refused (`PayloadError`): reported, and the reading goes on."""

    record_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of changed records, in modification order.

    `cursor` resumes the reading after this page (None: this was the last page). `high_water` is the latest
    modification time read so far in this pass (None before any record): the next reconcile pass starts from it
    (less a margin for the CRM's own indexing delay; the changes' event ids make an overlap harmless).
    """

    records: tuple[T, ...]
    cursor: str | None
    high_water: datetime | None
    refused: tuple[Refused, ...] = ()


class CrmReader(Protocol):
    """Reads one CRM's users and changed records (module docstring)."""

    async def list_users(self, access: CrmAccess) -> list[CrmUser]: ...

    async def changed_deals(self, access: CrmAccess, since: datetime, cursor: str | None,
                            properties: Collection[str] = ()) -> Page[DealChange]: ...

    async def changed_activities(self, access: CrmAccess, since: datetime, cursor: str | None,
                                 properties: Collection[str] = ()) -> Page[ActivityChange]: ...
