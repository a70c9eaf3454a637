"""recognition's handler tier: the batch handler and the period-close timer on an in-memory repository
(`fake.FakeRepository`, honouring `repository.Repository`): no PostgreSQL, no broker, fixed instants."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.recognition.config import ConfigCache
from services.recognition.handlers import handle_batch, settle_leads, settle_tenant
from services.recognition.outgoing import REACHED
from shared.consumer import Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    ExchangeRate,
    Holidays,
    TenantUpserted,
    TimeOffSet,
)
from tests.unit.services.recognition.fake import FakeRepository
from tests.unit.services.recognition.streams import (
    NOW,
    TICKS,
    activity,
    batches_of,
    contest,
    figure,
    incoming,
    minutes,
    mixed_stream,
    race,
    rep,
    tenant_id,
    week_of_calls,
    won,
)

# These tests replay weeks-old records at NOW: a horizon of ten years keeps them news (the horizon's own
# tests below use the default).
REMEMBERS = {"history_horizon_hours": 24 * 3650}


async def run(repo: FakeRepository, batches: Sequence[Sequence[Incoming]], cache: ConfigCache | None = None,
              now: datetime = NOW) -> int:
    cache = cache or ConfigCache()
    return sum([await handle_batch(repo, cache, batch, now) for batch in batches])


def ledger(repo: FakeRepository, tenant: str) -> dict[tuple[str, str, str], Any]:
    """(scope id, milestone, period) -> (value, headline, facts) of every celebrated row (on its own or bundled
    into a higher milestone's celebration)."""
    return {(k[2], k[3], k[4]): (r.entry.found.value, r.entry.headline, dict(r.entry.found.facts))
            for k, r in repo.ledger.items() if k[0] == tenant and r.entry.status in ("celebrated", "bundled")}


def sent(repo: FakeRepository, type_: str = REACHED) -> list[str]:
    return [event.id for _, _, event in repo.outbox if event.type == type_]


# --- deals ----------------------------------------------------------------------------------------------


async def test_second_delivery_of_a_won_deal_celebrates_nothing_more() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    deal = won(t, "d1", "rep-1", "50000", datetime(2026, 10, 5, 9, tzinfo=UTC))
    assert await run(repo, [[rep(t, "rep-1"), deal, deal], [deal], [deal]]) == 1  # one cheer, both milestones
    assert set(ledger(repo, t)) == {("rep-1", "first_win_ever", "ever"), ("rep-1", "first_win", "2026-Q4")}
    earlier = won(t, "d0", "rep-1", "20000", datetime(2026, 10, 1, 9, tzinfo=UTC))  # finds both again
    assert await run(repo, [[earlier]]) == 0
    assert len(sent(repo)) == len(set(sent(repo))) == 1


async def test_an_open_deal_that_is_won_later_is_celebrated_when_it_is_won() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    closed = datetime(2026, 10, 5, 9, tzinfo=UTC)
    opened = won(t, "d1", "rep-1", "50000", closed, stage="open", updated=closed - timedelta(days=3))
    assert await run(repo, [[rep(t, "rep-1"), opened]]) == 0
    assert await run(repo, [[won(t, "d1", "rep-1", "50000", closed)]]) == 1
    edited = won(t, "d1", "rep-1", "55000", closed, updated=closed + timedelta(hours=1))  # still won: nothing new
    assert await run(repo, [[edited]]) == 0


async def test_a_personal_record_is_judged_against_the_deals_before_it_in_the_same_batch() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    deals = [won(t, "d1", "rep-1", "50000", datetime(2026, 10, 5, 9, tzinfo=UTC)),
             won(t, "d2", "rep-1", "80000", datetime(2026, 11, 2, 9, tzinfo=UTC)),
             won(t, "d3", "rep-1", "60000", datetime(2026, 11, 10, 9, tzinfo=UTC)),
             won(t, "d4", "rep-1", "120000", datetime(2026, 11, 20, 9, tzinfo=UTC))]
    await run(repo, [[rep(t, "rep-1"), *deals]])
    records = {k: v for k, v in ledger(repo, t).items() if k[1] == "personal_record"}
    assert set(records) == {("rep-1", "personal_record", "2026-11-02"), ("rep-1", "personal_record", "2026-11-20")}
    assert records[("rep-1", "personal_record", "2026-11-20")][2]["previous_record"] == Decimal(80000)


async def test_a_deal_won_then_lost_in_one_batch_is_celebrated_as_one_record_at_a_time_would() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    closed = datetime(2026, 10, 5, 9, tzinfo=UTC)
    lost = won(t, "d1", "rep-1", "50000", closed, stage="lost", updated=closed + timedelta(hours=1))
    deleted = incoming(t, "deal.deleted", DealDeleted(deal_id="d1", updated_at=closed + timedelta(hours=2)), closed)
    await run(repo, [[rep(t, "rep-1"), won(t, "d1", "rep-1", "50000", closed), lost, deleted]])
    assert ("rep-1", "first_win_ever", "ever") in ledger(repo, t)
    assert repo.deal_rows[(t, "d1")].deleted and repo.deal_rows[(t, "d1")].stage == "lost"


async def test_an_older_deal_version_arriving_late_changes_nothing() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    closed = datetime(2026, 10, 5, 9, tzinfo=UTC)
    newer = won(t, "d1", "rep-1", "50000", closed, stage="lost", updated=closed + timedelta(hours=1))
    await run(repo, [[rep(t, "rep-1"), newer], [won(t, "d1", "rep-1", "50000", closed)]])
    assert ledger(repo, t) == {}
    assert repo.deal_rows[(t, "d1")].stage == "lost"


# --- figures --------------------------------------------------------------------------------------------


async def test_quota_thresholds_crossed_inside_one_batch_are_each_celebrated_once() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    batch = [figure(t, "rep-1", "0.4", at), figure(t, "rep-1", "1.05", at + timedelta(minutes=5)),
             figure(t, "rep-1", "0.7", at + timedelta(minutes=1)),  # older: arrives late, changes nothing
             figure(t, "rep-1", "1.6", at + timedelta(minutes=7)),
             figure(t, "rep-1", "0.8", at + timedelta(minutes=6))]  # older again
    assert await run(repo, [batch]) == 2  # 0.4 -> 1.05 is one cheer (100 % with 50 % in it), 1.6 another
    assert {k[1] for k in ledger(repo, t)} == {"quota_50", "quota_100", "quota_150"}
    stored = repo.attainment[(t, ("rep", "rep-1", "2026-Q4", "won_revenue"))]
    assert stored.attainment == Decimal("1.6")
    assert await run(repo, [batch, batch[::-1]]) == 0  # redeliveries: the inbox knows them
    assert await run(repo, [[figure(t, "rep-1", "1.7", at + timedelta(minutes=9))]]) == 0
    assert len(sent(repo)) == 2


async def test_a_figure_that_drops_and_rises_again_in_one_batch_is_celebrated_once() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    steps = ["0.4", "1.1", "0.9", "1.2", "0.3", "1.3"]
    await run(repo, [[figure(t, "rep-1", s, at + timedelta(minutes=i)) for i, s in enumerate(steps)]])
    assert Counter(k[1] for k in ledger(repo, t)) == {"quota_50": 1, "quota_100": 1}
    assert ledger(repo, t)[("rep-1", "quota_100", "2026-Q4")][0] == Decimal("110000.0")  # the first crossing's


async def test_a_correction_is_due_only_for_a_celebration_made_before_the_drop() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    await repo.set_overrides(t, {"corrections": True})
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    await run(repo, [[figure(t, "rep-1", s, at + timedelta(minutes=i)) for i, s in enumerate(["0.4", "1.1", "0.9"])]])
    assert len(sent(repo, "recognition.milestone.corrected")) == 1  # quota_100: celebrated at 1.1, dropped at 0.9
    # a team that stood past 100 % before any celebration (say, switched on later): its drop corrects nothing,
    # and the crossing after it is celebrated without a correction
    stood = figure(t, "team-1", "1.2", at, scope="team").data
    assert isinstance(stood, AttainmentUpdated)
    await repo.save_figures(t, [stood])
    await run(repo, [[figure(t, "team-1", "0.9", at + timedelta(minutes=1), scope="team"),
                      figure(t, "team-1", "1.1", at + timedelta(minutes=2), scope="team")]])
    assert ("team-1", "team_goal", "2026-Q4") in ledger(repo, t)
    assert len(sent(repo, "recognition.milestone.corrected")) == 1
    await run(repo, [[figure(t, "team-1", "0.8", at + timedelta(minutes=3), scope="team")]])
    assert len(sent(repo, "recognition.milestone.corrected")) == 2  # team_goal, once


# --- activities -----------------------------------------------------------------------------------------


async def test_an_activity_streak_is_celebrated_once_however_the_activities_are_batched() -> None:
    expected = {("rep-1", "activity_streak", "2026-11-02")}
    for cut in (1, 3, 25):
        repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
        calls = week_of_calls(t, "rep-1")
        stream = [rep(t, "rep-1"), *calls, *calls[:7]]  # with redeliveries
        await run(repo, [stream[i:i + cut] for i in range(0, len(stream), cut)])
        assert set(ledger(repo, t)) == expected, cut
        assert len(sent(repo)) == 1


async def test_a_day_short_of_the_goal_breaks_the_streak() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    calls = week_of_calls(t, "rep-1")
    wednesday_short = [c for c in calls
                       if not (isinstance(c.data, ActivityLogged) and c.data.activity_id == "rep-1-2-4")]
    await run(repo, [[rep(t, "rep-1"), *wednesday_short]])
    assert ledger(repo, t) == {}


# --- the whole stream -----------------------------------------------------------------------------------


async def test_one_batch_and_one_record_at_a_time_and_random_batches_give_the_same_ledger() -> None:
    rnd = random.Random(15)
    results = []
    for how in ("one batch", "one at a time", "random"):
        repo, t = FakeRepository(defaults=REMEMBERS), "same-tenant"
        stream = mixed_stream(t, random.Random(7))
        cut = {"one batch": [stream], "one at a time": [[m] for m in stream], "random": batches_of(stream, rnd)}[how]
        await run(repo, cut)
        assert len(sent(repo)) == len(set(sent(repo))), how
        results.append((ledger(repo, t), sorted(sent(repo)), dict(repo.attainment)))
    assert results[0] == results[1] == results[2]
    assert {m for _, m, _ in results[0][0]} >= {"first_win_ever", "first_win", "personal_record", "quota_100",
                                               "activity_streak"}


async def test_a_batch_reads_and_writes_with_one_call_per_kind_of_state() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    stream = mixed_stream(t, random.Random(3))
    await run(repo, [stream])
    assert len(stream) > 100
    for name in ("claim", "figures", "save_figures", "deals", "save_deals", "add_activities", "activity_moments",
                 "profiles", "record", "enqueue", "tenant_config"):
        assert repo.calls.get(name) == 1, (name, repo.calls)


# --- configuration --------------------------------------------------------------------------------------


async def test_settings_are_read_once_and_a_change_by_another_replica_applies_from_the_next_batch() -> None:
    repo, t, cache = FakeRepository(defaults=REMEMBERS), tenant_id(), ConfigCache()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    for n in range(3):
        await run(repo, [[figure(t, f"rep-{n}", "0.3", at)]], cache)
    assert (cache.loads, repo.calls["config_version"]) == (1, 2)
    await repo.set_overrides(t, {"quota_thresholds": ["0.4"]})  # through the other replica's API
    await run(repo, [[figure(t, "rep-0", "0.45", at + timedelta(minutes=1))]], cache)
    assert cache.loads == 2
    assert ("rep-0", "quota_40", "2026-Q4") in ledger(repo, t)


async def test_a_registry_entry_changes_the_calendar_the_next_records_are_judged_in() -> None:
    repo, t, cache = FakeRepository(defaults=REMEMBERS), tenant_id(), ConfigCache()
    closed = datetime(2026, 9, 30, 23, 30, tzinfo=UTC)  # 2026-Q3 in UTC, 2026-Q4 in Tokyo
    entry = TenantUpserted(tenant=t, timezone="UTC", currency="EUR", fiscal_start_month=1, token_sha256="ab" * 32,
                           active=True)
    await run(repo, [[incoming(t, "tenant.upserted", entry, closed)], [rep(t, "rep-9")]], cache)
    tokyo = entry.model_copy(update={"timezone": "Asia/Tokyo"})
    solo = DealUpserted(deal_id="d9", rep_id="rep-9", amount=Decimal(1), currency="EUR", stage="won",
                        closed_at=closed, updated_at=closed)
    # the rep's zone is Berlin, but a quarter is the tenant's
    await run(repo, [[incoming(t, "tenant.upserted", tokyo, closed), incoming(t, "deal.upserted", solo, closed)]],
              cache)
    assert ("rep-9", "first_win", "2026-Q4") in ledger(repo, t)


# --- period closes --------------------------------------------------------------------------------------


async def test_leaderboards_at_a_period_close_come_from_deals_when_kpi_publishes_no_figure() -> None:
    repo, t, cache = FakeRepository(defaults=REMEMBERS), tenant_id(), ConfigCache()
    entry = TenantUpserted(tenant=t, timezone="Europe/Berlin", currency="EUR", fiscal_start_month=1,
                           token_sha256="ab" * 32, active=True,
                           rates=[ExchangeRate(currency="USD", valid_from=date(2026, 1, 1), rate=Decimal("0.9"))])
    october = datetime(2026, 10, 10, 9, tzinfo=UTC)
    await run(repo, [[incoming(t, "tenant.upserted", entry, october), rep(t, "rep-1"), rep(t, "rep-2"),
                      rep(t, "rep-3"), rep(t, "rep-4", team="team-2"),
                      won(t, "a", "rep-1", "50000", october), won(t, "b", "rep-2", "30000", october),
                      won(t, "c", "rep-2", "30000", october, currency="USD"),  # 27,000 EUR: 57,000 in all
                      won(t, "d", "rep-3", "10000", october), won(t, "e", "rep-4", "5000", october)]], cache)
    assert not repo.attainment  # no figure at all
    assert await settle_tenant(repo, cache, t, NOW) > 0
    finishes = {(k[0], k[1]): v for k, v in ledger(repo, t).items() if k[1].startswith("leaderboard") and
                k[2] == "2026-10"}
    assert finishes[("rep-2", "leaderboard_1_won_revenue")][0] == Decimal("57000.0")
    assert ("rep-1", "leaderboard_2_won_revenue") in finishes
    assert ("rep-3", "leaderboard_3_won_revenue") in finishes
    assert ("rep-4", "leaderboard_1_won_revenue") in finishes  # the only rep of team-2
    assert ("rep-2", "leaderboard_1_deals_won") in finishes
    assert await settle_tenant(repo, cache, t, NOW) == 0  # settled once


# --- one cheer per win; history is never celebrated (issue 18, item 4) -----------------------------------


def reached(repo: FakeRepository) -> list[Any]:
    return [event.data for _, _, event in repo.outbox if event.type == REACHED]


async def test_a_first_win_announces_once_with_both_milestones_in_it() -> None:
    repo, t = FakeRepository(), tenant_id()
    closed = NOW - timedelta(hours=1)
    assert await run(repo, [[rep(t, "rep-1"), won(t, "d1", "rep-1", "50000", closed)]]) == 1
    [cheer] = reached(repo)
    assert cheer.milestone == "first_win_ever" and cheer.milestones == ["first_win_ever", "first_win"]
    assert cheer.headline == "First win ever for Rep-1: a €50,000.00 deal! Also: first win of 2026-Q4."
    assert cheer.facts["milestones"] == ["first_win_ever", "first_win"]
    statuses = {k[3]: r.entry.status for k, r in repo.ledger.items() if k[0] == t}
    assert statuses == {"first_win_ever": "celebrated", "first_win": "bundled"}
    # the trophy case lists the one celebration, and a redelivery announces nothing
    assert [c["milestone"] for c in await repo.celebrations(t, scope_id=None, period=None, limit=10)] == [
        "first_win_ever"]
    assert await run(repo, [[won(t, "d1", "rep-1", "50000", closed)]]) == 0


async def test_a_second_win_that_is_a_record_and_the_quarters_first_is_one_cheer_led_by_the_record() -> None:
    repo, t = FakeRepository(), tenant_id()
    await run(repo, [[rep(t, "rep-1"), won(t, "d1", "rep-1", "20000", NOW - timedelta(days=1, hours=1))]])
    # d1 closed in 2026-Q4 too; a deal in Q4 of a bigger amount is a record but not the quarter's first
    assert await run(repo, [[won(t, "d2", "rep-1", "90000", NOW - timedelta(hours=1))]]) == 1
    assert [c.milestones for c in reached(repo)] == [["first_win_ever", "first_win"], ["personal_record"]]


async def test_a_figure_crossing_two_thresholds_at_once_is_one_cheer_highest_first() -> None:
    repo, t = FakeRepository(), tenant_id()
    assert await run(repo, [[figure(t, "rep-1", "1.05", NOW - timedelta(minutes=5))]]) == 1
    [cheer] = reached(repo)
    assert cheer.milestones == ["quota_100", "quota_50"]
    assert cheer.headline.endswith("Also: 50% of the won revenue target.")


async def test_an_imported_year_of_history_celebrates_nothing_and_is_remembered() -> None:
    repo, t = FakeRepository(), tenant_id()
    year = [won(t, f"d{i}", "rep-1", str(10_000 + 1_000 * i), NOW - timedelta(days=365 - 30 * i)) for i in range(12)]
    assert await run(repo, [[rep(t, "rep-1"), *year]]) == 0
    assert reached(repo) == []
    statuses = Counter(r.entry.status for k, r in repo.ledger.items() if k[0] == t)
    assert statuses["history"] > 0 and set(statuses) == {"history"}
    # what history reached stays reached: the same deals again, live, celebrate nothing either
    assert await run(repo, [[won(t, "d0", "rep-1", "10000", NOW - timedelta(days=365),
                                 updated=NOW - timedelta(minutes=1))]]) == 0


async def test_a_figure_moved_by_old_inputs_or_of_a_closed_period_is_history() -> None:
    repo, t = FakeRepository(), tenant_id()
    # kpi published it now, but the newest input behind it was 40 days old (a backfill)
    backfill = figure(t, "rep-1", "1.2", NOW - timedelta(minutes=1), source_time=NOW - timedelta(days=40))
    assert await run(repo, [[backfill]]) == 0
    closed_period = figure(t, "rep-2", "1.2", NOW - timedelta(minutes=1), period="2026-Q2",
                           period_end=datetime(2026, 6, 30, 22, tzinfo=UTC))
    assert await run(repo, [[closed_period]]) == 0
    live = figure(t, "rep-3", "1.2", NOW - timedelta(minutes=1), source_time=NOW - timedelta(minutes=2))
    assert await run(repo, [[live]]) == 1
    assert {k[2] for k, r in repo.ledger.items() if k[0] == t and r.entry.status == "history"} == {"rep-1", "rep-2"}


async def test_the_horizon_is_the_tenants_to_set() -> None:
    repo, t = FakeRepository(), tenant_id()
    await repo.set_overrides(t, {"history_horizon_hours": 24 * 7})
    assert await run(repo, [[rep(t, "rep-1"), won(t, "d1", "rep-1", "50000", NOW - timedelta(days=5))]]) == 1
    assert await run(repo, [[rep(t, "rep-2"), won(t, "d2", "rep-2", "50000", NOW - timedelta(days=8))]]) == 0


# --- days off: holidays and time off (issue 18, item 3) -------------------------------------------------


def easter_calls(t: str, rep_id: str) -> list[Incoming]:
    """5 calls a day on Wed 1, Thu 2, Tue 7 and Wed 8 April 2026 and on Thu 9: Good Friday (3rd) and Easter
    Monday (6th) are public holidays in Germany, and nothing is logged on them."""
    days = [datetime(2026, 4, d, 8, tzinfo=UTC) for d in (1, 2, 7, 8, 9)]
    return [activity(t, f"{rep_id}-{d:%d}-{k}", rep_id, d + timedelta(minutes=10 * k)) for d in days
            for k in range(5)]


def registry(t: str, holidays: Holidays | None) -> Incoming:
    entry = TenantUpserted(tenant=t, timezone="Europe/Berlin", currency="EUR", fiscal_start_month=1,
                           token_sha256="ab" * 32, active=True, holidays=holidays)
    return incoming(t, "tenant.upserted", entry, datetime(2026, 3, 1, tzinfo=UTC))


async def test_a_streak_across_public_holidays_continues() -> None:
    repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
    await run(repo, [[registry(t, Holidays(country="DE")), rep(t, "rep-1")], easter_calls(t, "rep-1")])
    assert set(ledger(repo, t)) == {("rep-1", "activity_streak", "2026-04-01")}
    # the same week without the holiday calendar: Good Friday is a silent business day and ends the run
    other, u = FakeRepository(defaults=REMEMBERS), tenant_id()
    await run(other, [[registry(u, None), rep(u, "rep-1")], easter_calls(u, "rep-1")])
    assert ledger(other, u) == {}


async def test_a_streak_across_time_off_continues_and_a_cancelled_one_counts_as_work() -> None:
    days = [datetime(2026, 11, d, 8, tzinfo=UTC) for d in (2, 3, 5, 6, 9)]  # Wednesday the 4th off
    for cancelled, expected in ((False, {("rep-1", "activity_streak", "2026-11-02")}), (True, set())):
        repo, t = FakeRepository(defaults=REMEMBERS), tenant_id()
        leave = TimeOffSet(time_off_id="l-1", rep_id="rep-1", first_day=date(2026, 11, 4), last_day=date(2026, 11, 4),
                           cancelled=cancelled)
        calls = [activity(t, f"c-{d:%d}-{k}", "rep-1", d + timedelta(minutes=k)) for d in days for k in range(5)]
        await run(repo, [[registry(t, None), rep(t, "rep-1"), incoming(t, "time_off.set", leave, days[0])], calls])
        assert set(ledger(repo, t)) == expected, cancelled


# --- contests (issue 22, item 4) ------------------------------------------------------------------------


async def race_with_ticks(repo: FakeRepository, t: str, cache: ConfigCache) -> int:
    """Each revision in its own batch at its minute, the timer ticking in between (twice each time, as two
    replicas would); returns the celebrations made."""
    made, ticks = 0, list(TICKS)
    for m, record in race(t):
        while ticks and ticks[0] < m:
            tick = ticks.pop(0)
            made += await settle_leads(repo, cache, t, minutes(tick))
            made += await settle_leads(repo, ConfigCache(), t, minutes(tick))  # the other replica
        made += await handle_batch(repo, cache, [record], minutes(m))
    for tick in ticks:
        made += await settle_leads(repo, cache, t, minutes(tick))
    return made


def contest_ledger(repo: FakeRepository, t: str) -> set[tuple[str, str, str, str]]:
    """(scope id, milestone, occasion, status) of the tenant's contest rows."""
    return {(k[2], k[3], k[5], r.entry.status) for k, r in repo.ledger.items() if k[0] == t and k[4] == "c-1"}


async def test_a_contests_start_each_lasting_lead_and_its_winners_are_celebrated_once() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    assert await race_with_ticks(repo, t, cache) == 6
    assert contest_ledger(repo, t) == {
        ("c-1", "contest_started", "", "celebrated"),
        ("ann", "contest_lead", minutes(9).isoformat(), "celebrated"),  # ann from 5 was tied at 8: not yet
        ("bob", "contest_lead", minutes(70).isoformat(), "celebrated"),  # bob from 30: ann took it back at 38
        ("ann", "contest_lead", minutes(90).isoformat(), "celebrated"),  # ann again, after bob was celebrated
        ("ann", "contest_won", "", "celebrated"), ("bob", "contest_won", "", "celebrated")}
    events = reached(repo)
    assert len({e.celebration_id for e in events}) == len(events) == 6
    assert [(e.scope, e.milestone) for e in events][:2] == [("contest", "contest_started"), ("rep", "contest_lead")]
    # (the tenant has no registry entry: amounts without a currency)
    assert events[1].headline == "Ann took the lead in November Sprint with 150.00, 50.00 ahead of Bob!"
    assert events[-2].headline == "Ann won November Sprint with 400.00 and takes home a weekend in Rome!"
    # the whole race again, and the timer again: nothing more
    assert await run(repo, [[record for _, record in race(t)]], cache, now=minutes(200)) == 0
    assert await settle_leads(repo, cache, t, minutes(200)) == 0
    assert len(reached(repo)) == 6


async def test_a_lead_is_celebrated_when_the_timer_runs_exactly_at_the_debounce_and_not_a_moment_before() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    started = [record for m, record in race(t) if m <= 9]
    await run(repo, [started], cache, now=minutes(9))
    assert await settle_leads(repo, cache, t, minutes(19) - timedelta(microseconds=1)) == 0
    assert await settle_leads(repo, cache, t, minutes(19)) == 1
    assert await settle_leads(repo, ConfigCache(), t, minutes(19)) == 0  # another replica's timer
    assert await settle_leads(repo, cache, t, minutes(29)) == 0


async def test_the_same_race_in_one_batch_makes_the_same_celebrations_of_the_leads_it_shows() -> None:
    ticking, t = FakeRepository(), "same-tenant"
    await race_with_ticks(ticking, t, ConfigCache())
    batched = FakeRepository()
    race_records = [record for _, record in race(t)]
    # one batch, then redelivered in two: no timer ran before the end, so ann's last lead (from 90 to the end)
    # was never judged while the contest ran; every other lead is the revision after it that shows it lasted
    assert await run(batched, [race_records, race_records[:4], race_records[4:]], now=minutes(181)) == 5
    assert await settle_leads(batched, ConfigCache(), t, minutes(181)) == 0
    assert contest_ledger(ticking, t) - contest_ledger(batched, t) == {
        ("ann", "contest_lead", minutes(90).isoformat(), "celebrated")}
    assert {e.celebration_id for e in reached(batched)} < {e.celebration_id for e in reached(ticking)}


async def test_the_lead_debounce_is_the_tenants_setting() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    await repo.set_overrides(t, {"contest_lead_debounce_s": 60})
    await run(repo, [[record for m, record in race(t) if m <= 5]], cache, now=minutes(5))
    assert await settle_leads(repo, cache, t, minutes(6)) == 1


async def test_a_stale_or_redelivered_revision_changes_nothing() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    records = [record for m, record in race(t) if m <= 30]
    await run(repo, [records], cache, now=minutes(30))
    held = repo.contest_rows[(t, "c-1")]
    assert (held.latest.revision, held.candidate, held.since) == (6, "bob", minutes(30))
    assert await run(repo, [records[::-1], records[2:4]], cache, now=minutes(31)) == 0
    assert repo.contest_rows[(t, "c-1")] == held


async def test_a_cancelled_contest_celebrates_nothing_and_its_lead_is_never_judged_again() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    cancelled = contest(t, 1, NOW, {"ann": "10"}, status="cancelled", starts_at=NOW)
    assert await run(repo, [[cancelled]], cache) == 0
    other = tenant_id()
    leading = [record for m, record in race(other) if 0 < m <= 5]  # first seen running, ann alone from 5
    assert await run(repo, [leading], cache, now=minutes(5)) == 1  # its start
    stop = contest(other, 9, minutes(7), {"ann": "10"}, status="cancelled", starts_at=NOW, ends_at=minutes(180))
    assert await run(repo, [[stop]], cache, now=minutes(7)) == 0
    assert await settle_leads(repo, cache, other, minutes(60)) == 0
    assert await repo.leading_tenants(minutes(60)) == []


async def test_nothing_is_celebrated_of_a_lead_once_the_contest_has_ended() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    ends = contest(t, 2, NOW, {"ann": "10"}, starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(minutes=5))
    await run(repo, [[ends]], cache)
    assert await settle_leads(repo, cache, t, NOW + timedelta(minutes=5)) == 0  # kpi has not said final yet
    assert await repo.leading_tenants(NOW + timedelta(minutes=5)) == []


async def test_a_contest_first_seen_final_long_after_its_start_is_won_but_its_start_is_history() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    over = contest(t, 40, NOW, {"ann": "9", "bob": "5"}, status="final", starts_at=NOW - timedelta(days=30),
                   ends_at=NOW - timedelta(minutes=1))
    assert await run(repo, [[over]], cache) == 2
    assert contest_ledger(repo, t) == {
        ("c-1", "contest_started", "", "history"), ("ann", "contest_won", "", "celebrated"),
        ("bob", "contest_won", "", "celebrated")}
    replayed = contest(t, 40, NOW, {"ann": "9", "bob": "5"}, status="final", starts_at=NOW - timedelta(days=30),
                       ends_at=NOW - timedelta(minutes=1))
    assert await run(repo, [[replayed]], cache, now=NOW + timedelta(days=9)) == 0


async def test_a_team_contest_celebrates_teams() -> None:
    repo, t, cache = FakeRepository(), tenant_id(), ConfigCache()
    teams = contest(t, 3, NOW, {"team-a": "9", "team-b": "5"}, status="final", participants="teams",
                    starts_at=NOW - timedelta(hours=5), ends_at=NOW)
    assert await run(repo, [[teams]], cache) == 3
    assert {(e.scope, e.scope_id, e.milestone) for e in reached(repo)} == {
        ("contest", "c-1", "contest_started"), ("team", "team-a", "contest_won"), ("team", "team-b", "contest_won")}


async def test_a_batch_of_many_revisions_reads_and_writes_its_contests_once() -> None:
    repo, t = FakeRepository(), tenant_id()
    first = [record for _, record in race(t)]
    second = [contest(t, r, minutes(r), {"cid": str(r)}, contest_id="c-2", starts_at=NOW) for r in range(1, 8)]
    await run(repo, [[*first, *second]], now=minutes(181))
    assert (repo.calls["contests"], repo.calls["save_contests"], repo.calls["record"]) == (1, 1, 1)
    assert {c.latest.revision for c in repo.contest_rows.values()} == {10, 7}
