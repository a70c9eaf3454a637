"""kpi's handler on an in-memory repository (fake.py): which tallies a batch moves and which figures it publishes.

No PostgreSQL: the handler tier of STYLE.md rule 7. The integration tests (tests/integration/kpi) pin the
same behaviour on the real repository.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from pydantic import BaseModel

from services.kpi import handlers
from services.kpi.figures import figures as figures_of
from services.kpi.handlers import MODELS, NAMESPACE, make_handler
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Holidays,
    RepUpserted,
    TargetSet,
    TenantUpserted,
    TimeOffSet,
)
from shared.periods import business_share, period_bounds
from shared.workdays import HolidayCalendar, days_off, working_share
from tests.unit.services.kpi.fake import START, FakeRepository

TZ = "Europe/Berlin"
NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)  # fixed: never today's date
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1"}
NO_CONNECTION = cast(asyncpg.Connection, None)  # the fake repository needs none
ANN_Q4_WON = ("rep", "ann", "2026-Q4", "won_revenue")


class Kpi:
    """kpi's handler over a fresh tenant and a fake repository."""

    def __init__(self, *, publish_all: bool = False, repository: FakeRepository | None = None,
                 now: datetime = NOW, ext: dict[str, str] = EXT) -> None:
        self.tenant = f"kpi-{uuid.uuid4().hex[:10]}"
        self.repo = repository or FakeRepository()
        self.ext = ext
        rt = SimpleNamespace(clock=FixedClock(now), settings=SimpleNamespace(kpi_publish_all_figures=publish_all))
        self.handle = make_handler(rt, repository=lambda _conn: self.repo)

    async def apply(self, *records: Incoming) -> list[CloudEvent]:
        """Apply one batch; the events it published (and clear the outbox)."""
        await self.handle(NO_CONNECTION, list(records))
        sent, self.repo.outbox[:] = list(self.repo.outbox), []
        assert all(topic == topics.ATTAINMENT.name for topic, _, _ in sent)
        return [event for _, _, event in sent]

    def msg(self, data: BaseModel, type_: str, at: datetime = NOW, event_id: str | None = None) -> Incoming:
        return Incoming("t", 0, 0, CloudEvent(event_id or str(uuid.uuid4()), type_, "api", at, self.tenant, {},
                                              self.ext), data)

    def rep(self, team: str, at: datetime = NOW, rep: str = "ann") -> Incoming:
        return self.msg(RepUpserted(rep_id=rep, name=rep.title(), team_id=team, timezone=TZ), "rep.upserted", at)

    def target(self, value: str, scope: str = "rep", scope_id: str = "ann", metric: str = "won_revenue",
               period: str = "2026-Q4", at: datetime = NOW) -> Incoming:
        return self.msg(TargetSet(scope=scope, scope_id=scope_id, metric=metric, period=period,
                                  value=Decimal(value)), "target.set", at)

    def deal(self, deal: str, amount: str, day: int, stage: str = "won", version: int = 0,
             event_id: str | None = None, month: int = 10) -> Incoming:
        closed = datetime(2026, month, day, 10, tzinfo=UTC)
        return self.msg(DealUpserted(deal_id=deal, rep_id="ann", amount=Decimal(amount), currency="EUR",
                                     stage=stage, created_at=closed - timedelta(days=3), closed_at=closed,
                                     updated_at=closed + timedelta(minutes=version)),
                        "deal.upserted", event_id=event_id)

    def delete(self, deal: str, at: datetime) -> Incoming:
        return self.msg(DealDeleted(deal_id=deal, updated_at=at), "deal.deleted")

    def call(self, activity: str, day: int) -> Incoming:
        return self.msg(ActivityLogged(activity_id=activity, rep_id="ann", kind="call",
                                       occurred_at=datetime(2026, 10, day, 9, tzinfo=UTC)), "activity.logged")

    def won(self, scope: str, scope_id: str, period: str) -> Decimal:
        return self.repo.tally(self.tenant, scope, scope_id, period).won_revenue


