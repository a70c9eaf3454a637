"""coaching's handlers on an in-memory store (`fake.FakeStore`, the `store.Store` protocol): a batch is
written with one call per table whatever its size, and leaves the state its records would have left
one by one; evaluations raise, supersede and recover check-ins once; the tenant's configuration is read
again only when its version changed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.coaching.config import ConfigCache
from services.coaching.effect import in_holdout, summarise
from services.coaching.handlers import evaluate, store_batch
from services.coaching.intake import reduce_batch
from services.coaching.model import Policy
from services.coaching.reviews import FigureFacts, review_figures
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Forecast,
    ForecastDeal,
    Holidays,
    RepUpserted,
    TaskCreated,
    TenantUpserted,
    TimeOffSet,
)
from tests.unit.services.coaching.fake import FakeStore

T = "acme"
NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)  # a Wednesday
Q4 = (datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC))
LONG_AGO = datetime(2026, 9, 1, tzinfo=UTC)
POLICY = Policy(new_target_grace_s=0)
EXT = {"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1", "tenantcurrency": "EUR"}


def msg(type_: str, data: Any, at: datetime = NOW, event_id: str | None = None) -> Incoming:
    event = CloudEvent(event_id or str(uuid.uuid4()), type_, "api", at, T, {}, EXT)
    return Incoming("topic", 0, 0, event, data)


def rep(rep_id: str, at: datetime = LONG_AGO, name: str | None = None, team: str = "a") -> Incoming:
    data = RepUpserted(rep_id=rep_id, name=name or rep_id.title(), team_id=team, manager_id="mgr",
                       timezone="Europe/Berlin", active=True)
    return msg("rep.upserted", data, at)


def call(activity_id: str, rep_id: str, at: datetime, deal_id: str | None = None) -> Incoming:
    return msg("activity.logged", ActivityLogged(activity_id=activity_id, rep_id=rep_id, kind="call",
                                                 occurred_at=at, deal_id=deal_id))


def deal(deal_id: str, rep_id: str, updated: datetime, amount: str = "1000", event_id: str | None = None) -> Incoming:
    data = DealUpserted(deal_id=deal_id, rep_id=rep_id, amount=Decimal(amount), currency="EUR", stage="open",
                        updated_at=updated)
    return msg("deal.upserted", data, event_id=event_id)


def figure(rep_id: str, actual: str, target: str = "90000", as_of: datetime = NOW,
           forecast: Forecast | None = None, metric: str = "won_revenue") -> Incoming:
    data = AttainmentUpdated(scope="rep", scope_id=rep_id, period="2026-Q4", metric=metric,
                             actual=Decimal(actual), target=Decimal(target), as_of=as_of,
                             period_start=Q4[0], period_end=Q4[1], forecast=forecast)
    return msg("kpi.attainment.updated", data)


def short_forecast(rep_id: str, closed: str = "40000", target: str = "90000") -> Forecast:
    """40,000 of 90,000 won, 20,000 open in the quarter (d-1 in commit, d-2 in best case): 50,000 short."""
    deals = [ForecastDeal(deal_id="d-1", rep_id=rep_id, amount=Decimal(15000), probability=Decimal("0.6"),
                          basis="crm", forecast_category="commit",
                          expected_close_at=datetime(2026, 12, 10, tzinfo=UTC)),
             ForecastDeal(deal_id="d-2", rep_id=rep_id, amount=Decimal(5000), probability=Decimal("0.3"),
                          basis="history", forecast_category="best_case",
                          expected_close_at=datetime(2026, 12, 20, tzinfo=UTC))]
    return Forecast(closed=Decimal(closed), commit=Decimal(15000), best_case=Decimal(5000), pipeline=Decimal(0),
                    weighted=Decimal(closed) + Decimal(10500), gap=Decimal(target) - Decimal(closed),
                    probability=Decimal("0.01"), method="exact", error=Decimal(0), open_deals=2, estimated=1,
                    deals=deals)


async def test_a_batch_costs_one_call_per_table_whatever_its_size() -> None:
    small, large = FakeStore(), FakeStore()
    await store_batch(small, T, [rep("ann"), call("a-1", "ann", NOW), deal("d-1", "ann", NOW), figure("ann", "1")],
                      NOW)
    batch = [rep(f"r{i}") for i in range(50)] + [call(f"a-{i}", f"r{i % 50}", NOW) for i in range(400)]
    batch += [deal(f"d-{i}", f"r{i % 50}", NOW) for i in range(100)] + [figure(f"r{i}", "1") for i in range(50)]
    touched = await store_batch(large, T, batch, NOW)
    assert large.calls == small.calls
    assert max(large.calls.values()) <= 2  # touch_deals: before and after the deals are written
    assert len(touched) == 50 and len(large.activities) == 400 and set(large.owed) == set(touched)


async def test_a_second_delivery_of_a_batch_changes_nothing() -> None:
    store = FakeStore()
    batch = [rep("ann"), call("a-1", "ann", NOW - timedelta(hours=1), "d-1"), deal("d-1", "ann", NOW, event_id="e1"),
             figure("ann", "5")]
    await store_batch(store, T, batch, NOW)
    before = (dict(store.reps), dict(store.activities), {k: (v.version, v.deleted) for k, v in store.deals.items()},
              dict(store.figures))
    await store_batch(store, T, batch, NOW + timedelta(minutes=5))
    after = (dict(store.reps), dict(store.activities), {k: (v.version, v.deleted) for k, v in store.deals.items()},
             dict(store.figures))
    assert after == before


async def test_the_newest_deal_version_wins_inside_a_batch_in_any_order() -> None:
    t1, t2, t3 = (NOW - timedelta(hours=h) for h in (3, 2, 1))
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        events = [deal("d-1", "ann", t1, "100", "e1"), deal("d-1", "ann", t3, "300", "e3"),
                  msg("deal.deleted", DealDeleted(deal_id="d-1", updated_at=t2), event_id="e2")]
        store = FakeStore()
        await store_batch(store, T, [events[i] for i in order], NOW)
        stored = store.deals["d-1"]
        assert stored.deal is not None and stored.deal.amount == Decimal(300) and not stored.deleted


async def test_a_deletion_newer_than_every_version_leaves_the_deal_deleted() -> None:
    store = FakeStore()
    await store_batch(store, T, [deal("d-1", "ann", NOW - timedelta(hours=2)),
                                 msg("deal.deleted", DealDeleted(deal_id="d-1", updated_at=NOW))], NOW)
    assert store.deals["d-1"].deleted


async def test_an_activity_logged_before_its_deal_first_arrives_does_not_touch_it() -> None:
    """One at a time, the activity's update found no deal row yet; the batch must not differ."""
    early, late = NOW - timedelta(hours=5), NOW - timedelta(hours=1)
    store = FakeStore()
    await store_batch(store, T, [call("a-1", "ann", early, "d-1"), deal("d-1", "ann", NOW - timedelta(days=30)),
                                 call("a-2", "ann", late, "d-2"), deal("d-2", "ann", NOW - timedelta(days=30)),
                                 call("a-3", "ann", late, "d-2")], NOW)
    assert store.deals["d-1"].last_activity_at is None
    assert store.deals["d-2"].last_activity_at == late  # a-3 came after d-2's first event


