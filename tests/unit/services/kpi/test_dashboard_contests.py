"""The dashboard's contests: the list, one contest's standings (ties as ties, each place's prize, the leaders, the
status by the clock), the TV's running contests, and the label that brings a page its new standings live.
Rendered by the real routes and templates on a fake database (`Floor`, test_dashboard_pages.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.kpi.contests import Contest, standings
from services.kpi.custom import KpiDefinition
from services.kpi.dashboard import contest_view
from services.kpi.dashboard.contest_view import ordinal, phase, prize_of
from services.kpi.dashboard.live import Hub, route_figures
from services.kpi.dashboard.queries import Tenant
from services.kpi.repository import StoredContest
from shared.authz import Principal
from shared.events import ContestStatus
from tests.unit.services.kpi.test_dashboard_pages import NOW, Floor, Node, one, page

EN = Tenant("acme", ZoneInfo("Europe/Berlin"), 1, "EUR", "en")
NAMES = {"ana": "Ana Alm", "bo": "Bo Berg", "cy": "Cy Cole", "di": "Di Dahl", "ed": "Ed Eng", "fi": "Fi Falk",
         "gus": "Gus Gran"}
PRIZES = ("a trip", "a dinner", "a mug")


def contest(contest_id: str = "december", *, status: ContestStatus = "running", starts: timedelta = timedelta(days=-3),
            ends: timedelta = timedelta(days=4), **kw: object) -> Contest:
    """A contest of the reps whose window runs from `starts` to `ends` around `NOW`."""
    fields: dict[str, object] = {"name": contest_id.title() + " deals", "metric": "won_revenue",
                                 "participants": "reps", "participant_ids": ("ana", "bo", "cy", "di"),
                                 "prizes": PRIZES} | kw
    return Contest(contest_id, starts_at=NOW + starts, ends_at=NOW + ends, status=status, **fields)  # type: ignore[arg-type]


def stored(c: Contest, values: Mapping[str, int | str], revision: int = 3) -> StoredContest:
    """`c` as kpi published it: its standings ranked by kpi's own rule (`contests.standings`)."""
    board = standings(c, {p: Decimal(v) for p, v in values.items()}, NAMES)
    return StoredContest(c, "digest", revision, [s.model_dump(mode="json") for s in board])


def rows(html: Node) -> list[list[str]]:
    table = one(html, "table", "contest-board")
    return [[cell.text for cell in tr.cells] for tr in one(table, "tbody").all("tr")]


async def test_a_contests_standings_show_ties_as_ties_each_places_prize_and_the_leaders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    december = stored(contest(), {"ana": 5000, "bo": 5000, "cy": 3000, "di": 0})
    floor = Floor(tenant=EN, contests=[december])
    html = await page(floor.install(monkeypatch), "/contests/december")
    assert rows(html) == [
        ["=1", "Ana Alm ★ leading", "€5,000.00", "a trip"],
        ["=1", "Bo Berg ★ leading", "€5,000.00", "a trip"],  # tied: the place and its prize are shared
        ["3", "Cy Cole", "€3,000.00", "a mug"],  # 1, 1, 3: the second prize goes to nobody
        ["4", "Di Dahl", "€0.00", "–"]]
    leaders = [tr["data-participant"] for tr in one(html, "table", "contest-board").all("tr", "leader")]
    assert leaders == ["ana", "bo"]
    assert one(html, "a", href="/reps/ana").text == "Ana Alm"
    assert one(html, "p", "ties").text.startswith(
        "Ana Alm and Bo Berg share 1st place and each gets its prize (a trip). Equal values share a place")
    assert one(html, "strong", "status").text == "Running · ends 2026-11-20 11:00"  # Berlin time
    assert [li.text for li in one(html, "ol", "prizes").all("li")] == list(PRIZES)
    # live: the page watches exactly the label kpi announces this contest's new standings with
    assert one(html, "main")["data-live-period"] == "contest:december"


