"""The dashboard's small rules: where a bar and its pace marker end, where sign-in may send you back to,
and numbers in the tenant's locale and currency."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.kpi.dashboard import live
from services.kpi.dashboard.live import Hub, route_figures
from services.kpi.dashboard.pages import Fmt, _bar, _for_rep, _period, _safe_next
from services.kpi.dashboard.queries import Tenant
from shared.periods import period_bounds
from shared.workdays import HolidayCalendar, days_off, working_share


def test_a_bar_runs_to_150_percent_of_target_and_says_whether_the_rep_is_ahead_of_pace() -> None:
    assert _bar(Decimal("0.75"), Decimal("0.5")) == {"fill": "50.0", "marker": "33.3", "state": "ahead",
                                                     "share": Decimal("0.5")}  # read out as "50% expected by now"
    assert _bar(Decimal("0.25"), Decimal("0.5"))["state"] == "behind"
    assert _bar(Decimal("3"), Decimal("0"))["fill"] == "100.0"  # capped at the end of the bar
    assert _bar(Decimal("-0.1"), Decimal("0"))["fill"] == "0.0"  # a reopened deal: not below zero
    assert _bar(None, Decimal("0.5")) == {"fill": None, "marker": "33.3", "state": None,
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
    quarter = _period(berlin, "2026-Q4", datetime(2026, 11, 27, 12, tzinfo=UTC))
    assert (Fmt(berlin).day(quarter.start), Fmt(berlin).day(quarter.last)) == ("2026-10-01", "2026-12-31")
    assert Decimal(0) < quarter.share < Decimal(1)


def test_the_pace_a_page_shows_has_the_tenants_holidays_off_and_a_reps_page_their_time_off_too() -> None:
    berlin = Tenant("t", ZoneInfo("Europe/Berlin"), 1, "EUR", "de_DE", HolidayCalendar("DE", "BE"))
    now = datetime(2026, 12, 29, 12, tzinfo=UTC)
    start, end = period_bounds("2026-12", "Europe/Berlin")
    holidays = days_off(berlin.holidays, date(2026, 12, 1), date(2026, 12, 31))
    december = _period(berlin, "2026-12", now)
    assert december.days_off == holidays == {date(2026, 12, 25), date(2026, 12, 26)}
    assert december.share == working_share(start, end, now, berlin.timezone, holidays) == Decimal("0.888257")
    leave = [(date(2026, 12, 28), date(2026, 12, 28))]
    ann = _for_rep(december, berlin, leave, now)
    assert ann.days_off == holidays | {date(2026, 12, 28)}
    assert ann.share == working_share(start, end, now, berlin.timezone, ann.days_off) == Decimal("0.882936")
    assert _for_rep(december, berlin, [], now) is december  # no time off: the tenant's pace


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
