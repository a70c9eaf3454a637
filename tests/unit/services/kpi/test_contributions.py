"""Where deals and activities count: periods in the tenant's zone, teams by date, money at the day's rate."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

import pytest

from services.kpi.contributions import Activity, Books, Deal, Ledger, tally_of
from services.kpi.tally import Tally

LA = ZoneInfo("America/Los_Angeles")
START = datetime.min.replace(tzinfo=UTC)


def _won(amount: str = "100.50", currency: str = "USD", closed: datetime | None = None, rep: str = "r1") -> Deal:
    closed = closed or datetime(2026, 11, 10, 15, tzinfo=UTC)
    return Deal(rep, "won", Decimal(amount), currency, datetime(2026, 10, 1, 9, tzinfo=UTC), closed)


def _tally(ledger: Ledger, scope: str, scope_id: str, period: str) -> Tally:
    vector = ledger.deltas.get((scope, scope_id, period))
    return tally_of(vector) if vector else Tally()


def test_a_won_deal_counts_in_every_period_kind_of_its_local_close_day_and_pipeline_where_it_was_created() -> None:
    ledger = Ledger(Books(LA, memberships={"r1": [(START, "west")]}))
    ledger.deal(_won(), 1)
    for scope, owner in (("rep", "r1"), ("team", "west")):
        for period in ("2026-11", "2026-Q4", "2026-W46", "2026"):
            assert _tally(ledger, scope, owner, period).won_revenue == Decimal("100.50")
            assert _tally(ledger, scope, owner, period).deals_won == 1
        assert _tally(ledger, scope, owner, "2026-10").pipeline_created == Decimal("100.50")
        assert _tally(ledger, scope, owner, "2026-10").deals_won == 0


def test_a_deal_won_at_2330_on_31_december_in_los_angeles_counts_in_q4_not_q1() -> None:
    ledger = Ledger(Books(LA))
    ledger.deal(_won(closed=datetime(2027, 1, 1, 7, 30, tzinfo=UTC)), 1)  # 23:30 on 31 Dec in LA
    assert _tally(ledger, "rep", "r1", "2026-Q4").deals_won == 1
    assert _tally(ledger, "rep", "r1", "2027-Q1").deals_won == 0


def test_fiscal_year_start_moves_quarters_and_years() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC"), fiscal_start_month=2))
    ledger.deal(_won(closed=datetime(2026, 1, 20, tzinfo=UTC)), 1)
    # fiscal year "2026" runs from February 2025 to January 2026 (named by the year it ends)
    assert _tally(ledger, "rep", "r1", "2026-Q4").deals_won == 1
    assert _tally(ledger, "rep", "r1", "2026").deals_won == 1
    assert _tally(ledger, "rep", "r1", "2026-01").deals_won == 1


def test_taking_a_version_out_and_putting_it_back_cancels_to_nothing() -> None:
    ledger = Ledger(Books(LA, memberships={"r1": [(START, "west")]}))
    deal = _won()
    ledger.deal(deal, 1)
    ledger.deal(deal, -1)
    ledger.activity(Activity("r1", "call", datetime(2026, 11, 3, tzinfo=UTC)), 1)
    ledger.activity(Activity("r1", "call", datetime(2026, 11, 3, tzinfo=UTC)), -1)
    assert ledger.changed() == {}


def test_a_reopened_deal_moves_revenue_out_and_a_lost_one_counts_as_lost() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC")))
    won = _won()
    ledger.deal(won, -1)
    ledger.deal(Deal("r1", "lost", won.amount, "USD", won.created_at, won.closed_at), 1)
    t = _tally(ledger, "rep", "r1", "2026-11")
    assert (t.won_revenue, t.deals_won, t.deals_lost) == (Decimal("-100.50"), -1, 1)


def test_team_attribution_follows_the_dated_roster() -> None:
    moved = datetime(2026, 11, 15, tzinfo=UTC)
    ledger = Ledger(Books(ZoneInfo("UTC"), memberships={"r1": [(START, "east"), (moved, "west")]}))
    ledger.deal(_won(closed=datetime(2026, 11, 14, 23, 59, tzinfo=UTC)), 1)
    ledger.deal(_won(closed=moved), 1)
    assert _tally(ledger, "team", "east", "2026-11").deals_won == 1
    assert _tally(ledger, "team", "west", "2026-11").deals_won == 1
    assert _tally(ledger, "rep", "r1", "2026-11").deals_won == 2


def test_a_rep_without_a_team_counts_for_the_rep_only() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC")))
    ledger.deal(_won(), 1)
    assert {scope for scope, _, _ in ledger.changed()} == {"rep"}


def test_money_is_converted_at_the_rate_of_the_local_day_exactly() -> None:
    rates = {"EUR": [(date(2026, 11, 1), Decimal("1.0812345678")), (date(2026, 11, 11), Decimal("1.1"))]}
    ledger = Ledger(Books(LA, currency="USD", rates=rates))
    # 02:00 UTC on 11 Nov is still 10 Nov in Los Angeles: the old rate applies
    ledger.deal(_won("1000.01", "EUR", closed=datetime(2026, 11, 11, 2, tzinfo=UTC)), 1)
    assert _tally(ledger, "rep", "r1", "2026-11").won_revenue == Decimal("1000.01") * Decimal("1.0812345678")
    assert _tally(ledger, "rep", "r1", "2026-11").won_revenue == Decimal("1081.245380145678")


def test_a_currency_without_a_rate_is_counted_as_unconverted_not_added() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC"), currency="USD"))
    ledger.deal(_won("50", "JPY"), 1)
    t = _tally(ledger, "rep", "r1", "2026-11")
    assert (t.won_revenue, t.deals_won, t.unconverted) == (0, 1, 1)
    assert _tally(ledger, "rep", "r1", "2026-10").unconverted == 1  # its pipeline, at creation


def test_activities_count_by_kind_and_in_total() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC")))
    for kind in ("call", "call", "email", "meeting", "demo"):
        ledger.activity(Activity("r1", kind, datetime(2026, 11, 3, tzinfo=UTC)), 1)
    t = _tally(ledger, "rep", "r1", "2026-W45")
    assert (t.calls, t.emails, t.meetings, t.activities) == (2, 1, 1, 5)


def test_sums_stay_exact_far_beyond_floats_and_the_default_decimal_precision() -> None:
    ledger = Ledger(Books(ZoneInfo("UTC")))
    amounts = [Decimal(f"{random.Random(n).randrange(10**30)}.{n:04d}") for n in range(200)]
    for amount in amounts:
        ledger.deal(_won(str(amount)), 1)
    with localcontext(prec=100):
        expected = sum(amounts, Decimal(0))
    assert _tally(ledger, "rep", "r1", "2026").won_revenue == expected
    assert sum(amounts, Decimal(0)) != expected  # the default 28 digits would have rounded


def test_the_order_of_deltas_does_not_matter() -> None:
    deals = [_won(f"{n}.25", closed=datetime(2026, 1 + n % 12, 1 + n % 28, tzinfo=UTC), rep=f"r{n % 3}")
             for n in range(60)]
    memberships = {f"r{n}": [(START, f"t{n % 2}")] for n in range(3)}
    ordered, shuffled = Ledger(Books(LA, memberships=memberships)), Ledger(Books(LA, memberships=memberships))
    for d in deals:
        ordered.deal(d, 1)
    for d in random.Random(7).sample(deals, len(deals)):
        shuffled.deal(d, 1)
    assert ordered.changed() == shuffled.changed()


@pytest.mark.parametrize("scope", ["rep", "team"])
def test_scopes_limit_which_tallies_move(scope: str) -> None:
    ledger = Ledger(Books(ZoneInfo("UTC"), memberships={"r1": [(START, "east")]}), scopes=(scope,))
    ledger.deal(_won(), 1)
    assert {s for s, _, _ in ledger.changed()} == {scope}


def test_nested_teams_roll_up_to_every_team_above() -> None:
    books = Books(ZoneInfo("UTC"), memberships={"r1": [(START, "north")], "r2": [(START, "south")]},
                  parents={"north": "emea", "south": "emea", "emea": "acme"})
    ledger = Ledger(books)
    ledger.deal(_won("100", rep="r1"), 1)
    ledger.deal(_won("50", rep="r2"), 1)
    assert _tally(ledger, "team", "north", "2026-11").won_revenue == 100
    assert _tally(ledger, "team", "emea", "2026-11").won_revenue == 150
    assert _tally(ledger, "team", "acme", "2026-11").won_revenue == 150
    assert _tally(ledger, "team", "acme", "2026-11").deals_won == 2


def test_a_cycle_in_the_hierarchy_does_not_loop_or_count_twice() -> None:
    books = Books(ZoneInfo("UTC"), memberships={"r1": [(START, "a")]}, parents={"a": "b", "b": "a"})
    assert books.lineage("a") == ["a", "b"]
    ledger = Ledger(books)
    ledger.deal(_won("10"), 1)
    assert _tally(ledger, "team", "a", "2026-11").won_revenue == 10
    assert _tally(ledger, "team", "b", "2026-11").won_revenue == 10
