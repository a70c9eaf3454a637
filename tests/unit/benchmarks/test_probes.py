"""Which output records are a probe's figure or celebration, and the latencies they give."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from benchmarks.probes import Probes

TENANT = "bench-latency-t1"


def probes() -> Probes:
    p = Probes(TENANT, "2026-Q4", Decimal("1000"))
    p.accepted["probe-00001"] = 10.0
    return p


def figure(**changes: Any) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
    data = {"scope": "rep", "scope_id": "probe-00001", "period": "2026-Q4", "metric": "won_revenue",
            "actual": "1000.00", "target": "1000"} | changes
    key = f"{TENANT}:rep:{data['scope_id']}:{data['period']}:{data['metric']}".encode()
    return key, [("ce_type", b"kpi.attainment.updated"), ("ce_tenant", TENANT.encode())], json.dumps(data).encode()


def cheer(milestone: str = "quota_100", tenant: str = TENANT) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
    data = {"scope": "rep", "scope_id": "probe-00001", "milestone": milestone, "period": "2026-Q4"}
    return (f"{tenant}:probe-00001".encode(), [("ce_type", b"recognition.milestone.reached"),
                                               ("ce_tenant", tenant.encode())], json.dumps(data).encode())


def test_the_first_figure_at_or_above_the_target_and_the_first_quota_100_are_the_probe_s() -> None:
    p = probes()
    p.seen(*figure(actual="0"), at=10.5)  # the target's own zero figure
    p.seen(*figure(), at=11.25)
    p.seen(*figure(actual="1000.00"), at=12.0)  # a later update changes nothing
    p.seen(*cheer(), at=11.75)
    assert p.latencies(["probe-00001"]) == ([1.25], [1.75])


@pytest.mark.parametrize("changes", [{"period": "2026-12"}, {"metric": "deals_won", "actual": "1"},
                                     {"scope": "team"}, {"scope_id": "probe-00002"}, {"actual": "999.99"}])
def test_other_figures_are_not_the_probe_s(changes: dict[str, str]) -> None:
    p = probes()
    p.seen(*figure(**changes), at=11.0)
    assert p.attainment == {}


def test_another_tenant_s_or_another_milestone_s_celebration_is_not_the_probe_s() -> None:
    p = probes()
    p.seen(*cheer(milestone="quota_50"), at=11.0)
    p.seen(*cheer(tenant="someone-else"), at=11.0)
    assert p.celebration == {}


def test_a_record_without_a_probe_in_its_key_is_not_decoded() -> None:
    p = probes()
    p.seen(b"bench-latency-t1:rep-001", [("ce_tenant", TENANT.encode())], b"not json at all", at=11.0)
    p.seen(None, [], b"{}", at=11.0)
    assert (p.attainment, p.celebration) == ({}, {})


def test_a_probe_not_seen_has_no_latency() -> None:
    p = probes()
    p.accepted["probe-00002"] = 10.0
    p.seen(*figure(), at=10.5)
    assert p.latencies(["probe-00001", "probe-00002"]) == ([0.5], [])
