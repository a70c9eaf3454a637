"""The KPIs a tenant defines on the dashboard (issue 22, item 5), like the built-in metrics: a rep's and a team's
figures under the KPI's name, in its unit (money for a sum or average of deals, hours and minutes for one of
activities, a whole number for a count); the leaderboards, their metric selector and the CSV; the TV's rotation.
A KPI has no chart: only the built-in additive metrics have a series. Rendered by the real routes and templates
on a fake database (`Floor`, test_dashboard_pages.py)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from services.kpi.custom import KpiDefinition
from services.kpi.dashboard.queries import Tenant
from services.kpi.dashboard.web import METRIC_NAMES, Fmt, Metrics
from tests.unit.services.kpi.test_dashboard_pages import NBSP, WON, Floor, Node, one, page

KPIS = {
    "new_logo_revenue": KpiDefinition(name="New-logo revenue", source="deals", aggregation="sum",
                                      filter={"stage_labels": ["Closed Won - New"]}),  # type: ignore[arg-type]
    "call_time": KpiDefinition(name="Call time", source="activities", aggregation="sum",
                               filter={"kinds": ["call"]}),  # type: ignore[arg-type]
    "demos_held": KpiDefinition(name="Demos held", source="activities", aggregation="count",
                                filter={"kinds": ["demo"]}),  # type: ignore[arg-type]
    "avg_call": KpiDefinition(name="Average call", source="activities", aggregation="average",
                              filter={"kinds": ["call"]}),  # type: ignore[arg-type]
}


def figure(metric: str, actual: str, target: str | None = None) -> dict[str, Any]:
    return {"metric": metric, "actual": Decimal(actual), "target": None if target is None else Decimal(target)}


def rep_row(rep_id: str, actual: str, target: str | None = None, team_id: str = "north") -> dict[str, Any]:
    return {"rep_id": rep_id, "name": {"ana": "Ana Alm", "bo": "Bo Berg"}[rep_id], "team_id": team_id,
            "actual": Decimal(actual), "target": None if target is None else Decimal(target)}


def cards(html: Node) -> dict[str, Node]:
    return {card["data-metric"]: card for card in html.all("article", "card")}


def numbers(card: Node) -> dict[str, str]:
    return {one(d, "dt").text: one(d, "dd").text for d in one(card, "dl", "numbers").all("div")}


def test_a_kpi_reads_in_its_unit_and_a_ratio_has_no_projection() -> None:
    de = Fmt(Tenant("t", ZoneInfo("Europe/Berlin"), 1, "EUR", "de_DE"), Metrics(KPIS))
    assert de.value("new_logo_revenue", Decimal("1234.5")) == f"1.234,50{NBSP}€"  # deals summed: money
    assert de.value("call_time", Decimal(7500)) == "2 h 05 min"  # activities' seconds: hours and minutes
    assert de.value("demos_held", Decimal("12.6")) == "13"  # a count: a whole number
    assert de.value("avg_call", Decimal("254.5")) == "0 h 04 min"
    assert de.estimate("avg_call", Decimal(300)) == "–"  # an average does not grow with time
    assert de.estimate("call_time", Decimal(7529)) == "2 h 05 min"
    # where the pace says a count should be by now: whole (the demo's rep page read "28.5129" calls)
    assert (de.expected("calls", Decimal("28.5129")), de.expected("call_time", Decimal(7529))) == ("29", "2 h 05 min")
    assert de.expected("won_revenue", Decimal("66530.034")) == f"66.530,03{NBSP}€"
    assert (de.name("demos_held"), de.name("calls"), de.name("gone_kpi")) == ("Demos held", "Calls", "gone kpi")
    assert de.value("gone_kpi", Decimal("2.5")) == "2,5"  # neither built in nor defined (any more): a number
    assert list(Metrics(KPIS).names) == [*METRIC_NAMES, "avg_call", "call_time", "demos_held", "new_logo_revenue"]


async def test_a_reps_page_shows_each_kpi_under_its_name_in_its_unit_without_a_chart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, figures={("rep", "ana", "2026-Q3"): [
        WON, figure("call_time", "7500", "36000"), figure("demos_held", "12", "20"),
        figure("new_logo_revenue", "4000.5")]})
    html = await page(floor.install(monkeypatch), "/reps/ana?period=2026-Q3")  # ended: all of its pace expected
    shown = cards(html)
    assert list(shown) == ["won_revenue", "call_time", "demos_held"]  # the targeted ones, as the figures come
    assert one(shown["call_time"], "h3").text == "Call time"
    assert numbers(shown["call_time"]) == {
        "Actual": "2 h 05 min", "Target": "10 h 00 min", "Attainment": f"20{NBSP}%", "Expected by now": "10 h 00 min",
        "Pace": f"20{NBSP}%", "Projected": "2 h 05 min"}
    assert one(shown["demos_held"], "h3").text == "Demos held"
    assert numbers(shown["demos_held"])["Actual"] == "12" and numbers(shown["demos_held"])["Target"] == "20"
    others = {tr["data-metric"]: [c.text for c in tr.cells] for tr in one(html, "table", "items").all("tr")[1:]}
    assert others == {"new_logo_revenue": ["New-logo revenue", f"4.000,50{NBSP}€", f"4.000,50{NBSP}€"]}
    # a built-in additive metric keeps its chart and the deals behind it; a KPI shows its figure, no series
    assert shown["won_revenue"].one("svg", "chart") is not None and shown["won_revenue"].one("details")
    for kpi in ("call_time", "demos_held"):
        assert shown[kpi].one("svg", "chart") is None and shown[kpi].one("details") is None
    assert floor.points == ["won_revenue"]
    assert floor.kpi_reads == 1  # once for the page, not per figure


async def test_a_teams_page_shows_its_kpi_figures_under_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, figures={("team", "north", "2026-Q3"): [
        figure("demos_held", "31", "40"), figure("new_logo_revenue", "9000", "10000")]})
    shown = cards(await page(floor.install(monkeypatch), "/teams/north?period=2026-Q3"))
    assert {m: (one(c, "h3").text, one(c, "p", "actual").text) for m, c in shown.items()} == {
        "demos_held": ("Demos held", "31"), "new_logo_revenue": ("New-logo revenue", f"9.000,00{NBSP}€")}
    assert floor.kpi_reads == 1


async def test_the_leaderboard_ranks_by_a_kpi_and_lists_the_kpis_after_the_built_in_metrics(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, boards={
        ("rep", "demos_held"): [rep_row("ana", "12", "20"), rep_row("bo", "15", "10")],
        ("team", "demos_held"): [{"team_id": "north", "name": "North", "actual": Decimal(27), "target": None}]})
    html = await page(floor.install(monkeypatch), "/leaderboard?metric=demos_held&period=2026-Q4")
    assert floor.ranked == [("rep", "demos_held", "2026-Q4"), ("team", "demos_held", "2026-Q4")]
    assert one(html, "h1").text.startswith("Demos held leaderboard")
    board = one(html, "table", "board")
    assert board["data-metric"] == "demos_held"
    assert [(tr["data-rep"], one(tr, "td", "actual").text, one(tr, "td", "target").text, one(tr, "td", "trend").text)
            for tr in one(board, "tbody").all("tr")] == [("bo", "15", "10", "–"), ("ana", "12", "20", "–")]
    assert one(one(html, "table", "teams-board"), "td", "actual").text == "27"
    options = one(html, "select", name="metric").all("option")
    assert [o.text for o in options] == [*METRIC_NAMES.values(), "Average call", "Call time", "Demos held",
                                         "New-logo revenue"]  # the built-in ones, then the tenant's by name
    assert [o["value"] for o in options if "selected" in o.attrs] == ["demos_held"]
    assert one(html, "a", download="")["href"] == "/leaderboard.csv?period=2026-Q4&metric=demos_held&rank_by=amount"
    assert floor.points == [] and floor.kpi_reads == 1  # no series for a KPI: no trend


async def test_a_leaderboard_by_a_duration_kpi_ranks_by_attainment_and_reads_in_hours(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, boards={("rep", "call_time"): [rep_row("ana", "7500", "9000"),
                                                            rep_row("bo", "30000", "72000")]})
    html = await page(floor.install(monkeypatch), "/leaderboard?metric=call_time&period=2026-Q4&rank_by=attainment")
    assert [[one(tr, "td", "rank").text, tr["data-rep"], one(tr, "td", "actual").text, one(tr, "td", "target").text]
            for tr in one(one(html, "table", "board"), "tbody").all("tr")] == [
        ["1", "ana", "2 h 05 min", "2 h 30 min"], ["2", "bo", "8 h 20 min", "20 h 00 min"]]


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi") as client:
        return await client.get(path)


async def test_the_leaderboard_csv_by_a_kpi_has_its_exact_values(monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, boards={("rep", "call_time"): [rep_row("ana", "7500", "9000"), rep_row("bo", "30000")]})
    answer = await _get(floor.install(monkeypatch), "/leaderboard.csv?metric=call_time&period=2026-Q4")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="leaderboard-acme-2026-Q4-call_time.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["rank"], r["rep_id"], r["metric"], r["actual"], r["target"]) for r in rows] == [
        ("1", "bo", "call_time", "30000", ""), ("2", "ana", "call_time", "7500", "9000")]  # seconds, exact


async def test_a_metric_neither_built_in_nor_defined_is_refused_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Floor(kpis=KPIS).install(monkeypatch)
    for path in ("/leaderboard?metric=no_such_kpi", "/leaderboard.csv?metric=no_such_kpi"):
        assert (await _get(app, path)).status_code == 422


async def test_the_tv_rotates_through_the_leaderboards_of_targeted_kpis_too(monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(kpis=KPIS, targeted=["demos_held", "not_yet_defined", "won_revenue"])
    html = await page(floor.install(monkeypatch), "/tv")
    views = one(html, "div", id="tv")["data-views"]
    assert "metric=demos_held" in views and "metric=won_revenue" in views
    assert "not_yet_defined" not in views  # a target naming a KPI before it is defined: no board yet
