"""The kpi benchmark's load: one tenant, a roster, quarterly targets, deals with edits, activities.

Pure (no I/O): it builds the Kafka records ingest would publish (topic, key `<tenant>:<rep_id>`,
CloudEvent with the tenant extensions) and remembers each deal's newest version, so the expected
`won_revenue` per (rep, quarter) is known without asking any consumer.

About 35 % of the events are `deal.upserted` and 65 % `activity.logged`. A deal is created open,
then edited (amount), won, lost or reopened, a few versions each; 2 % of the deal records repeat a
deal's latest version (a duplicate delivery, same `ce_id`) and 2 % re-send its previous version
after the newer one (out of order): neither may change any state. 1 % of the activities are
duplicates. Times advance with the event number, so each deal's `updated_at` only grows.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from shared import topics
from shared.cloudevents import CloudEvent, message_key

TIMEZONE = "Europe/Berlin"
EPOCH = datetime(2025, 10, 1, tzinfo=UTC)  # a year of history: 2025-Q4 .. 2026-Q3, all before "now"
YEAR = timedelta(days=365)
QUARTERS = ("2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")
TARGET = "1000000"
DEAL_SHARE, NEW_DEAL_SHARE, DUPLICATE_SHARE, LATE_SHARE = 0.35, 0.25, 0.02, 0.02
RETIRE_WHEN_CLOSED, MAX_LIVE_DEALS_PER_REP = 0.45, 20
KINDS = ("call", "email", "meeting", "demo", "task", "other")
SEGMENTS = ("smb", "mid", "enterprise")
CATEGORIES = ("pipeline", "pipeline", "best_case", "commit", "omitted")
# The two KPIs `--kpis` defines (issue 22): one over deals, one over activities, both with a property filter.
KPIS: dict[str, dict[str, object]] = {
    "won_smb_revenue": {"name": "Won SMB revenue", "source": "deals", "aggregation": "sum",
                        "filter": {"stage": "won", "properties": {"segment": ["smb"]}}},
    "demos_held": {"name": "Demos held", "source": "activities", "aggregation": "count",
                   "filter": {"kinds": ["demo", "meeting"], "properties": {"outcome": ["held"]}}},
}
SOURCE = "bench"


@dataclass(frozen=True, slots=True)
class Record:
    """One record to publish: topic, key and the CloudEvent it carries (the sender encodes it)."""

    topic: str
    key: bytes
    event: CloudEvent
    sample: bool = False  # a fresh deal version whose arrival in kpi's state the lag phase times


@dataclass(slots=True)
class Deal:
    """A deal's newest version, and the records of its last two versions (for duplicates and late ones)."""

    deal_id: str
    rep_id: str
    amount: Decimal
    stage: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    last: Record | None = None
    before: Record | None = None