async def test_ranked_by_attainment_a_contest_shows_each_contest_target_and_the_attainment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = contest("calls", metric="deals_won", rank_by="attainment", target=Decimal(10),
                    targets={"bo": Decimal(4)}, participant_ids=("ana", "bo"), prizes=())
    floor = Floor(tenant=EN, contests=[stored(calls, {"ana": 5, "bo": 5})])
    html = await page(floor.install(monkeypatch), "/contests/calls")
    assert rows(html) == [["1", "Bo Berg ★ leading", "5", "4", "125%", "–"],  # a count, not money
                          ["2", "Ana Alm", "5", "10", "50%", "–"]]
    assert one(html, "p", "ties").text.startswith("No ties")


async def test_a_contest_ranked_by_a_kpi_shows_its_name_and_its_values_in_its_unit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kpis = {"call_time": KpiDefinition(name="Call time", source="activities", aggregation="sum"),
            "demos_held": KpiDefinition(name="Demos held", source="activities", aggregation="count")}
    calls = contest("calls", metric="call_time", participant_ids=("ana", "bo"), prizes=())
    demos = contest("demos", metric="demos_held", rank_by="attainment", target=Decimal(10),
                    participant_ids=("ana", "bo"), prizes=())
    floor = Floor(tenant=EN, kpis=kpis, contests=[stored(calls, {"ana": 7500, "bo": 3600}),
                                                  stored(demos, {"ana": 4, "bo": 12})])
    app = floor.install(monkeypatch)
    html = await page(app, "/contests/calls")
    assert one(one(html, "table", "contest-board"), "thead").text == "# Rep Call time Prize"
    assert rows(html) == [["1", "Ana Alm ★ leading", "2 h 05 min", "–"], ["2", "Bo Berg", "1 h 00 min", "–"]]
    assert "Call time of reps" in one(html, "p", "meta").text
    assert rows(await page(app, "/contests/demos")) == [["1", "Bo Berg ★ leading", "12", "10", "120%", "–"],
                                                       ["2", "Ana Alm", "4", "10", "40%", "–"]]
    listed = {tr["data-contest"]: tr for tr in one(await page(app, "/contests"), "table", "contests").all("tr")
              if "data-contest" in tr.attrs}
    assert "Demos held of reps, ranked by % of target" in listed["demos"].text
    assert one(listed["calls"], "td", "leaders").text == "Ana Alm (2 h 05 min)"
    floor.contests = [stored(calls, {"ana": 7500, "bo": 3600})]
    tv = one(one(await page(app, "/tv"), "aside", id="tv-contests"), "table", "contest-board")
    assert "Call time" in one(tv, "thead").text and one(tv, "td", "value").text == "2 h 05 min"


async def test_the_contests_page_lists_each_contest_with_its_status_window_metric_prizes_and_leaders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"ana": 5000, "bo": 5000, "cy": 3000, "di": 0}
    floor = Floor(tenant=EN, contests=[
        stored(contest("spring", starts=timedelta(days=2), ends=timedelta(days=9), status="scheduled"), {}),
        stored(contest("december"), values),
        stored(contest("sprint", starts=timedelta(days=-2), ends=timedelta(minutes=-5)), values),  # settling
        stored(contest("october", starts=timedelta(days=-40), ends=timedelta(days=-10), status="final"), values),
        stored(contest("dropped", status="cancelled"), {}),
    ])
    html = await page(floor.install(monkeypatch), "/contests")
    listed = {tr["data-contest"]: tr for tr in one(html, "table", "contests").all("tr") if "data-contest" in tr.attrs}
    assert {k: one(tr, "td", "status").text for k, tr in listed.items()} == {
        "spring": "Scheduled · starts 2026-11-18 11:00", "december": "Running · ends 2026-11-20 11:00",
        "sprint": "Ended · final at 2026-11-16 11:10", "october": "Final", "dropped": "Cancelled"}
    december = listed["december"]
    assert one(december, "td", "window").text == "2026-11-13 11:00 – 2026-11-20 11:00"
    assert one(december, "td", "prizes").text == "1. a trip; 2. a dinner; 3. a mug"
    assert one(december, "td", "leaders").text == "Ana Alm (€5,000.00), Bo Berg (€5,000.00)"
    assert "Won revenue of reps" in december.text
    assert one(listed["spring"], "td", "leaders").text == "–"  # nobody scored yet
    assert one(december, "a")["href"] == "/contests/december"
    assert one(html, "a", href="/contests")["aria-current"] == "page"  # the navigation's Contests
    assert one(html, "main")["data-live-period"] == "contest:*"  # any contest moving re-reads the list