async def test_a_rep_is_known_since_their_earliest_applied_roster_entry_or_sales_event() -> None:
    store = FakeStore()
    older, old, new = (datetime(2026, 8, d, tzinfo=UTC) for d in (1, 10, 20))
    await store_batch(store, T, [rep("ann", new, "Ann B"), rep("ann", older, "Stale"), rep("bob", old),
                                 call("a-1", "bob", older)], NOW)
    assert store.reps["ann"].name == "Ann B" and store.reps["ann"].known_since == new  # the older one never applied
    assert store.reps["bob"].known_since == older
    await store_batch(store, T, [rep("ann", old, "Older")], NOW)  # an older entry in a later batch: ignored
    assert store.reps["ann"].name == "Ann B"


async def test_an_evaluation_raises_each_rule_once_then_supersedes_and_recovers() -> None:
    store, configs = FakeStore(), ConfigCache()
    await store_batch(store, T, [rep("ann"), figure("ann", "0")], NOW)
    assert await evaluate(store, T, ["ann"], NOW, POLICY, configs) == 3
    created = [e for e in store.outbox if e.type == "coaching.task.created"]
    assert sorted(e.data.rule for e in created) == ["behind_pace", "no_activity", "stalled_pipeline"]  # type: ignore[attr-defined]
    assert await evaluate(store, T, ["ann"], NOW + timedelta(hours=1), POLICY, configs) == 0  # live: nothing new

    await store_batch(store, T, [figure("ann", "85000", as_of=NOW + timedelta(hours=2)),
                                 call("a-1", "ann", NOW + timedelta(hours=2))], NOW + timedelta(hours=2))
    assert await evaluate(store, T, ["ann"], NOW + timedelta(hours=3), POLICY, configs) == 0
    closed = {e.data.rule: e.data.reason for e in store.outbox if e.type == "coaching.task.closed"}  # type: ignore[attr-defined]
    assert closed == {"behind_pace": "recovered", "no_activity": "recovered"}
    assert [t["status"] for t in store.tasks.values()].count("open") == 1  # stalled pipeline: still nothing open


