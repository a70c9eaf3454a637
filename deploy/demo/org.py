"""The simulated sales org and its quarter (pure): teams, managers, reps, profiles, targets.

Reps get a profile that decides how their quarter goes (see `simulator`), an IANA zone near
their team's region, and a quarterly `won_revenue` target between 60k and 120k EUR. The
quarter is the tenant's calendar quarter, computed by the one period calendar of `shared`.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.periods import PeriodKind, parse_period, period_bounds, period_of
from shared.workdays import HolidayCalendar

__all__ = ["COMPANY_DAYS", "MAX_REPS", "MAX_TEAMS", "MIN_REPS", "MIN_TEAMS", "TENANT_TIMEZONE", "Org", "Profile",
           "Quarter", "Rep", "Team", "build_org"]  # fmt: skip

TENANT_TIMEZONE = "Europe/Berlin"
TENANT_COUNTRY, TENANT_SUBDIVISION = "DE", "BE"  # the demo company sits in Berlin: its public holidays are days off
# ... and, as most German companies, it closes on Christmas Eve and New Year's Eve (not public holidays there)
COMPANY_DAYS = ((12, 24, "Christmas Eve (office closed)"), (12, 31, "New Year's Eve (office closed)"))
MIN_REPS, MAX_REPS = 20, 120

_TEAMS = (
    ("team-dach", "DACH", ("Europe/Berlin", "Europe/Vienna", "Europe/Zurich")),
    ("team-uki", "UK & Ireland", ("Europe/London", "Europe/Dublin")),
    ("team-nordics", "Nordics", ("Europe/Stockholm", "Europe/Oslo", "Europe/Copenhagen")),
    ("team-south", "Southern Europe", ("Europe/Madrid", "Europe/Rome", "Europe/Lisbon")),
    ("team-benelux", "France & Benelux", ("Europe/Paris", "Europe/Brussels", "Europe/Amsterdam")),
    ("team-cee", "Central Europe", ("Europe/Warsaw", "Europe/Prague", "Europe/Budapest")),
    ("team-na", "North America", ("America/New_York", "America/Chicago", "America/Toronto")),
    ("team-mea", "Middle East & Africa", ("Asia/Dubai", "Africa/Johannesburg", "Africa/Lagos")),
)
MIN_TEAMS, MAX_TEAMS = 3, len(_TEAMS)
_FIRST = (
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hugo", "Ines", "Jonas",
    "Katrin", "Lars", "Mia", "Noah", "Olga", "Paul", "Quentin", "Rosa", "Sven", "Tara",
    "Umut", "Vera", "Wim", "Xenia", "Yusuf", "Zoë", "Amélie", "Björn", "Chiara", "Diego",
    "Emma", "Felix", "Hannah", "Jakob", "Leonie", "Matteo", "Nora", "Oskar", "Pia", "Rafael",
)  # fmt: skip
_LAST = (
    "Schmidt", "Müller", "Dubois", "Rossi", "García", "Jansen", "Nowak", "Larsen", "O'Brien",
    "Costa", "Weber", "Fischer", "Lefèvre", "Bianchi", "Martín", "de Vries", "Kowalski",
    "Nilsson", "Murphy", "Silva", "Becker", "Hoffmann", "Moreau", "Romano", "López", "Bakker",
    "Wiśniewski", "Andersen", "Kelly", "Pereira",
)  # fmt: skip


class Profile(StrEnum):
    """How a rep's quarter goes."""

    STRONG = "strong"  # ends above target, on pace throughout
    STEADY = "steady"  # ends around 80-100%
    SLIPPING = "slipping"  # stalls after the first month, ends around 30-40%


