"""The forecasts of several figures at once, from kpi's state: two reads per call, the arithmetic in `outlook`.

The handler calls it for the won_revenue figures it is about to publish whose period has not ended (with a
smaller budget for the exact method and the simulation: `LIVE_STATES`, `LIVE_SAMPLES`, so a batch stays cheap
and the error stays stated); the read API calls it for one figure with the full budget and each deal's
swing. One read gets the open deals of every rep and team asked about (and of every team below them) expected
to close inside the periods asked about; the closed-deal history is read only when a deal lacks a CRM
probability.

Which figure an open deal counts in follows the tallies' rule for a won deal: the rep's, and the team the rep
is in at the deal's expected close (the roster as it stands for that moment) and every team above it; the
period of the local day of its expected close. A deal with no expected close counts in no period
(`undated`, attributed to the rep's team of now).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from services.kpi.contributions import Books, Key
from services.kpi.outlook import HISTORY_DAYS, Explained, History, Prospect, history_of, outlook
from services.kpi.ports import Repository
from shared.events import Forecast

LIVE_STATES = 5_000  # the handler's budget for the exact method's partial sums (the read API: forecast.MAX_STATES)
LIVE_SAMPLES = 2_000  # and for the simulation: a 99 % error of at most 0.0288 (at p = 0.5)

Wanted = tuple[str, str, str, Decimal, Decimal | None]  # scope, scope id, period, closed (actual), target


async def forecasts(store: Repository, tenant: str, books: Books, wanted: Sequence[Wanted],
                    bounds: Mapping[str, tuple[datetime, datetime]], now: datetime) -> dict[Key, Forecast]:
    """The forecast of each wanted figure (the handler's budget)."""
    if not wanted:
        return {}
    found = await explained(store, tenant, books, wanted, bounds, now, states=LIVE_STATES, samples=LIVE_SAMPLES)
    return {key: e.forecast for key, e in found.items()}


async def explained(store: Repository, tenant: str, books: Books, wanted: Sequence[Wanted],
                    bounds: Mapping[str, tuple[datetime, datetime]], now: datetime, *, states: int, samples: int,
                    swings: bool = False) -> dict[Key, Explained]:
    reps = {scope_id for scope, scope_id, *_ in wanted if scope == "rep"}
    teams = {scope_id for scope, scope_id, *_ in wanted if scope == "team"}
    start = min(bounds[period][0] for _, _, period, *_ in wanted)
    end = max(bounds[period][1] for _, _, period, *_ in wanted)
    rows = await store.open_deals(tenant, reps, _below(books, teams), start, end)
    await store.load_memberships(tenant, books, {r["rep_id"] for r in rows})
    mine: dict[str, History] = {}
    everyone = History()
    if any(r["probability"] is None and r["expected_close_at"] is not None for r in rows):
        mine, everyone = await _history(store, tenant, now)
    by_key: dict[Key, list[Prospect]] = defaultdict(list)
    undated: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        rep, moment = r["rep_id"], r["expected_close_at"]
        owners = [("rep", rep)]
        if (team := books.team_at(rep, moment or now)) is not None:
            owners += [("team", t) for t in books.lineage(team)]
        if moment is None:
            for owner in owners:
                undated[owner] += 1
            continue
        day = moment.astimezone(books.timezone).date()
        prospect = Prospect(r["deal_id"], rep, books.in_base(r["amount"], r["currency"].strip(), day), r["amount"],
                            moment, r["probability"], r["forecast_category"], r["stage_label"])
        for scope, owner in owners:
            by_key[(scope, owner, "")].append(prospect)
    out: dict[Key, Explained] = {}
    for scope, scope_id, period, closed, target in wanted:
        first, last = bounds[period]
        inside = [p for p in by_key.get((scope, scope_id, ""), ()) if first <= p.expected_close_at < last]
        out[(scope, scope_id, period)] = outlook(
            closed=closed, target=target, prospects=inside, undated=undated.get((scope, scope_id), 0),
            histories=mine, tenant_history=everyone, max_states=states, samples=samples, swings=swings)
    return out


# The win rates estimates use: a tenant's closed deals of the 365 days before the day (UTC) began, read once per
# tenant and day by each kpi process (a whole-tenant aggregate: read per batch it cost more than the rest of the
# forecast). So an estimate moves at most once a day; replicas agree on it but for a deal closed yesterday that
# arrives after one of them read the day's history.
_HISTORIES: OrderedDict[tuple[str, date], tuple[dict[str, History], History]] = OrderedDict()
_HISTORIES_KEPT = 512


async def _history(store: Repository, tenant: str, now: datetime) -> tuple[dict[str, History], History]:
    day = now.astimezone(UTC).date()
    key = (tenant, day)
    if (found := _HISTORIES.get(key)) is not None:
        _HISTORIES.move_to_end(key)
        return found
    until = datetime.combine(day, time.min, UTC)
    found = _histories(await store.win_history(tenant, until - timedelta(days=HISTORY_DAYS), until))
    _HISTORIES[key] = found
    while len(_HISTORIES) > _HISTORIES_KEPT:
        _HISTORIES.popitem(last=False)
    return found


def _below(books: Books, teams: set[str]) -> set[str]:
    """The teams and every team under them (by the hierarchy's parents)."""
    if not teams:
        return set()
    known = set(books.parents) | set(books.parents.values()) | teams
    return {t for t in known if teams.intersection(books.lineage(t))}


def _histories(rows: Sequence[Mapping[str, object]]) -> tuple[dict[str, History], History]:
    """Each rep's `History` and the tenant's, from `repository.win_history`'s rows."""
    stages: dict[str | None, list[tuple[str, str, int, int]]] = defaultdict(list)
    sizes: dict[str | None, list[tuple[str, int, int]]] = defaultdict(list)
    for r in rows:
        rep = r["rep_id"]
        key = rep if isinstance(rep, str) else None
        won, closed = int(r["won"]), int(r["closed"])  # type: ignore[call-overload]
        if r["kind"] == "stage":
            stages[key].append((str(r["stage_label"]), str(r["band"]), won, closed))
        else:
            sizes[key].append((str(r["band"]), won, closed))
    reps = {k for k in (*stages, *sizes) if k is not None}
    return ({rep: history_of(stages.get(rep, []), sizes.get(rep, [])) for rep in reps},
            history_of(stages.get(None, []), sizes.get(None, [])))