def figures(events: list[CloudEvent]) -> list[tuple[str, str, str, str, Decimal, Decimal | None]]:
    out = []
    for event in events:
        data = cast(AttainmentUpdated, event.data)
        out.append((data.scope.value, data.scope_id, data.period, str(data.metric), data.actual, data.target))
    return out


async def _ann_in_east_with_a_target(kpi: Kpi, value: str = "10000") -> None:
    await kpi.apply(kpi.rep("east"), kpi.target(value))


async def test_a_won_deal_moves_the_reps_and_the_teams_won_revenue_and_publishes_only_the_targeted_figure() -> None:
    kpi = Kpi()
    await _ann_in_east_with_a_target(kpi)
    events = await kpi.apply(kpi.deal("d1", "1000.50", 5))
    for scope, owner in (("rep", "ann"), ("team", "east")):
        for period in ("2026-10", "2026-Q4", "2026"):
            assert kpi.won(scope, owner, period) == Decimal("1000.50")
    assert figures(events) == [(*ANN_Q4_WON, Decimal("1000.50"), Decimal("10000"))]
    data = cast(AttainmentUpdated, events[0].data)
    assert data.attainment == Decimal("0.1000") and data.team_id == "east" and data.name == "Ann"


async def test_an_edit_takes_the_old_version_out_and_puts_the_new_one_in() -> None:
    kpi = Kpi()
    await _ann_in_east_with_a_target(kpi)
    await kpi.apply(kpi.deal("d1", "1000", 5))
    events = await kpi.apply(kpi.deal("d1", "1500", 5, version=1))
    assert kpi.won("rep", "ann", "2026-Q4") == kpi.won("team", "east", "2026-Q4") == Decimal("1500")
    assert figures(events) == [(*ANN_Q4_WON, Decimal("1500"), Decimal("10000"))]
    await kpi.apply(kpi.deal("d1", "1500", 5, stage="lost", version=2))
    tally = kpi.repo.tally(kpi.tenant, "rep", "ann", "2026-Q4")
    assert (tally.won_revenue, tally.deals_won, tally.deals_lost) == (Decimal(0), 0, 1)


async def test_a_duplicate_or_a_stale_version_changes_nothing() -> None:
    kpi = Kpi()
    await _ann_in_east_with_a_target(kpi)
    first = kpi.deal("d1", "1000", 5, version=1)
    await kpi.apply(first)
    stored = {key: list(vector) for key, vector in kpi.repo.of(kpi.tenant).tallies.items()}
    assert await kpi.apply(first) == []  # the same record delivered again
    assert await kpi.apply(kpi.deal("d1", "9999", 5, version=0)) == []  # an older version, arriving late
    same_time = kpi.deal("d1", "7777", 5, version=1, event_id="0")  # same updated_at, lower event id
    assert await kpi.apply(same_time) == []
    assert kpi.repo.of(kpi.tenant).tallies == stored
    assert len(kpi.repo.announced) == 2  # nothing moved: nothing announced


async def test_a_deletion_takes_the_deal_out_and_a_late_older_version_stays_dead() -> None:
    kpi = Kpi()
    await _ann_in_east_with_a_target(kpi)
    await kpi.apply(kpi.deal("d1", "1000", 5), kpi.deal("d2", "250", 6))
    events = await kpi.apply(kpi.delete("d1", datetime(2026, 10, 8, tzinfo=UTC)))
    assert kpi.won("rep", "ann", "2026-Q4") == kpi.won("team", "east", "2026") == Decimal("250")
    assert figures(events) == [(*ANN_Q4_WON, Decimal("250"), Decimal("10000"))]
    assert await kpi.apply(kpi.deal("d1", "1000", 5, version=1)) == []  # older than the deletion
    assert kpi.won("rep", "ann", "2026-Q4") == Decimal("250")


