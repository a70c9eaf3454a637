"""A seeded sales quarter as the contract's canonical events (pure: no I/O, no clock).

`build_scenario(seed, quarter)` returns an org (teams with a manager, reps with a profile and a
quarterly `won_revenue` target) and the time-ordered schedule of canonical events that plays
the quarter: roster and targets at the start, then deals (created, progressed, won or lost, a few
amount edits, reopened-then-won, deleted) and activities. Each scheduled event carries the
fraction of the quarter at which it is due. About 2% of the events are re-sent verbatim later
(ingest answers "duplicate"), and a few intermediate deal versions are delivered after the
version that superseded them (stale by `updated_at`): neither may change a number.

Profiles shape the story: strong reps (~25%) end above their target, steady reps (~45%) near
it, slipping reps (~30%) start fine, stall after the first month and stay well below 70% of
pace from mid-quarter on, which is what check-ins are for.

The org keeps a calendar: nobody works on weekends, on the tenant's holidays (Berlin's public holidays and
the company's closing days, `Quarter.calendar`) or on their own time off (`time_off.set`: a week for a few
reps, and the days between Christmas and New Year for some when the quarter holds them). The story ends with
the last delivery (`Scenario.ends_at`): the demo stops the services' clock there.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from deploy.demo.org import Org, Profile, Quarter, Rep, build_org

__all__ = ["CURRENCY", "METRIC", "Scenario", "ScheduledEvent", "TimeOff", "build_scenario"]

CURRENCY = "EUR"
METRIC = "won_revenue"
CALLS_TARGET = 30  # per rep and quarter: strong and steady reps log about that many calls, slipping ones fewer
CRM_SOURCE = "hubspot"  # deals and activities come from the CRM
ADMIN_SOURCE = "api"  # roster and targets are set through the API
DUPLICATE_SHARE = 0.02
LAST_FRACTION = 0.96  # nothing happens in the CRM after this share of the quarter
RESEND_GAP = 0.001  # re-sent and late deliveries come at most this share of the quarter after the last original
WON_LABEL, LOST_LABEL = "Closed Won", "Closed Lost"
EARLY_LABELS = ("Appointment Scheduled", "Qualified To Buy")
LATE_LABELS = ("Presentation Scheduled", "Decision Maker Bought-In", "Contract Sent")
ACTIVITY_KINDS = (("call", 0.40), ("email", 0.33), ("meeting", 0.17), ("demo", 0.10))

Delivery = Literal["original", "duplicate", "late"]


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """A canonical event and the share of the quarter after which it is to be sent."""

    offset: float
    event: dict[str, Any]
    delivery: Delivery = "original"


@dataclass(frozen=True, slots=True)
class TimeOff:
    """A rep's days off (their local dates, both included), sent as `time_off.set`."""

    rep_id: str
    first_day: date
    last_day: date
    reason: str

    def days(self) -> frozenset[date]:
        return frozenset(self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1))


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    quarter: Quarter
    org: Org
    schedule: tuple[ScheduledEvent, ...]
    time_off: tuple[TimeOff, ...] = ()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [s.event for s in self.schedule]

    @property
    def ends_at(self) -> datetime:
        """Where the story ends: the moment of the last delivery, to the next whole minute (the demo's clock
        stops there, so that the quarter it played stays the current one, as it was when the story ended)."""
        last = self.quarter.at(self.schedule[-1].offset) if self.schedule else self.quarter.start
        end = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return min(end, self.quarter.end - timedelta(seconds=1))


def build_scenario(seed: int, quarter: Quarter, reps: int = 24, teams: int = 4) -> Scenario:
    """The org and the event schedule of one quarter; the same seed gives the same scenario."""
    rng = random.Random(seed)  # noqa: S311 -- a reproducible simulation, not a secret
    org = build_org(rng, reps, teams)
    builder = _Builder(seed, rng, quarter)
    builder.roster_and_targets(org)
    builder.time_off(org)
    deals: list[_Deal] = []
    for rep in org.reps:
        deals += builder.rep_deals(rep)
    builder.edit_some(deals, org)
    for deal in deals:
        builder.emit_deal(deal)
    for rep in org.reps:
        builder.emit_activities(rep, [d for d in deals if d.rep.rep_id == rep.rep_id])
    builder.add_duplicates()
    return Scenario(seed, quarter, org, builder.schedule(), tuple(builder.leave))


