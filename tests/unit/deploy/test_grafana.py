"""deploy/grafana: the dashboards are valid Grafana JSON on the provisioned datasource, and chart only what
the code exports.

Every PromQL expression of every panel (rows' nested panels included) and every template variable is
read; each metric it names must be a sample prometheus_client exposes for a metric defined in shared/ or
services/ (read from the source, as for the PrometheusRule in test_k8s.py), each label it matches,
groups by or shows in a legend must exist on that metric or be a scrape target label, and label values
must be ones the code can emit. A dashboard query on a metric nobody exports draws an empty panel
forever; this test fails instead.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.test_k8s import (
    SERVICES,
    TARGET_LABELS,
    TOPICS,
    code_strings,
    exported_metrics,
    promql_grouping_labels,
    promql_matchers,
    promql_metrics,
)

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = {"operations.json": "attain-operations", "sales-floor.json": "attain-sales-floor"}
# deploy/compose/grafana/datasources/prometheus.yml provisions it with this uid.
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Aggregations whose result keeps only the `by (...)` labels (topk/bottomk keep the series' own).
_AGGREGATION = re.compile(r"\b(sum|min|max|avg|count|group|stddev|stdvar|quantile|count_values)\s*\(")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{\w+(?::\w+)?\}|\w+)")
_RATE = re.compile(r"\b(?:rate|irate|increase)\s*\(\s*([a-zA-Z_:][\w:]*)")
# Label values the code writes as literals; topic and group are checked against shared/topics.py and
# the services' subscriptions, tenant is data.
CODE_VALUED_LABELS = {"outcome", "crm"}


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((GRAFANA / name).read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, a row's nested panels (a collapsed row keeps them inside it) included."""
    stack = list(reversed(board.get("panels", [])))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels", [])))