@dataclass
class Workload:
    """Deterministic for a seed. `setup()` first, then `events()` as often as wanted (ids keep counting)."""

    tenant: str
    reps: int = 500
    seed: int = 11
    # issue 22: open deals carry a forecast (expected close, a probability for 70 % of them, a category) and
    # deals and activities CRM properties (`segment`, `outcome`), which the benchmark's KPIs filter on
    forecast: bool = False
    deals: dict[str, Deal] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    _n: int = 0
    _at: datetime = EPOCH
    _live: list[str] = field(default_factory=list)  # deals that may still change
    _last_activity: Record | None = None

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)  # noqa: S311 - reproducible load, not secrecy
        self._reps = [f"rep-{i:03d}" for i in range(self.reps)]
        self._extensions = {"tenanttimezone": TIMEZONE, "tenantfiscalstart": "1", "tenantcurrency": "EUR"}

    def setup(self) -> Iterator[Record]:
        """The roster (one `rep.upserted` per rep) and a `won_revenue` target per rep and quarter."""
        for i, rep in enumerate(self._reps):
            team = f"team-{i // 20:02d}"
            yield self._record(topics.ROSTER.name, rep, "rep.upserted", {
                "rep_id": rep, "name": f"Rep {i:03d}", "team_id": team, "manager_id": f"mgr-{team}",
                "timezone": TIMEZONE, "active": True})
        for rep in self._reps:
            for quarter in QUARTERS:
                yield self._record(topics.TARGETS.name, rep, "target.set", {
                    "scope": "rep", "scope_id": rep, "metric": "won_revenue", "period": quarter, "value": TARGET})

    def events(self, count: int, step: timedelta, sample_every: int = 0) -> Iterator[Record]:
        """`count` deal and activity records, `step` apart in CRM time; every `sample_every`-th fresh
        deal version is marked as a lag sample (0: none)."""
        fresh = 0
        for _ in range(count):
            self._at += step
            if self._rnd.random() >= DEAL_SHARE:
                yield self._activity()
                continue
            record, is_fresh = self._deal()
            if is_fresh:
                fresh += 1
                if sample_every and fresh % sample_every == 0:
                    record = Record(record.topic, record.key, record.event, sample=True)
            yield record

    def expected_won(self) -> dict[tuple[str, str], Decimal]:
        """Won revenue per (rep, quarter in the tenant's zone) of the deals' newest versions."""
        won: dict[tuple[str, str], Decimal] = {}
        for deal in self.deals.values():
            if deal.stage == "won" and deal.closed_at is not None:
                key = (deal.rep_id, quarter_of(deal.closed_at, TIMEZONE))
                won[key] = won.get(key, Decimal(0)) + deal.amount
        return won

    # --- deals -----------------------------------------------------------------------------

    def _deal(self) -> tuple[Record, bool]:
        """A deal record, and whether it is a new version (not a duplicate or a late older one)."""
        rnd, live = self._rnd, self._live
        roll = rnd.random()
        if live and roll < DUPLICATE_SHARE:
            self.counts["deal duplicate"] += 1
            last = self.deals[rnd.choice(live)].last
            assert last is not None
            return last, False
        if live and roll < DUPLICATE_SHARE + LATE_SHARE:
            before = self.deals[rnd.choice(live)].before
            if before is not None:
                self.counts["deal late (older version)"] += 1
                return before, False
        if not live or (rnd.random() < NEW_DEAL_SHARE and len(live) < MAX_LIVE_DEALS_PER_REP * self.reps):
            return self._new_deal(), True
        index = rnd.randrange(len(live))
        deal = self.deals[live[index]]
        self._advance(deal)
        record = self._version(deal)
        if deal.stage != "open" and rnd.random() < RETIRE_WHEN_CLOSED:  # final: forget its records
            live[index] = live[-1]
            live.pop()
            deal.last = deal.before = None
        return record, True

    def _new_deal(self) -> Record:
        deal_id = f"deal-{self._n}"
        deal = Deal(deal_id, self._rnd.choice(self._reps), self._amount(), "open", self._at, self._at)
        self.deals[deal_id] = deal
        self._live.append(deal_id)
        self.counts["deal created"] += 1
        return self._version(deal)

    def _advance(self, deal: Deal) -> None:
        roll, at = self._rnd.random(), self._at
        if deal.stage == "open":
            change = "amount edit" if roll < 0.45 else "won" if roll < 0.85 else "lost"
        elif deal.stage == "won":
            change = "amount edit" if roll < 0.40 else "reopened" if roll < 0.75 else "lost"
        else:
            change = "reopened" if roll < 0.6 else "won"
        self.counts[f"deal {change}" + (" (while won)" if change == "amount edit" and deal.stage == "won" else "")] += 1
        if change == "amount edit":
            deal.amount = self._amount()
        elif change == "reopened":
            deal.stage, deal.closed_at = "open", None
        else:
            deal.stage, deal.closed_at = change, at
        deal.updated_at = at

    def _version(self, deal: Deal) -> Record:
        data: dict[str, object] = {
            "deal_id": deal.deal_id, "rep_id": deal.rep_id, "amount": format(deal.amount, "f"), "currency": "EUR",
            "stage": deal.stage, "stage_label": deal.stage.title(), "created_at": _stamp(deal.created_at),
            "updated_at": _stamp(deal.updated_at)}
        if deal.closed_at is not None:
            data["closed_at"] = _stamp(deal.closed_at)
        if self.forecast:
            rnd = self._rnd
            data["properties"] = {"segment": SEGMENTS[int(deal.deal_id.rsplit("-", 1)[1]) % len(SEGMENTS)]}
            if deal.stage == "open":
                data["expected_close_at"] = _stamp(deal.created_at + timedelta(days=rnd.randrange(10, 120)))
                if rnd.random() < 0.7:
                    data["probability"] = f"0.{rnd.randrange(1, 10)}"
                data["forecast_category"] = rnd.choice(CATEGORIES)
        record = self._record(topics.DEALS.name, deal.rep_id, "deal.upserted", data)
        deal.before, deal.last = deal.last, record
        return record

    def _amount(self) -> Decimal:
        return Decimal(f"{self._rnd.randrange(500, 250_000)}.{self._rnd.randrange(100):02d}")

    # --- activities --------------------------------------------------------------------------

    def _activity(self) -> Record:
        rnd = self._rnd
        if self._last_activity is not None and rnd.random() < 0.01:
            self.counts["activity duplicate"] += 1
            return self._last_activity
        rep = rnd.choice(self._reps)
        self.counts["activity"] += 1
        self._last_activity = self._record(topics.ACTIVITIES.name, rep, "activity.logged", {
            "activity_id": f"act-{self._n}", "rep_id": rep, "kind": rnd.choice(KINDS),
            "occurred_at": _stamp(self._at), "duration_s": rnd.randrange(30, 3600)}
            | ({"properties": {"outcome": rnd.choice(("held", "no_show"))}} if self.forecast else {}))
        return self._last_activity

    def _record(self, topic: str, rep: str, kind: str, data: dict[str, object]) -> Record:
        self._n += 1
        event = CloudEvent(id=f"{self.tenant}-{self._n}", type=kind, source=SOURCE, time=self._at,
                           tenant=self.tenant, data=data, extensions=self._extensions)
        return Record(topic, message_key(self.tenant, rep), event)


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def quarter_of(moment: datetime, timezone: str) -> str:
    """The calendar quarter (fiscal year starting in January) `moment` falls in, in `timezone`."""
    local = moment.astimezone(_zone(timezone))
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def preload_step(count: int) -> timedelta:
    """CRM time between two events so that `count` of them span one year from EPOCH."""
    return YEAR / max(count, 1)
