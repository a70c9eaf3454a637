"""recognition's consumer: `kpi.attainment.updated` in, each milestone celebrated once, ever."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.recognition.rules import reached
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import Handler, Incoming, claim
from shared.events import AttainmentUpdated
from shared.outbox import enqueue
from shared.service import Runtime

SOURCE = "attain/recognition"
MODELS = {"kpi.attainment.updated": AttainmentUpdated}


def make_handler(rt: Runtime) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Project the latest attainment; a milestone newly in the ledger goes to the outbox."""
        for msg in batch:
            if not await claim(conn, msg.event):
                continue  # a duplicate delivery of an update already applied
            update = msg.data
            assert isinstance(update, AttainmentUpdated)
            tenant = msg.event.tenant
            await conn.execute(
                "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, attainment,"
                " name, as_of) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
                " target = EXCLUDED.target, attainment = EXCLUDED.attainment, name = EXCLUDED.name,"
                " as_of = EXCLUDED.as_of WHERE attainment.as_of <= EXCLUDED.as_of",
                tenant, update.scope.value, update.scope_id, update.period, update.metric.value,
                update.actual, update.target, update.attainment, update.name, update.as_of,
            )
            for milestone in reached(tenant, update, rt.clock.now()):
                inserted = await conn.fetchval(
                    "INSERT INTO celebrations (celebration_id, tenant, scope, scope_id, milestone, period, value,"
                    " headline, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    milestone.celebration_id, tenant, milestone.scope.value, milestone.scope_id,
                    milestone.milestone, milestone.period, milestone.value, milestone.headline,
                    milestone.occurred_at,
                )
                if inserted:
                    await enqueue(conn, topics.CELEBRATIONS.name, message_key(tenant, milestone.scope_id),
                                  CloudEvent(id=milestone.celebration_id, type="recognition.milestone.reached",
                                             source=SOURCE, time=milestone.occurred_at, tenant=tenant,
                                             data=milestone.model_dump(mode="json")))

    return handle
