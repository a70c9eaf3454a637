"""The dashboard's small rules: where a bar and its pace marker end, where sign-in may send you back to,
and numbers in the tenant's locale and currency; and its pages, rendered by the real routes and templates on a
fake database (`Floor`): the won-revenue forecast of a rep's and a team's period."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from services.kpi.custom import KpiDefinition
from services.kpi.dashboard import live, pages, queries
from services.kpi.dashboard.live import Hub, route_figures
from services.kpi.dashboard.pages import _safe_next
from services.kpi.dashboard.queries import Tenant
from services.kpi.dashboard.view import margin, percent
from services.kpi.dashboard.web import Dashboard, Fmt, bar, page_period, rep_period, session_principal
from services.kpi.outlook import Explained, History, Prospect, outlook
from services.kpi.repository import StoredContest
from shared.authz import Principal, visible_reps
from shared.periods import period_bounds
from shared.workdays import HolidayCalendar, days_off, working_share


def test_a_bar_runs_to_150_percent_of_target_and_says_whether_the_rep_is_ahead_of_pace() -> None:
    assert bar(Decimal("0.75"), Decimal("0.5")) == {"fill": "50.0", "marker": "33.3", "state": "ahead",
                                                    "share": Decimal("0.5")}  # read out as "50% expected by now"
    assert bar(Decimal("0.25"), Decimal("0.5"))["state"] == "behind"
    assert bar(Decimal("3"), Decimal("0"))["fill"] == "100.0"  # capped at the end of the bar
    assert bar(Decimal("-0.1"), Decimal("0"))["fill"] == "0.0"  # a reopened deal: not below zero
    assert bar(None, Decimal("0.5")) == {"fill": None, "marker": "33.3", "state": None,
                                         "share": Decimal("0.5")}  # no target


def test_sign_in_only_returns_to_a_page_of_this_site() -> None:
    assert _safe_next("/reps/ana?period=2026-Q4") == "/reps/ana?period=2026-Q4"
    for elsewhere in ("https://evil.example", "//evil.example/x", "", None, "javascript:alert(1)"):
        assert _safe_next(elsewhere) == "/leaderboard"


def test_figures_read_in_the_tenants_locale_currency_and_zone() -> None:
    de = Fmt(Tenant("t", ZoneInfo("Europe/Berlin"), 1, "EUR", "de_DE"))
    assert de.value("won_revenue", Decimal("1234.5")) == "1.234,50\xa0€"
    assert de.value("calls", Decimal("1200")) == "1.200"
    assert de.value("win_rate", Decimal("0.5")) == "50\xa0%"
    assert de.value("won_revenue", None) == "–"
    assert de.when("2026-10-25T01:30:00+00:00") == "2026-10-25 02:30"  # after the clocks went back
    en = Fmt(Tenant("t", ZoneInfo("America/New_York"), 1, "USD", "en"))
    assert en.money(Decimal("7500")) == "$7,500.00"
    assert en.pct(Decimal("0.7512")) == "75%"


def test_a_period_is_shown_from_its_first_to_its_last_local_day() -> None:
    berlin = Tenant("t", ZoneInfo("Europe/Berlin"), 1, "EUR", "en")
    quarter = page_period(berlin, "2026-Q4", datetime(2026, 11, 27, 12, tzinfo=UTC))
    assert (Fmt(berlin).day(quarter.start), Fmt(berlin).day(quarter.last)) == ("2026-10-01", "2026-12-31")
    assert Decimal(0) < quarter.share < Decimal(1)


def test_the_pace_a_page_shows_has_the_tenants_holidays_off_and_a_reps_page_their_time_off_too() -> None:
    berlin = Tenant("t", ZoneInfo("Europe/Berlin"), 1, "EUR", "de_DE", HolidayCalendar("DE", "BE"))
    now = datetime(2026, 12, 29, 12, tzinfo=UTC)
    start, end = period_bounds("2026-12", "Europe/Berlin")
    holidays = days_off(berlin.holidays, date(2026, 12, 1), date(2026, 12, 31))
    december = page_period(berlin, "2026-12", now)
    assert december.days_off == holidays == {date(2026, 12, 25), date(2026, 12, 26)}
    assert december.share == working_share(start, end, now, berlin.timezone, holidays) == Decimal("0.888257")
    leave = [(date(2026, 12, 28), date(2026, 12, 28))]
    ann = rep_period(december, berlin, leave, now)
    assert ann.days_off == holidays | {date(2026, 12, 28)}
    assert ann.share == working_share(start, end, now, berlin.timezone, ann.days_off) == Decimal("0.882936")
    assert rep_period(december, berlin, [], now) is december  # no time off: the tenant's pace


def test_a_kpi_batch_s_notify_refreshes_the_periods_it_moved_for_that_tenant_s_browsers_only() -> None:
    async def run() -> tuple[list[tuple[str, str]], int]:
        hub = Hub()
        mine, other = hub.subscribe("acme"), hub.subscribe("globex")
        route_figures(hub, json.dumps({"tenant": "acme", "periods": ["2026-10", "2026-Q4"]}))
        route_figures(hub, "not json")  # ignored, not raised
        route_figures(hub, json.dumps({"tenant": "nobody-watching", "periods": ["2026"]}))
        got = [mine.get_nowait() for _ in range(mine.qsize())]
        return got, other.qsize()

    got, others = asyncio.run(run())
    assert got == [("attainment", '{"period": "2026-10"}'), ("attainment", '{"period": "2026-Q4"}')]
    assert others == 0


def test_the_live_stream_says_bye_and_ends_when_the_replica_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopping replica ends its streams at once (the browser reconnects elsewhere) instead of holding them
    until uvicorn's graceful-shutdown timeout; a quiet stream pings so the page can tell it is alive."""
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.05)

    async def scenario() -> list[str]:
        hub, draining = Hub(), asyncio.Event()
        hub.running = True
        stream = live.stream(hub, "t", draining)
        said = [await anext(stream), await anext(stream), await anext(stream)]  # retry, hello, a ping
        hub.publish("t", "celebration", '{"headline": "x"}')
        said.append(await anext(stream))
        draining.set()
        said += [chunk async for chunk in stream]  # ends by itself: no cancellation needed
        assert hub.count() == 0
        return said

    said = asyncio.run(scenario())
    assert [chunk.split("\n")[0] for chunk in said] == [
        "retry: 2000", "event: hello", "event: ping", "event: celebration", "event: bye"]


