"""What recognition's pure rules see and find: plain data and the per-tenant settings, no I/O.

A rule returns `Found` milestones; the ledger (PostgreSQL, unique per tenant, scope, id, milestone and
period) decides which are new, and only a new one is announced. Each found milestone carries the
structured facts a headline template is filled from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ContestUpdated, Metric, Scope, Text
from shared.workdays import NO_CALENDAR, HolidayCalendar

# milestone names (the `milestone` field of recognition.milestone.reached)
QUOTA = "quota_{percent}"  # quota_50, quota_100, quota_150: a threshold of a target crossed


def quota_milestone(percent: int, metric: str) -> str:
    """The milestone of a quota threshold: ``quota_100`` for won revenue (the name celebrations had before
    other metrics could have one, so none is repeated after an upgrade), ``quota_100_calls`` for any other
    metric, so that each target metric is celebrated on its own: the ledger's key holds the milestone."""
    name = QUOTA.format(percent=percent)
    return name if metric == "won_revenue" else f"{name}_{metric}"
TEAM_GOAL = "team_goal"  # a team reached 100% of its won_revenue target
FIRST_WIN_EVER = "first_win_ever"  # period "ever"
FIRST_WIN = "first_win"  # the first won deal of the rep in a quarter (period = the quarter)
PERSONAL_RECORD = "personal_record"  # the rep's largest won deal so far (period = the local day it closed)
TEAM_LARGEST_DEAL = "team_largest_deal"  # at quarter close: the team's largest deal (scope team)
STREAK = "activity_streak"  # N consecutive business days at the daily activity goal (period = first day)
LEADERBOARD = "leaderboard_{place}"  # at period close: 1st, 2nd, 3rd in the team per metric
# a contest's moments (issue 22, item 4), each in period = the contest's id
CONTEST_STARTED = "contest_started"  # scope contest: the contest began (value 0)
CONTEST_LEAD = "contest_lead"  # a rep or team kept the sole lead for the tenant's debounce (once per lead)
CONTEST_WON = "contest_won"  # at the end: a prize place (1st when there are no prizes), ties sharing it

CONTEST_SCOPE: Final = "contest"
# Whom a milestone is of: a rep, a team, or a contest itself (its start: scope_id the contest's id).
Where = Scope | Literal["contest"]


@dataclass(frozen=True, slots=True)
class Found:
    """A milestone a rule found (the ledger decides whether it is new)."""

    scope: Where
    scope_id: str
    milestone: str
    period: str
    value: Decimal
    occurred_at: datetime
    facts: Mapping[str, Any] = field(default_factory=dict)  # what the headline says: name, amounts, ranks
    # what tells apart moments of one milestone that may recur in one period (a contest's lead: since when the
    # leader led); part of the ledger's key and of the celebration id, "" for every other milestone
    occasion: str = ""


@dataclass(frozen=True, slots=True)
class WonDeal:
    """A won deal as recognition keeps it: the amount in the tenant's base currency (None: no rate)."""

    deal_id: str
    rep_id: str
    amount: Decimal
    currency: str
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    rep_id: str
    name: str | None
    actual: Decimal


Kind = Annotated[Text, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]  # a milestone kind's name
Template = Annotated[Text, Field(min_length=1, max_length=500)]  # a headline, with {placeholders}


class Settings(BaseModel):
    """A tenant's recognition settings (defaults; `PUT /v1/recognition/settings` overrides any subset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quota_thresholds: tuple[Decimal, ...] = Field(
        (Decimal("0.5"), Decimal("1"), Decimal("1.5")), min_length=1, description="attainment shares celebrated")
    quota_metrics: tuple[Metric, ...] | None = Field(None, description="None: every metric with a target")
    streak_days: int = Field(5, ge=2, le=60, description="consecutive business days at the daily activity goal")
    streak_daily_activities: int = Field(5, ge=1, le=500, description="the daily activity goal of a streak")
    leaderboard_metrics: tuple[Metric, ...] = (Metric.WON_REVENUE, Metric.DEALS_WON)
    leaderboard_places: int = Field(3, ge=1, le=10)
    disabled: tuple[Kind, ...] = Field((), max_length=32,
                                       description="milestone kinds switched off, e.g. ['activity_streak']")
    corrections: bool = Field(False, description="announce recognition.milestone.corrected when numbers drop "
                                                 "back below a celebrated threshold (never a second celebration)")
    locale: str = Field("en", pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$",
                        description="formats amounts and dates in headlines, e.g. 'de_DE'")
    templates: dict[Kind, Template] = Field(default_factory=dict, max_length=32,
                                            description="headline per milestone kind, {placeholders} from its facts")
    contest_lead_debounce_s: int = Field(
        600, ge=0, le=7 * 86400,
        description="how long a contest's sole leader must keep the lead (by kpi's standings) before its lead is"
                    " celebrated (contest_lead): a lead that changes hands within it is never announced")
    history_horizon_hours: int = Field(
        48, ge=1, le=24 * 3650,
        description="a milestone whose moment (a won deal's close, an activity, the newest input behind a figure, a"
                    " period's end) is older than this when recognition finds it goes into the ledger quietly:"
                    " importing history or connecting a CRM never floods the floor with old wins")


@dataclass(frozen=True, slots=True)
class Day:
    """Activities a rep logged on one local day."""

    day: date
    activities: int


@dataclass(frozen=True, slots=True)
class Calendar:
    """A tenant's calendar as the registry gives it: zone, fiscal year start, base currency and the exchange
    rates into it (per currency, ``(valid_from, rate)`` ascending; 1 unit of the currency = ``rate`` base units),
    and its holidays."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    fiscal_start_month: int = 1
    currency: str | None = None
    rates: Mapping[str, tuple[tuple[date, Decimal], ...]] = field(default_factory=dict)
    holidays: HolidayCalendar = NO_CALENDAR  # the registry's: days off for every rep of the tenant


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """What a batch needs of its tenant, and the versions it was read at (`None`: no row yet)."""

    settings: Settings
    calendar: Calendar
    version: tuple[int | None, int | None]  # (settings row, registry row)


