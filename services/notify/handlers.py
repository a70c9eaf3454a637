"""notify's consumer: the registry, the roster and the events people should hear of in; deliveries out.

Per batch (one tenant's records of it, `shared/consumer.py`): registry entries and roster changes are
stored first (so a rep and their check-in in one batch find each other), then each event notify routes
(`routing.DATA`) is routed (`routing.route`: who, on which channel, under which idempotency key) and
scheduled (`schedule.scheduled`: after the recipient's quiet hours), and every delivery is inserted in one
statement with ON CONFLICT (idempotency_key) DO NOTHING, in the batch's own transaction with its offsets.
A person's events past their daily cap (their local day, `schedule.capped`) are kept `folded` into one
digest delivered the next morning. Check-ins opened and closed are kept for the managers' daily digests.
A replayed batch, a duplicate event or a second replica therefore adds no delivery twice: one per
(event, recipient, channel). Sending is the worker's (`worker.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter
from pydantic import BaseModel

from services.notify import digests
from services.notify.model import Delivery
from services.notify.repository import OpenCheckIn, PgRepository, Repository
from services.notify.routing import DATA, route
from services.notify.schedule import scheduled
from services.notify.settings import NotifySettings
from shared.consumer import Handler, Incoming
from shared.events import (
    MilestoneCorrected,
    RepUpserted,
    TaskClosed,
    TaskCreated,
    TaskEscalated,
    TeamUpserted,
    TenantUpserted,
    TimeOffSet,
)
from shared.service import Runtime

log = logging.getLogger(__name__)

# Every type the subscribed topics carry (an unexpected type would be dead-lettered): those routed, and those
# read for state or passed over (a closed check-in, a corrected milestone, teams and time off on the roster).
MODELS: dict[str, type[BaseModel]] = {
    **DATA, "coaching.task.closed": TaskClosed, "recognition.milestone.corrected": MilestoneCorrected,
    "rep.upserted": RepUpserted, "team.upserted": TeamUpserted, "time_off.set": TimeOffSet,
    "tenant.upserted": TenantUpserted}
Repositories = Callable[[asyncpg.Connection], Repository]
STALE = Counter("attain_notify_stale_events_total", "Events older than NOTIFY_MAX_AGE_H when read: nobody told")


def make_handler(rt: Runtime, repositories: Repositories = PgRepository) -> Handler:
    settings = rt.settings
    max_age = timedelta(hours=settings.notify_max_age_h) if isinstance(settings, NotifySettings) else None

    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        await handle_batch(repositories(conn), batch, rt.clock.now(), max_age)

    return handle


async def handle_batch(repo: Repository, batch: Sequence[Incoming], now: datetime,
                       max_age: timedelta | None = None) -> int:
    """One tenant's records in: `tenant.upserted` and `rep.upserted` stored, every routed event's deliveries
    added once. Returns how many deliveries were created now (none for what was there already).

    An event older than `max_age` (NOTIFY_MAX_AGE_H) is news no more: a new deployment reading the topics from
    their start, or one back after a long outage, learns the roster from them but tells nobody of last
    month's check-ins (counted in ``attain_notify_stale_events_total``)."""
    tenant = batch[0].event.tenant
    registry = [m.data for m in batch if isinstance(m.data, TenantUpserted)]
    reps = [(m.data, m.event.time) for m in batch if isinstance(m.data, RepUpserted)]
    routed = [m for m in batch if m.event.type in DATA]
    if max_age is not None:
        fresh = [m for m in routed if now - m.event.time <= max_age]
        if len(fresh) < len(routed):
            STALE.inc(len(routed) - len(fresh))
        routed = fresh
    if registry:
        await repo.upsert_tenants(registry)
    if reps:
        await repo.upsert_people(tenant, reps)
    opened = [OpenCheckIn(m.data.task_id, m.data.rep_id, m.data.manager_id, m.data.summary, m.data.severity,
                          m.data.due_at, m.event.time)
              for m in batch if isinstance(m.data, TaskCreated | TaskEscalated)]
    closed = [m.data.task_id for m in batch if isinstance(m.data, TaskClosed)]
    if opened or closed:
        await repo.open_check_ins(tenant, opened, closed)
    if not routed:
        return 0
    people, teams, prefs = await repo.people(tenant), await repo.teams(tenant), await repo.preferences(tenant)
    rows: list[tuple[Delivery, str, dict[str, Any]]] = []
    for msg in routed:
        intents = route(tenant, msg.event.id, msg.event.type, msg.data, people, teams, prefs)
        data = msg.data.model_dump(mode="json")
        rows += [(d, msg.event.type, data) for d in scheduled(intents, now, people, prefs)]
    plan = await digests.cap(repo, tenant, [d for d, _, _ in rows], people, prefs, teams)
    created = await repo.add(tenant, rows + plan.digests)
    for digest_id, keys in plan.folds.items():
        await repo.fold(tenant, keys, digest_id)
    if created:
        log.info("deliveries added", extra={"tenant": tenant, "new_deliveries": created, "routed": len(rows),
                                            "folded": sum(len(k) for k in plan.folds.values())})
    return created