async def test_a_rep_move_re_attributes_their_history_from_the_move_on() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east", at=datetime(2026, 9, 1, tzinfo=UTC)),
                    kpi.target("5000", scope="team", scope_id="west"))
    await kpi.apply(kpi.deal("d1", "1000", 5), kpi.deal("d2", "2000", 15), kpi.call("a1", 16))
    assert kpi.won("team", "east", "2026-10") == Decimal("3000")
    events = await kpi.apply(kpi.rep("west", at=datetime(2026, 10, 10, tzinfo=UTC)))
    assert kpi.won("team", "east", "2026-10") == Decimal("1000")  # closed before the move: stays
    assert kpi.won("team", "west", "2026-10") == Decimal("2000")  # closed after it: follows the rep
    assert kpi.repo.tally(kpi.tenant, "team", "west", "2026-10").calls == 1
    assert kpi.repo.tally(kpi.tenant, "team", "east", "2026-10").calls == 0
    assert kpi.won("rep", "ann", "2026-10") == Decimal("3000")  # the rep's own figures do not move
    assert figures(events) == [("team", "west", "2026-Q4", "won_revenue", Decimal("2000"), Decimal("5000"))]


async def test_a_newcomer_in_a_batch_with_their_deals_a_deletion_and_a_move_counts_as_if_one_at_a_time() -> None:
    # the rep's first team is joined before the batch's other roster and deletion events (it holds from the
    # start of time wherever its event falls); the result must equal applying the records one by one
    records = lambda kpi: [kpi.deal("d1", "1000", 5), kpi.deal("d2", "500", 6),  # noqa: E731
                           kpi.delete("d1", datetime(2026, 10, 8, tzinfo=UTC)),
                           kpi.rep("east", at=datetime(2026, 10, 1, tzinfo=UTC)),
                           kpi.rep("west", at=datetime(2026, 10, 5, 23, tzinfo=UTC)), kpi.call("a1", 4)]
    batched, one_by_one = Kpi(), Kpi()
    await batched.apply(*records(batched))
    for record in records(one_by_one):
        await one_by_one.apply(record)
    assert batched.won("rep", "ann", "2026-10") == Decimal("500")
    assert batched.won("team", "west", "2026-10") == Decimal("500")  # d2 closed after the move
    assert batched.won("team", "east", "2026-10") == Decimal(0)  # d1, before it, is deleted
    assert batched.repo.tally(batched.tenant, "team", "east", "2026-10").calls == 1  # the call, before the move
    nonzero = lambda kpi: {k: v for k, v in kpi.repo.of(kpi.tenant).tallies.items() if any(v)}  # noqa: E731
    assert nonzero(batched) == nonzero(one_by_one)


async def test_a_batch_that_moves_reps_holds_the_tenant_alone_deals_and_calls_share_it() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.call("a0", 4))  # the tenant's first batch: its calendar is new, it is recounted alone
    assert kpi.repo.locks == [(kpi.tenant, False), (kpi.tenant, True)]
    kpi.repo.locks.clear()
    await kpi.apply(kpi.deal("d1", "1000", 5), kpi.call("a1", 6))
    await kpi.apply(kpi.rep("east"), kpi.deal("d2", "500", 7))
    assert kpi.repo.locks == [(kpi.tenant, False), (kpi.tenant, True)]


async def test_a_reps_roster_events_in_every_order_give_the_same_history_and_the_same_figures() -> None:
    """Four roster events of one rep (east from 1 Sep, west from 10 Oct, east again from 14 Oct, north from 20
    Oct), delivered in each of their 24 orders, one per batch, after the rep's deals and calls: the same dated
    teams and the same team tallies every time. Before, the first event to arrive held from the start of
    time and each later one was a move from its arrival's state: 21 of the 24 orders gave another history."""
    roster = [("east", datetime(2026, 9, 1, tzinfo=UTC)), ("west", datetime(2026, 10, 10, tzinfo=UTC)),
              ("east", datetime(2026, 10, 14, tzinfo=UTC)), ("north", datetime(2026, 10, 20, tzinfo=UTC))]
    histories, tallies = set(), []
    for order in itertools.permutations(range(len(roster))):
        kpi = Kpi()
        await kpi.apply(kpi.deal("d1", "1000", 5), kpi.deal("d2", "2000", 12), kpi.deal("d3", "4000", 16),
                        kpi.deal("d4", "8000", 22), kpi.call("a1", 11), kpi.call("a2", 21))
        for i in order:
            await kpi.apply(kpi.rep(roster[i][0], at=roster[i][1]))
        histories.add(tuple(sorted(kpi.repo.of(kpi.tenant).memberships["ann"].items())))
        tallies.append({k: v for k, v in kpi.repo.of(kpi.tenant).tallies.items() if any(v) and k[0] == "team"})
    assert histories == {((START, "east"), (datetime(2026, 10, 10, tzinfo=UTC), "west"),
                          (datetime(2026, 10, 14, tzinfo=UTC), "east"), (datetime(2026, 10, 20, tzinfo=UTC), "north"))}
    assert all(t == tallies[0] for t in tallies)
    kpi = Kpi()
    kpi.repo.of(kpi.tenant).tallies = tallies[0]
    assert [kpi.won("team", team, "2026-10") for team in ("east", "west", "north")] == [
        Decimal(5000), Decimal(2000), Decimal(8000)]