@dataclass(frozen=True, slots=True)
class Figure:
    """The attainment projection's word on one key: the share, the moment kpi computed it, and kpi's revision
    of it (None for figures published before kpi carried revisions)."""

    attainment: Decimal | None
    as_of: datetime
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A rep as the roster has it."""

    name: str | None
    team_id: str | None
    timezone: str | None


@dataclass(frozen=True, slots=True)
class StoredDeal:
    """A deal as recognition keeps it (the newest ``(updated_at, tiebreak)`` wins; a tombstone is ``deleted``)."""

    deal_id: str
    rep_id: str
    stage: str
    amount: Decimal
    currency: str
    created_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    tiebreak: str
    deleted: bool = False

    @property
    def won(self) -> bool:
        return self.stage == "won" and not self.deleted and self.closed_at is not None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deal's deletion."""

    deal_id: str
    updated_at: datetime
    tiebreak: str


@dataclass(frozen=True, slots=True)
class Moment:
    """A stored activity as streaks and leaderboards see it."""

    rep_id: str
    occurred_at: datetime
    kind: str | None = None  # None: stored before kinds were kept


@dataclass(frozen=True, slots=True)
class Sighting:
    """A milestone found at ``position`` of its batch (the first sighting of a key is the one the ledger keeps)."""

    found: Found
    position: int
    metric: str | None = None
    source: str = ""  # what found it: "figure", "deal", "activity", "contest"; one record's finds share a cheer
    happened_at: datetime | None = None  # when it really happened (None: ``found.occurred_at``): the horizon's test
    history: bool = False  # old news whatever the clock says (a contest's start first seen at its end, long after)

    @property
    def moment(self) -> datetime:
        return self.happened_at if self.happened_at is not None else self.found.occurred_at


@dataclass(frozen=True, slots=True)
class Drop:
    """A celebrated threshold the figure fell back below, at ``position`` of its batch (a correction is due)."""

    scope: Scope
    scope_id: str
    milestone: str
    period: str
    position: int
    actual: Decimal
    name: str | None


@dataclass(frozen=True, slots=True)
class Corrected:
    """A ledger row that now gets its one correction."""

    celebration_id: str
    scope: Scope
    scope_id: str
    milestone: str
    period: str


@dataclass(frozen=True, slots=True)
class Entry:
    """A milestone on its way into the ledger: what was found, the headline it carries, its status."""

    found: Found
    headline: str
    metric: str | None = None
    # or "baseline": already past when its kind was switched on; "history": older than the tenant's horizon when
    # found; "bundled": announced inside a higher milestone's celebration of the same record. Only "celebrated"
    # rows have an event of their own.
    status: str = "celebrated"


@dataclass(frozen=True, slots=True)
class Bundle:
    """One celebration that carries several milestones of one record: the lead's ledger row (its headline and
    facts now naming them all) and the rows announced inside it (status ``bundled``)."""

    celebration_id: str
    lead: Entry
    members: list[str]


@dataclass(frozen=True, slots=True)
class Contest:
    """A contest as recognition keeps it: kpi's latest revision of it, the participant that is its sole leader
    now (``candidate``, None: nobody or a tie) since ``since`` (the ``as_of`` of the first revision it led
    alone in), and the last leader whose lead was celebrated (``celebrated``)."""

    latest: ContestUpdated
    candidate: str | None = None
    since: datetime | None = None
    celebrated: str | None = None

    @property
    def contest_id(self) -> str:
        return self.latest.contest_id
