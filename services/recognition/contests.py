"""A contest's moments: its start, each lasting new leader, its winners. Pure rules over kpi's standings.

kpi publishes a contest's full current standings (`ContestUpdated` on kpi.contests.v1) when it is defined or
changed, when its standings move, when it starts and when it ends; ``revision`` orders them. Recognition keeps
the latest revision of each contest (`model.Contest`, with who leads alone since when and the leader celebrated
last) and celebrates, through the ledger (each once, ever):

- ``contest_started`` (scope ``contest``, scope id and period the contest's id, value 0): the first revision
  seen running; a contest first seen already final gets its start too, quietly (status ``history``) when it
  began longer than the tenant's ``history_horizon_hours`` before that final revision. A cancelled contest
  never starts.
- ``contest_lead`` (scope rep or team, period the contest's id): a participant that has been the SOLE leader
  (``leaders`` holds exactly its id) for ``settings.contest_lead_debounce_s`` while the contest runs, unless
  it is the leader celebrated last. Its lead counts from the ``as_of`` of the first revision it led alone in
  (``since``); a tie, nobody leading or another leader starts it over. ``since`` is the ledger row's
  ``occasion``: a leader that lost the lead to one celebrated after it and takes it back is celebrated again,
  once per lead. Nothing once the contest has ended.
- ``contest_won`` (scope rep or team, period the contest's id): when the contest ends (status final), each
  participant ranked up to the number of prizes (1st only without prizes) with something to show (value > 0);
  tied participants share the place and its prize, and each is celebrated.

The consumer replays a batch's revisions (`fold_contests`); the timer asks `due_leads` every few seconds.
Both judge a lead by `lead_due`, so a lead that lasted is celebrated whether the timer saw it (at its tick)
or only the revision that ended it (at that revision's ``as_of``). No rule reads the clock or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.recognition.model import (
    CONTEST_LEAD,
    CONTEST_SCOPE,
    CONTEST_STARTED,
    CONTEST_WON,
    Contest,
    Found,
    Settings,
    Sighting,
)
from shared.events import ContestStanding, ContestUpdated, Scope

__all__ = ["ContestOutcome", "due_leads", "fold_contests", "follow", "lead_due", "start", "winners"]

_SCOPES: Mapping[str, Scope] = {"reps": Scope.REP, "teams": Scope.TEAM}
_MICROSECOND = timedelta(microseconds=1)


def follow(held: Contest | None, update: ContestUpdated) -> Contest:
    """The contest after ``update`` (a newer revision than ``held``'s): who leads alone now, and since when.

    A sole leader keeps its ``since`` across revisions; a new one (or one back after a tie) leads since the
    update's ``as_of``; nobody leads alone in a tie, before anyone scored, or once the contest is not running.
    The leader celebrated last is kept.

    Example: running revisions at 10:00 (leaders [a]), 10:04 ([a]), 10:06 ([a, b]), 10:07 ([a]): a since
    10:00, a since 10:00, nobody, a since 10:07.
    """
    sole = update.leaders[0] if len(update.leaders) == 1 and update.status == "running" else None
    since: datetime | None
    if sole is None:
        since = None
    elif held is not None and held.candidate == sole and held.since is not None:
        since = held.since
    else:
        since = update.as_of
    return Contest(update, sole, since, held.celebrated if held is not None else None)


def _ranked(standings: Sequence[ContestStanding]) -> list[ContestStanding]:
    """Standings best first (kpi sends them ranked; participants without a rank last, in kpi's order)."""
    order = {id(s): i for i, s in enumerate(standings)}
    return sorted(standings, key=lambda s: (s.rank is None, s.rank or 0, order[id(s)]))


def lead_due(contest: Contest, at: datetime, settings: Settings) -> Found | None:
    """The contest's lead to celebrate at ``at``: its sole leader has kept the lead long enough.

    Due when the contest is running, ``since + settings.contest_lead_debounce_s <= at < ends_at`` (exactly the
    debounce is enough; nothing once the contest has ended) and the leader is not the one celebrated last.
    The milestone is the participant's (scope rep or team) ``contest_lead`` in period = the contest's id,
    value its value, found at ``since + debounce`` (the moment the lead became lasting: the same whenever it
    is judged), with ``since`` (UTC, ISO 8601) as its occasion. Facts: the contest, since, the runner-up (the
    best-ranked other participant) and the margin, in the contest's ranking (value, or attainment).

    Example, debounce 600 s: a leads alone since 10:00 with 42,000, b second with 35,000: at 10:09:59
    nothing; at 10:10 contest_lead for a (since 10:00, runner-up b, margin 7,000), found at 10:10. Had a been
    the leader celebrated last, nothing.
    """
    latest, leader, since = contest.latest, contest.candidate, contest.since
    if CONTEST_LEAD in settings.disabled or latest.status != "running" or leader is None or since is None:
        return None
    lasting = since + timedelta(seconds=settings.contest_lead_debounce_s)
    if leader == contest.celebrated or not lasting <= at < latest.ends_at:
        return None
    ranked = _ranked(latest.standings)
    own = next((s for s in ranked if s.participant_id == leader), None)
    runner = next((s for s in ranked if s.participant_id != leader), None)
    value = own.value if own is not None else Decimal(0)
    margin: Decimal | None = None
    if runner is not None and latest.rank_by == "amount":
        margin = value - runner.value
    elif runner is not None and own is not None and own.attainment is not None and runner.attainment is not None:
        margin = own.attainment - runner.attainment
    facts: dict[str, Any] = {
        "name": (own.name if own is not None else None) or leader, "contest": latest.name,
        "contest_id": latest.contest_id, "metric": latest.metric, "rank_by": latest.rank_by,
        "since": since.astimezone(UTC).isoformat(), "value": value,
        "runner_up": (runner.name or runner.participant_id) if runner is not None else None,
        "runner_up_id": runner.participant_id if runner is not None else None,
        "runner_up_value": runner.value if runner is not None else None, "margin": margin,
        "first": contest.celebrated is None,
    }  # fmt: skip
    return Found(_SCOPES[latest.participants], leader, CONTEST_LEAD, latest.contest_id, value, lasting, facts,
                 occasion=since.astimezone(UTC).isoformat())


def due_leads(contests: Iterable[Contest], now: datetime, settings: Settings) -> list[tuple[Contest, Found]]:
    """The timer's part: each contest whose lead is due at ``now`` (`lead_due`), as it stands once its leader
    is the one celebrated last, with the lead's milestone."""
    due = []
    for contest in contests:
        if (found := lead_due(contest, now, settings)) is not None:
            due.append((replace(contest, celebrated=contest.candidate), found))
    return due


def start(update: ContestUpdated, tz: ZoneInfo, settings: Settings) -> Found | None:
    """The contest's start as a running or final revision shows it (None when scheduled or cancelled, or when
    ``contest_started`` is disabled): scope ``contest``, value 0, found at ``starts_at``.

    Facts: its name, metric, ends_at (and ``last_day``, the window's last local day in ``tz``: it ends before
    ``ends_at``), the prizes (and ``prize``, 1st place's), how many participants and of which kind.
    """
    if CONTEST_STARTED in settings.disabled or update.status not in ("running", "final"):
        return None
    facts: dict[str, Any] = {
        "name": update.name, "contest_id": update.contest_id, "metric": update.metric,
        "participants": len(update.standings), "participant_kind": update.participants,
        "starts_at": update.starts_at.astimezone(UTC).isoformat(),
        "ends_at": update.ends_at.astimezone(UTC).isoformat(),
        "last_day": (update.ends_at - _MICROSECOND).astimezone(tz).date().isoformat(),
        "prizes": list(update.prizes), "prize": update.prizes[0] if update.prizes else None,
    }  # fmt: skip
    return Found(CONTEST_SCOPE, update.contest_id, CONTEST_STARTED, update.contest_id, Decimal(0), update.starts_at,
                 facts)


def winners(update: ContestUpdated, settings: Settings) -> list[Found]:
    """A final contest's prize places: each participant ranked up to ``max(1, len(prizes))`` with a value above
    0, in standings order, found at the final revision's ``as_of``. Tied participants share the place and its
    prize (``tied`` true). Nothing unless the contest is final, or when ``contest_won`` is disabled.

    Example, prizes ["a weekend in Rome", "a dinner"], ranks a 1 (tied), b 1 (tied), c 3: a and b each win 1st
    place and the weekend; c wins nothing. Without prizes only 1st place is celebrated; when every value is 0
    nobody is.
    """
    if CONTEST_WON in settings.disabled or update.status != "final":
        return []
    places = max(1, len(update.prizes))
    ranks = [s.rank for s in update.standings]
    found = []
    for s in update.standings:
        if s.rank is None or not 1 <= s.rank <= places or s.value <= 0:
            continue
        facts: dict[str, Any] = {
            "name": s.name or s.participant_id, "contest": update.name, "contest_id": update.contest_id,
            "metric": update.metric, "place": s.rank, "tied": s.tied or ranks.count(s.rank) > 1,
            "prize": update.prizes[s.rank - 1] if s.rank <= len(update.prizes) else None, "value": s.value,
        }  # fmt: skip
        found.append(Found(_SCOPES[update.participants], s.participant_id, CONTEST_WON, update.contest_id, s.value,
                           update.as_of, facts))
    return found


@dataclass(slots=True)
class ContestOutcome:
    """What a batch's contest revisions did: each contest as it stands after them, and what they reached."""

    changed: list[Contest]
    sightings: list[Sighting]


def fold_contests(stored: Mapping[str, Contest], updates: Sequence[ContestUpdated], settings: Settings,
                  tz: ZoneInfo) -> ContestOutcome:
    """Replay ``updates`` (batch order) on the ``stored`` contests of their ids.

    A revision not newer than the one held changes nothing (a redelivery, or an older one arriving late).
    Each newer one, in this order: the held leader's lead, if it was due by the revision's ``as_of`` while the
    revision still runs the contest (`lead_due`: the timer may not have seen it before it ended); the new
    state (`follow`); the start, on the first revision seen running (or final, `start`); the winners, on the
    first revision seen final (`winners`).

    Example, horizon 48 h: revision 1 scheduled; 2 running at 09:00 (a leads alone); 3 running at 09:30 (b
    leads alone): the start at position 1, a's lead (since 09:00, debounce 600 s) at position 2; revision 2
    again changes nothing. A contest first seen at revision 9, final, three days after it started: its start
    quietly (history) and its winners.
    """
    state = dict(stored)
    changed: dict[str, Contest] = {}
    sightings: list[Sighting] = []
    horizon = timedelta(hours=settings.history_horizon_hours)
    for position, update in enumerate(updates):
        held = state.get(update.contest_id)
        if held is not None and update.revision <= held.latest.revision:
            continue
        if held is not None and update.status == "running" and (
                lasting := lead_due(held, update.as_of, settings)) is not None:
            sightings.append(Sighting(lasting, position, source="contest"))
            held = replace(held, celebrated=held.candidate)
        was = held.latest.status if held is not None else None
        first = (update.status == "running" and was != "running") or (
            update.status == "final" and was not in ("running", "final"))
        if first and (began := start(update, tz, settings)) is not None:
            sightings.append(Sighting(began, position, source="contest", happened_at=update.as_of,
                                      history=update.status == "final" and update.as_of - update.starts_at > horizon))
        if update.status == "final" and was != "final":
            sightings += [Sighting(won, position, source="contest") for won in winners(update, settings)]
        state[update.contest_id] = changed[update.contest_id] = follow(held, update)
    return ContestOutcome(list(changed.values()), sightings)