@dataclass(frozen=True, slots=True)
class Quarter:
    """A calendar quarter of the tenant: label and half-open UTC bounds."""

    label: str
    start: datetime
    end: datetime
    timezone: str = TENANT_TIMEZONE

    @classmethod
    def containing(cls, moment: datetime, timezone: str = TENANT_TIMEZONE) -> Quarter:
        """The quarter that contains `moment` as seen in `timezone` (the one shared calendar)."""
        period = period_of(PeriodKind.QUARTER, moment, timezone)
        start, end = period_bounds(period, timezone)
        return cls(period.label, start, end, timezone)

    @classmethod
    def of(cls, label: str, timezone: str = TENANT_TIMEZONE) -> Quarter:
        """The quarter `label` (e.g. ``2026-Q4``) in `timezone`; ValueError (from the period calendar) naming
        what is wrong with a label that is no quarter."""
        period = parse_period(label)
        if period.kind is not PeriodKind.QUARTER:
            raise ValueError(f"{label!r} is not a quarter such as 2026-Q4")
        start, end = period_bounds(period, timezone)
        return cls(period.label, start, end, timezone)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def at(self, fraction: float) -> datetime:
        """The instant `fraction` (0 = start, 1 = end) of the way through the quarter."""
        return self.start + timedelta(seconds=self.seconds * fraction)

    def fraction(self, moment: datetime) -> float:
        """How far through the quarter `moment` is (not clamped)."""
        return (moment - self.start).total_seconds() / self.seconds

    @property
    def days(self) -> tuple[date, date]:
        """Its first and last local day."""
        zone = ZoneInfo(self.timezone)
        return self.start.astimezone(zone).date(), (self.end - timedelta(microseconds=1)).astimezone(zone).date()

    def company_days(self) -> dict[date, str]:
        """The days the demo company closes beyond the public holidays, within the quarter."""
        first, last = self.days
        days = {date(year, month, day): name for year in range(first.year, last.year + 1)
                for month, day, name in COMPANY_DAYS}
        return {day: name for day, name in days.items() if first <= day <= last}

    def calendar(self) -> HolidayCalendar:
        """The demo tenant's holiday calendar for the quarter: Berlin's public holidays and its company days."""
        return HolidayCalendar(TENANT_COUNTRY, TENANT_SUBDIVISION, self.company_days())


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    name: str
    manager_id: str
    manager_name: str


@dataclass(frozen=True, slots=True)
class Rep:
    rep_id: str
    name: str
    team_id: str
    manager_id: str
    email: str
    timezone: str
    profile: Profile
    target: Decimal  # won_revenue for the quarter, in CURRENCY


@dataclass(frozen=True, slots=True)
class Org:
    teams: tuple[Team, ...]
    reps: tuple[Rep, ...]

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.rep_id == rep_id), None)

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams if t.team_id == team_id), None)

    def team_target(self, team_id: str) -> Decimal:
        return sum((r.target for r in self.reps if r.team_id == team_id), Decimal(0))


def build_org(rng: random.Random, reps: int, teams: int) -> Org:
    """`reps` reps in `teams` teams, profiles shuffled so that every team has a mix."""
    if not MIN_REPS <= reps <= MAX_REPS:
        raise ValueError(f"reps must be between {MIN_REPS} and {MAX_REPS}, got {reps}")
    if not MIN_TEAMS <= teams <= MAX_TEAMS:
        raise ValueError(f"teams must be between {MIN_TEAMS} and {MAX_TEAMS}, got {teams}")
    people = rng.sample([f"{first} {last}" for first in _FIRST for last in _LAST], reps + teams)
    team_list = tuple(
        Team(team_id, name, f"mgr-{team_id.removeprefix('team-')}", people[reps + i])
        for i, (team_id, name, _) in enumerate(_TEAMS[:teams])
    )
    zones = {team_id: zones for team_id, _, zones in _TEAMS}
    n_strong, n_slipping = round(reps * 0.25), round(reps * 0.30)
    profiles = [Profile.STRONG] * n_strong + [Profile.SLIPPING] * n_slipping
    profiles += [Profile.STEADY] * (reps - len(profiles))
    rng.shuffle(profiles)
    rep_list = []
    for i, (name, profile) in enumerate(zip(people[:reps], profiles, strict=True)):
        team = team_list[i % teams]
        rep_list.append(Rep(
            rep_id=f"rep-{i + 1:03d}",
            name=name,
            team_id=team.team_id,
            manager_id=team.manager_id,
            email=_email(name),
            timezone=rng.choice(zones[team.team_id]),
            profile=profile,
            target=Decimal(rng.randrange(60, 121, 5) * 1000),
        ))  # fmt: skip
    return Org(team_list, tuple(rep_list))


def _email(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    first, _, last = ascii_name.lower().partition(" ")
    return f"{first}.{last.replace(' ', '').replace(chr(39), '')}@example.com"
