"""The machine-readable contract, generated from the code: `python -m shared.docs docs/api`.

- `<service>.openapi.json`: each service's HTTP API (FastAPI);
- `asyncapi.json`: every topic, who writes it, and its message schema (FastStream's AsyncAPI 3.0);
- `schemas/<type>.json`: the JSON Schema of each event type.
A unit test regenerates them and fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared import topics
from shared.docs_page import page
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    AuditRecorded,
    ContestUpdated,
    DealDeleted,
    DealUpserted,
    MilestoneCorrected,
    MilestoneReached,
    PlanStepSettled,
    RepUpserted,
    ReviewPublished,
    TargetSet,
    TaskClosed,
    TaskCreated,
    TaskEscalated,
    TeamUpserted,
    json_schemas,
)
from shared.settings import ServiceSettings

CHANNELS: list[tuple[topics.Topic, Any, str]] = [
    (topics.DEALS, DealUpserted | DealDeleted,
     "Written by ingest. ce_type deal.upserted or deal.deleted; key <tenant>:<rep_id>. Cleanup: delete."),
    (topics.ACTIVITIES, ActivityLogged, "Written by ingest. ce_type activity.logged; key <tenant>:<rep_id>."),
    (topics.ROSTER, RepUpserted | TeamUpserted,
     "Written by ingest. ce_type rep.upserted (key <tenant>:<rep_id>) or team.upserted (key"
     " <tenant>:team/<team_id>: nesting teams into regions and a company). Compacted."),
    (topics.TARGETS, TargetSet,
     "Written by ingest. ce_type target.set; key <tenant>:<rep_id> (scope rep) or <tenant>:team/<team_id>"
     " (scope team). Compacted."),
    (topics.ATTAINMENT, AttainmentUpdated,
     "Written by kpi. ce_type kpi.attainment.updated; key <tenant>:<scope>:<id>:<period>:<metric>. Compacted:"
     " the latest message per key holds the full current figures. Only figures with a target are published, at"
     " most one message per key per processed batch; figures without a target stay exact in kpi's read API and"
     " dashboard. KPI_PUBLISH_ALL_FIGURES=true publishes every changed figure (docs/contract.md, section 3)."),
    (topics.CONTESTS, ContestUpdated,
     "Written by kpi (beyond the contract's list). ce_type kpi.contest.updated: a contest's full current standings"
     " (defined, moved, started, ended: `status` final freezes them); key <tenant>:contest/<contest_id>. Compacted:"
     " the latest message per contest. Recognition celebrates the start, each lasting new leader and the winners."),
    (topics.TASKS, TaskCreated | TaskEscalated | TaskClosed,
     "Written by coaching. ce_type coaching.task.created, coaching.task.escalated (unacknowledged past due, raised"
     " to the manager's manager) or coaching.task.closed (reason completed, recovered or superseded); key"
     " <tenant>:<rep_id>; ce_id stable per fact (a task's id; <task_id>:escalated; <task_id>:closed). Read by notify"
     " (group notify): a check-in privately to the rep and their manager, an escalation to the manager's manager."),
    (topics.PLANS, PlanStepSettled,
     "Written by coaching (beyond the contract's list). ce_type coaching.plan.step.completed or"
     " coaching.plan.step.missed: an action-plan step reached its target or its due date; key <tenant>:<rep_id>."
     " Read by notify (group notify): to the rep and their manager."),
    (topics.REVIEWS, ReviewPublished,
     "Written by coaching (beyond the contract's list). ce_type coaching.review.published: the weekly scorecard"
     " digest of a rep or a team (with its manager's scorecard); key <tenant>:<rep_id or team_id>; one per"
     " (scope, id, ISO week). Read by notify (group notify): a rep's to the rep and their manager, a team's to the"
     " manager alone."),
    (topics.CELEBRATIONS, MilestoneReached | MilestoneCorrected,
     "Written by recognition. ce_type recognition.milestone.reached (ce_id = celebration_id: once, ever, per"
     " tenant, scope, id, milestone and period) or, for tenants that ask for corrections,"
     " recognition.milestone.corrected (a celebrated quota threshold fell back below; never a second"
     " celebration); key <tenant>:<scope_id>. Read by notify (group notify): a milestone reached to the rep and"
     " to their team's channel (Slack, Teams) unless the rep opted out of public celebrations."),
    (topics.AUDIT, AuditRecorded,
     "Written by every service (beyond the contract's list), each in the transaction of the change it records."
     " ce_type attain.audit.recorded: one change to a tenant's settings, targets, roster, tokens or check-ins,"
     " or to notify's team channels, connection and people's preferences (an unsubscribe link's use included),"
     " with who (a token's id and role, the command line, or the service), when, before and after (secrets"
     " only as \"(set)\"); ce_id = audit_id; key <tenant>:<subject>. Kept 400 days; kpi keeps the whole log"
     " (GET /v1/audit). For a SIEM."),
]
HEADERS_NOTE = (
    "CloudEvents 1.0 Kafka binding, binary mode: headers ce_id (the dedup key), ce_type, ce_source,"
    " ce_specversion=1.0, ce_time, ce_tenant, ce_tenanttimezone; content-type application/json; the data"
    " is the record value. Poison messages go to <topic>.dlq with attain_error, attain_service,"
    " attain_original_topic/partition/offset headers."
)


def asyncapi() -> dict[str, Any]:
    # the documented default, not this process's environment: the document must not depend on where it is made
    broker = KafkaBroker(ServiceSettings.model_fields["kafka_bootstrap_servers"].default)
    for topic, schema, description in CHANNELS:
        broker.publisher(topic.name, schema=schema, title=topic.name, description=description)
    spec = AsyncAPI(broker, title="Attain events", version="1", schema_version="3.0.0",
                    description=HEADERS_NOTE)
    result: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return result


def openapi() -> dict[str, dict[str, Any]]:
    from services.coaching.app import SPEC as COACHING  # noqa: PLC0415 - services depend on shared, not back
    from services.ingest.app import SPEC as INGEST  # noqa: PLC0415
    from services.kpi.app import SPEC as KPI  # noqa: PLC0415
    from services.notify.app import SPEC as NOTIFY  # noqa: PLC0415
    from services.recognition.app import SPEC as RECOGNITION  # noqa: PLC0415
    from shared.service import create_app  # noqa: PLC0415

    return {spec.name: create_app(spec, ServiceSettings()).openapi()
            for spec in (INGEST, KPI, COACHING, RECOGNITION, NOTIFY)}


def render() -> dict[str, str]:
    """Relative path -> file content of every generated document."""
    services, topics_doc, schemas = openapi(), asyncapi(), json_schemas()
    out = {f"{name}.openapi.json": _dump(doc) for name, doc in services.items()}
    out["asyncapi.json"] = _dump(topics_doc)
    out |= {f"schemas/{name}.json": _dump(schema) for name, schema in schemas.items()}
    out["index.html"] = page(services, topics_doc, _types_by_topic(schemas))
    return out


def _types_by_topic(schemas: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Each documented topic's event types: the types whose schema is one of the channel's models."""
    out: dict[str, list[str]] = {}
    for topic, model, _ in CHANNELS:
        names = {m.__name__ for m in (get_args(model) or (model,))}
        out[topic.name] = sorted(t for t, schema in schemas.items() if schema.get("title") in names)
    return out


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.docs [FOLDER]`: write every generated document under FOLDER (default docs/api)."""
    parser = argparse.ArgumentParser(prog="python -m shared.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="docs/api", help="where to write them (default docs/api)")
    root = Path(parser.parse_args(argv).folder)
    documents = render()
    for relative, content in documents.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    print(f"wrote {len(documents)} documents to {root}", file=sys.stderr)  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
