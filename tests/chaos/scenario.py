"""A seeded, realistic quarter of CRM events: what the chaos suite streams through ingest.

`generate(settings, now)` is a pure function of its arguments: it never reads the clock, and the same settings
and `now` give the same bytes whatever the hash seed. `now` is the run's clock (`run.py` passes the moment the
run starts, the unit tests a fixed instant): the scenario is the quarter containing `now`, from its start up to
`now`, so whatever the date, the targets name the quarter the services are living in and coaching's pace
rules apply to it (a scenario pinned to one quarter would leave them nothing to check once it is over).

Per tenant: a roster (a region, teams under it, reps, a few mid-quarter moves), targets, deals with their whole
history (edits, wins, losses, reopenings, deletions, owner changes, stale edits) and activities, as the JSON
dicts `POST /v1/events` takes (`tests/factories.py`). The dicts are shared between `Scenario.events` and
`Scenario.stream` (a duplicate is the very same dict): treat them as read-only.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from bisect import bisect_right, insort
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared import cloudevents as ce
from shared import topics
from shared.periods import PeriodKind, period_bounds, period_of

Event = dict[str, Any]
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]

SOURCE = "chaos"
CURRENCY = "EUR"
# The shortest quarter-so-far a scenario is generated for: its deals need a couple of days to be created, edited
# and closed in, and a rep's team move must fall strictly after their first roster event.
MIN_SPAN = timedelta(days=3)
# Tenant zones in turn (a half-hour offset included), each with the zones its reps work in.
ZONES: dict[str, tuple[str, ...]] = {
    "Europe/Berlin": ("Europe/Berlin", "Europe/Berlin", "Europe/London", "Europe/Madrid", "Europe/Warsaw"),
    "America/New_York": ("America/New_York", "America/New_York", "America/Chicago", "America/Denver"),
    "Asia/Kolkata": ("Asia/Kolkata", "Asia/Kolkata", "Asia/Dubai", "Asia/Singapore"),
    "America/Los_Angeles": ("America/Los_Angeles", "America/Los_Angeles", "America/Phoenix", "America/Vancouver"),
}
# Shares of reps or deals, per tenant (rounded to whole reps or deals).
MOVE_RATE, REOPEN_RATE, DELETE_RATE, OWNER_CHANGE_RATE, STALE_RATE = 0.05, 0.03, 0.02, 0.03, 0.01
# Header naming how a malformed record is broken (not a ce_ header: decoding ignores it, the DLQ keeps it).
MALFORMED_HEADER = "x-chaos-malformed"
# In the order they are dealt to the input topics (deals, activities, roster, targets; a few each): "null-value"
# early, so that it lands on deals or activities: on the compacted roster and targets it would be a tombstone.
MALFORMED_KINDS = ("invalid-field", "not-json", "not-an-event", "unknown-type", "missing-headers", "null-value",
                   "not-an-object", "naive-time", "wrong-specversion", "structured-mode", "bad-header-encoding")
INPUT_TOPICS = (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS)
# Per input topic: the event type a malformed record starts from, and the field "invalid-field" breaks.
_MALFORMED_BASE = {topics.DEALS.name: ("deal.upserted", ("amount", "-250.00")),
                   topics.ACTIVITIES.name: ("activity.logged", ("kind", "carrier-pigeon")),
                   topics.ROSTER.name: ("rep.upserted", ("timezone", "Mars/Olympus_Mons")),
                   topics.TARGETS.name: ("target.set", ("value", "-1000.00"))}
_BAD_HEADERS = {"unknown-type": (ce.H_TYPE, b"deal.exploded"), "naive-time": (ce.H_TIME, b"2026-11-02T10:00:00"),
                "wrong-specversion": (ce.H_SPECVERSION, b"0.3"),
                "structured-mode": (ce.H_CONTENT_TYPE, ce.STRUCTURED_CONTENT_TYPE.encode()),
                "bad-header-encoding": (ce.H_SOURCE, b"\xff\xfechaos")}

_DAY = 86_400
_FIRST = ("Anna", "Ben", "Chloé", "Farid", "Grace", "Hiro", "Jürgen", "Kofi", "Lena", "Nadia", "Priya", "Zoë", "Sven")
_LAST = ("Becker", "Costa", "Dubois", "Fischer", "García", "Kowalski", "López", "Müller", "O'Brien", "Patel", "Tanaka")
_OPEN_LABELS = ("Qualification", "Discovery", "Proposal", "Negotiation")
_KINDS = ("call", "email", "meeting", "demo", "task", "other")
_KIND_WEIGHTS = (40, 30, 12, 6, 8, 4)
_DURATIONS = {"call": (60, 1800), "meeting": (900, 3600), "demo": (1200, 5400)}
# Deal sizes in EUR: (low, high, weight); integer draws only, so no libm difference changes a byte.
_SIZES = ((2_000, 8_000, 30), (8_000, 25_000, 40), (25_000, 60_000, 22), (60_000, 150_000, 8))
# Attainment bands (percent of target reached by `now`): above 100, 50 to 100, below 50.
_BANDS = ((110, 160), (55, 95), (20, 45))


@dataclass(frozen=True)
class Settings:
    """How big and how messy the scenario is. The moment it is generated for is `generate`'s `now`;
    `quarter_start` (None: the latest local start of the quarter containing `now` among the tenants' zones, so
    the window is inside that quarter for every tenant) is where its events begin."""

    seed: int = 7
    tenants: int = 2
    reps_per_tenant: int = 150
    teams_per_tenant: int = 6
    deals_per_rep: int = 40
    activities_per_rep: int = 60
    duplicate_rate: float = 0.02
    disorder_window: int = 50
    malformed_per_topic: int = 3
    quarter_start: datetime | None = None

    def __post_init__(self) -> None:
        if self.quarter_start is not None and self.quarter_start.utcoffset() is None:
            raise ValueError("quarter_start must be timezone-aware")
        if (min(self.tenants, self.teams_per_tenant, self.deals_per_rep, self.activities_per_rep,
                self.disorder_window) < 1 or self.reps_per_tenant < 2 or self.malformed_per_topic < 0
                or not 0 <= self.duplicate_rate <= 1):
            raise ValueError("need two reps and at least one tenant, team, deal and activity per rep; a disorder"
                             " window of 1 or more; malformed_per_topic >= 0; a duplicate_rate between 0 and 1")

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """(quarter start, now): where the scenario generated at `now` begins and ends.

        Raises ValueError for a naive `now`, a `quarter_start` after `now` or in another quarter than `now` in
        some tenant's zone, and a window shorter than `MIN_SPAN` (the first days of a quarter: pin the run's
        clock to a later moment, `python -m tests.chaos --now`)."""
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        zones = [_zone_of(i) for i in range(self.tenants)]
        start = self.quarter_start
        if start is None:
            start = max(period_bounds(period_of(PeriodKind.QUARTER, now, z), z)[0] for z in zones)
        if start > now or any(period_of(PeriodKind.QUARTER, start, z) != period_of(PeriodKind.QUARTER, now, z)
                              for z in zones):
            raise ValueError(f"quarter_start {start.isoformat()} must precede now {now.isoformat()}, in the same"
                             " quarter in every tenant's zone")
        if now - start < MIN_SPAN:
            raise ValueError(f"the quarter of {now.isoformat()} began {now - start} before it (at"
                             f" {start.isoformat()}): a scenario needs at least {MIN_SPAN.days} days of it")
        return start, now


@dataclass(frozen=True)
class TenantPlan:
    """A tenant to create before streaming (every deal is in its base currency)."""

    slug: str
    timezone: str
    currency: str
    fiscal_start_month: int


@dataclass(frozen=True)
class Scenario:
    """`events`: per tenant slug, the truth, each event once in causal order. `stream`: (slug, event) in
    delivery order. `malformed`: per input topic name, raw (key, value, headers) records, each invalid."""

    tenants: list[TenantPlan]
    events: dict[str, list[Event]]
    stream: list[tuple[str, Event]]
    malformed: dict[str, list[Record]]


def _zone_of(index: int) -> str:
    return list(ZONES)[index % len(ZONES)]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class _Hours:
    """Business hours (08:00-18:00, Monday to Friday) of one zone inside a window, in epoch seconds."""

    def __init__(self, zone: str, lo: int, hi: int) -> None:
        tz = ZoneInfo(zone)
        self.lo, self.hi = lo, hi
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.before: list[int] = []  # business seconds in the intervals before each one
        day, last = datetime.fromtimestamp(lo, tz).date(), datetime.fromtimestamp(hi, tz).date()
        while day <= last:
            start = max(lo, int(datetime.combine(day, time(8), tz).timestamp()))
            end = min(hi, int(datetime.combine(day, time(18), tz).timestamp()))
            if day.weekday() < 5 and start < end:
                self.before.append(self.before[-1] + self.ends[-1] - self.starts[-1] if self.starts else 0)
                self.starts.append(start)
                self.ends.append(end)
            day += timedelta(days=1)

    def _busy(self, ts: int) -> int:
        i = bisect_right(self.starts, ts) - 1
        return 0 if i < 0 else self.before[i] + min(ts, self.ends[i]) - self.starts[i]

    def draw(self, rng: random.Random, lo: int, hi: int) -> int:
        """A moment in [lo, hi] (clipped to the window), in business hours when the range holds any."""
        hi = max(min(hi, self.hi), self.lo)
        lo = min(max(lo, self.lo), hi)
        first, after = self._busy(lo), self._busy(hi)
        if after <= first:
            return rng.randint(lo, hi)
        spent = rng.randrange(first, after)
        i = bisect_right(self.before, spent) - 1
        return self.starts[i] + spent - self.before[i]


@dataclass
class _Rep:
    rep_id: str
    name: str
    team: str
    zone: str
    deals: list[tuple[int, str]]  # (created, deal_id), sorted


class _Tenant:
    """Plans one tenant's quarter; `out` collects (sent at, sequence, event)."""

    def __init__(self, settings: Settings, plan: TenantPlan, index: int, start: datetime, now: datetime) -> None:
        self.s, self.plan = settings, plan
        self.rng = random.Random(f"attain-chaos/{settings.seed}/{index}")
        self.ids = random.Random(f"attain-chaos/{settings.seed}/{index}/ids")
        self.start, self.now = int(start.timestamp()), int(now.timestamp())
        self.work = min(self.start + 3600, self.now)  # CRM work begins once the roster and targets are in
        self.hours = {z: _Hours(z, self.work, self.now) for z in ZONES[plan.timezone]}
        self.period = period_of(PeriodKind.QUARTER, now, plan.timezone, plan.fiscal_start_month).label
        self.out: list[tuple[int, int, Event]] = []
        self.won: dict[str, int] = {}  # final won cents by owner
        self.calls: dict[str, int] = {}

    def emit(self, type_: str, ts: int, data: dict[str, Any], sent: int | None = None) -> None:
        event_id = str(uuid.UUID(int=self.ids.getrandbits(128), version=4))
        event = {"type": type_, "id": event_id, "source": SOURCE, "time": _iso(ts), "data": data}
        self.out.append((ts if sent is None else sent, len(self.out), event))

    def at_setup(self, offset: int) -> int:
        return min(self.start + offset, self.now)

    def build(self) -> list[tuple[int, Event]]:
        """The tenant's events with the moment each is sent, in causal (sending) order."""
        s, rng = self.s, self.rng
        teams = [f"team-{k:02d}" for k in range(1, s.teams_per_tenant + 1)]
        for k, (team, parent) in enumerate([("region-1", None), *((team, "region-1") for team in teams)]):
            name = team.replace("-", " ").title()
            self.emit("team.upserted", self.at_setup(k), {"team_id": team, "name": name, "parent_team_id": parent})
        reps = [_Rep(f"rep-{i:03d}", f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", teams[i % len(teams)],
                     rng.choice(ZONES[self.plan.timezone]), []) for i in range(1, s.reps_per_tenant + 1)]
        for i, rep in enumerate(reps):
            self.emit("rep.upserted", self.at_setup(60 + i), self.rep_data(rep, rep.team))
        for rep in rng.sample(reps, round(MOVE_RATE * len(reps))) if len(teams) > 1 else []:
            span = self.now - self.work
            moved = self.hours[rep.zone].draw(rng, self.work + span * 3 // 10, self.now - span // 10)
            self.emit("rep.upserted", moved, self.rep_data(rep, rng.choice([t for t in teams if t != rep.team])))
        self.deals(reps)
        for rep in reps:
            self.activities(rep)
        self.targets(reps, teams)
        return [(sent, event) for sent, _, event in sorted(self.out, key=lambda item: (item[0], item[1]))]

    def rep_data(self, rep: _Rep, team: str) -> dict[str, Any]:
        return {"rep_id": rep.rep_id, "name": rep.name, "team_id": team, "manager_id": f"mgr-{team}",
                "email": f"{rep.rep_id}@{self.plan.slug}.example", "timezone": rep.zone, "active": True}

    def deals(self, reps: list[_Rep]) -> None:
        rng, total = self.rng, len(reps) * self.s.deals_per_rep
        order = rng.sample(range(total), total)
        a, b, c = (round(rate * total) for rate in (REOPEN_RATE, DELETE_RATE, OWNER_CHANGE_RATE))
        fates = dict.fromkeys(order[:a], "reopen") | dict.fromkeys(order[a:a + b], "delete")
        fates |= dict.fromkeys(order[a + b:a + b + c], "owner")
        stale = set(rng.sample(range(total), round(STALE_RATE * total)))
        for n in range(total):
            self.deal(reps[n // self.s.deals_per_rep], reps, f"deal-{n + 1:05d}", fates.get(n, ""), n in stale)

    def deal(self, rep: _Rep, reps: list[_Rep], deal_id: str, fate: str, stale: bool) -> None:
        rng, hours = self.rng, self.hours[rep.zone]
        created = hours.draw(rng, self.work, self.now - 2 * _DAY)
        insort(rep.deals, (created, deal_id))
        edits = sorted({hours.draw(rng, created + 60, self.now - _DAY) for _ in range(rng.randint(2, 5))} - {created})
        outcome = "won" if fate == "reopen" else rng.choices(("won", "lost", "open"), (40, 25, 35))[0]
        switch = rng.randint(1, len(edits)) if fate == "owner" and edits else None
        size = rng.choices(_SIZES, [w for *_, w in _SIZES])[0]
        cents = rng.randrange(size[0], size[1], 50) * 100 + (rng.randrange(100) if rng.random() < 0.15 else 0)
        owner, stage, closed = rep.rep_id, "open", None
        versions: list[tuple[int, dict[str, Any]]] = []

        def version(ts: int) -> None:
            label = _OPEN_LABELS[min(len(versions), 3)] if stage == "open" else f"Closed {stage.title()}"
            data = {"deal_id": deal_id, "rep_id": owner, "amount": _money(cents), "currency": CURRENCY,
                    "stage": stage, "stage_label": label, "created_at": _iso(created), "updated_at": _iso(ts)}
            if closed is not None:
                data["closed_at"] = _iso(closed)
            versions.append((ts, data))
            self.emit("deal.upserted", ts, data)

        version(created)
        for k, ts in enumerate(edits, start=1):
            if k == switch:
                owner = rng.choice([r.rep_id for r in reps if r.rep_id != rep.rep_id])
            if rng.random() < 0.5:
                cents = cents * rng.choice((80, 90, 110, 120, 150)) // 100 // 5000 * 5000 or cents
            if k == len(edits) and outcome != "open":
                stage, closed = outcome, max(created, ts - rng.randint(0, 7200))
            version(ts)
        last = versions[-1][0]
        if stage == "won" and rng.random() < 0.15:  # the amount corrected after the win
            cents = cents * rng.choice((90, 95, 105)) // 100
            version(last := hours.draw(rng, last + 1, self.now))
        if fate == "reopen" and stage == "won":
            stage, closed = "open", None
            version(last := hours.draw(rng, last + 1, self.now))
        moments = [ts for ts, _ in versions]
        if fate == "delete":
            gone = hours.draw(rng, last + 1, self.now)
            self.emit("deal.deleted", gone, {"deal_id": deal_id, "updated_at": _iso(gone)})
            moments.append(gone)
        elif stage == "won":
            self.won[owner] = self.won.get(owner, 0) + cents
        if stale and len(moments) > 1 and moments[-1] - moments[-2] > 1:
            # an edit made before the latest one, delivered after it: it must lose on updated_at
            ts = rng.randint(moments[-2] + 1, moments[-1] - 1)
            data = {**versions[-1][1], "amount": _money(cents * 3), "stage": "won", "stage_label": "Closed Won",
                    "closed_at": _iso(ts), "updated_at": _iso(ts)}
            self.emit("deal.upserted", ts, data, sent=min(self.now, moments[-1] + rng.randint(60, _DAY)))

    def activities(self, rep: _Rep) -> None:
        rng, hours = self.rng, self.hours[rep.zone]
        created = [c for c, _ in rep.deals]
        for _ in range(self.s.activities_per_rep):
            ts = hours.draw(rng, self.work, self.now)
            kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
            data: dict[str, Any] = {"activity_id": f"act-{len(self.out):06d}", "rep_id": rep.rep_id, "kind": kind,
                                    "occurred_at": _iso(ts)}
            if kind in _DURATIONS:
                data["duration_s"] = rng.randrange(*_DURATIONS[kind], 30)
            if (known := bisect_right(created, ts)) and rng.random() < 0.4:
                data["deal_id"] = rep.deals[rng.randrange(known)][1]
            self.calls[rep.rep_id] = self.calls.get(rep.rep_id, 0) + (kind == "call")
            self.emit("activity.logged", ts, data)

    def targets(self, reps: list[_Rep], teams: list[str]) -> None:
        """Targets set at the start of the quarter, sized from the outcome so a third of the reps end above
        100 %, a third between 50 and 100 %, a third below 50 % (for each metric on its own)."""
        rng, clock = self.rng, itertools.count(600)
        by_team: dict[str, int] = dict.fromkeys(teams, 0)
        for metric, actual, unit, fallback in (("won_revenue", self.won, 50_000, 15_000_000),
                                                ("calls", self.calls, 1, 25)):
            bands = [_BANDS[i % 3] for i in range(len(reps))]
            rng.shuffle(bands)
            for rep, band in zip(reps, bands, strict=True):
                done = actual.get(rep.rep_id, 0)
                value = max(unit, round(done * 100 / rng.randint(*band) / unit) * unit) if done else fallback
                if metric == "won_revenue":
                    by_team[rep.team] += value
                text = _money(value) if metric == "won_revenue" else str(value)
                self.emit("target.set", self.at_setup(next(clock)), self.target("rep", rep.rep_id, metric, text))
        by_team["region-1"] = sum(by_team.values())
        for team, cents in by_team.items():
            rounded = _money(round(cents / 100_000) * 100_000)
            self.emit("target.set", self.at_setup(next(clock)), self.target("team", team, "won_revenue", rounded))

    def target(self, scope: str, scope_id: str, metric: str, value: str) -> dict[str, Any]:
        return {"scope": scope, "scope_id": scope_id, "metric": metric, "period": self.period, "value": value}


def _deliver(rng: random.Random, settings: Settings,
             sent: dict[str, list[tuple[int, Event]]]) -> list[tuple[str, Event]]:
    """Interleave the tenants by sending time, shuffle within windows, then re-send a share of events later."""
    merged = sorted(((at, t, i, slug, event) for t, (slug, evs) in enumerate(sent.items())
                     for i, (at, event) in enumerate(evs)), key=lambda item: item[:3])
    items = [(n, slug, event) for n, (*_, slug, event) in enumerate(merged)]
    width = settings.disorder_window
    for start in range(0, len(items), width):
        block = items[start:start + width]
        rng.shuffle(block)  # a rep's roster events too: kpi's team history does not depend on their order
        items[start:start + width] = block
    later: dict[int, list[tuple[str, Event]]] = {}
    for p in sorted(rng.sample(range(len(items)), round(settings.duplicate_rate * len(items)))):
        later.setdefault(rng.randint(p, min(len(items) - 1, p + 20 * width)), []).append(items[p][1:])
    return [pair for p, (_, slug, event) in enumerate(items) for pair in [(slug, event), *later.get(p, ())]]


def _malformed(rng: random.Random, settings: Settings, plans: list[TenantPlan],
               events: dict[str, list[Event]]) -> dict[str, list[Record]]:
    """Per input topic, records as a broken producer might write them, each broken in a different way
    (kinds in turn across topics, so every kind appears when there are enough records)."""
    out: dict[str, list[Record]] = {}
    dealt = itertools.count()
    deferred: list[str] = []  # "null-value" passed over by a compacted topic, for the next topic that takes it
    for topic in INPUT_TOPICS:
        out[topic.name] = []
        # on a compacted topic a record without a value is a tombstone (skipped by design), not poison
        takes = (lambda k: k != "null-value") if topic.cleanup == "compact" else (lambda k: True)
        for j in range(settings.malformed_per_topic):
            kind = next((k for k in deferred if takes(k)), None)
            if kind is not None:
                deferred.remove(kind)
            while kind is None:
                kind = MALFORMED_KINDS[next(dealt) % len(MALFORMED_KINDS)]
                if not takes(kind):
                    deferred.append(kind)
                    kind = None
            plan = plans[j % len(plans)]
            base = next(e for e in events[plan.slug] if e["type"] == _MALFORMED_BASE[topic.name][0])
            data = dict(base["data"])  # about a real rep: should one slip through, the oracle sees it
            event = ce.CloudEvent(id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), type=base["type"],
                                  source=SOURCE, time=datetime.fromisoformat(base["time"]), tenant=plan.slug,
                                  data=data, extensions={"tenanttimezone": plan.timezone, "tenantcurrency": CURRENCY,
                                                         "tenantfiscalstart": str(plan.fiscal_start_month)})
            value, headers = ce.encode(event)
            body: bytes | None = value
            if kind in _BAD_HEADERS:
                name, raw = _BAD_HEADERS[kind]
                headers = [(n, raw if n == name else v) for n, v in headers]
            elif kind == "missing-headers":
                headers = [(n, v) for n, v in headers if n not in (ce.H_ID, ce.H_SOURCE, ce.H_TIME)]
            elif kind == "invalid-field":
                body = json.dumps(data | dict([_MALFORMED_BASE[topic.name][1]])).encode()
            else:
                body = {"not-json": value[: len(value) // 2], "not-an-event": b'{"hello": "world"}',
                        "not-an-object": json.dumps([data]).encode(), "null-value": None}[kind]
            # a key of its own: on a compacted topic a real entity's key would let compaction drop the real record
            key = ce.message_key(plan.slug, f"chaos-malformed/{topic.name}/{j}")
            out[topic.name].append((key, body, [*headers, (MALFORMED_HEADER, kind.encode())]))
    return out


def generate(settings: Settings, now: datetime) -> Scenario:
    """The scenario `settings` describe, for the quarter so far at `now` (the run's clock); a pure function of
    the two (it never reads the clock). Raises ValueError when `Settings.window` refuses `now`."""
    start, now = settings.window(now)
    plans = [TenantPlan(f"chaos-{settings.seed}-{i}", _zone_of(i), CURRENCY, 1) for i in range(settings.tenants)]
    sent = {plan.slug: _Tenant(settings, plan, i, start, now).build() for i, plan in enumerate(plans)}
    events = {slug: [event for _, event in evs] for slug, evs in sent.items()}
    stream = _deliver(random.Random(f"attain-chaos/{settings.seed}/delivery"), settings, sent)
    malformed = _malformed(random.Random(f"attain-chaos/{settings.seed}/malformed"), settings, plans, events)
    return Scenario(plans, events, stream, malformed)
