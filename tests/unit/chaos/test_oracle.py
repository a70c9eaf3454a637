"""The chaos oracle against hand-computed figures (never against the services' own code: it must stay independent)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.chaos.oracle import (
    METRICS,
    OracleError,
    TenantConfig,
    behind_pace,
    behind_pace_possible,
    final_figures,
    final_targets,
    thresholds_crossed,
    thresholds_reachable,
)

BERLIN = TenantConfig("acme", "Europe/Berlin")
Event = dict[str, Any]


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _deal(event_id: str, deal_id: str, rep: str, amount: str, stage: str, *, updated: datetime,
          closed: datetime | None = None, created: datetime | None = None, currency: str = "EUR") -> Event:
    data: Event = {"deal_id": deal_id, "rep_id": rep, "amount": amount, "currency": currency, "stage": stage,
                   "updated_at": updated.isoformat()}
    if created is not None:
        data["created_at"] = created.isoformat()
    if closed is not None:
        data["closed_at"] = closed.isoformat()
    return {"type": "deal.upserted", "id": event_id, "source": "crm", "time": updated.isoformat(), "data": data}


def _won(event_id: str, deal_id: str, rep: str, amount: str, closed: datetime, **kw: Any) -> Event:
    return _deal(event_id, deal_id, rep, amount, "won", updated=kw.pop("updated", closed), closed=closed, **kw)


def _deleted(event_id: str, deal_id: str, *, updated: datetime) -> Event:
    return {"type": "deal.deleted", "id": event_id, "source": "crm", "time": updated.isoformat(),
            "data": {"deal_id": deal_id, "updated_at": updated.isoformat()}}


def _activity(event_id: str, activity_id: str, rep: str, kind: str, at: datetime) -> Event:
    return {"type": "activity.logged", "id": event_id, "source": "crm", "time": at.isoformat(),
            "data": {"activity_id": activity_id, "rep_id": rep, "kind": kind, "occurred_at": at.isoformat()}}


def _rep(event_id: str, rep: str, team: str, at: datetime) -> Event:
    return {"type": "rep.upserted", "id": event_id, "source": "api", "time": at.isoformat(),
            "data": {"rep_id": rep, "name": rep.title(), "team_id": team, "timezone": "Europe/Berlin"}}


def _team(event_id: str, team: str, parent: str | None, at: datetime) -> Event:
    return {"type": "team.upserted", "id": event_id, "source": "api", "time": at.isoformat(),
            "data": {"team_id": team, "name": team.title(), "parent_team_id": parent}}


def _target(event_id: str, scope: str, scope_id: str, metric: str, period: str, value: str, at: datetime) -> Event:
    return {"type": "target.set", "id": event_id, "source": "api", "time": at.isoformat(),
            "data": {"scope": scope, "scope_id": scope_id, "metric": metric, "period": period, "value": value}}


def _periods(figures: dict[tuple[str, str, str, str], Decimal], scope: str, scope_id: str) -> set[str]:
    return {period for s, i, period, _ in figures if (s, i) == (scope, scope_id)}


# --- where a deal counts ------------------------------------------------------------------------------------


def test_a_deal_won_at_2330_utc_on_31_december_counts_in_the_next_year_in_berlin() -> None:
    events = [_won("e1", "d1", "ann", "1000", _at(2026, 12, 31, 23, 30), created=_at(2026, 12, 10, 9))]
    figures = final_figures(BERLIN, events)
    # 00:30 on Friday 1 January 2027 in Berlin: ISO week 53 of 2026 (Mon 28 Dec .. Sun 3 Jan)
    for period in ("2027-01", "2027-Q1", "2026-W53", "2027"):
        assert figures[("rep", "ann", period, "won_revenue")] == Decimal(1000)
        assert figures[("rep", "ann", period, "deals_won")] == 1
        assert figures[("rep", "ann", period, "pipeline_created")] == 0
    # created Thursday 10 December 2026 (ISO week 50: Mon 7 .. Sun 13 Dec)
    for period in ("2026-12", "2026-Q4", "2026-W50", "2026"):
        assert figures[("rep", "ann", period, "pipeline_created")] == Decimal(1000)
        assert figures[("rep", "ann", period, "won_revenue")] == 0
    assert _periods(figures, "rep", "ann") == {"2027-01", "2027-Q1", "2026-W53", "2027",
                                               "2026-12", "2026-Q4", "2026-W50", "2026"}
    assert {m for *_, m in figures} == set(METRICS)
    # the same deal in a UTC tenant closed on 31 December
    in_utc = final_figures(TenantConfig("utc", "UTC"), events)
    assert in_utc[("rep", "ann", "2026-12", "won_revenue")] == Decimal(1000)
    assert ("rep", "ann", "2027-01", "won_revenue") not in in_utc


def test_a_fiscal_year_starting_in_february_is_named_by_the_year_it_ends() -> None:
    tenant = TenantConfig("fy", "UTC", fiscal_start_month=2)
    figures = final_figures(tenant, [_won("e1", "d1", "ann", "10", _at(2026, 2, 10)),
                                     _won("e2", "d2", "ann", "20", _at(2026, 1, 20))])
    assert figures[("rep", "ann", "2027-Q1", "won_revenue")] == 10  # Feb-Apr 2026
    assert figures[("rep", "ann", "2027", "won_revenue")] == 10
    assert figures[("rep", "ann", "2026-Q4", "won_revenue")] == 20  # Nov 2025 - Jan 2026
    assert figures[("rep", "ann", "2026", "won_revenue")] == 20
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == 10  # months stay calendar months
    assert figures[("rep", "ann", "2026-01", "won_revenue")] == 20


# --- which version of a deal counts -------------------------------------------------------------------------


def test_an_edit_with_an_older_updated_at_arriving_last_is_ignored() -> None:
    newer = _won("e2", "d1", "ann", "500", _at(2026, 2, 10))
    older = _won("e1", "d1", "ann", "900", _at(2026, 2, 5))
    figures = final_figures(BERLIN, [newer, older])
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == 500
    assert figures[("rep", "ann", "2026-02", "deals_won")] == 1
    assert _periods(figures, "rep", "ann") == {"2026-02", "2026-Q1", "2026-W07", "2026"}  # not 5 Feb's W06


def test_equal_updated_ats_are_ordered_by_event_id_in_code_point_order() -> None:
    same = _at(2026, 2, 10)
    figures = final_figures(BERLIN, [_won("e-a", "d1", "ann", "100", same), _won("e-B", "d1", "ann", "200", same)])
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == 100  # "e-a" > "e-B": 'a' is 97, 'B' is 66


def test_a_reopened_deal_takes_its_revenue_back_and_keeps_its_pipeline() -> None:
    created = _at(2026, 2, 1, 9)
    events = [_won("e1", "d1", "ann", "700", _at(2026, 2, 10), created=created),
              _deal("e2", "d1", "ann", "700", "open", updated=_at(2026, 2, 20), created=created)]
    figures = final_figures(BERLIN, events)
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == 0
    assert figures[("rep", "ann", "2026-02", "deals_won")] == 0
    assert figures[("rep", "ann", "2026-02", "pipeline_created")] == 700


def test_a_deletion_takes_everything_back_unless_a_newer_upsert_follows() -> None:
    upsert = _won("e1", "d1", "ann", "700", _at(2026, 2, 10), created=_at(2026, 2, 1))
    assert final_figures(BERLIN, [upsert, _deleted("e2", "d1", updated=_at(2026, 2, 11))]) == {}
    # a deletion older than the upsert changes nothing
    stale = final_figures(BERLIN, [_deleted("e0", "d1", updated=_at(2026, 2, 9)), upsert])
    assert stale[("rep", "ann", "2026-02", "won_revenue")] == 700
    # an upsert newer than the deletion brings the deal back
    back = _won("e3", "d1", "ann", "300", _at(2026, 2, 12))
    revived = final_figures(BERLIN, [back, _deleted("e2", "d1", updated=_at(2026, 2, 11)), upsert])
    assert revived[("rep", "ann", "2026-02", "won_revenue")] == 300
    assert revived[("rep", "ann", "2026-02", "pipeline_created")] == 0  # the newest version has no created_at


def test_an_owner_change_moves_the_revenue_to_the_new_owner() -> None:
    events = [_won("e1", "d1", "ann", "400", _at(2026, 3, 2)),
              _won("e2", "d1", "bob", "400", _at(2026, 3, 2), updated=_at(2026, 3, 5))]
    figures = final_figures(BERLIN, events)
    assert figures[("rep", "bob", "2026-Q1", "won_revenue")] == 400
    assert _periods(figures, "rep", "ann") == set()


# --- teams --------------------------------------------------------------------------------------------------


MOVES = [
    _rep("r1", "ann", "alpha", _at(2026, 1, 5)),
    _rep("r2", "ann", "beta", _at(2026, 2, 15, 12)),
    _won("e1", "d1", "ann", "100", _at(2026, 1, 2)),  # before the first roster event: the first team
    _won("e2", "d2", "ann", "200", _at(2026, 2, 10)),
    _won("e3", "d3", "ann", "400", _at(2026, 3, 1)),
    _won("e4", "d4", "ann", "800", _at(2026, 2, 15, 12)),  # at the very instant of the move: the new team
]


def test_a_rep_moving_teams_mid_quarter_leaves_earlier_revenue_with_the_old_team() -> None:
    figures = final_figures(BERLIN, MOVES)
    assert figures[("team", "alpha", "2026-Q1", "won_revenue")] == 300
    assert figures[("team", "beta", "2026-Q1", "won_revenue")] == 1200
    assert figures[("rep", "ann", "2026-Q1", "won_revenue")] == 1500
    assert figures[("team", "alpha", "2026-02", "won_revenue")] == 200
    assert figures[("team", "beta", "2026-02", "won_revenue")] == 800
    assert "2026-03" not in _periods(figures, "team", "alpha")


def test_the_roster_history_does_not_depend_on_the_order_events_arrive_in() -> None:
    assert final_figures(BERLIN, list(reversed(MOVES))) == final_figures(BERLIN, MOVES)


def test_a_rep_without_a_roster_entry_counts_for_no_team() -> None:
    figures = final_figures(BERLIN, [_won("e1", "d1", "ann", "100", _at(2026, 1, 2))])
    assert {s for s, *_ in figures} == {"rep"}


def test_nested_teams_roll_up_as_the_hierarchy_stands_at_the_end() -> None:
    events = [_team("t1", "alpha", "emea", _at(2026, 1, 1)), _team("t2", "emea", "acme", _at(2026, 1, 1)),
              _rep("r1", "ann", "alpha", _at(2026, 1, 1)), _won("e1", "d1", "ann", "100", _at(2026, 2, 3))]
    figures = final_figures(BERLIN, events)
    for team in ("alpha", "emea", "acme"):
        assert figures[("team", team, "2026-02", "won_revenue")] == 100
    moved = final_figures(BERLIN, [*events, _team("t3", "alpha", "apac", _at(2026, 3, 1))])
    assert moved[("team", "apac", "2026-02", "won_revenue")] == 100
    assert _periods(moved, "team", "emea") == set()
    assert _periods(moved, "team", "acme") == set()  # apac sits under nothing


def test_a_cycle_in_the_hierarchy_counts_each_team_once() -> None:
    events = [_team("t1", "x", "y", _at(2026, 1, 1)), _team("t2", "y", "x", _at(2026, 1, 1)),
              _rep("r1", "ann", "x", _at(2026, 1, 1)), _won("e1", "d1", "ann", "100", _at(2026, 2, 3))]
    figures = final_figures(BERLIN, events)
    assert figures[("team", "x", "2026-02", "won_revenue")] == 100
    assert figures[("team", "y", "2026-02", "won_revenue")] == 100


# --- duplicates, activities, metrics --------------------------------------------------------------------------


def test_duplicates_count_once() -> None:
    deal = _won("e1", "d1", "ann", "100", _at(2026, 2, 3))
    call = _activity("a1", "act-1", "ann", "call", _at(2026, 2, 3))
    same_call_other_event = _activity("a2", "act-1", "ann", "call", _at(2026, 2, 3))
    figures = final_figures(BERLIN, [deal, dict(deal), call, call, same_call_other_event])
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == 100
    assert figures[("rep", "ann", "2026-02", "calls")] == 1
    assert figures[("rep", "ann", "2026-02", "activities")] == 1


def test_each_activity_kind_counts_in_activities_and_three_in_their_own_metric() -> None:
    at = _at(2026, 2, 3, 10)
    events = [_activity(f"a{i}", f"act-{i}", "ann", kind, at)
              for i, kind in enumerate(("call", "email", "meeting", "demo", "task", "other", "call"))]
    figures = final_figures(BERLIN, events)
    expected = {"activities": 7, "calls": 2, "emails": 1, "meetings": 1, "won_revenue": 0, "deals_won": 0}
    for metric, value in expected.items():
        assert figures[("rep", "ann", "2026-02", metric)] == value


def test_win_rate_and_average_deal_size_round_half_even_to_four_places() -> None:
    events = [_won("e1", "d1", "ann", "100.0000", _at(2026, 2, 3)),
              _won("e2", "d2", "ann", "200.0001", _at(2026, 2, 4)),
              _deal("e3", "d3", "ann", "999", "lost", updated=_at(2026, 2, 5), closed=_at(2026, 2, 5))]
    figures = final_figures(BERLIN, events)
    assert figures[("rep", "ann", "2026-02", "win_rate")] == Decimal("0.6667")  # 2 / 3
    assert figures[("rep", "ann", "2026-02", "avg_deal_size")] == Decimal("150.0000")  # 150.00005, to even
    assert figures[("rep", "ann", "2026-02", "won_revenue")] == Decimal("300.0001")
    odd = final_figures(BERLIN, [_won("e1", "d1", "ann", "100.0001", _at(2026, 2, 3)),
                                 _won("e2", "d2", "ann", "200.0002", _at(2026, 2, 4))])
    assert odd[("rep", "ann", "2026-02", "avg_deal_size")] == Decimal("150.0002")  # 150.00015, to even
    assert odd[("rep", "ann", "2026-02", "win_rate")] == 1


def test_ratios_with_nothing_to_divide_by_are_zero_and_only_losses_still_make_a_key() -> None:
    figures = final_figures(BERLIN, [_deal("e1", "d1", "ann", "50", "lost", updated=_at(2026, 2, 5),
                                           closed=_at(2026, 2, 5))])
    assert figures[("rep", "ann", "2026-02", "win_rate")] == 0
    assert figures[("rep", "ann", "2026-02", "avg_deal_size")] == 0


def test_a_deal_of_zero_makes_no_key_unless_it_is_won() -> None:
    open_zero = _deal("e1", "d1", "ann", "0", "open", updated=_at(2026, 2, 5), created=_at(2026, 2, 5))
    assert final_figures(BERLIN, [open_zero]) == {}
    won_zero = final_figures(BERLIN, [_won("e2", "d2", "ann", "0", _at(2026, 2, 5))])
    assert won_zero[("rep", "ann", "2026-02", "deals_won")] == 1


# --- targets and thresholds ----------------------------------------------------------------------------------


def test_the_newest_target_wins_and_a_target_alone_makes_all_nine_metrics_at_zero() -> None:
    events = [_target("t2", "team", "alpha", "won_revenue", "2026-Q1", "5000", _at(2026, 1, 2)),
              _target("t1", "team", "alpha", "won_revenue", "2026-Q1", "9000", _at(2026, 1, 1))]
    assert final_targets(BERLIN, events) == {("team", "alpha", "2026-Q1", "won_revenue"): Decimal(5000)}
    assert final_figures(BERLIN, events) == {("team", "alpha", "2026-Q1", m): Decimal(0) for m in METRICS}


def test_a_threshold_crossed_and_then_uncrossed_by_a_reopen() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "600", _at(2026, 2, 3)),
              _won("e2", "d2", "ann", "500", _at(2026, 2, 4))]
    key = ("rep", "ann", "2026-Q1", "won_revenue")
    assert thresholds_crossed(BERLIN, events) == {(*key, 50), (*key, 100)}  # 1,100 of 1,000
    reopened = [*events, _deal("e3", "d2", "ann", "500", "open", updated=_at(2026, 2, 20))]
    assert thresholds_crossed(BERLIN, reopened) == {(*key, 50)}  # 600 of 1,000


def test_thresholds_compare_the_attainment_rounded_to_four_places() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "999.95", _at(2026, 2, 3))]
    key = ("rep", "ann", "2026-Q1", "won_revenue")
    assert thresholds_crossed(BERLIN, events) == {(*key, 50), (*key, 100)}  # 0.99995 reads 1.0000
    below = [events[0], _won("e1", "d1", "ann", "999.94", _at(2026, 2, 3))]
    assert thresholds_crossed(BERLIN, below) == {(*key, 50)}  # 0.99994 reads 0.9999


def test_no_threshold_without_a_positive_target() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "0", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "600", _at(2026, 2, 3))]
    assert thresholds_crossed(BERLIN, events) == set()


def test_a_threshold_reached_only_for_a_moment_is_reachable_but_not_crossed() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "600", _at(2026, 2, 3)),
              _won("e2", "d2", "ann", "500", _at(2026, 2, 4)),
              _deal("e3", "d2", "ann", "500", "open", updated=_at(2026, 2, 20))]  # reopened: back to 600
    key = ("rep", "ann", "2026-Q1", "won_revenue")
    assert thresholds_crossed(BERLIN, events) == {(*key, 50)}
    assert thresholds_reachable(BERLIN, events) == {(*key, 50), (*key, 100)}  # 1,100 before the reopen


def test_each_deal_counts_at_its_most_favourable_version_for_each_owner() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _target("t2", "rep", "bob", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "900", _at(2026, 2, 3)),
              _won("e2", "d1", "ann", "400", _at(2026, 2, 3), updated=_at(2026, 2, 5)),  # corrected down
              _won("e3", "d1", "bob", "400", _at(2026, 2, 3), updated=_at(2026, 2, 6)),  # then handed over
              _deleted("e4", "d1", updated=_at(2026, 2, 7)),
              _won("e5", "d2", "bob", "700", _at(2026, 2, 8))]
    ann, bob = ("rep", "ann", "2026-Q1", "won_revenue"), ("rep", "bob", "2026-Q1", "won_revenue")
    assert thresholds_crossed(BERLIN, events) == {(*bob, 50)}  # 700
    # ann: 900 at most (one deal, never both versions at once); bob: 400 + 700
    assert thresholds_reachable(BERLIN, events) == {(*ann, 50), (*bob, 50), (*bob, 100)}


def test_a_team_may_have_counted_a_deal_of_any_team_the_rep_was_ever_in() -> None:
    events = [_team("g1", "north", "all", _at(2026, 1, 1)), _team("g2", "south", "all", _at(2026, 1, 1)),
              _rep("r1", "ann", "north", _at(2026, 1, 1)), _rep("r2", "ann", "south", _at(2026, 3, 1)),
              _target("t1", "team", "north", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _target("t2", "team", "south", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _target("t3", "team", "all", "won_revenue", "2026-Q1", "1000", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "1000", _at(2026, 2, 3))]  # in north when it closed
    north, south, whole = (("team", t, "2026-Q1", "won_revenue") for t in ("north", "south", "all"))
    assert thresholds_crossed(BERLIN, events) == {(*north, 50), (*north, 100), (*whole, 50), (*whole, 100)}
    # before the roster arrived in order, kpi may have put the deal in south; "all" counts it once either way
    assert thresholds_reachable(BERLIN, events) == {(*k, t) for k in (north, south, whole) for t in (50, 100)}


def test_nothing_is_reachable_without_a_positive_target_and_activities_count_in_full() -> None:
    events = [_target("t1", "rep", "ann", "won_revenue", "2026-Q1", "0", _at(2026, 1, 1)),
              _target("t2", "rep", "ann", "calls", "2026-Q1", "2", _at(2026, 1, 1)),
              _won("e1", "d1", "ann", "600", _at(2026, 2, 3)),
              _activity("a1", "x1", "ann", "call", _at(2026, 2, 3)),
              _activity("a2", "x2", "ann", "email", _at(2026, 2, 3))]
    assert thresholds_reachable(BERLIN, events) == {("rep", "ann", "2026-Q1", "calls", 50)}


# --- behind pace ---------------------------------------------------------------------------------------------

MONDAY_16_NOV_BERLIN = _at(2026, 11, 15, 23)  # 00:00 local: 10 of November's 21 weekdays have passed


def _pace_events(actual: str) -> list[Event]:
    return [_target("t1", "rep", "ann", "won_revenue", "2026-11", "90000", _at(2026, 10, 1)),
            _target("t2", "rep", "ann", "calls", "2026-11", "500", _at(2026, 10, 1)),  # not a pace metric
            _target("t3", "rep", "ann", "won_revenue", "2026-10", "90000", _at(2026, 9, 1)),  # over at the 16th
            _won("e1", "d1", "ann", actual, _at(2026, 11, 5))]


def test_behind_pace_below_seventy_percent_of_the_working_day_pace() -> None:
    # share 10/21 = 0.476190, expected 90,000 x 0.476190 = 42,857.10, 70 % of it 29,999.97
    assert behind_pace(BERLIN, _pace_events("30000"), MONDAY_16_NOV_BERLIN) == set()
    assert behind_pace(BERLIN, _pace_events("29999"), MONDAY_16_NOV_BERLIN) == {("ann", "2026-11", "won_revenue")}


def test_behind_pace_waits_for_the_grace_share_and_honours_the_threshold_given() -> None:
    nothing_yet = _pace_events("0")[:3]
    # Monday 2 November 12:00 local: half of 1 of 21 weekdays, 0.023809 < 0.1
    assert behind_pace(BERLIN, nothing_yet, _at(2026, 11, 2, 11)) == set()
    # Tuesday 3 November 12:00 local... still 1.5 / 21 = 0.071428; Thursday the 5th 00:00: 3/21 = 0.142857
    assert behind_pace(BERLIN, nothing_yet, _at(2026, 11, 3, 11)) == set()
    assert behind_pace(BERLIN, nothing_yet, _at(2026, 11, 4, 23)) == {("ann", "2026-11", "won_revenue")}
    assert behind_pace(BERLIN, _pace_events("29999"), MONDAY_16_NOV_BERLIN, pace_threshold=Decimal("0.5")) == set()


def test_behind_pace_needs_an_aware_instant() -> None:
    with pytest.raises(OracleError):
        behind_pace(BERLIN, [], datetime(2026, 11, 16))  # naive on purpose


def test_any_rep_with_a_target_may_be_found_behind_while_the_quarter_streams_in() -> None:
    # ann ends far above pace, yet kpi may report her target before her deal: 0 against 42,857.10 expected
    events = _pace_events("90000")
    assert behind_pace(BERLIN, events, MONDAY_16_NOV_BERLIN) == set()
    claims = [("ann", "2026-11", "won_revenue", MONDAY_16_NOV_BERLIN)]
    assert behind_pace_possible(BERLIN, events, claims) == set(claims)


@pytest.mark.parametrize(("claim", "why"), [
    (("bob", "2026-11", "won_revenue", MONDAY_16_NOV_BERLIN), "no target for bob"),
    (("ann", "2026-11", "calls", MONDAY_16_NOV_BERLIN), "calls is not a pace metric"),
    (("ann", "2026-10", "won_revenue", MONDAY_16_NOV_BERLIN), "October is over"),
    (("ann", "2026-12", "won_revenue", MONDAY_16_NOV_BERLIN), "no target for December"),
    (("ann", "2026-11", "won_revenue", _at(2026, 11, 2, 11)), "before the grace share"),
])
def test_a_claim_the_rule_could_never_make_is_not_possible(claim: tuple[str, str, str, datetime], why: str) -> None:
    assert behind_pace_possible(BERLIN, _pace_events("0"), [claim]) == set(), why


# --- what the oracle refuses -----------------------------------------------------------------------------------


def test_events_whose_result_depends_on_delivery_order_are_refused() -> None:
    same = _at(2026, 2, 1)
    with pytest.raises(OracleError, match="ann"):
        final_figures(BERLIN, [_rep("r1", "ann", "alpha", same), _rep("r2", "ann", "beta", same)])
    with pytest.raises(OracleError, match="source and id"):
        final_figures(BERLIN, [_won("e1", "d1", "ann", "1", same), _won("e1", "d1", "ann", "2", same)])
    with pytest.raises(OracleError, match="act-1"):
        final_figures(BERLIN, [_activity("a1", "act-1", "ann", "call", same),
                               _activity("a2", "act-1", "bob", "call", same)])


def test_a_live_deal_in_another_currency_is_refused_but_a_superseded_one_is_not() -> None:
    usd = _won("e1", "d1", "ann", "100", _at(2026, 2, 3), currency="USD")
    with pytest.raises(OracleError, match="USD"):
        final_figures(BERLIN, [usd])
    fixed = _won("e2", "d1", "ann", "90", _at(2026, 2, 3), updated=_at(2026, 2, 4))
    assert final_figures(BERLIN, [usd, fixed])[("rep", "ann", "2026-02", "won_revenue")] == 90
