"""The metrics every service exports about its own work: HTTP latency by route template, consumed
records by type and outcome (each once), processing latency, and kpi's team attainment gauge."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

import services.coaching.app
import services.ingest.app
import services.kpi.app
import services.recognition.app  # noqa: F401 - every service's metrics registered
from shared.consumer import TransactionalConsumer
from shared.events import DealUpserted
from shared.service import RequestMetrics


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_http_latency_is_labelled_by_route_template_never_by_raw_path() -> None:
    app = FastAPI()
    app.add_middleware(RequestMetrics)

    @app.get("/v1/reps/{rep_id}")
    async def one(rep_id: str) -> dict[str, str]:
        return {"rep_id": rep_id}

    before = sample("attain_http_request_duration_seconds_count", route="/v1/reps/{rep_id}", method="GET",
                    status="200") or 0
    missing = sample("attain_http_request_duration_seconds_count", route="unmatched", method="GET",
                     status="404") or 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for rep in ("ana", "bo", "cy"):
            assert (await client.get(f"/v1/reps/{rep}")).status_code == 200
        assert (await client.get("/nowhere/at/all")).status_code == 404
    assert sample("attain_http_request_duration_seconds_count", route="/v1/reps/{rep_id}", method="GET",
                  status="200") == before + 3
    assert sample("attain_http_request_duration_seconds_count", route="unmatched", method="GET",
                  status="404") == missing + 1
    assert sample("attain_http_request_duration_seconds_count", route="/v1/reps/ana", method="GET",
                  status="200") is None


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def test_each_record_is_counted_once_by_type_and_outcome_and_the_newest_age_observed() -> None:
    consumer = TransactionalConsumer(pool=None, producer=None, group_id="g-test-count", service="t",  # type: ignore[arg-type]
                                     models={"deal.upserted": DealUpserted}, handler=None)  # type: ignore[arg-type]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    deal = [("ce_type", b"deal.upserted")]
    replayed = Record("crm.deals.v1", 0, 1, now_ms - 60_000, deal)
    applied = [Record("crm.deals.v1", 0, 2, now_ms - 30_000, deal), Record("crm.deals.v1", 1, 7, now_ms - 2_000, deal)]
    poison = Record("crm.deals.v1", 1, 8, now_ms - 1_000, [("ce_type", b"made.up.by.anyone")])
    records: list[Any] = [replayed, *applied, poison]
    consumer._count(records, [*applied, poison], [poison])

    def count(type_: str, outcome: str) -> float | None:
        return sample("attain_consumed_messages_total", group="g-test-count", topic="crm.deals.v1", type=type_,
                      outcome=outcome)

    assert count("deal.upserted", "applied") == 2  # not 3: the dead-lettered record is not "applied" too
    assert count("deal.upserted", "skipped_replay") == 1
    assert count("unknown", "dead_lettered") == 1  # a label never takes a producer's made-up type
    assert count("made.up.by.anyone", "dead_lettered") is None
    assert sample("attain_consumer_event_age_seconds_count", group="g-test-count", topic="crm.deals.v1") == 2
    assert 25 < (sample("attain_consumer_event_age_seconds_sum", group="g-test-count", topic="crm.deals.v1")
                 or 0) < 40  # partition 0's newest (30 s) and partition 1's newest (1 s): one each


def test_no_metric_names_a_tenant_or_carries_a_tenants_figures() -> None:
    """/metrics answers anyone who reaches the port: no label may list tenants, teams or reps, and no series
    may carry a tenant's figures (issue 16: kpi's team-attainment gauge and ingest's throttled counter did)."""
    names = {name: labels for collector, names in REGISTRY._collector_to_names.items()
             for name in names for labels in [getattr(collector, "_labelnames", ())]}
    assert names  # the registry was read
    assert not {n: ls for n, ls in names.items() if {"tenant", "team", "rep", "rep_id", "scope_id"} & set(ls)}
    assert not [n for n in names if "attainment_ratio" in n]