async def test_a_forecast_short_of_target_raises_a_check_in_naming_the_deals_and_a_later_figure_without_it_recovers(
) -> None:
    store, configs = FakeStore(), ConfigCache()
    on_pace = [rep("ann"), call("a-1", "ann", NOW - timedelta(hours=1), deal_id="big")]  # 40,000 of 90,000: on pace
    # 160,000 open in all (3.2x what is left: coverage is fine), but only 20,000 of it expected this quarter
    big = deal("big", "ann", NOW - timedelta(hours=1), amount="160000")
    await store_batch(store, T, [*on_pace, big, figure("ann", "40000", forecast=short_forecast("ann"))], NOW)
    assert await evaluate(store, T, ["ann"], NOW, POLICY, configs) == 1
    [task] = [e.data for e in store.outbox if e.type == "coaching.task.created"
              and e.data.rule == "forecast_short"]  # type: ignore[attr-defined]
    assert isinstance(task, TaskCreated) and task.severity == "critical"
    assert task.summary == (
        "Ann is forecast at 50,500.00 of 90,000.00 won revenue for 2026-Q4 (a 1% chance of reaching it): 50,000.00"
        " still to win, and the open deals expected to close in 2026-Q4 total 20,000.00.")
    assert task.details["gap"] == "50000" and [d["deal_id"] for d in task.details["deals"]] == ["d-1", "d-2"]
    assert task.suggested_actions[0].startswith("Go through the deals that could close the gap, largest expected"
                                                " first: d-1 (15,000.00 at 60% by 2026-12-10), d-2 (5,000.00 at 30%")

    later = NOW + timedelta(hours=1)  # the same figure again, now without a forecast: the one held is gone
    await store_batch(store, T, [figure("ann", "40000", as_of=later)], later)
    assert await evaluate(store, T, ["ann"], later, POLICY, configs) == 0
    closed = {e.data.rule: e.data.reason for e in store.outbox if e.type == "coaching.task.closed"}  # type: ignore[attr-defined]
    assert closed == {"forecast_short": "recovered"}


async def test_a_figure_without_a_forecast_raises_no_forecast_check_in() -> None:
    store = FakeStore()
    await store_batch(store, T, [rep("ann"), figure("ann", "0")], NOW)
    await evaluate(store, T, ["ann"], NOW, POLICY, ConfigCache())
    assert "forecast_short" not in {e.data.rule for e in store.outbox}  # type: ignore[attr-defined]


async def test_a_worse_finding_supersedes_the_live_check_in_and_announces_both_in_order() -> None:
    store, configs = FakeStore(), ConfigCache()
    await store_batch(store, T, [rep("ann"), figure("ann", "25000"), call("a-1", "ann", NOW - timedelta(hours=1)),
                                 deal("d-1", "ann", NOW, "500000")], NOW)
    assert await evaluate(store, T, ["ann"], NOW, POLICY, configs) == 1  # behind pace: a warning (0.53 of pace)
    await store_batch(store, T, [figure("ann", "10000", as_of=NOW + timedelta(hours=1))], NOW)
    assert await evaluate(store, T, ["ann"], NOW + timedelta(hours=1), POLICY, configs) == 1  # now critical
    kinds = [(e.type, e.data.severity if e.type.endswith("created") else e.data.reason)  # type: ignore[attr-defined]
             for e in store.outbox]
    assert kinds == [("coaching.task.created", "warning"), ("coaching.task.created", "critical"),
                     ("coaching.task.closed", "superseded")]