async def test_targets_set_twice_in_a_batch_the_newest_version_wins_whatever_the_order() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east"), kpi.deal("d1", "1000", 5))
    events = await kpi.apply(kpi.target("8000", at=NOW), kpi.target("2000", at=NOW - timedelta(hours=1)))
    assert figures(events) == [(*ANN_Q4_WON, Decimal("1000"), Decimal("8000"))]
    events = await kpi.apply(kpi.target("4000", at=NOW), kpi.target("5000", at=NOW))  # equal versions: the last
    assert figures(events) == [(*ANN_Q4_WON, Decimal("1000"), Decimal("5000"))]


async def test_setting_a_target_publishes_that_figure() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east"), kpi.deal("d1", "1000", 5), kpi.call("a1", 6))
    events = await kpi.apply(kpi.target("4", metric="calls", period="2026-10"))
    assert figures(events) == [("rep", "ann", "2026-10", "calls", Decimal(1), Decimal(4))]
    assert cast(AttainmentUpdated, events[0].data).attainment == Decimal("0.2500")


async def test_two_records_moving_one_key_in_a_batch_publish_it_once_with_the_latest_figures() -> None:
    kpi = Kpi()
    await _ann_in_east_with_a_target(kpi)
    events = await kpi.apply(kpi.deal("d1", "1000.50", 5), kpi.deal("d2", "2000.25", 6), kpi.call("a1", 7))
    assert figures(events) == [(*ANN_Q4_WON, Decimal("3000.75"), Decimal("10000"))]
    assert cast(AttainmentUpdated, events[0].data).attainment == Decimal("0.3001")


async def test_publish_all_publishes_the_untargeted_figures_too_once_each() -> None:
    kpi = Kpi(publish_all=True)
    await _ann_in_east_with_a_target(kpi)
    published = figures(await kpi.apply(kpi.deal("d1", "1000", 5), kpi.deal("d2", "500", 6), kpi.call("a1", 7)))
    by_key = {f[:4]: f[4:] for f in published}
    assert len(by_key) == len(published)
    assert by_key[ANN_Q4_WON] == (Decimal("1500"), Decimal("10000"))
    assert by_key[("rep", "ann", "2026-10", "calls")] == (Decimal(1), None)
    assert by_key[("team", "east", "2026", "deals_won")] == (Decimal(2), None)
    assert ("team", "east", "2026-10", "avg_deal_size") in by_key


async def test_the_event_id_is_stable_and_changes_only_with_the_revision() -> None:
    def ce_id(tenant: str, revision: int) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{tenant}|rep|ann|2026-Q4|won_revenue|{revision}"))

    kpi = Kpi()
    setup = [kpi.rep("east"), kpi.target("10000")]
    won, edit = kpi.deal("d1", "1000", 5), kpi.deal("d1", "2000", 5, version=1)
    back = kpi.deal("d1", "1000", 5, version=2)
    batches = (setup, [won], [won], [edit], [back])
    ids = [[e.id for e in await kpi.apply(*batch)] for batch in batches]
    # the target's first figure, the win, nothing new (a duplicate), the edit, and the same figures as
    # the win again: a new revision, so a new id (a subscriber must not drop it as a replay)
    assert ids == [[ce_id(kpi.tenant, 1)], [ce_id(kpi.tenant, 2)], [], [ce_id(kpi.tenant, 3)], [ce_id(kpi.tenant, 4)]]
    again = Kpi()  # the same records applied from nothing again: the same ids
    again.tenant = kpi.tenant
    replayed = [[e.id for e in await again.apply(*batch)] for batch in batches]
    assert replayed == ids


