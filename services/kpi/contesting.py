"""Contest standings from kpi's state, published when they change (issue 22, item 4; the rules in `contests.py`).

Three callers, one path (`refresh`): the batch handler, for the open contests its records touch (a record
whose moment falls in a contest's window, for one of its participants; for team contests also any roster
change); the contest clock (`clock`, a kpi timer), when a contest's start or end has come; and the admin API,
when a contest is defined, changed or cancelled. Each locks the contests it refreshes, recounts their
standings from the stored deals and activities, and publishes `kpi.contest.updated` (through the outbox, in
the caller's transaction) when the state differs from the last one published. A final or cancelled contest
is never recounted: its standings stand.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from services.kpi import repository as repo
from services.kpi.contests import (
    Contest,
    built_in_values,
    custom_values,
    digest,
    leaders,
    standings,
    status_at,
    tallies,
    touches,
)
from services.kpi.contributions import Books
from services.kpi.custom import BUILT_IN, Kpi
from services.kpi.ports import Outgoing, PgRepository, Repository
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.db import sweep_tx, tenant_tx
from shared.events import ContestUpdated
from shared.service import Runtime, every

log = logging.getLogger(__name__)
SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("0c5a3d8e-7f41-4b9b-a8e2-3c1d5e6f7a90")
TICK_S = 5.0  # how often the contest clock looks for a start or an end that has come


async def touched(store: Repository, tenant: str, books: Books, moments: Sequence[tuple[str, datetime]],
                  roster_moved: bool) -> list[str]:
    """The open contests a batch's records (or roster change) may move."""
    if not moments and not roster_moved:
        return []
    return [s.contest.contest_id for s in await store.open_contests(tenant)
            if (roster_moved and s.contest.participants == "teams") or touches(s.contest, moments, books)]


async def refresh(store: Repository, tenant: str, books: Books, contest_ids: Iterable[str],
                  now: datetime) -> list[Outgoing]:
    """Recount and publish the given contests where their state changed; what to enqueue."""
    out: list[Outgoing] = []
    kpis: dict[str, Kpi] | None = None  # the tenant's KPIs, read once, if a contest ranks by one
    for stored in await store.lock_contests(tenant, contest_ids):
        contest = stored.contest
        if contest.status in ("final", "cancelled"):
            if contest.status == "cancelled" and stored.digest != "cancelled":  # say so, once
                await _publish(store, tenant, contest, "cancelled", stored.standings, [], "cancelled", now, out, books)
            continue
        status = status_at(contest, now)
        deals, activities = await store.contest_records(tenant, contest)
        await store.load_memberships(tenant, books, {d.rep_id for d in deals} | {a.rep_id for a in activities})
        if contest.metric in BUILT_IN:
            values = built_in_values(contest, tallies(contest, books, deals, activities))
        else:  # a KPI the tenant defined (gone: every participant at 0)
            if kpis is None:
                kpis = {k.kpi_id: k for k in await store.kpis(tenant)}
            kpi = kpis.get(contest.metric)
            values = custom_values(contest, kpi, books, deals, activities) if kpi else {}
        names = await store.names_of(tenant, contest.participants, list(contest.participant_ids))
        board = standings(contest, values, names)
        state = digest(contest, status, board)
        if state == stored.digest:
            continue
        rows = [s.model_dump(mode="json") for s in board]
        await _publish(store, tenant, contest, status, rows, leaders(board), state, now, out, books)
    return out


async def _publish(store: Repository, tenant: str, contest: Contest, status: str, rows: list[dict[str, object]],
                   leads: list[str], state: str, now: datetime, out: list[Outgoing], books: Books) -> None:
    revision = await store.save_contest(tenant, contest.contest_id, status, rows, state, now)
    data = ContestUpdated.model_validate({
        "contest_id": contest.contest_id, "name": contest.name, "metric": contest.metric,
        "participants": contest.participants, "rank_by": contest.rank_by, "starts_at": contest.starts_at,
        "ends_at": contest.ends_at, "status": status, "prizes": list(contest.prizes), "standings": rows,
        "leaders": leads, "revision": revision, "as_of": now})
    event = CloudEvent(id=str(uuid.uuid5(NAMESPACE, f"{tenant}|{contest.contest_id}|{revision}")),
                       type="kpi.contest.updated", source=SOURCE, time=now, tenant=tenant, data=data,
                       extensions={"tenanttimezone": books.timezone.key})
    out.append((topics.CONTESTS.name, message_key(tenant, f"contest/{contest.contest_id}"), event))
    # the dashboard's live feed: browsers showing this contest re-read it at commit (dashboard/live.py)
    await store.announce_figures(tenant, [f"contest:{contest.contest_id}"])


async def clock(rt: Runtime) -> None:
    """kpi's timer: every `TICK_S`, start the contests whose start has come and close those whose end (and
    settling time) has; each in its tenant's transaction, under its lock, like a batch."""
    async def work() -> None:
        if await tick(rt.pool, rt.clock.now()):
            rt.relay.wake()

    await every(TICK_S, work, "kpi-contest-clock")


async def tick(pool: asyncpg.Pool, now: datetime) -> int:
    """One pass of the contest clock; how many contest updates it published."""
    async with sweep_tx(pool) as conn:
        due = await repo.due_contests(conn, now)
    by_tenant: dict[str, list[str]] = {}
    for tenant, contest_id in due:
        by_tenant.setdefault(tenant, []).append(contest_id)
    sent = 0
    for tenant, ids in by_tenant.items():
        async with tenant_tx(pool, tenant) as conn:
            await repo.lock_tenant(conn, tenant, exclusive=False)
            store = PgRepository(conn)
            books = await store.books(tenant)
            outgoing = await refresh(store, tenant, books, ids, now)
            await store.enqueue(outgoing)
            sent += len(outgoing)
            log.info("contests moved by the clock",
                     extra={"tenant": tenant, "contests": ids, "published": len(outgoing)})
    return sent
