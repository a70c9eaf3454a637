"""Leaderboard figures counted from recognition's own deals and activities, as kpi counts them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.recognition.model import Calendar, Profile, StoredDeal
from services.recognition.standings import in_base, rep_figures, standings_by_team, teams_of, won_in
from shared.events import Metric

BERLIN = ZoneInfo("Europe/Berlin")
CAL = Calendar(BERLIN, 1, "EUR", {"USD": ((date(2026, 1, 1), Decimal("0.90")), (date(2026, 7, 1), Decimal("0.95")))})
START, END = datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)  # October, Berlin


def deal(deal_id: str, rep: str, amount: str, stage: str = "won", *, closed: datetime | None = None,
         currency: str = "EUR", created: datetime | None = None, deleted: bool = False) -> StoredDeal:
    closed = closed or datetime(2026, 10, 10, tzinfo=UTC)
    return StoredDeal(deal_id, rep, stage, Decimal(amount), currency, created, closed, closed, "x", deleted)


def test_money_is_converted_at_the_rate_of_the_local_day_and_left_out_without_one() -> None:
    assert in_base(Decimal(100), "USD", datetime(2026, 8, 3, tzinfo=UTC), CAL) == Decimal("95.00")
    assert in_base(Decimal(100), "USD", datetime(2026, 6, 30, 22, 30, tzinfo=UTC), CAL) == Decimal("95.00")  # Jul 1
    assert in_base(Decimal(100), "USD", datetime(2025, 12, 31, tzinfo=UTC), CAL) is None
    assert in_base(Decimal(100), "GBP", datetime(2026, 8, 3, tzinfo=UTC), CAL) is None
    assert in_base(Decimal(100), "EUR", datetime(2026, 8, 3, tzinfo=UTC), CAL) == Decimal(100)


def test_each_metric_counts_the_deals_and_activities_of_the_period_as_kpi_does() -> None:
    deals = [deal("a", "r1", "50000"), deal("b", "r1", "30000"), deal("c", "r1", "9", "lost"),
             deal("d", "r2", "10000", currency="GBP"),  # no rate: counts as a win, not as money
             deal("e", "r2", "20000", closed=END),  # November
             deal("f", "r3", "40000", deleted=True),
             deal("g", "r3", "1000", "open", closed=None, created=START + timedelta(hours=1)),
             deal("h", "r3", "100", currency="USD", created=START - timedelta(hours=1))]  # created in September
    f = {m: rep_figures(m, deals, {("r1", "call"): 3, ("r1", "email"): 2, ("r2", None): 4}, CAL, START, END)
         for m in Metric}
    assert f[Metric.WON_REVENUE] == {"r1": Decimal(80000), "r2": Decimal(0), "r3": Decimal("95.00")}
    assert f[Metric.DEALS_WON] == {"r1": 2, "r2": 1, "r3": 1}
    assert f[Metric.WIN_RATE] == {"r1": Decimal("0.6667"), "r2": Decimal(1), "r3": Decimal(1)}
    assert f[Metric.AVG_DEAL_SIZE] == {"r1": Decimal(40000), "r2": Decimal(0), "r3": Decimal("95.00")}
    assert f[Metric.PIPELINE_CREATED] == {"r3": Decimal(1000)}
    assert f[Metric.CALLS] == {"r1": 3}
    assert f[Metric.EMAILS] == {"r1": 2}
    assert f[Metric.MEETINGS] == {}
    assert f[Metric.ACTIVITIES] == {"r1": 5, "r2": 4}


def test_reps_stand_in_the_team_the_roster_has_now_and_without_a_team_nowhere() -> None:
    roster = {"r1": Profile("Ann", "t1", None), "r2": Profile("Bob", "t2", None), "r3": Profile("Cy", None, None)}
    teams = standings_by_team({"r1": Decimal(5), "r2": Decimal(7), "r3": Decimal(9), "r4": Decimal(1)}, roster)
    assert {team: [(s.rep_id, s.name, s.actual) for s in standings] for team, standings in teams.items()} == {
        "t1": [("r1", "Ann", Decimal(5))], "t2": [("r2", "Bob", Decimal(7))]}
    assert teams_of(roster) == {"t1": ["r1"], "t2": ["r2"]}
    won = won_in([deal("a", "r1", "5"), deal("b", "r2", "6"), deal("c", "r1", "7", "lost"),
                  deal("d", "r1", "8", closed=END)], ["r1"], START, END)
    assert [w.deal_id for w in won] == ["a"]