async def test_the_tv_shows_the_running_contests_top_five_beside_its_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    seven = ("ana", "bo", "cy", "di", "ed", "fi", "gus")
    floor = Floor(tenant=EN, contests=[
        stored(contest("december", participant_ids=seven), dict(zip(seven, (7, 6, 5, 4, 3, 3, 1), strict=True))),
        stored(contest("sprint", starts=timedelta(days=-2), ends=timedelta(minutes=-5)), {"cy": 10}),
        stored(contest("spring", starts=timedelta(days=2), ends=timedelta(days=9), status="scheduled"), {}),
        stored(contest("october", starts=timedelta(days=-40), ends=timedelta(days=-10), status="final"), {"ana": 1}),
    ])
    app = floor.install(monkeypatch)
    html = await page(app, "/tv")
    panel = one(html, "aside", id="tv-contests")
    assert "hidden" not in panel.attrs and panel["data-live-period"] == "contest:*" and panel["data-live-src"] == "/tv"
    shown = {s["data-contest"]: s for s in panel.all("section", "tv-contest")}
    assert list(shown) == ["december", "sprint"]  # running, and ended but still settling; not the others
    board = one(shown["december"], "tbody")
    assert [tr["data-participant"] for tr in board.all("tr")] == ["ana", "bo", "cy", "di", "ed", "fi"]  # =5 twice
    assert one(shown["december"], "p", "meta").text == "Running · ends 2026-11-20 11:00"

    floor.contests = []
    assert "hidden" in one(await page(app, "/tv"), "aside", id="tv-contests").attrs  # nothing running: no panel


@pytest.mark.parametrize("role", ["admin", "integration", "manager", "rep", "viewer"])
async def test_every_role_of_the_tenant_and_a_tvs_share_link_read_the_contests(monkeypatch: pytest.MonkeyPatch,
                                                                              role: str) -> None:
    who = Principal("acme", role, "tok", rep_id="ana" if role == "rep" else None,  # type: ignore[arg-type]
                    manager_id="mia" if role == "manager" else None)
    floor = Floor(tenant=EN, who=who, contests=[stored(contest(), {"ana": 1})])
    app = floor.install(monkeypatch)
    assert one(await page(app, "/contests"), "table", "contests")
    assert rows(await page(app, "/contests/december"))[0][0] == "1"
    await page(app, "/contests/no-such-contest", status=404)


def test_a_published_contest_reaches_the_browsers_of_its_tenant_under_the_label_its_page_watches() -> None:
    async def run() -> list[tuple[str, str]]:
        hub = Hub()
        queue = hub.subscribe("acme")
        route_figures(hub, json.dumps({"tenant": "acme", "periods": ["contest:december"]}))  # contesting._publish
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(run()) == [("attainment", json.dumps({"period": contest_view.LIVE_PREFIX + "december"}))]


def test_a_contests_phase_follows_the_clock_and_a_final_or_cancelled_one_stays_so() -> None:
    c = contest(starts=timedelta(hours=1), ends=timedelta(days=1), status="scheduled")
    moments: Sequence[tuple[datetime, str]] = [
        (NOW, "scheduled"), (NOW + timedelta(hours=1), "running"),  # kpi's clock may not have moved it yet
        (NOW + timedelta(days=1), "ended"), (NOW + timedelta(days=2), "ended")]  # until kpi freezes it
    assert [phase(c, at) for at, _ in moments] == [words for _, words in moments]
    for status in ("final", "cancelled"):
        assert phase(contest(status=status), NOW) == status  # type: ignore[arg-type]


def test_a_place_s_prize_is_shared_by_its_ties_and_the_places_after_them_are_skipped() -> None:
    assert [prize_of(PRIZES, rank) for rank in (1, 1, 3, 4, None)] == ["a trip", "a trip", "a mug", None, None]
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd"]


def test_only_a_stored_standing_s_participants_are_shown_in_kpi_s_order() -> None:
    board = contest_view.places(contest(), stored(contest(), {"bo": 2, "ana": 1}).standings)
    assert [(p.participant_id, p.place, p.leader) for p in board] == [
        ("bo", "1", True), ("ana", "2", False), ("cy", "=3", False), ("di", "=3", False)]