async def test_the_tenant_configuration_is_read_again_only_when_its_version_changes() -> None:
    store, configs = FakeStore(), ConfigCache()
    await store_batch(store, T, [rep("ann"), figure("ann", "0"), call("a-0", "ann", LONG_AGO)], NOW)  # calendar
    for hour in range(3):
        await evaluate(store, T, ["ann"], NOW + timedelta(hours=hour), POLICY, configs)
    assert store.calls["config_version"] == 3 and store.calls["load_config"] == 1
    store.config["layers"] = {"": {"pace_threshold": "0.5"}}
    store.bump(T)  # what a policy written through any replica's API does (migration 004's trigger)
    other = ConfigCache()  # a second replica's cache
    await evaluate(store, T, ["ann"], NOW, POLICY, other)
    await evaluate(store, T, ["ann"], NOW, POLICY, configs)
    assert store.calls["load_config"] == 3
    assert (await configs.get(store, T)).policy(POLICY, "a").pace_threshold == Decimal("0.5")


async def test_a_tenant_never_configured_is_not_cached() -> None:
    store, configs = FakeStore(), ConfigCache()
    for _ in range(2):
        await configs.get(store, "nobody")
    assert store.calls["load_config"] == 2


# --- a KPI the tenant defined (issue 22) -------------------------------------------------------------------


async def test_a_kpi_the_tenant_defined_is_stored_evaluated_and_behind_pace_once_listed() -> None:
    """kpi reports demos_held like a built-in figure: coaching stores it, holds nothing against the rep until the
    tenant lists it in pace_metrics, then raises behind_pace on it, follows the check-in up on it, recovers it
    when the rep catches up, and its weekly review shows it."""
    store, configs = FakeStore(), ConfigCache()
    busy = call("a-1", "ann", NOW - timedelta(hours=1))  # no silence, no open deals: nothing else to find
    await store_batch(store, T, [rep("ann"), busy, figure("ann", "2", "40", metric="demos_held")], NOW)
    held, _ = store.figures[("rep", "ann", "2026-Q4", "demos_held")]
    assert (held.actual, held.target) == (Decimal(2), Decimal(40))
    assert await evaluate(store, T, ["ann"], NOW, POLICY, configs) == 0  # not a pace metric of the tenant's
    assert store.follow_ups == {}

    store.config["layers"] = {"": {"pace_metrics": ["won_revenue", "demos_held"]}}
    store.bump(T)  # what PUT /v1/policies does
    assert await evaluate(store, T, ["ann"], NOW, POLICY, configs) == 1
    [task] = [e.data for e in store.outbox if e.type == "coaching.task.created"]
    assert isinstance(task, TaskCreated) and (task.rule, task.severity) == ("behind_pace", "critical")
    assert task.evidence.metric == "demos_held"
    assert task.summary == (
        "Ann is at 9% of pace on demos held for 2026-Q4: 2 against 20.88 expected by now (target 40).")
    [follow] = store.follow_ups.values()
    assert (follow.kind, follow.metric, follow.pace[0]) == ("check_in", "demos_held", Decimal("0.0958"))

    later = NOW + timedelta(hours=1)
    await store_batch(store, T, [figure("ann", "30", "40", as_of=later, metric="demos_held")], later)
    assert await evaluate(store, T, ["ann"], later, POLICY, configs) == 0
    closed = [(e.data.rule, e.data.reason) for e in store.outbox if e.type == "coaching.task.closed"]  # type: ignore[attr-defined]
    assert closed == [("behind_pace", "recovered")]

    stored = [FigureFacts(f.period, f.metric, f.actual, f.target) for (scope, rep_id, _, _), (f, _)
              in store.figures.items() if (scope, rep_id) == ("rep", "ann")]
    [shown] = review_figures(stored, later, ZoneInfo("Europe/Berlin"), 1, frozenset())
    assert (shown.metric, shown.period, shown.actual, shown.attainment, shown.trend) == (
        "demos_held", "2026-Q4", Decimal(30), Decimal("0.7500"), "new")