# --- fair pace: the tenant's holidays and a rep's time off are days off (issue 18, item 3) ---------------------

BERLIN = ZoneInfo(TZ)
AFTER_CHRISTMAS = datetime(2026, 12, 29, 12, tzinfo=UTC)  # Tuesday; Christmas Day, Friday the 25th, was a holiday
EXT_EUR = {**EXT, "tenantcurrency": "EUR"}  # what ingest stamps on a tenant's events: its calendar, as registered
DECEMBER = period_bounds("2026-12", TZ)
BERLIN_HOLIDAYS = HolidayCalendar("DE", "BE")


def december_share(*time_off: tuple[date, date], now: datetime = AFTER_CHRISTMAS) -> Decimal:
    """What coaching counts: the working share of December 2026 with Berlin's holidays and `time_off` off."""
    off = days_off(BERLIN_HOLIDAYS, date(2026, 12, 1), date(2026, 12, 31), time_off)
    return working_share(*DECEMBER, now, BERLIN, off)


def registered(kpi: Kpi, holidays: Holidays | None) -> Incoming:
    return kpi.msg(TenantUpserted(tenant=kpi.tenant, timezone=TZ, currency="EUR", fiscal_start_month=1,
                                  token_sha256="00" * 32, active=True, holidays=holidays), "tenant.upserted")


def time_off(kpi: Kpi, time_off_id: str, first: date, last: date, *, at: datetime = AFTER_CHRISTMAS,
             cancelled: bool = False, rep: str = "ann") -> Incoming:
    return kpi.msg(TimeOffSet(time_off_id=time_off_id, rep_id=rep, first_day=first, last_day=last,
                              cancelled=cancelled), "time_off.set", at)


def by_scope(events: list[CloudEvent]) -> dict[str, AttainmentUpdated]:
    return {cast(AttainmentUpdated, e.data).scope.value: cast(AttainmentUpdated, e.data) for e in events}


async def _december_in_berlin(kpi: Kpi, *records: Incoming) -> dict[str, AttainmentUpdated]:
    """Ann in east, both with a December target of 22,000, the tenant's calendar DE-BE, `records` with them;
    then a win of 11,000 on the 10th: the rep's and the team's published figures."""
    await kpi.apply(registered(kpi, Holidays(country="DE", subdivision="BE")), kpi.rep("east"),
                    kpi.target("22000", period="2026-12"),
                    kpi.target("22000", scope="team", scope_id="east", period="2026-12"), *records)
    return by_scope(await kpi.apply(kpi.deal("d1", "11000", 10, month=12)))


async def test_a_reps_expected_counts_the_tenants_holidays_and_their_time_off_as_coaching_does() -> None:
    kpi = Kpi(now=AFTER_CHRISTMAS, ext=EXT_EUR)
    published = await _december_in_berlin(kpi, time_off(kpi, "t1", date(2026, 12, 28), date(2026, 12, 28)))
    mine, team = published["rep"], published["team"]
    rep_share, team_share = december_share((date(2026, 12, 28), date(2026, 12, 28))), december_share()
    expected = figures_of(Decimal(11000), Decimal(22000), rep_share)
    assert (mine.expected, mine.pace, mine.projected) == (expected.expected, expected.pace, expected.projected)
    # the team's pace has the holidays off, not a rep's leave
    assert team.expected == figures_of(Decimal(11000), Decimal(22000), team_share).expected
    plain = figures_of(Decimal(11000), Decimal(22000), business_share(*DECEMBER, AFTER_CHRISTMAS, TZ))
    # 13:00 in Berlin on Tuesday the 29th: 18 + 13/24 of the rep's 21 working days gone (0.882936), 19 + 13/24 of
    # the team's 22 (0.888257); Monday to Friday alone would say 20 + 13/24 of 23 (0.893115)
    assert (mine.expected, team.expected, plain.expected) == (
        Decimal("19424.5920"), Decimal("19541.6540"), Decimal("19648.5300"))


