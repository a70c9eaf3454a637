"""Where each canonical event goes on Kafka, and how it is wrapped as a CloudEvent."""

from __future__ import annotations

from services.ingest.tenants import Tenant
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.events import (
    ActivityLoggedEvent,
    CanonicalEvent,
    DealDeletedEvent,
    DealUpsertedEvent,
    RepUpsertedEvent,
    TargetSetEvent,
    TeamUpsertedEvent,
    TimeOffSetEvent,
)

TOPIC_OF: dict[type, topics.Topic] = {
    DealUpsertedEvent: topics.DEALS,
    DealDeletedEvent: topics.DEALS,
    ActivityLoggedEvent: topics.ACTIVITIES,
    RepUpsertedEvent: topics.ROSTER,
    TargetSetEvent: topics.TARGETS,
    TeamUpsertedEvent: topics.ROSTER,
    TimeOffSetEvent: topics.ROSTER,
}


def entity_key(event: CanonicalEvent, deal_owner: str | None) -> str:
    """The id after `<tenant>:` in the record key: the rep (or team) the event is about."""
    match event:
        case DealUpsertedEvent() | ActivityLoggedEvent() | RepUpsertedEvent():
            return event.data.rep_id
        case DealDeletedEvent():
            # ordered with the deal's upserts when we know its owner; kpi orders by updated_at anyway
            return deal_owner or f"deal/{event.data.deal_id}"
        case TargetSetEvent():
            return event.data.scope_id if event.data.scope == "rep" else f"team/{event.data.scope_id}"
        case TeamUpsertedEvent():  # never the key of a rep with the same id: the roster topic is compacted
            return f"team/{event.data.team_id}"
        case TimeOffSetEvent():  # one key per period of leave: compaction keeps each one's newest version
            return f"time-off/{event.data.rep_id}/{event.data.time_off_id}"


def to_record(tenant: Tenant, event: CanonicalEvent, deal_owner: str | None) -> tuple[str, bytes, CloudEvent]:
    """(topic, key, CloudEvent) for one accepted canonical event."""
    cloud_event = CloudEvent(
        id=event.id,
        type=event.type,
        source=event.source,
        time=event.time,
        tenant=tenant.slug,
        data=event.data,
        extensions={"tenanttimezone": tenant.timezone, "tenantfiscalstart": str(tenant.fiscal_start_month),
                    "tenantcurrency": tenant.currency},
    )
    return TOPIC_OF[type(event)].name, message_key(tenant.slug, entity_key(event, deal_owner)), cloud_event
