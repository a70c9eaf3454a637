"""What coaching announces goes through here: into the outbox, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.outbox import enqueue

SOURCE = "attain/coaching"


async def publish(conn: asyncpg.Connection, tenant: str, rep_id: str, type_: str, event_id: str,
                  data: BaseModel, now: datetime, topic: topics.Topic = topics.TASKS) -> None:
    """Enqueue one event keyed by the rep (or team); `event_id` is stable for the fact it announces."""
    await enqueue(conn, topic.name, message_key(tenant, rep_id),
                  CloudEvent(id=event_id, type=type_, source=SOURCE, time=now, tenant=tenant,
                             data=data.model_dump(mode="json")))