async def test_a_kpi_figure_of_a_team_is_stored_and_evaluates_nobody() -> None:
    store = FakeStore()
    team = AttainmentUpdated(scope="team", scope_id="a", period="2026-Q4", metric="demos_held", actual=Decimal(1),
                             target=Decimal(40), as_of=NOW, period_start=Q4[0], period_end=Q4[1])
    assert await store_batch(store, T, [msg("kpi.attainment.updated", team)], NOW) == []
    assert ("team", "a", "2026-Q4", "demos_held") in store.figures


@pytest.mark.parametrize("size", [1, 500])
async def test_an_empty_part_of_a_batch_writes_nothing_but_the_owed_list(size: int) -> None:
    store = FakeStore()
    await store_batch(store, T, [msg("team.upserted", object())] * size, NOW)
    assert store.owed == {} and store.reps == {}


async def test_an_activity_on_a_deal_stored_before_moves_its_last_touch() -> None:
    store = FakeStore()
    await store_batch(store, T, [deal("d-1", "ann", NOW - timedelta(days=30))], NOW)
    await store_batch(store, T, [call("a-1", "ann", NOW - timedelta(hours=2), "d-1")], NOW)
    assert store.deals["d-1"].last_activity_at == NOW - timedelta(hours=2)


async def test_the_first_delivery_of_an_activity_id_in_a_batch_is_the_one_kept() -> None:
    store = FakeStore()
    await store_batch(store, T, [call("a-1", "ann", NOW - timedelta(hours=3)), call("a-1", "bob", NOW)], NOW)
    assert store.activities["a-1"].rep_id == "ann"


def test_only_roster_entries_that_raise_a_reps_newest_version_are_written() -> None:
    older, newer = datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 8, 20, tzinfo=UTC)
    assert len(reduce_batch([rep("ann", newer), rep("ann", older)], NOW).rep_rounds) == 1
    assert len(reduce_batch([rep("ann", older), rep("ann", newer), rep("bob", older)], NOW).rep_rounds) == 2


# --- days off: the tenant's holidays and the rep's time off (issue 18, item 3) ---------------------------

EASTER_TUESDAY = datetime(2026, 4, 7, 7, tzinfo=UTC)  # 09:00 in Berlin, after Good Friday and Easter Monday


def registry(holidays: Holidays | None) -> Incoming:
    return msg("tenant.upserted", TenantUpserted(tenant=T, timezone="Europe/Berlin", currency="EUR",
                                                 fiscal_start_month=1, token_sha256="00" * 32, active=True,
                                                 holidays=holidays), LONG_AGO)


async def silent_rules(holidays: Holidays | None, *extra: Incoming) -> list[str]:
    """The rules a rep who last called on Maundy Thursday finds on the Tuesday after Easter (2 working days)."""
    store = FakeStore()
    await store_batch(store, T, [registry(holidays), rep("ann"), call("a-1", "ann", datetime(2026, 4, 2, 13,
                                                                                             tzinfo=UTC)), *extra],
                      EASTER_TUESDAY)
    await evaluate(store, T, ["ann"], EASTER_TUESDAY, Policy(new_target_grace_s=0, no_activity_days=2), ConfigCache())
    return [e.data.rule for e in store.outbox if e.type == "coaching.task.created"]  # type: ignore[attr-defined]


async def test_a_rep_idle_only_over_public_holidays_has_no_no_activity_finding() -> None:
    assert await silent_rules(Holidays(country="DE")) == []
    assert await silent_rules(None) == ["no_activity"]  # without the calendar: Friday and Monday were silent
    # a tenant that works Good Friday and Easter Monday: two silent working days again
    assert await silent_rules(Holidays(country="DE", removed=[date(2026, 4, 3), date(2026, 4, 6)])) == [
        "no_activity"]
    assert await silent_rules(Holidays(country="DE", removed=[date(2026, 4, 6)])) == []  # Thursday still counts


async def test_time_off_is_no_silence_and_a_cancelled_one_is() -> None:
    leave = TimeOffSet(time_off_id="l-1", rep_id="ann", first_day=date(2026, 4, 3), last_day=date(2026, 4, 6))
    assert await silent_rules(None, msg("time_off.set", leave)) == []
    cancelled = leave.model_copy(update={"cancelled": True})
    assert await silent_rules(None, msg("time_off.set", leave, NOW - timedelta(hours=1)),
                              msg("time_off.set", cancelled, NOW)) == ["no_activity"]


