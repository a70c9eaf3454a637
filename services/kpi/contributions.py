"""Where each deal version and activity counts: signed deltas of per-period tallies, pure.

kpi keeps one running tally per (scope, scope id, period) and moves it by deltas instead of
re-reading history: when a deal changes, its old version is taken out of every tally it counted
in and its new version put in. The invariant, which `rebuild` recomputes from scratch and the
property tests check, is

    tally(scope, id, period) = sum of the contributions of every live deal and activity

where a contribution lands in the periods (month, quarter, ISO week, year) of the tenant-local
day of its moment, for the rep, for the team the rep belonged to at that moment, and for every
team above that one (region, company: `team.upserted`'s parent, as the hierarchy stands now):

- a deal with `created_at` adds its amount to `pipeline_created` at creation;
- a won deal adds 1 to `deals_won` and its amount to `won_revenue` at `closed_at`;
- a lost deal adds 1 to `deals_lost` at `closed_at`;
- an activity adds 1 to `activities` and to `calls`, `emails` or `meetings` by kind.

Money is converted into the tenant's base currency at the rate valid on the local day of the
moment (1 unit of the deal's currency = `rate` base units; the newest rate from that day or
before). A deal whose currency has no rate yet is left out of the money metric and counted in
`unconverted` instead, so nothing is silently mis-added. Arithmetic is exact: it raises rather
than round.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Context, Decimal, Inexact, Rounded
from zoneinfo import ZoneInfo

from services.kpi.custom import Kpi
from services.kpi.tally import Tally
from shared.periods import labels_of_day
from shared.workdays import NO_CALENDAR, HolidayCalendar

FIELDS = ("won_revenue", "deals_won", "deals_lost", "pipeline_created", "calls", "emails", "meetings",
          "activities", "unconverted")
WON_REVENUE, DEALS_WON, DEALS_LOST, PIPELINE, CALLS, EMAILS, MEETINGS, ACTIVITIES, UNCONVERTED = range(9)
MONEY = (WON_REVENUE, PIPELINE)
BY_KIND = {"call": CALLS, "email": EMAILS, "meeting": MEETINGS}
EXACT = Context(prec=400, traps=[Inexact, Rounded])  # a result that would need rounding raises

Key = tuple[str, str, str]  # scope, scope id, period label
CustomKey = tuple[str, str, str, str]  # a KPI the tenant defined, scope, scope id, period label
Vector = list[int | Decimal]  # FIELDS, in order
START_OF_TIME = datetime.min.replace(tzinfo=UTC)  # a rep's first team holds from here (memberships)


@dataclass(frozen=True, slots=True)
class Deal:
    """The part of a stored deal version that counts."""

    rep_id: str
    stage: str
    amount: Decimal
    currency: str
    created_at: datetime | None
    closed_at: datetime | None
    expected_close_at: datetime | None = None  # an open deal's: where it counts in forecasts (no tally)
    # what a KPI the tenant defines may filter on (`custom.py`); the properties as their stored JSON text
    deal_id: str = ""
    stage_label: str | None = None
    properties: str | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    rep_id: str
    kind: str
    occurred_at: datetime
    deal_id: str | None = None  # and these, for the KPIs a tenant defines
    duration_s: int | None = None
    properties: str | None = None
    activity_id: str = ""


@dataclass(slots=True)
class Books:
    """What attribution needs to know of a tenant: its calendar, base currency, rates and roster; and, for the
    pace of its figures (not for attribution: no tally depends on them), its holidays."""

    timezone: ZoneInfo
    fiscal_start_month: int = 1
    currency: str | None = None
    rates: Mapping[str, Sequence[tuple[date, Decimal]]] = field(default_factory=dict)  # by valid_from, ascending
    memberships: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)  # by valid_from, ascending
    parents: Mapping[str, str] = field(default_factory=dict)  # team -> the team (region, company) above it
    holidays: HolidayCalendar = NO_CALENDAR  # tenant.upserted.holidays (`pace.py`)

    def lineage(self, team: str) -> list[str]:
        """The team and every team above it, nearest first (a cycle in the data stops the walk)."""
        chain = [team]
        while (parent := self.parents.get(chain[-1])) is not None and parent not in chain:
            chain.append(parent)
        return chain

    def team_at(self, rep_id: str, moment: datetime) -> str | None:
        """The team the rep was in at `moment`: the membership valid from the latest time not after it."""
        spans = self.memberships.get(rep_id)
        if not spans:
            return None
        i = bisect_right(spans, moment, key=lambda span: span[0])
        return spans[i - 1][1] if i else None

    def in_base(self, amount: Decimal, currency: str, day: date) -> Decimal | None:
        """`amount` in the base currency at the rate of `day`; None when no rate is known by then."""
        if self.currency is None or currency == self.currency:
            return amount
        rates = self.rates.get(currency, ())
        i = bisect_right(rates, day, key=lambda rate: rate[0])
        return EXACT.multiply(amount, rates[i - 1][1]) if i else None


def zero() -> Vector:
    return [0] * len(FIELDS)


@dataclass(slots=True)
class Ledger:
    """Accumulates signed contributions per key; `scopes` limits which tallies are touched."""

    books: Books
    scopes: tuple[str, ...] = ("rep", "team")
    deltas: dict[Key, Vector] = field(default_factory=dict)
    # the keys whose forecast an open deal's version moves (its expected close's periods): no tally changes,
    # but a won_revenue figure there is published again with its new forecast (`outlook.py`)
    touched: set[Key] = field(default_factory=set)
    # every (rep, moment) a record counted at: which contests a batch may move (`contests.touches`)
    moments: list[tuple[str, datetime]] = field(default_factory=list)
    # the KPIs the tenant defined, and their signed deltas: (kpi, scope, id, period) -> [n, total, unconverted],
    # and for `distinct_deals` (kpi, scope, id, period, deal) -> count (`custom.py`)
    kpis: Sequence[Kpi] = ()
    custom: dict[CustomKey, list[int | Decimal]] = field(default_factory=dict)
    custom_deals: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)

    def deal(self, deal: Deal, sign: int) -> None:
        """Add (sign 1) or take out (sign -1) everything a deal version counts for."""
        if deal.stage == "open" and deal.expected_close_at is not None:
            self.touched.update(self.keys(deal.rep_id, deal.expected_close_at))
        if deal.created_at is not None:
            self._money(deal, deal.created_at, PIPELINE, None, sign)
        if deal.closed_at is not None and deal.stage == "won":
            self._money(deal, deal.closed_at, WON_REVENUE, DEALS_WON, sign)
        elif deal.closed_at is not None and deal.stage == "lost":
            self._add(deal.rep_id, deal.closed_at, ((DEALS_LOST, sign),))
        for kpi in self.kpis:
            if kpi.source == "deals" and (moment := kpi.deal_moment(deal.stage, deal.created_at,
                                                                    deal.closed_at)) is not None:
                base = self.books.in_base(deal.amount, deal.currency, self._day(moment))
                if kpi.deal_passes(deal.stage_label, base, deal.properties):
                    self._custom(kpi, deal.rep_id, moment, sign, base, deal.deal_id)

    def activity(self, activity: Activity, sign: int) -> None:
        kind = BY_KIND.get(activity.kind)
        parts = ((ACTIVITIES, sign), (kind, sign)) if kind is not None else ((ACTIVITIES, sign),)
        self._add(activity.rep_id, activity.occurred_at, parts)
        for kpi in self.kpis:
            if kpi.source == "activities" and kpi.activity_passes(activity.kind, activity.deal_id,
                                                                  activity.properties):
                self._custom(kpi, activity.rep_id, activity.occurred_at, sign,
                             Decimal(activity.duration_s or 0), activity.deal_id)

    def _custom(self, kpi: Kpi, rep_id: str, moment: datetime, sign: int, amount: Decimal | None,
                deal_id: str | None) -> None:
        """One record's part in a KPI the tenant defined: n, its amount (None: no exchange rate) and its deal."""
        distinct = deal_id if kpi.definition.aggregation == "distinct_deals" else None
        for scope, owner, period in self.keys(rep_id, moment):
            key = (kpi.kpi_id, scope, owner, period)
            vector = self.custom.get(key)
            if vector is None:
                vector = self.custom[key] = [0, Decimal(0), 0]
            vector[0] += sign
            if amount is None:
                vector[2] += sign
            else:
                vector[1] = EXACT.add(vector[1], amount if sign > 0 else EXACT.minus(amount))
            if distinct:
                counted = (*key, distinct)
                self.custom_deals[counted] = self.custom_deals.get(counted, 0) + sign

    def custom_changed(self) -> dict[CustomKey, list[int | Decimal]]:
        """The KPI tallies that move, with their deltas."""
        return {key: vector for key, vector in self.custom.items() if any(vector)}

    def _money(self, deal: Deal, moment: datetime, money: int, count: int | None, sign: int) -> None:
        base = self.books.in_base(deal.amount, deal.currency, self._day(moment))
        parts: list[tuple[int, int | Decimal]] = [(count, sign)] if count is not None else []
        parts.append((UNCONVERTED, sign) if base is None else (money, base if sign > 0 else EXACT.minus(base)))
        self._add(deal.rep_id, moment, parts)

    def _day(self, moment: datetime) -> date:
        return moment.astimezone(self.books.timezone).date()

    def keys(self, rep_id: str, moment: datetime) -> list[Key]:
        """Every (scope, id, period) a record of the rep at `moment` counts in."""
        labels = labels_of_day(self._day(moment), self.books.fiscal_start_month)
        owners = []
        if "rep" in self.scopes:
            owners.append(("rep", rep_id))
        if "team" in self.scopes and (team := self.books.team_at(rep_id, moment)) is not None:
            owners += [("team", t) for t in self.books.lineage(team)]
        return [(scope, owner, label) for scope, owner in owners for label in labels]

    def _add(self, rep_id: str, moment: datetime, parts: Iterable[tuple[int, int | Decimal]]) -> None:
        self.moments.append((rep_id, moment))
        parts = tuple(parts)
        for key in self.keys(rep_id, moment):
            vector = self.deltas.get(key)
            if vector is None:
                vector = self.deltas[key] = zero()
            for index, value in parts:
                vector[index] = EXACT.add(vector[index], value) if index in MONEY else vector[index] + value

    def changed(self) -> dict[Key, Vector]:
        """The keys whose tally moves, with their deltas (contributions that cancelled are left out)."""
        return {key: vector for key, vector in self.deltas.items() if any(vector)}


def tally_of(values: Sequence[int | Decimal]) -> Tally:
    """A stored or accumulated vector as the `Tally` the metrics are computed from."""
    v = values
    return Tally(won_revenue=Decimal(v[WON_REVENUE]), deals_won=int(v[DEALS_WON]), deals_lost=int(v[DEALS_LOST]),
                 pipeline_created=Decimal(v[PIPELINE]), calls=int(v[CALLS]), emails=int(v[EMAILS]),
                 meetings=int(v[MEETINGS]), activities=int(v[ACTIVITIES]), unconverted=int(v[UNCONVERTED]))