# --- the pages, rendered by their routes on a fake database ------------------------------------------------

NOW = datetime(2026, 11, 16, 10, tzinfo=UTC)  # a Monday of 2026-Q4 (2026-Q3 has ended)
ACME = Tenant("acme", ZoneInfo("Europe/Berlin"), 1, "EUR", "de_DE")
ADMIN = Principal("acme", "admin", "tok-admin")
MIA = Principal("acme", "manager", "tok-mia", manager_id="mia")  # ana is hers; bo is not
NBSP = "\xa0"


class _Conn:
    async def execute(self, *_args: object) -> None:
        return None

    def transaction(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class _Pool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield _Conn()


@dataclass
class Floor:
    """The dashboard's real routes and templates on a fake database: what `queries` would read comes from these
    fields, the session is `who`'s, the clock stands at `now`. `asked` records the forecasts the pages asked for,
    `ranked` the metrics the leaderboards read (rep or team, metric, period), `kpi_reads` how often the tenant's
    KPI definitions were read, `points` the series asked for."""

    who: Principal = ADMIN
    tenant: Tenant = ACME
    now: datetime = NOW
    figures: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    forecast: Explained | None = None
    names: dict[str, str] = field(default_factory=lambda: {"ana": "Ana Alm", "bo": "Bo Berg"})
    under: dict[str, set[str]] = field(default_factory=lambda: {"mia": {"ana"}})
    contests: list[StoredContest] = field(default_factory=list)
    kpis: dict[str, KpiDefinition] = field(default_factory=dict)  # the tenant's own KPIs, by id
    boards: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # ("rep"|"team", metric)
    targeted: list[str] = field(default_factory=list)  # the metrics with a target in the current period
    asked: list[tuple[str, str, str]] = field(default_factory=list)
    ranked: list[tuple[str, str, str]] = field(default_factory=list)
    kpi_reads: int = 0
    points: list[str] = field(default_factory=list)
    latest: str | None = None  # the latest quarter with figures (`shown_quarter`); None: the current one has
    gains: list[tuple[str, datetime, Decimal]] = field(default_factory=list)  # what `points` returns

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
        async def tenant(_conn: object, _slug: str) -> Tenant:
            return self.tenant

        async def figures_of(_conn: object, _tenant: str, scope: str, scope_id: str, period: str) -> list[Any]:
            return self.figures.get((scope, scope_id, period), [])

        async def forecast_of(_conn: object, _tenant: str, scope: str, scope_id: str, period: str, *_args: object,
                              **_kw: object) -> Explained:
            self.asked.append((scope, scope_id, period))
            assert self.forecast is not None
            return self.forecast

        async def names(_conn: object, _tenant: str, ids: list[str]) -> dict[str, str]:
            return {i: self.names[i] for i in ids if i in self.names}

        async def contests(_conn: object, _tenant: str, contest_id: str | None = None) -> list[StoredContest]:
            return [c for c in self.contests if contest_id in (None, c.contest.contest_id)]

        async def visible(_conn: object, who: Principal) -> frozenset[str] | None:
            return visible_reps(who, self.under.get(who.manager_id or "", set()))

        async def kpi_definitions(_conn: object, _tenant: str) -> dict[str, KpiDefinition]:
            self.kpi_reads += 1
            return dict(self.kpis)

        async def standings(_conn: object, _tenant: str, period: str, metric: str,
                            team_id: str | None = None) -> list[dict[str, Any]]:
            self.ranked.append(("rep", metric, period))
            return [r for r in self.boards.get(("rep", metric), []) if team_id in (None, r["team_id"])]

        async def team_standings(_conn: object, _tenant: str, period: str, metric: str) -> list[dict[str, Any]]:
            self.ranked.append(("team", metric, period))
            return self.boards.get(("team", metric), [])

        async def points(_conn: object, _tenant: str, _books: object, _reps: object, metric: str,
                         start: datetime, end: datetime) -> list[Any]:
            self.points.append(metric)
            return [g for g in self.gains if start <= g[1] < end]

        async def shown_quarter(_conn: object, _tenant: str, current: str) -> str:
            return self.latest or current

        async def targeted_metrics(*_args: object) -> list[str]:
            return list(self.targeted)

        async def nothing(*_args: object, **_kw: object) -> None:
            return None

        async def empty(*_args: object, **_kw: object) -> list[Any]:
            return []

        async def no_leave(*_args: object, **_kw: object) -> dict[str, Any]:
            return {}

        async def profile(_conn: object, _tenant: str, rep_id: str) -> dict[str, Any] | None:
            return {"rep_id": rep_id, "name": self.names[rep_id], "team_id": "north", "manager_id": "mia",
                    "team_name": "North"} if rep_id in self.names else None

        async def team(_conn: object, _tenant: str, team_id: str) -> dict[str, Any]:
            return {"team_id": team_id, "name": team_id.title(), "parent_id": None, "manager_id": None}

        for name, fake in {"tenant": tenant, "figures_of": figures_of, "forecast_of": forecast_of, "rep_names": names,
                           "contests": contests, "profile": profile, "team": team, "books_of": nothing,
                           "time_off": no_leave, "points": points, "contributions": empty, "standings": standings,
                           "team_standings": team_standings, "targeted_metrics": targeted_metrics, "teams": empty,
                           "kpi_definitions": kpi_definitions, "shown_quarter": shown_quarter}.items():
            monkeypatch.setattr(queries, name, fake)
        monkeypatch.setattr(pages, "see_rep", nothing)
        monkeypatch.setattr(pages, "reps_visible", visible)
        monkeypatch.setattr(pages, "_from", nothing)  # coaching and recognition: "unavailable"
        app = FastAPI()
        app.include_router(pages.router)
        app.state.runtime = SimpleNamespace(pool=_Pool(), clock=SimpleNamespace(now=lambda: self.now),
                                            settings=None, context=Dashboard())
        app.dependency_overrides[session_principal] = lambda: self.who
        return app


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element of a rendered page (the standard library's parser, built into a tree)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def __getitem__(self, name: str) -> str:
        return self.attrs[name]

    @property
    def text(self) -> str:
        """The element's text, its whitespace collapsed."""
        joined = "".join(c if isinstance(c, str) else " " + c.text + " " for c in self.children)
        return re.sub(r"[ \t\r\n]+", " ", joined).strip()  # a no-break space is the locale's: kept

    @property
    def cells(self) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node)]

    def all(self, tag: str, cls: str | None = None, **attrs: str) -> list[Node]:
        """The descendants `<tag>` (with class `cls` and these attributes), in document order."""
        out = []
        for child in self.cells:
            if child.tag == tag and (cls is None or cls in child.attrs.get("class", "").split()) and all(
                    child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(child)
            out += child.all(tag, cls, **attrs)
        return out

    def one(self, tag: str, cls: str | None = None, **attrs: str) -> Node | None:
        found = self.all(tag, cls, **attrs)
        return found[0] if found else None


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while len(self.open) > 1 and self.open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


async def page(app: FastAPI, path: str, status: int = 200) -> Node:
    """The page at `path`, parsed."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi") as client:
        answer = await client.get(path)
    assert answer.status_code == status, answer.text[:500]
    tree = _Tree()
    tree.feed(answer.text)
    return tree.root


def one(node: Node | None, tag: str, cls: str | None = None, **attrs: str) -> Node:
    """The first `<tag>` in `node` (which must exist)."""
    assert node is not None
    found = node.one(tag, cls, **attrs)
    assert found is not None, f"no <{tag} class={cls} {attrs}>"
    return found


def _pipeline(*reps: str) -> Explained:
    """Won 4,000 of a 10,000 target: a 6,000 deal at 90 % (any one of the two big deals closes the gap, so it
    swings the odds most), a 20,000 deal at 50 % (the largest weighted amount, but it swings them less) and bo's
    1,000 (which swings nothing); one more deal without an expected close date."""
    deals = [Prospect("crm-a", "ana", Decimal(6000), Decimal(6000), datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
                      Decimal("0.9"), "commit"),
             Prospect("crm-b", "ana", Decimal(20000), Decimal(20000), datetime(2026, 12, 10, 9, tzinfo=UTC),
                      Decimal("0.5"), "best_case"),
             Prospect("crm-c", "bo", Decimal(1000), Decimal(1000), datetime(2026, 12, 3, 9, tzinfo=UTC),
                      Decimal("0.5"))]
    return outlook(closed=Decimal(4000), target=Decimal(10000), prospects=[d for d in deals if d.rep_id in reps],
                   undated=1, histories={}, tenant_history=History(), swings=True)


WON = {"metric": "won_revenue", "actual": Decimal(4000), "target": Decimal(10000)}


async def test_a_reps_page_shows_the_won_revenue_forecast_of_a_running_period_largest_swing_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(figures={("rep", "ana", "2026-Q4"): [WON]}, forecast=_pipeline("ana"))
    html = await page(floor.install(monkeypatch), "/reps/ana?period=2026-Q4")
    assert floor.asked == [("rep", "ana", "2026-Q4")]
    box = one(html, "section", "forecast")
    numbers = {one(d, "dt").text: one(d, "dd").text for d in one(box, "dl", "numbers").all("div")}
    assert numbers == {  # the tenant's locale (de_DE) and currency
        "Forecast (weighted)": f"19.400,00{NBSP}€", "Target": f"10.000,00{NBSP}€",
        "Chance of reaching it": f"95{NBSP}%", "Won so far": f"4.000,00{NBSP}€", "Gap to target": f"6.000,00{NBSP}€",
        "Commit": f"6.000,00{NBSP}€", "Best case": f"20.000,00{NBSP}€", "Pipeline": f"0,00{NBSP}€"}
    how = one(box, "p", "how").text
    assert "exact: every combination of won and lost deals, counted" in how
    assert "2 open deals expected to close in 2026-Q4." in how
    assert "1 open deal with no expected close date counts in no period." in how
    rows = one(box, "table", "forecast-deals").all("tr")[1:]  # under the head
    assert [r["data-deal"] for r in rows] == ["crm-a", "crm-b"]  # by swing (50 %, 10 %), not by weighted amount
    first = [cell.text for cell in rows[0].cells]
    assert first == ["crm-a", "Ana Alm", f"6.000,00{NBSP}€", "commit", f"90{NBSP}% CRM the CRM's probability",
                     "2026-12-01", f"50{NBSP}%"]  # expected close: the local day in Berlin, not UTC's 30th
    assert box.one("p", "hidden-deals") is None


async def test_a_monte_carlo_chance_says_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    sampled = outlook(closed=Decimal(4000), target=Decimal(10000), prospects=[
        Prospect(f"crm-{i}", "ana", Decimal(1000 + i), Decimal(1000 + i), datetime(2026, 12, 1, tzinfo=UTC),
                 Decimal("0.5")) for i in range(30)], undated=0, histories={}, tenant_history=History(),
        max_states=10, samples=2000, swings=True)
    assert sampled.forecast.method == "monte_carlo" and sampled.forecast.error
    floor = Floor(figures={("rep", "ana", "2026-Q4"): [WON]}, forecast=sampled,
                  tenant=Tenant("acme", ZoneInfo("America/New_York"), 1, "USD", "en"))
    box = one(await page(floor.install(monkeypatch), "/reps/ana?period=2026-Q4"), "section", "forecast")
    chance = one(box, "dd", "probability").text
    assert chance == f"{percent(sampled.forecast.probability, 'en')} {margin(sampled.forecast.error, 'en')}"
    assert chance.count("±") == 1
    assert "Monte Carlo: 20,000 seeded draws, within ±" in one(box, "p", "how").text


async def test_a_period_that_has_ended_shows_no_forecast_and_computes_none(monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(figures={("rep", "ana", "2026-Q3"): [WON], ("team", "north", "2026-Q3"): [WON]},
                  forecast=_pipeline("ana"))
    app = floor.install(monkeypatch)
    for path in ("/reps/ana?period=2026-Q3", "/teams/north?period=2026-Q3"):
        html = await page(app, path)
        assert html.one("section", "forecast") is None and "forecast" not in one(html, "main").text.lower()
    assert floor.asked == []


async def test_a_team_page_lists_only_the_deals_of_reps_the_viewer_may_read_and_counts_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floor = Floor(figures={("team", "north", "2026-Q4"): [WON]}, forecast=_pipeline("ana", "bo"), who=MIA)
    box = one(await page(floor.install(monkeypatch), "/teams/north?period=2026-Q4"), "section", "forecast")
    assert floor.asked == [("team", "north", "2026-Q4")]
    assert [r["data-deal"] for r in one(box, "table", "forecast-deals").all("tr")[1:]] == ["crm-a", "crm-b"]
    assert "crm-c" not in str(box) and "Bo Berg" not in str(box)
    assert one(box, "p", "hidden-deals").text == "1 open deal of reps you may not read is counted above, not listed."
    assert one(box, "dd", "weighted").text == f"19.900,00{NBSP}€"  # bo's deal counted all the same

    floor.who = ADMIN  # an admin reads every rep: everything listed, nothing hidden
    box = one(await page(floor.install(monkeypatch), "/teams/north?period=2026-Q4"), "section", "forecast")
    assert [r["data-deal"] for r in one(box, "table", "forecast-deals").all("tr")[1:]] == ["crm-a", "crm-b", "crm-c"]
    assert box.one("p", "hidden-deals") is None


# --- the quarter a page shows by default, and the trend of one that has ended (issue 23) ------------------


def _board(*rows: tuple[str, str, str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {("rep", "won_revenue"): [{"rep_id": rep_id, "name": rep_id.title(), "team_id": "north",
                                      "actual": Decimal(actual), "target": Decimal(target)}
                                     for rep_id, actual, target in rows]}


async def test_without_a_period_the_pages_show_the_latest_quarter_with_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The current quarter (2026-Q4) has no figures yet; 2026-Q3 has: the leaderboard, the teams, a rep's page
    and the TV show 2026-Q3, and its period menu offers it, selected."""
    floor = Floor(latest="2026-Q3", boards=_board(("ana", "900", "1000")),
                  figures={("rep", "ana", "2026-Q3"): [WON]})
    app = floor.install(monkeypatch)
    html = await page(app, "/leaderboard")
    assert one(one(html, "h1"), "span", "sub").text == "2026-Q3"
    assert floor.ranked[0] == ("rep", "won_revenue", "2026-Q3")
    chosen = [o["value"] for o in one(html, "select", name="period").all("option") if "selected" in o.attrs]
    assert chosen == ["2026-Q3"]
    assert "2026-Q3" in one(await page(app, "/teams"), "h1").text
    assert "2026-Q3" in one(await page(app, "/reps/ana"), "title").text
    views = json.loads(one(await page(app, "/tv"), "div", id="tv")["data-views"])
    assert views and all("period=2026-Q3" in view for view in views), views


async def test_an_ended_quarters_leaderboard_shows_the_trend_of_its_last_week(monkeypatch: pytest.MonkeyPatch) -> None:
    """2026-Q3 has ended (NOW is in Q4): each rep's trend is what they added in its last 7 days against what the
    target needed then, said as "in its last week"; while a quarter runs it is the last 7 days up to now."""
    last_week = datetime(2026, 9, 28, 10, tzinfo=UTC)  # the Monday of Q3's last week
    floor = Floor(boards=_board(("ana", "900", "1000"), ("bo", "100", "1000")),
                  gains=[("ana", last_week, Decimal(500))])
    html = await page(floor.install(monkeypatch), "/leaderboard?period=2026-Q3")
    trends = {tr["data-rep"]: one(tr, "td", "trend") for tr in one(one(html, "table", "board"), "tbody").all("tr")}
    assert one(trends["ana"], "span")["class"] == "trend-up" and one(trends["bo"], "span")["class"] == "trend-down"
    assert one(trends["ana"], "span")["title"] == "ahead of the pace needed in its last week"
    running = await page(floor.install(monkeypatch), "/leaderboard?period=2026-Q4")
    assert one(one(one(running, "table", "board"), "td", "trend"), "span")["title"].endswith("this week")


async def test_a_leaderboard_row_names_the_reps_team_and_falls_back_to_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's leaderboard said "team-nordics" under every name though the team is called "Nordics"."""
    board = _board(("ana", "900", "1000"), ("bo", "100", "1000"))
    board[("rep", "won_revenue")][0]["team_name"] = "Nordics"
    html = await page(Floor(boards=board).install(monkeypatch), "/leaderboard")
    teams = {tr["data-rep"]: one(tr, "span", "team").text for tr in one(one(html, "table", "board"), "tbody").all("tr")}
    assert teams == {"ana": "Nordics", "bo": "north"}