async def test_nobody_is_chased_on_a_day_off_and_the_next_working_day_finds_it_again() -> None:
    """A rep behind pace, silent and without pipeline: nothing is raised on Christmas Day (a holiday of the
    tenant), on the weekend after or on the rep's time off; the first working day raises all three."""
    store, configs = FakeStore(), ConfigCache()
    leave = TimeOffSet(time_off_id="l-1", rep_id="ann", first_day=date(2026, 12, 28), last_day=date(2026, 12, 28))
    await store_batch(store, T, [registry(Holidays(country="DE")), rep("ann"), figure("ann", "0"),
                                 msg("time_off.set", leave)], NOW)
    for day in (25, 26, 27, 28):  # Christmas Day, Saturday, Sunday, the rep's Monday off
        assert await evaluate(store, T, ["ann"], datetime(2026, 12, day, 9, tzinfo=UTC), POLICY, configs) == 0
    assert not store.outbox
    assert await evaluate(store, T, ["ann"], datetime(2026, 12, 29, 9, tzinfo=UTC), POLICY, configs) == 3


# --- did it help? follow-ups of check-ins against a comparison group (issue 18, item 5) ------------------


def held_out_and_not(share: Decimal, each: int) -> tuple[list[str], list[str]]:
    """`each` reps the tenant's holdout of `share` holds out, and `each` it does not (its hash decides)."""
    held, coached = [], []
    for i in range(1000):
        rep_id = f"r{i:03d}"
        (held if in_holdout(T, rep_id, share) else coached).append(rep_id)
    return held[:each], coached[:each]


async def test_reps_who_recover_after_check_ins_against_a_held_out_group_that_does_not() -> None:
    """A constructed history whose answer is known: every coached rep catches up after the check-in, no held-out
    rep does. The measurement must say 12 of 12 against 0 of 12, and show the pace gained at each milestone."""
    policy = POLICY.with_overrides({"holdout_share": "0.5"})
    held, coached = held_out_and_not(Decimal("0.5"), 12)
    store, configs = FakeStore(), ConfigCache()
    await store_batch(store, T, [rep(r) for r in held + coached] + [figure(r, "0") for r in held + coached], NOW)
    await evaluate(store, T, held + coached, NOW, policy, configs)
    created = {e.data.rep_id for e in store.outbox if e.type == "coaching.task.created"}  # type: ignore[attr-defined]
    assert created == set(coached)  # the held-out reps get no check-in at all

    later = NOW + timedelta(days=1)  # the coached reps catch up at once; the held-out reps stay at 0
    await store_batch(store, T, [figure(r, "80000", as_of=later) for r in coached], later)
    for day in (1, 9, 20, 42):  # Thursday 19 November, then past 7, 14 and 30 working days
        await evaluate(store, T, held + coached, NOW + timedelta(days=day), policy, configs)

    rows = list(store.follow_ups.values())
    pace = {s["key"]: s for s in summarise(rows, "rule", min_sample=10)}["behind_pace"]
    assert pace["check_ins"]["n"] == pace["comparison"]["n"] == 12
    assert (pace["check_ins"]["recovered"], pace["comparison"]["recovered"]) == (12, 0)
    assert pace["difference"] == 1.0
    assert pace["check_ins"]["median_working_days_to_recover"] == 1
    low, high = pace["check_ins"]["recovery_ci95"]
    assert 0.73 < low < 0.76 and high == 1.0  # Wilson: 12 of 12 is no proof of 100 %
    gained = pace["check_ins"]["median_pace_change"]
    assert all(gained[m] > Decimal("0.8") for m in ("7", "14", "30")) and pace["comparison"]["median_pace_change"] == {
        "7": 0.0, "14": 0.0, "30": 0.0}
    assert all(r.measured == 30 for r in rows if r.rule == "behind_pace")
    # below the minimum sample the numbers are withheld
    assert summarise(rows, "rule", min_sample=13)[0]["check_ins"] == {"n": 12, "enough": False,
                                                                      "note": "not enough data"}