# --------------------------------------------------------------------------- deals and events


@dataclass(slots=True)
class _Version:
    at: datetime
    stage: str
    amount: Decimal
    label: str
    closed_at: datetime | None = None
    expected: datetime | None = None  # the CRM's expected close date, while the deal is open


@dataclass(slots=True)
class _Deal:
    deal_id: str
    rep: Rep
    versions: list[_Version]
    deleted_at: datetime | None = None
    late_version: int | None = None  # index of a version delivered after its successor

    @property
    def created(self) -> datetime:
        return self.versions[0].at

    @property
    def closed(self) -> datetime | None:
        last = self.versions[-1]
        return last.closed_at if last.stage != "open" else None


@dataclass(order=True, slots=True)
class _Entry:
    offset: float
    phase: int
    instant: datetime
    seq: int
    item: ScheduledEvent = field(compare=False)


class _Builder:
    """Turns rep profiles into deals, activities and the ordered schedule of their events."""

    def __init__(self, seed: int, rng: random.Random, quarter: Quarter) -> None:
        self.seed, self.rng, self.q = seed, rng, quarter
        self.entries: list[_Entry] = []
        self.counters = {"evt": 0, "deal": 0, "act": 0}
        self.horizon = quarter.at(LAST_FRACTION)
        first, last = quarter.days
        # deals may be created up to 60 days before the quarter: their days off too
        self.holidays = frozenset(quarter.calendar().between(first - timedelta(days=70), last))
        self.leave: list[TimeOff] = []

    def next_id(self, kind: str) -> str:
        self.counters[kind] += 1
        prefix = f"evt-{self.seed}" if kind == "evt" else kind
        return f"{prefix}-{self.counters[kind]:05d}"

    # --- events and their schedule

    def emit(self, type_: str, source: str, at: datetime, zone: str, data: dict[str, Any],
             *, phase: int = 2, offset: float | None = None) -> ScheduledEvent:  # fmt: skip
        at = at.replace(microsecond=0)  # the event's `time` says no more than this
        event = {
            "type": type_,
            "id": self.next_id("evt"),
            "source": source,
            "time": _rfc3339(at, zone),
            "data": data,
        }
        due = min(max(self.q.fraction(at), 0.0), 1.0) if offset is None else offset
        item = ScheduledEvent(due, event, "original" if offset is None else "late")
        self.entries.append(_Entry(due, phase, at, len(self.entries), item))
        return item

    def schedule(self) -> tuple[ScheduledEvent, ...]:
        """The events in the order they are sent. A re-sent or late delivery comes after what it repeats or
        supersedes, and at most `RESEND_GAP` after the last original: the story ends with the CRM's last
        real event, not days after it."""
        last = max((e.offset for e in self.entries if e.item.delivery == "original"), default=0.0)
        cap = min(last + RESEND_GAP, 0.995)
        entries = [e if e.item.delivery == "original" or e.offset <= cap else
                   replace(e, offset=cap, item=replace(e.item, offset=cap)) for e in self.entries]
        return tuple(entry.item for entry in sorted(entries))

    def days_off(self, rep: Rep) -> frozenset[date]:
        """The rep's days off: the tenant's holidays and their own time off (their local dates)."""
        return self.holidays.union(*(t.days() for t in self.leave if t.rep_id == rep.rep_id))

    def roster_and_targets(self, org: Org) -> None:
        start, period = self.q.start, self.q.label
        for team in org.teams:  # the teams by name (the dashboard shows names, not ids)
            self.emit("team.upserted", ADMIN_SOURCE, start, self.q.timezone, {
                "team_id": team.team_id, "name": team.name,
            }, phase=0)  # fmt: skip
        for rep in org.reps:
            self.emit("rep.upserted", ADMIN_SOURCE, start, self.q.timezone, {
                "rep_id": rep.rep_id, "name": rep.name, "team_id": rep.team_id,
                "manager_id": rep.manager_id, "email": rep.email, "timezone": rep.timezone,
                "active": True,
            }, phase=0)  # fmt: skip
        targets = [("rep", r.rep_id, METRIC, _money_text(r.target)) for r in org.reps]
        targets += [("team", t.team_id, METRIC, _money_text(org.team_target(t.team_id))) for t in org.teams]
        # an activity goal too: calls per rep per quarter (what coaching's activity-shortfall rule checks)
        targets += [("rep", r.rep_id, "calls", str(CALLS_TARGET)) for r in org.reps]
        for scope, scope_id, metric, value in targets:
            self.emit("target.set", ADMIN_SOURCE, start, self.q.timezone, {
                "scope": scope, "scope_id": scope_id, "metric": metric, "period": period, "value": value,
            }, phase=1)  # fmt: skip

    def time_off(self, org: Org) -> None:
        """A week off for a few reps who are not slipping (a slipping rep's story is told without one), and,
        when the quarter holds them, the working days between Christmas and New Year for about a quarter of
        the reps; each sent at the quarter's start as `time_off.set`."""
        rng, q = self.rng, self.q
        first, last = q.days
        for rep in rng.sample([r for r in org.reps if r.profile is not Profile.SLIPPING], max(2, len(org.reps) // 8)):
            monday = q.at(rng.uniform(0.15, 0.8)).astimezone(ZoneInfo(rep.timezone)).date()
            monday -= timedelta(days=monday.weekday())
            if monday >= first and monday + timedelta(days=4) <= last:
                self.leave.append(TimeOff(rep.rep_id, monday, monday + timedelta(days=4), "holiday"))
        bridge = [d for year in range(first.year, last.year + 1) for d in
                  (date(year, 12, 27) + timedelta(days=i) for i in range(5))
                  if first <= d <= last and d.weekday() < 5 and d not in self.holidays]
        if bridge:
            for rep in rng.sample(list(org.reps), max(2, len(org.reps) // 4)):
                self.leave.append(TimeOff(rep.rep_id, bridge[0], bridge[-1], "between the years"))
        for n, leave in enumerate(self.leave, start=1):
            self.emit("time_off.set", ADMIN_SOURCE, q.start, q.timezone, {
                "time_off_id": f"off-{n:03d}", "rep_id": leave.rep_id, "first_day": leave.first_day.isoformat(),
                "last_day": leave.last_day.isoformat(), "reason": leave.reason,
            }, phase=1)  # fmt: skip

    def emit_deal(self, deal: _Deal) -> None:
        zone = deal.rep.timezone
        superseding: ScheduledEvent | None = None
        late: list[tuple[int, _Version]] = []
        for i, version in enumerate(deal.versions):
            if i == deal.late_version:
                late.append((i, version))
                continue
            item = self.emit("deal.upserted", CRM_SOURCE, version.at, zone, _deal_data(deal, version))
            if late and superseding is None:
                superseding = item
        for _, version in late:
            assert superseding is not None  # a late version is never the last one
            due = min(superseding.offset + self.rng.uniform(0.002, 0.008), 0.995)
            self.emit("deal.upserted", CRM_SOURCE, version.at, zone, _deal_data(deal, version),
                      offset=due)  # fmt: skip
        if deal.deleted_at is not None:
            self.emit("deal.deleted", CRM_SOURCE, deal.deleted_at, zone, {
                "deal_id": deal.deal_id, "updated_at": _rfc3339(deal.deleted_at, zone),
            })  # fmt: skip

    def add_duplicates(self) -> None:
        originals = [e for e in self.entries if e.item.delivery == "original"]
        count = max(1, round(len(originals) * DUPLICATE_SHARE))
        for entry in self.rng.sample(originals, count):
            due = min(entry.offset + self.rng.uniform(0.002, 0.02), 0.995)
            item = ScheduledEvent(due, copy.deepcopy(entry.item.event), "duplicate")
            self.entries.append(_Entry(due, entry.phase, entry.instant, len(self.entries), item))

    # --- one rep's deals

    def rep_deals(self, rep: Rep) -> list[_Deal]:
        rng = self.rng
        if rep.profile is Profile.STRONG:
            n = rng.randint(8, 12)
            wins = self._split(_hundreds(float(rep.target) * rng.uniform(1.08, 1.35)), n)
            closes = [(k + rng.uniform(0.15, 0.85)) / n * 0.90 for k in range(n)]
            lost, pipeline = rng.randint(3, 6), rng.randint(2, 4)
        elif rep.profile is Profile.STEADY:
            n = rng.randint(6, 10)
            wins = self._split(_hundreds(float(rep.target) * rng.uniform(0.80, 1.0)), n)
            closes = [0.01 + (k + rng.uniform(0.1, 0.9)) / n * 0.94 for k in range(n)]
            lost, pipeline = rng.randint(5, 9), rng.randint(2, 5)
        else:
            # A good first month, then a stall: at most 40% * 72% = 29% of target is won before
            # 0.41 of the quarter and nothing more until 0.74, so from mid-quarter on the rep
            # stays below 0.6 of linear pace (0.29 / 0.5 and 0.40 / 0.72 at the worst points).
            total = float(rep.target) * rng.uniform(0.28, 0.40)
            n_early, n_late = rng.randint(3, 4), rng.randint(1, 2)
            early = _hundreds(total * rng.uniform(0.62, 0.72))
            wins = self._split(early, n_early) + self._split(_hundreds(total) - early, n_late)
            closes = [(k + rng.uniform(0.15, 0.85)) / n_early * 0.38 for k in range(n_early)]
            closes += sorted(rng.uniform(0.75, 0.94) for _ in range(n_late))
            lost, pipeline = rng.randint(6, 10), rng.randint(2, 5)
        deals = [self._closed_deal(rep, c, a, won=True) for c, a in zip(closes, wins, strict=True)]
        for _ in range(lost):
            amount = _hundreds(float(rep.target) * rng.uniform(0.04, 0.14))
            deals.append(self._closed_deal(rep, rng.uniform(0.03, 0.95), amount, won=False))
        deals += [self._open_deal(rep) for _ in range(pipeline)]
        deals += self._next_quarter(rep)
        return deals

    def _next_quarter(self, rep: Rep) -> list[_Deal]:
        """The pipeline a rep carries through the quarter and beyond: open deals worked on every week or two (a
        new stage label, the amount as it was), so that it is neither stale nor thin. Strong and steady reps
        carry 3.1 to 3.8 times their target (the coverage coaching asks for: 3x what is left to win); a slipping
        rep carries less than their target, which coaching finds too thin. Every other deal is expected to
        close in this quarter and, as CRMs go, slips: when its date comes near it moves out by three to six
        weeks, so until late in the quarter part of the pipeline is expected in it; the rest is next quarter's."""
        rng, q = self.rng, self.q
        low, high = (0.5, 0.9) if rep.profile is Profile.SLIPPING else (3.1, 3.8)
        amounts = self._split(_hundreds(float(rep.target) * rng.uniform(low, high)), rng.randint(5, 8))
        deals = []
        for n, amount in enumerate(amounts):
            created = self._working(q.start - timedelta(days=rng.uniform(5, 50)), rep, q.start - timedelta(days=60),
                                    q.start - timedelta(days=1))
            expected = _minute(q.at(rng.uniform(0.3, 0.9)) if n % 2 == 0 else
                               q.end + timedelta(days=rng.uniform(10, 80)))
            versions = [_Version(created, "open", amount, EARLY_LABELS[0], expected=expected)]
            at = created + timedelta(days=rng.uniform(7, 12))  # worked on since it was created
            while at < self.horizon:
                touched = self._slot(at, rep, versions[-1].at + timedelta(hours=1), self.horizon)
                if touched is None:
                    break
                if expected < touched + timedelta(days=7):  # the date comes near and the deal is not ready: slips
                    expected = _minute(touched + timedelta(days=rng.uniform(20, 45)))
                versions.append(_Version(touched, "open", amount, rng.choice(EARLY_LABELS + LATE_LABELS),
                                         expected=expected))
                at = touched + timedelta(days=rng.uniform(7, 12))
            deals.append(_Deal(self.next_id("deal"), rep, versions))
        return deals

    def _worked(self, rep: Rep, versions: list[_Version], until: datetime) -> None:
        """A deal a strong or steady rep works on: a new version (a stage label, the same amount and expected
        date) every week or two until `until`, so it is never stale; a slipping rep leaves theirs alone."""
        if rep.profile is Profile.SLIPPING:
            return
        at = versions[-1].at + timedelta(days=self.rng.uniform(7, 12))
        while at < until - timedelta(days=1):
            touched = self._slot(at, rep, versions[-1].at + timedelta(hours=1), until - timedelta(hours=1))
            if touched is None:
                return
            last = versions[-1]
            versions.append(_Version(touched, "open", last.amount, self.rng.choice(LATE_LABELS),
                                     expected=last.expected))
            at = touched + timedelta(days=self.rng.uniform(7, 12))

    def _closed_deal(self, rep: Rep, close_fraction: float, amount: Decimal, *, won: bool) -> _Deal:
        rng, q = self.rng, self.q
        closed = self._working(q.at(close_fraction), rep, q.start + timedelta(hours=1), self.horizon)
        lead = timedelta(days=rng.uniform(8, 40))
        created = self._working(closed - lead, rep, q.start - timedelta(days=60),
                                closed - timedelta(days=2))  # fmt: skip
        first_amount = amount
        expected = _minute(closed + timedelta(days=rng.uniform(-5, 10)))  # the CRM's estimate, set when created
        versions = [_Version(created, "open", amount, rng.choice(EARLY_LABELS), expected=expected)]
        if rng.random() < 0.55:
            if rng.random() < 0.35:  # the amount was re-estimated on the way
                first_amount = _hundreds(float(amount) * rng.uniform(0.8, 1.25))
            middle = self._working(created + (closed - created) * rng.uniform(0.35, 0.8), rep, created, closed)
            versions.append(_Version(middle, "open", amount, rng.choice(LATE_LABELS), expected=expected))
        versions[0].amount = first_amount
        self._worked(rep, versions, closed)
        stage, label = ("won", WON_LABEL) if won else ("lost", LOST_LABEL)
        versions.append(_Version(closed, stage, amount, label, closed))
        return _Deal(self.next_id("deal"), rep, _ascending(versions))

    def _open_deal(self, rep: Rep) -> _Deal:
        rng, q = self.rng, self.q
        created = self._working(q.at(rng.uniform(0.45, 0.92)), rep, q.start, self.horizon)
        amount = _hundreds(float(rep.target) * rng.uniform(0.05, 0.15))
        expected = _minute(created + timedelta(days=rng.uniform(25, 60)))
        versions = [_Version(created, "open", amount, rng.choice(EARLY_LABELS), expected=expected)]
        later = self._working(created + timedelta(days=rng.uniform(2, 10)), rep, created, q.end)
        if rng.random() < 0.5 and later < self.horizon:
            edited = _hundreds(float(amount) * rng.uniform(0.85, 1.2))
            versions.append(_Version(later, "open", edited, rng.choice(LATE_LABELS), expected=expected))
        self._worked(rep, versions, self.horizon)
        return _Deal(self.next_id("deal"), rep, _ascending(versions))

    def edit_some(self, deals: list[_Deal], org: Org) -> None:
        """A few of the CRM's corrections: reopened-then-won, amounts fixed after the win,
        deals entered by mistake and deleted, versions that reach us out of order."""
        rng, q = self.rng, self.q
        n = len(org.reps)
        reopenable = [
            d for d in deals
            if d.rep.profile is not Profile.SLIPPING and d.versions[-1].stage == "won"
            and d.versions[-1].at >= q.at(0.15) and d.versions[-2].at < d.versions[-1].at - timedelta(days=10)
        ]  # fmt: skip
        for deal in rng.sample(reopenable, min(len(reopenable), max(2, n // 8))):
            final = deal.versions.pop()
            rep = deal.rep
            first_win = self._working(final.at - timedelta(days=rng.uniform(5, 9)), rep, deal.versions[-1].at,
                                      final.at - timedelta(hours=2))
            reopened = self._working(first_win + timedelta(days=rng.uniform(1, 3)), rep, first_win,
                                     final.at - timedelta(hours=1))
            deal.versions += [
                _Version(first_win, "won", final.amount, WON_LABEL, first_win),
                _Version(reopened, "open", final.amount, "Contract Sent", expected=final.at),
                final,
            ]
            _ascending(deal.versions)  # a CRM never stamps two edits of a deal at once
        correctable = [
            d for d in deals
            if d.versions[-1].stage == "won" and len(d.versions) <= 3 and d.versions[-1].at <= q.at(0.92)
        ]  # fmt: skip
        for deal in rng.sample(correctable, min(len(correctable), max(3, n // 6))):
            # Booked a little low, fixed a few days later: the fix only ever adds revenue, so
            # no rep is celebrated on a number that is then taken back.
            final = deal.versions[-1]
            booked = _hundreds(float(final.amount) * rng.uniform(0.85, 0.95))
            fixed_at = self._working(final.at + timedelta(days=rng.uniform(1, 3)), deal.rep,
                                     final.at + timedelta(hours=1), self.horizon)
            deal.versions[-1] = _Version(final.at, "won", booked, WON_LABEL, final.closed_at)
            deal.versions.append(_Version(fixed_at, "won", final.amount, WON_LABEL, final.closed_at))
        for rep in rng.sample(list(org.reps), max(2, n // 8)):
            created = self._working(q.at(rng.uniform(0.05, 0.8)), rep, q.start, self.horizon)
            amount = _hundreds(float(rep.target) * rng.uniform(0.05, 0.2))
            deal = _Deal(self.next_id("deal"), rep, [_Version(created, "open", amount, EARLY_LABELS[0],
                                                              expected=_minute(created + timedelta(days=30)))])
            deal.deleted_at = self._working(created + timedelta(days=rng.uniform(1, 6)), rep,
                                            created + timedelta(hours=1), self.horizon)
            deals.append(deal)
        reorderable = [d for d in deals if len(d.versions) >= 3]
        for deal in rng.sample(reorderable, min(len(reorderable), max(3, n // 6))):
            deal.late_version = rng.randint(1, len(deal.versions) - 2)

    # --- one rep's activities

    def emit_activities(self, rep: Rep, deals: Sequence[_Deal]) -> None:
        rng, q = self.rng, self.q
        if rep.profile is Profile.SLIPPING:
            count = rng.randint(36, 50)
            fractions = [rng.uniform(0.0, 0.38) if rng.random() < 0.7 else rng.uniform(0.38, LAST_FRACTION)
                         for _ in range(count)]  # fmt: skip
        else:
            count = rng.randint(70, 90) if rep.profile is Profile.STRONG else rng.randint(50, 68)
            fractions = [rng.uniform(0.0, LAST_FRACTION) for _ in range(count)]
        kinds, weights = [k for k, _ in ACTIVITY_KINDS], [w for _, w in ACTIVITY_KINDS]
        for fraction in fractions:
            at = self._working(q.at(fraction), rep, q.start, self.horizon)
            kind = rng.choices(kinds, weights)[0]
            data: dict[str, Any] = {
                "activity_id": self.next_id("act"), "rep_id": rep.rep_id, "kind": kind,
                "occurred_at": _rfc3339(at, rep.timezone),
            }  # fmt: skip
            live = [d for d in deals if d.deleted_at is None and d.created <= at <= (d.closed or q.end)]
            if live and rng.random() < 0.6:
                data["deal_id"] = rng.choice(live).deal_id
            if kind == "call":
                data["duration_s"] = rng.randint(2, 30) * 60
            elif kind in ("meeting", "demo"):
                data["duration_s"] = rng.randint(2, 6) * 15 * 60
            self.emit("activity.logged", CRM_SOURCE, at, rep.timezone, data)

    # --- helpers that need the random stream

    def _split(self, total: Decimal, parts: int) -> list[Decimal]:
        """`total` in `parts` uneven amounts (whole hundreds) that add up to it exactly."""
        weights = [self.rng.uniform(0.6, 1.4) for _ in range(parts)]
        amounts = [_hundreds(float(total) * w / sum(weights)) for w in weights[:-1]]
        amounts.append(total - sum(amounts, Decimal(0)))
        if amounts[-1] < Decimal(500):
            even = _hundreds(float(total) / parts)
            amounts = [even] * (parts - 1) + [total - even * (parts - 1)]
        return amounts

    def _working(self, moment: datetime, rep: Rep, lo: datetime, hi: datetime) -> datetime:
        """A working hour (8-17h in the rep's zone) of one of the rep's working days near `moment` (not a
        weekend, a holiday or their time off), within [lo, hi]; `moment` clamped to [lo, hi] when there is
        none (rare: a window without a working day)."""
        return self._slot(moment, rep, lo, hi) or min(max(moment, lo), hi)

    def _slot(self, moment: datetime, rep: Rep, lo: datetime, hi: datetime) -> datetime | None:
        """`_working`, or None when [lo, hi] holds no working hour of the rep within a week of `moment`."""
        hour, minute = self.rng.randint(8, 17), self.rng.choice((0, 10, 15, 20, 30, 40, 45, 50))
        zone, off = ZoneInfo(rep.timezone), self.days_off(rep)
        day = moment.astimezone(zone).date()
        for step in (0, 1, 2, 3, 4, 5, 6, 7, -1, -2, -3, -4, -5, -6, -7):
            candidate_day = day + timedelta(days=step)
            if candidate_day.weekday() >= 5 or candidate_day in off:
                continue
            opens = datetime.combine(candidate_day, time(8), zone).astimezone(UTC)
            closes = datetime.combine(candidate_day, time(18), zone).astimezone(UTC)
            at = datetime.combine(candidate_day, time(hour, minute), zone).astimezone(UTC)
            candidate = _minute(min(max(at, lo, opens), hi, closes))  # the day's working hours inside [lo, hi]
            if max(lo, opens) <= candidate <= min(hi, closes):
                return candidate
        return None


def _ascending(versions: list[_Version]) -> list[_Version]:
    """Make version times strictly increasing (a CRM never stamps two edits at once)."""
    for before, after in itertools.pairwise(versions):
        if after.at <= before.at:
            after.at = before.at + timedelta(minutes=30)
            if after.closed_at is not None:
                after.closed_at = after.at
    return versions


def _deal_data(deal: _Deal, version: _Version) -> dict[str, Any]:
    zone = deal.rep.timezone
    data: dict[str, Any] = {
        "deal_id": deal.deal_id,
        "rep_id": deal.rep.rep_id,
        "amount": _money_text(version.amount),
        "currency": CURRENCY,
        "stage": version.stage,
        "stage_label": version.label,
        "created_at": _rfc3339(deal.created, zone),
        "updated_at": _rfc3339(version.at, zone),
    }
    if version.closed_at is not None:
        data["closed_at"] = _rfc3339(version.closed_at, zone)
    if version.expected is not None and version.stage == "open":
        data["expected_close_at"] = _rfc3339(version.expected, zone)
    return data


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _hundreds(amount: float) -> Decimal:
    return Decimal(round(amount / 100) * 100)


def _money_text(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def _rfc3339(moment: datetime, zone: str) -> str:
    """RFC 3339 with the offset of `zone` (as the CRM would write it), to the second."""
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")