async def test_a_time_off_set_is_applied_not_dead_lettered_and_publishes_nothing_by_itself() -> None:
    assert MODELS["time_off.set"] is TimeOffSet  # a type kpi does not list is dead-lettered as unexpected
    kpi = Kpi(now=AFTER_CHRISTMAS, ext=EXT_EUR)
    await _december_in_berlin(kpi)
    announced = len(kpi.repo.announced)
    # no tally moves: the figures carry the new pace from their next change (the read API shows it at once)
    assert await kpi.apply(time_off(kpi, "t1", date(2026, 12, 28), date(2026, 12, 28))) == []
    assert len(kpi.repo.announced) == announced
    assert await kpi.repo.time_off(kpi.tenant, ["ann"], date(2026, 12, 1), date(2026, 12, 31)) == {
        "ann": [(date(2026, 12, 28), date(2026, 12, 28))]}
    rep = by_scope(await kpi.apply(kpi.deal("d2", "1000", 11, month=12)))["rep"]
    assert rep.expected == figures_of(rep.actual, rep.target, december_share((date(2026, 12, 28),) * 2)).expected


async def test_the_newest_version_of_a_time_off_wins_and_a_cancelled_one_is_no_day_off() -> None:
    kpi = Kpi(now=AFTER_CHRISTMAS, ext=EXT_EUR)
    first, then = AFTER_CHRISTMAS - timedelta(days=9), AFTER_CHRISTMAS - timedelta(days=8)
    # the newer version (the 28th) arrives first, the older one (the 21st to 23rd) late: the newer stays
    await _december_in_berlin(kpi, time_off(kpi, "t1", date(2026, 12, 28), date(2026, 12, 28), at=then),
                              time_off(kpi, "t1", date(2026, 12, 21), date(2026, 12, 23), at=first))
    await kpi.apply(time_off(kpi, "t1", date(2026, 12, 21), date(2026, 12, 23), at=first - timedelta(hours=1)))
    assert await kpi.repo.time_off(kpi.tenant, ["ann"], date(2026, 12, 1), date(2026, 12, 31)) == {
        "ann": [(date(2026, 12, 28), date(2026, 12, 28))]}
    await kpi.apply(time_off(kpi, "t1", date(2026, 12, 28), date(2026, 12, 28), at=then + timedelta(hours=1),
                             cancelled=True))
    assert await kpi.repo.time_off(kpi.tenant, ["ann"], date(2026, 12, 1), date(2026, 12, 31)) == {}
    published = by_scope(await kpi.apply(kpi.deal("d2", "1000", 11, month=12)))
    assert published["rep"].expected == published["team"].expected  # holidays alone, as for the team


async def test_a_holiday_calendar_recounts_nothing_and_counts_in_the_figures_of_its_own_batch() -> None:
    kpi = Kpi(now=AFTER_CHRISTMAS, ext=EXT_EUR)
    await kpi.apply(registered(kpi, None), kpi.rep("east"), kpi.target("22000", period="2026-12"))
    tallies = {key: list(vector) for key, vector in kpi.repo.of(kpi.tenant).tallies.items()}
    announced = len(kpi.repo.announced)
    assert await kpi.apply(registered(kpi, Holidays(country="DE", subdivision="BE"))) == []
    assert len(kpi.repo.announced) == announced  # not recounted: no figure moved
    assert kpi.repo.of(kpi.tenant).tallies == tallies
    rep = by_scope(await kpi.apply(registered(kpi, None), kpi.deal("d1", "11000", 10, month=12)))["rep"]
    assert rep.expected == figures_of(rep.actual, rep.target, business_share(*DECEMBER, AFTER_CHRISTMAS, TZ)).expected
    rep = by_scope(await kpi.apply(registered(kpi, Holidays(country="DE", subdivision="BE")),
                                   kpi.deal("d1", "11500", 10, month=12, version=1)))["rep"]
    assert rep.expected == figures_of(rep.actual, rep.target, december_share()).expected