def datasources(node: Any) -> Iterator[Any]:
    """Every `datasource` value anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources(item)


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) for every panel target and every query variable."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            for key in ("expr", "query"):
                if isinstance(target.get(key), str):
                    yield f"panel {panel.get('title')!r} {target.get('refId')}", target[key], target.get(
                        "legendFormat", "")
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query, where = variable_query(variable), f"variable ${variable.get('name')}"
        if found := _LABEL_VALUES.match(query):
            if found["selector"]:
                yield where, f"group by ({found['label']}) ({found['selector']})", ""
            else:  # label_values(label): any series, so the label must exist on some metric
                yield where, "", found["label"]
        elif found := _QUERY_RESULT.match(query):
            yield where, found["expr"], ""
        else:
            yield where, query, ""


def promql_problems(where: str, expr: str, legend: str) -> list[str]:
    """What in one expression the code does not export: metrics, labels, label values."""
    exported = exported_metrics()
    groups = {f"attain-{s.group}" for spec, _ in SERVICES.values() for s in spec.subscriptions}
    known_values = {"topic": set(TOPICS), "group": groups}
    problems: list[str] = []
    if not expr:  # label_values(label) without a metric
        every_label = TARGET_LABELS.union(*exported.values())
        return [] if legend in every_label else [f"{where}: no metric has a label {legend!r}"]
    plain = _GRAFANA_VARIABLE.sub("0", expr)
    metrics = promql_metrics(plain)
    if not metrics:
        problems.append(f"{where}: no metric found in {expr}")
    if unknown := metrics - set(exported):
        problems.append(f"{where}: not exported by the code: {sorted(unknown)}")
    metrics &= set(exported)
    available = TARGET_LABELS.union(*(exported[m] for m in metrics))
    for metric, label, op, value in promql_matchers(expr):
        if not metric:
            problems.append(f"{where}: a selector without a metric name: {expr}")
            continue
        if metric in exported and label not in exported[metric] | TARGET_LABELS:
            problems.append(f"{where}: {metric} has no label {label!r}")
        if "$" in value or op not in {"=", "=~"}:
            continue
        values = known_values.get(label) or (code_strings() if label in CODE_VALUED_LABELS else None)
        if values is None:
            continue
        matches = value in values if op == "=" else any(re.fullmatch(value, v) for v in values)
        if not matches:
            problems.append(f"{where}: {label}{op}{value!r} matches nothing the code emits")
    grouping = promql_grouping_labels(plain)
    if extra := grouping - available:
        problems.append(f"{where}: groups by labels the metrics lack: {sorted(extra)}")
    shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    by = {label.strip() for label in re.findall(r"\bby\s*\(([^)]*)\)", plain) for label in label.split(",")} - {""}
    kept = by if by else set() if _AGGREGATION.search(plain) else available
    if missing := shown - kept:
        problems.append(f"{where}: the legend shows {sorted(missing)}, which the result has not")
    for name in _RATE.findall(plain):
        if not name.endswith(("_total", "_bucket", "_count", "_sum")):
            problems.append(f"{where}: rate/increase of {name}, which is not a counter")
    if "histogram_quantile" in plain and (
            not any(m.endswith("_bucket") for m in metrics) or "le" not in grouping):
        problems.append(f"{where}: histogram_quantile needs a _bucket series aggregated by (le)")
    return problems


def dashboard_problems(board: dict[str, Any]) -> list[str]:
    """Everything wrong with one dashboard: structure, datasource, queries."""
    problems = [f"missing {key!r}" for key in ("title", "uid", "schemaVersion", "panels") if not board.get(key)]
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < 36:
        problems.append(f"schemaVersion {board.get('schemaVersion')!r}: expected an integer >= 36")
    if "__inputs" in board:
        problems.append("__inputs (an export for sharing): provisioning does not resolve ${DS_...} inputs")
    for found in datasources(board):
        if found != DATASOURCE:
            problems.append(f"datasource {found!r}, expected {DATASOURCE}")
    ids = [panel.get("id") for panel in panels(board)]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids are missing or repeated: {ids}")
    for panel in panels(board):
        title, grid = panel.get("title"), panel.get("gridPos", {})
        if not title:
            problems.append(f"panel {panel.get('id')} has no title")
        if not (grid.get("w", 0) > 0 and grid.get("h", 0) > 0 and grid.get("x", -1) >= 0
                and grid.get("x", 0) + grid.get("w", 0) <= 24):
            problems.append(f"panel {title!r}: gridPos {grid} is not on the 24-column grid")
        targets = panel.get("targets", [])
        if panel.get("type") not in {"row", "text"} and not targets:
            problems.append(f"panel {title!r} has no query")
        if targets and "datasource" not in panel and any("datasource" not in t for t in targets):
            problems.append(f"panel {title!r} does not name its datasource")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)) or None in refs:
            problems.append(f"panel {title!r}: refIds missing or repeated: {refs}")
        for target in targets:
            if not (target.get("expr") or target.get("query")):
                problems.append(f"panel {title!r} {target.get('refId')}: an empty query")
    for where, expr, legend in expressions(board):
        problems.extend(promql_problems(where, expr, legend))
    return problems


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_names_only_metrics_labels_and_values_the_code_exports(name: str) -> None:
    board = load(name)
    assert board["uid"] == DASHBOARDS[name]
    assert list(expressions(board)), f"{name}: no queries"
    assert dashboard_problems(board) == []


def test_the_dashboard_uids_are_unique() -> None:
    boards = [json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))]
    assert set(DASHBOARDS) <= {path.name for path in GRAFANA.glob("*.json")}
    uids = [board.get("uid") for board in boards]
    assert len(uids) == len(set(uids)), uids
    titles = [board.get("title") for board in boards]
    assert len(titles) == len(set(titles)), titles


def test_the_checks_catch_a_wrong_metric_label_value_or_datasource() -> None:
    """The checks above are only worth something if they fail: break a copy of a real dashboard."""
    board = load("operations.json")
    target = next(t for p in panels(board) for t in p.get("targets", [])
                  if "attain_consumed_messages_total" in t["expr"])
    for wrong, expected in (("attain_consumed_records_total", "not exported by the code"),
                            ('attain_consumed_messages_total{partition="0"}', "has no label 'partition'"),
                            ('attain_consumed_messages_total{outcome="retried"}', "outcome='retried'"),
                            ('attain_consumed_messages_total{topic="sales.deal.v1"}', "topic='sales.deal.v1'"),
                            ("rate(attain_outbox_pending[5m])", "not a counter")):
        broken = copy.deepcopy(board)
        query = next(t for p in panels(broken) for t in p.get("targets", []) if t == target)
        query["expr"], query["legendFormat"] = f"sum({wrong})", ""
        problems = dashboard_problems(broken)
        assert len(problems) == 1 and expected in problems[0], (wrong, problems)
    broken = copy.deepcopy(board)
    broken["panels"].append({"type": "row", "id": 999, "title": "collapsed", "collapsed": True,
                             "gridPos": {"h": 1, "w": 24, "x": 0, "y": 99},
                             "panels": [{"type": "timeseries", "id": 1000, "title": "nested",
                                         "gridPos": {"h": 8, "w": 12, "x": 0, "y": 100},
                                         "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                                         "targets": [{"refId": "A", "expr": "attain_nothing"}]}]})
    problems = dashboard_problems(broken)
    assert any("attain_nothing" in p for p in problems), problems  # a nested panel is read
    assert any("DS_PROMETHEUS" in p for p in problems), problems
    assert any("le" in p for p in promql_problems("q", "histogram_quantile(0.9, sum(rate("
                                                  "attain_kpi_flush_seconds_bucket[5m])))", ""))
    assert promql_problems("q", "sum by (group) (attain_consumed_messages_total)", "{{topic}}")
    assert promql_problems("v", "", "no_such_label")


def test_the_service_variable_lists_the_scraped_services() -> None:
    variables = {v["name"]: v for v in load("operations.json")["templating"]["list"]}
    service = variables["service"]
    found = _LABEL_VALUES.match(variable_query(service))
    assert found and found["label"] == "service", variable_query(service)
    assert promql_metrics(found["selector"] or "") <= {"attain_ready"}
    assert service["includeAll"] and service["allValue"] == ".*"  # "All" also matches series without it


def test_the_operations_dashboard_charts_every_part_of_the_pipeline() -> None:
    used = set().union(*(promql_metrics(_GRAFANA_VARIABLE.sub("0", expr))
                         for _, expr, _ in expressions(load("operations.json"))))
    assert {"attain_ready", "attain_consumed_messages_total", "attain_consumer_batch_seconds_bucket",
            "attain_transient_errors_total", "attain_outbox_pending", "attain_outbox_published_total",
            "attain_kpi_figures_emitted_total", "attain_ingest_events_total",
            "attain_ingest_publish_seconds_bucket", "attain_ingest_webhook_deliveries_total"} <= used
    exprs = " ".join(expr for _, expr, _ in expressions(load("operations.json")))
    assert 'outcome="dead_lettered"' in exprs
