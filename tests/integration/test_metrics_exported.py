"""Every metric the Grafana dashboards and the alert rules name is exported by a running service: scraped
from the four services' `/metrics`, not only found in the source (tests/unit/deploy checks that)."""

from __future__ import annotations

import httpx

from tests.unit.deploy.test_grafana import expressions, load
from tests.unit.deploy.test_k8s import alert_rules, promql_metrics

SUFFIXES = ("", "_bucket", "_sum", "_count", "_created")


def _families(text: str) -> set[str]:
    """Metric family names from the `# TYPE` lines (prometheus_client prints them even before a first sample)."""
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


async def test_every_metric_of_the_dashboards_and_alerts_is_exported_by_a_running_service(services):
    named: set[str] = set()
    for board in ("operations.json", "sales-floor.json"):
        for _, expr, _ in expressions(load(board)):
            named |= promql_metrics(expr)
    for rule in alert_rules():
        named |= promql_metrics(rule["expr"])
    exported: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for url in services.values():
            exported |= _families((await client.get(f"{url}/metrics")).text)
    samples = {family + suffix for family in exported for suffix in SUFFIXES}
    samples |= {family.removesuffix("_total") + "_total" for family in exported}
    assert named, "no metric found in the dashboards and alerts"
    assert sorted(named - samples) == [], f"named in dashboards or alerts but not exported: {sorted(named - samples)}"


async def test_consumers_measure_their_lag_per_partition_and_requests_are_timed_by_route(services):
    async with httpx.AsyncClient(timeout=10) as client:
        await client.get(f"{services['kpi']}/v1/scorecards/nobody?period=2026-Q4")  # 401: no token
        kpi = (await client.get(f"{services['kpi']}/metrics")).text
    lag = [line for line in kpi.splitlines() if line.startswith("attain_consumer_lag{")]
    partitions = {line.split('partition="')[1].split('"')[0] for line in lag if 'topic="sales.deals.v1"' in line}
    assert partitions, f"no lag measured for kpi's sales.deals.v1 partitions: {lag[:5]}"
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lag)
    assert any('route="/v1/scorecards/{rep_id}"' in line and 'status="401"' in line for line in kpi.splitlines()
               if line.startswith("attain_http_request_duration_seconds_count"))