# --- forecasts (issue 22): on the fake, the handler's part; tests/integration/kpi/test_forecasts.py on PostgreSQL


def _open(kpi: Kpi, deal: str, amount: str, expected: datetime | None, p: str | None, version: int = 0) -> Incoming:
    return kpi.msg(DealUpserted(deal_id=deal, rep_id="ann", amount=Decimal(amount), currency="EUR", stage="open",
                                created_at=datetime(2026, 9, 1, tzinfo=UTC), expected_close_at=expected,
                                probability=None if p is None else Decimal(p),
                                updated_at=datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=version)),
                   "deal.upserted")


async def test_a_targeted_won_revenue_figure_ahead_carries_its_forecast_and_an_ended_one_none() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east"), kpi.target("10000"), kpi.target("10000", period="2026-Q3"))
    events = await kpi.apply(kpi.deal("d1", "4000", 5), _open(kpi, "d2", "6000", datetime(2026, 12, 1, tzinfo=UTC),
                                                               "0.5"))
    data = cast(AttainmentUpdated, next(e.data for e in events if cast(AttainmentUpdated, e.data).period == "2026-Q4"))
    assert data.forecast is not None
    assert (data.forecast.closed, data.forecast.pipeline, data.forecast.gap) == (Decimal(4000), Decimal(6000),
                                                                                  Decimal(6000))
    assert (data.forecast.probability, data.forecast.method) == (Decimal("0.5000"), "exact")
    # Q3 ended before NOW: a figure moved there (a late win) has no forecast
    late = await kpi.apply(kpi.deal("d3", "100", 5, month=9))
    q3 = cast(AttainmentUpdated, late[0].data)
    assert q3.period == "2026-Q3" and q3.forecast is None


async def test_an_open_deal_that_moves_only_a_forecast_republishes_the_figure_and_an_unchanged_one_does_not() -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east"), kpi.target("10000"))
    december = datetime(2026, 12, 1, tzinfo=UTC)
    await kpi.apply(_open(kpi, "d2", "6000", december, "0.5"))
    moved = await kpi.apply(_open(kpi, "d2", "6000", december, "0.9", version=1))
    assert figures(moved) == [(*ANN_Q4_WON, Decimal(0), Decimal("10000"))]
    assert cast(AttainmentUpdated, moved[0].data).forecast.weighted == Decimal("5400.0000")  # type: ignore[union-attr]
    # the same forecast again (a new version, nothing that counts changed): nothing to say
    assert await kpi.apply(_open(kpi, "d2", "6000", december, "0.9", version=2)) == []
    # moved to next quarter: Q4's forecast loses it (Q1 2027 has no target: nothing published there)
    gone = await kpi.apply(_open(kpi, "d2", "6000", datetime(2027, 1, 10, tzinfo=UTC), "0.9", version=3))
    assert cast(AttainmentUpdated, gone[0].data).forecast.open_deals == 0  # type: ignore[union-attr]


async def test_an_activity_alone_neither_republishes_nor_recomputes_a_won_revenue_forecast(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kpi = Kpi()
    await kpi.apply(kpi.rep("east"), kpi.target("10000"), kpi.target("5", metric="calls"))
    await kpi.apply(_open(kpi, "d2", "6000", datetime(2026, 12, 1, tzinfo=UTC), "0.5"))
    asked: list[object] = []
    real = handlers.forecasts

    async def counted(*args: object, **kwargs: object) -> object:
        asked.append(args[3])
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(handlers, "forecasts", counted)
    events = await kpi.apply(kpi.call("a1", 6))
    assert [cast(AttainmentUpdated, e.data).metric for e in events] == ["calls"]  # won_revenue: nothing new
    assert all(not wanted for wanted in asked)  # and no forecast computed for it
