"""The contract's events as pydantic models (CONTRACT.md, sections 2 and 3).

Inbound *canonical* events arrive at ingest as ``{type, id, source, time, data}``; on Kafka only
``data`` is the message value, the rest travels in CloudEvents headers (`shared.cloudevents`).
Derived events (attainment, tasks, celebrations) are the data of the messages the other services
emit. Money and ratios are `Decimal` (JSON strings on the wire); every timestamp is timezone-aware.
Unknown fields are ignored, so producers may add fields without breaking consumers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.periods import MAX_YEAR, MIN_YEAR, parse_period, validate_timezone


def _storable(value: str) -> str:
    """PostgreSQL text holds no NUL and UTF-8 no lone surrogates: refuse them at the door, by name."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    try:
        value.encode()
    except UnicodeEncodeError as err:
        raise ValueError("must be valid Unicode (no lone surrogates)") from err
    return value


Text = Annotated[str, AfterValidator(_storable)]
Id = Annotated[Text, Field(min_length=1, max_length=200)]
# Decimals travel as plain strings ("90000", never "9E+4"): exact, and readable by any JSON consumer.
Dec = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]
def _countable(moment: datetime) -> datetime:
    """A moment periods can be computed for: a CRM date in year 281 (a typo, a fuzzer) is refused at the edge
    with its reason, instead of being accepted and then failing in every service that counts it."""
    try:
        year = moment.astimezone(UTC).year
    except OverflowError as err:  # e.g. 9999-12-31T23:00-05:00 is past the last datetime Python has
        raise ValueError(f"must be a moment between {MIN_YEAR} and {MAX_YEAR - 1}") from err
    if not MIN_YEAR <= year <= MAX_YEAR - 1:
        raise ValueError(f"must be a moment between {MIN_YEAR} and {MAX_YEAR - 1}")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_countable)]
Money = Annotated[Dec, Field(ge=0, max_digits=20, decimal_places=4, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]
Probability = Annotated[Dec, Field(ge=0, le=1, max_digits=5, decimal_places=4, allow_inf_nan=False,
                                   examples=["0.6"])]
SourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,39}$", examples=["hubspot", "api"])]


def _check_period(value: str) -> str:
    return parse_period(value).label


def _check_timezone(value: str) -> str:
    validate_timezone(value)
    return value


PeriodLabel = Annotated[str, AfterValidator(_check_period), Field(examples=["2026-Q4", "2026-11"])]
TimezoneName = Annotated[str, AfterValidator(_check_timezone), Field(examples=["Europe/Berlin"])]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DealStage(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ForecastCategory(StrEnum):
    """Where the owner puts an open deal in their forecast (Salesforce's forecast categories, lower-cased):
    `commit` they will close it; `best_case` it could close; `pipeline` it is open; `omitted` leave it out."""

    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    OMITTED = "omitted"


class ActivityKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    DEMO = "demo"
    TASK = "task"
    OTHER = "other"


class Scope(StrEnum):
    REP = "rep"
    TEAM = "team"


class Metric(StrEnum):
    WON_REVENUE = "won_revenue"
    DEALS_WON = "deals_won"
    WIN_RATE = "win_rate"
    PIPELINE_CREATED = "pipeline_created"
    AVG_DEAL_SIZE = "avg_deal_size"
    CALLS = "calls"
    EMAILS = "emails"
    MEETINGS = "meetings"
    ACTIVITIES = "activities"


# A metric of the contract: a built-in one (`Metric`), or a KPI the tenant defined (kpi's `PUT /v1/kpis/{id}`,
# issue 22). A target may name a KPI before it is defined: it counts from the definition on.
MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["won_revenue", "demos_held"],
                                  description="a built-in metric or the id of a KPI the tenant defined")]
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")]
# CRM properties a record carries (the tenant's choice of its CRM's fields): what a KPI the tenant defines may
# filter on (issue 22). Values as text; at most 50.
Properties = Annotated[dict[PropertyName, Annotated[Text, Field(max_length=500)]], Field(max_length=50)]


# --- inbound canonical data -------------------------------------------------------------


class DealUpserted(_Model):
    """A deal's full current state in the CRM; the newest `updated_at` wins."""

    deal_id: Id
    rep_id: Id = Field(description="The deal owner.")
    amount: Money
    currency: Currency
    stage: DealStage
    stage_label: Text | None = Field(default=None, max_length=200)
    created_at: Moment | None = None
    closed_at: Moment | None = Field(default=None, validate_default=True)
    updated_at: Moment
    expected_close_at: Moment | None = Field(
        default=None, description="When the owner expects an open deal to close (the CRM's close date). Optional:"
        " kpi's forecast counts an open deal in the period of this moment (tenant's zone).")
    probability: Probability | None = Field(
        default=None, description="The CRM's chance that the deal is won, 0 to 1 (4 places). Optional: without it"
        " kpi's forecast uses the rep's own win rate by stage and size, and says so.")
    forecast_category: ForecastCategory | None = Field(
        default=None, description="The owner's forecast category (Salesforce ForecastCategoryName). Optional:"
        " absent counts as `pipeline`.")
    properties: Properties | None = Field(
        default=None, description="CRM properties the tenant chose to carry (name -> text): what a KPI it defines"
        " may filter on. Optional.")

    @field_validator("closed_at")
    @classmethod
    def _closed_deals_have_a_close_date(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        stage = info.data.get("stage")
        if value is None and stage in (DealStage.WON, DealStage.LOST):
            raise ValueError(f"closed_at is required when stage is {stage.value}")
        return value


class DealDeleted(_Model):
    """The deal was deleted in the CRM: whatever it counted is taken back."""

    deal_id: Id
    updated_at: Moment


class ActivityLogged(_Model):
    """One activity (call, e-mail, meeting, ...) a rep logged."""

    activity_id: Id
    rep_id: Id
    kind: ActivityKind
    occurred_at: Moment
    deal_id: Id | None = None
    duration_s: int | None = Field(default=None, ge=0)
    properties: Properties | None = Field(
        default=None, description="CRM properties the tenant chose to carry (name -> text): what a KPI it defines"
        " may filter on. Optional.")


class RepUpserted(_Model):
    """A rep joined, moved team, changed manager or left (`active: false`)."""

    rep_id: Id
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    team_id: Id
    manager_id: Id | None = None
    email: Text | None = Field(default=None, max_length=320)
    timezone: TimezoneName
    active: bool = True


class TeamUpserted(_Model):
    """A team and where it sits: `parent_team_id` nests it (team -> region -> company); a parent's
    figures include every team below it."""

    team_id: Id
    name: Text | None = Field(default=None, max_length=200)
    parent_team_id: Id | None = Field(default=None, description="The team (region, company) this one rolls up to.")

    @model_validator(mode="after")
    def _not_its_own_parent(self) -> TeamUpserted:
        if self.parent_team_id == self.team_id:
            raise ValueError("parent_team_id: a team cannot be its own parent")
        return self


class TargetSet(_Model):
    """A goal for a rep or a team: `value` of `metric` in `period`."""

    scope: Scope
    scope_id: Id
    metric: MetricName
    period: PeriodLabel
    value: Annotated[Dec, Field(ge=0, max_digits=20, decimal_places=4, allow_inf_nan=False)]


class TimeOffSet(_Model):
    """A rep's time off (leave, sick days, a training week): `first_day` to `last_day`, local dates of the
    rep, both included. Every service counts those days as days off: nothing is expected of the rep on them
    (kpi's pace, coaching's rules) and a streak neither breaks nor grows on them. The same `time_off_id`
    again replaces the period (newest `time` wins); `cancelled: true` withdraws it."""

    time_off_id: Id
    rep_id: Id
    first_day: date
    last_day: date
    reason: Text | None = Field(default=None, max_length=200)
    cancelled: bool = False

    @model_validator(mode="after")
    def _a_real_period(self) -> TimeOffSet:
        if self.last_day < self.first_day:
            raise ValueError("last_day: must not be before first_day")
        if (self.last_day - self.first_day).days > 366:
            raise ValueError("last_day: a time off spans at most 367 days; send longer leave in parts")
        return self


# --- inbound envelopes --------------------------------------------------------------------


class _Envelope(_Model):
    id: Id = Field(description="Unique per tenant and source: the idempotency key.")
    source: SourceName
    time: Moment = Field(description="When it happened in the CRM (RFC 3339).")


class DealUpsertedEvent(_Envelope):
    type: Literal["deal.upserted"]
    data: DealUpserted


class DealDeletedEvent(_Envelope):
    type: Literal["deal.deleted"]
    data: DealDeleted


class ActivityLoggedEvent(_Envelope):
    type: Literal["activity.logged"]
    data: ActivityLogged


class RepUpsertedEvent(_Envelope):
    type: Literal["rep.upserted"]
    data: RepUpserted


class TargetSetEvent(_Envelope):
    type: Literal["target.set"]
    data: TargetSet


class TeamUpsertedEvent(_Envelope):
    type: Literal["team.upserted"]
    data: TeamUpserted


class TimeOffSetEvent(_Envelope):
    type: Literal["time_off.set"]
    data: TimeOffSet


CanonicalEvent = Annotated[
    DealUpsertedEvent | DealDeletedEvent | ActivityLoggedEvent | RepUpsertedEvent | TargetSetEvent
    | TeamUpsertedEvent | TimeOffSetEvent,
    Field(discriminator="type"),
]
CANONICAL_EVENT: TypeAdapter[CanonicalEvent] = TypeAdapter(CanonicalEvent)

CANONICAL_DATA: dict[str, type[_Model]] = {
    "deal.upserted": DealUpserted,
    "deal.deleted": DealDeleted,
    "activity.logged": ActivityLogged,
    "rep.upserted": RepUpserted,
    "target.set": TargetSet,
    "team.upserted": TeamUpserted,
    "time_off.set": TimeOffSet,
}


# --- derived events -------------------------------------------------------------------------


class ForecastDeal(_Model):
    """One open deal of a forecast: what it may add to the period, and on what ground its chance stands."""

    deal_id: Id
    rep_id: Id
    amount: Dec = Field(description="in the tenant's base currency")
    probability: Dec = Field(description="its chance of being won, 0 to 1")
    basis: Literal["crm", "history"] = Field(
        description="`crm`: the CRM's probability; `history`: the rep's own win rate on deals of its stage and"
        " size (kpi's estimate: GET /v1/forecasts explains it)")
    forecast_category: ForecastCategory
    expected_close_at: AwareDatetime


class Forecast(_Model):
    """A won-revenue figure's look ahead: what is closed, what the open deals expected to close inside the
    period may add, and the chance of reaching the target. Open amounts are by category and disjoint (a
    `commit` deal is not counted again in `best_case`); `omitted` deals count nowhere."""

    closed: Dec = Field(description="won so far in the period (the figure's actual)")
    commit: Dec = Field(description="open deals in `commit` expected to close in the period")
    best_case: Dec = Field(description="open deals in `best_case` expected to close in the period")
    pipeline: Dec = Field(description="open deals in `pipeline` (or no category) expected to close in the period")
    weighted: Dec = Field(description="closed + each open deal's amount x probability: the expected end of period")
    gap: Dec = Field(description="target - closed, at least 0; 0 without a target")
    probability: Dec | None = Field(
        default=None, description="the chance that the open deals cover the gap, 0 to 1; null without a target")
    method: Literal["certain", "exact", "monte_carlo"] | None = None
    error: Dec | None = Field(default=None, description="how far off `probability` may be (99 %), 0 when exact")
    open_deals: int = Field(ge=0, description="open deals expected to close in the period (not omitted)")
    estimated: int = Field(ge=0, description="of them, those without a CRM probability (estimated from history)")
    undated: int = Field(default=0, ge=0, description="open deals with no expected close date: in no period")
    deals: list[ForecastDeal] = Field(
        default_factory=list, max_length=10,
        description="the open deals that could close the gap, largest weighted amount first (at most 10)")


class AttainmentUpdated(_Model):
    """`kpi.attainment.updated`: the full current figures of one (scope, id, period, metric)."""

    scope: Scope
    scope_id: Id
    period: str
    metric: MetricName
    actual: Dec
    target: Dec | None = None
    attainment: Dec | None = Field(default=None, description="actual / target")
    expected: Dec | None = Field(
        default=None, description="target x elapsed share of the period's working days: Monday to Friday in the"
        " tenant's zone minus its holidays and, for a rep, their time off (shared/workdays.py)")
    pace: Dec | None = Field(default=None, description="actual / expected")
    projected: Dec | None = Field(
        default=None, description="actual / elapsed working-day share: the end-of-period figure")
    as_of: AwareDatetime
    period_start: AwareDatetime | None = None
    period_end: AwareDatetime | None = None
    team_id: str | None = None
    manager_id: str | None = None
    name: str | None = None
    revision: int | None = Field(
        default=None, ge=1,
        description="kpi's order of this key's figures: a higher revision is newer, whatever `as_of` says (the"
                    " clocks of kpi's replicas may differ). Absent from events published before it existed.")
    source_time: AwareDatetime | None = Field(
        default=None,
        description="how recent the change behind this figure is: the newest moment among the sales records of kpi's"
                    " batch (a deal's `updated_at`, an activity's `occurred_at`); a batch of targets or roster entries"
                    " alone counts at its newest event time. A"
                    " backfill of old deals moves figures now with an old `source_time`; recognition celebrates"
                    " nothing older than the tenant's history horizon. Absent from events before it existed.")
    forecast: Forecast | None = Field(
        default=None,
        description="won_revenue only, while its period has not ended: the forecast from the open pipeline (issue"
                    " 22). Absent from other metrics, ended periods and events before it existed.")


def supersedes(held_revision: int | None, held_as_of: datetime, revision: int | None, as_of: datetime) -> bool:
    """Whether a kpi figure (`revision`, `as_of`) replaces the one held for its key: by revision when both
    carry one, else by `as_of` (figures published before revisions existed). An equal one replaces it too (a
    redelivery changes nothing).

    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 10, 1, tzinfo=UTC)
    >>> supersedes(4, t, 5, t - timedelta(hours=1)), supersedes(5, t, 4, t + timedelta(hours=1))
    (True, False)
    >>> supersedes(None, t, 5, t - timedelta(hours=1))
    False
    """
    if held_revision is not None and revision is not None:
        return held_revision <= revision
    return held_as_of <= as_of


# The same rule in SQL, for an upsert of table `held` (columns revision, as_of) by EXCLUDED.
SUPERSEDES_SQL = ("CASE WHEN {held}.revision IS NOT NULL AND EXCLUDED.revision IS NOT NULL"
                  " THEN {held}.revision <= EXCLUDED.revision ELSE {held}.as_of <= EXCLUDED.as_of END")


class Evidence(_Model):
    metric: MetricName
    actual: Dec
    expected: Dec
    period: str


class TaskCreated(_Model):
    """`coaching.task.created`: a check-in a manager should hold with a rep."""

    task_id: str
    rep_id: str
    manager_id: str | None
    rule: str
    severity: Literal["info", "warning", "critical"]
    summary: str
    evidence: Evidence
    suggested_actions: list[str]
    training: list[str]
    due_at: AwareDatetime
    rep_name: str | None = None
    team_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="Rule-specific facts, e.g. stale deal ids.")


class TaskEscalated(_Model):
    """`coaching.task.escalated`: a check-in nobody acknowledged by its due date, raised to the manager's
    manager (`escalated_to`; null when the roster knows nobody above the manager)."""

    task_id: str
    rep_id: str
    manager_id: str | None
    escalated_to: str | None
    rule: str
    severity: Literal["info", "warning", "critical"]
    summary: str
    due_at: AwareDatetime
    escalated_at: AwareDatetime


class TaskClosed(_Model):
    """`coaching.task.closed`: a check-in ended: `completed` by the manager (with `outcome`), `recovered`
    (the rule no longer finds the problem) or `superseded` (a worse finding replaced it)."""

    task_id: str
    rep_id: str
    manager_id: str | None
    rule: str
    reason: Literal["completed", "recovered", "superseded"]
    outcome: str | None = None
    closed_at: AwareDatetime


class PlanStepSettled(_Model):
    """`coaching.plan.step.completed` or `coaching.plan.step.missed` on `coaching.plans.v1`: one step of
    a rep's action plan reached its target, or its due date passed without it."""

    plan_id: str
    step_id: str
    rep_id: str
    manager_id: str | None
    title: str
    metric: Metric
    target: Dec
    progress: Dec
    due_at: AwareDatetime
    status: Literal["completed", "missed"]
    settled_at: AwareDatetime
    plan_status: Literal["open", "completed", "missed"] = Field(
        description="the whole plan: completed once every step is, missed once any step is missed")


class ReviewFigure(_Model):
    metric: MetricName
    period: str
    actual: Dec
    target: Dec | None
    attainment: Dec | None
    pace: Dec | None
    previous_period: str | None
    previous_attainment: Dec | None
    trend: Literal["up", "down", "flat", "new"]


class ManagerCard(_Model):
    """How a manager handles their team's check-ins: leading by example."""

    manager_id: str
    tasks: int
    acknowledged: int
    completed: int
    escalated: int
    open_overdue: int
    median_hours_to_ack: Dec | None
    median_hours_to_complete: Dec | None
    team_won_revenue: Dec | None = None
    team_target: Dec | None = None
    team_attainment: Dec | None = None
    check_ins_followed: int | None = Field(
        None, description="the check-ins of the manager's reps in the period that coaching followed up (issue 18)")
    recovered_after_check_in: Dec | None = Field(
        None, description="the share of them whose finding recovered; null below 10 (not enough data)")
    recovered_without: Dec | None = Field(
        None, description="the same share for their reps' findings that got no check-in (the comparison group);"
                          " null below 10. GET /v1/effectiveness has the detail")


class ReviewForecast(_Model):
    """One rep's won-revenue forecast for a current period, as the weekly review shows it."""

    rep_id: str
    name: str | None
    period: str
    target: Dec
    weighted: Dec = Field(description="the forecast: won so far plus each open deal's amount x probability")
    closed: Dec = Field(description="won so far in the period")
    gap: Dec = Field(description="still to win: target - won so far, at least 0")
    commit: Dec = Field(description="open deals in `commit` expected to close in the period")
    best_case: Dec = Field(description="open deals in `best_case` expected to close in the period")
    pipeline: Dec = Field(description="open deals in `pipeline` (or no category) expected to close in the period")
    probability: Dec | None = Field(description="the chance of reaching the target, 0 to 1")
    method: Literal["certain", "exact", "monte_carlo"] | None
    error: Dec | None = Field(description="how far off `probability` may be (99 %): set when `method` is monte_carlo")
    open_deals: int
    summary: str = Field(description="one sentence with the numbers")


class ReviewPublished(_Model):
    """`coaching.review.published` on `coaching.reviews.v1`: the weekly scorecard digest of a rep or a team,
    ready for a notification system to send."""

    review_id: str
    scope: Scope
    scope_id: str
    name: str | None
    manager_id: str | None
    week: str = Field(description="the ISO week reviewed (the one that just ended)")
    headline: str
    figures: list[ReviewFigure]
    activities_week: int
    activities_week_before: int
    open_tasks: int
    overdue_tasks: int
    members: list[str] = Field(default_factory=list, description="team digests: the reps in the team")
    manager: ManagerCard | None = None
    published_at: AwareDatetime
    forecasts: list[ReviewForecast] = Field(
        default_factory=list, description="per rep with a won-revenue forecast and a target in a current period, by"
                                          " rep and period (issue 22). Absent from reviews before it existed.")


ContestStatus = Literal["scheduled", "running", "final", "cancelled"]


class ContestStanding(_Model):
    """One participant of a contest and where it stands."""

    rank: int | None = Field(description="competition rank (1, 2, 2, 4): tied participants share it; null by"
                                         " attainment for a participant without a contest target (listed last)")
    tied: bool = Field(False, description="another participant holds the same rank")
    participant_id: Id
    name: str | None = None
    value: Dec = Field(description="the metric over the contest's window (money in the tenant's base currency)")
    target: Dec | None = Field(None, description="the contest target (ranking by attainment)")
    attainment: Dec | None = Field(None, description="value / target")


class ContestUpdated(_Model):
    """`kpi.contest.updated` on `kpi.contests.v1`: a contest's full current standings (issue 22, item 4).

    kpi publishes it when the contest is defined or changed, when its standings move, when it starts and when
    it ends (`status` final: its standings are frozen from then on). Recognition celebrates from it: the start,
    each new leader who keeps the lead (debounced), the winners; each once."""

    contest_id: Id
    name: Text = Field(max_length=200)
    metric: MetricName
    participants: Literal["reps", "teams"]
    rank_by: Literal["amount", "attainment"]
    starts_at: AwareDatetime = Field(description="the window's first moment (a local time in the tenant's zone)")
    ends_at: AwareDatetime = Field(description="the window's end, excluded")
    status: ContestStatus
    prizes: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=20, description="by place: prizes[0] for the winners, prizes[1] for 2nd")
    standings: list[ContestStanding] = Field(default_factory=list, description="ranked, every participant")
    leaders: list[str] = Field(
        default_factory=list, description="the participants at rank 1 with something to show (value > 0); more"
                                          " than one when tied; empty before anyone scored")
    revision: int = Field(ge=1, description="higher is newer, per contest")
    as_of: AwareDatetime


class MilestoneReached(_Model):
    """`recognition.milestone.reached`: a milestone, celebrated once ever for its scope and period."""

    celebration_id: str
    scope: Scope | Literal["contest"] = Field(
        description="`rep` or `team`; `contest` (scope_id the contest's id) for a contest's own moments (its"
                    " start): issue 22")
    scope_id: str
    milestone: str
    period: str
    value: Dec
    headline: str
    occurred_at: AwareDatetime
    name: str | None = Field(None, description="the rep's or team's name")
    facts: dict[str, Any] = Field(default_factory=dict,
                                  description="the structured facts behind the headline (amounts as strings)")
    milestones: list[str] = Field(
        default_factory=list,
        description="every milestone this one celebration carries, highest first (`milestone` is the first): what"
                    " one won deal or one figure update reached at once is one cheer. Their ledger rows are"
                    " `bundled` into this `celebration_id`. Absent from events before it existed.")


class MilestoneCorrected(_Model):
    """`recognition.milestone.corrected` (tenants that ask for corrections): the numbers behind a celebrated
    quota threshold fell back below it (a deal reopened or lost). The celebration is never repeated."""

    celebration_id: str
    scope: Scope
    scope_id: str
    milestone: str
    period: str
    value: Dec
    headline: str
    corrected_at: AwareDatetime


class ExchangeRate(_Model):
    """1 unit of `currency` is `rate` units of the tenant's base currency, from `valid_from` (a local
    date) until the currency's next rate."""

    currency: Currency
    valid_from: date
    rate: Annotated[Dec, Field(gt=0, max_digits=24, decimal_places=12, allow_inf_nan=False)]


Role = Literal["admin", "integration", "manager", "rep", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "integration", "manager", "rep", "viewer")


class TokenGrant(_Model):
    """One token of a tenant, as the registry announces it: its digest, never the token (docs/contract.md,
    "Tokens and roles"). `rep_id` names the person of a `rep` token, `manager_id` the manager a `manager`
    token reads for (their reps, directly or further down the roster)."""

    token_id: str
    token_sha256: str
    role: Role
    rep_id: str | None = None
    manager_id: str | None = None
    expires_at: AwareDatetime | None = None


class Holiday(_Model):
    day: date
    name: str


class Holidays(_Model):
    """A tenant's holiday calendar (`shared.workdays.HolidayCalendar`): its country's and subdivision's
    public holidays, plus the days it added, minus the ones it removed."""

    country: str | None = Field(None, description="ISO 3166-1 alpha-2, e.g. DE; none: only the added days")
    subdivision: str | None = Field(None, description="e.g. BE (Berlin) of DE, CA of US")
    added: list[Holiday] = Field(default_factory=list)
    removed: list[date] = Field(default_factory=list, description="public holidays the tenant works")


class TenantUpserted(_Model):
    """`tenant.upserted` on the internal `attain.tenants.v1`: a tenant as ingest knows it (no secrets:
    only the SHA-256 digest of its bearer token, which is all a service needs to authenticate it)."""

    tenant: str
    timezone: str
    currency: str
    fiscal_start_month: int
    token_sha256: str
    active: bool
    rates: list[ExchangeRate] = Field(default_factory=list, description="Every exchange rate into `currency`.")
    locale: str = Field("en", description="The Babel locale identifier the tenant's figures are formatted in, e.g."
                        " 'en', 'de_DE' (1.234,50 €) or 'fr_FR'; entries from before it existed mean 'en'.")
    tokens: list[TokenGrant] | None = Field(
        None, description="Every token of the tenant that is not revoked, with its role. Absent in entries from"
        " before per-person tokens: then `token_sha256` is the tenant's one token, an admin token.")
    holidays: Holidays | None = Field(
        None, description="The tenant's holiday calendar, which every service counts working days with. Absent"
        " in entries from before it existed: no holidays.")


AUDIT_RECORDED = "attain.audit.recorded"


class AuditActor(_Model):
    """Who made a change: a token's holder (`token`: its id and role, and the person a rep or manager token
    speaks for), an operator at a service's command line (`cli`), or the service itself (`system`)."""

    kind: Literal["token", "cli", "system"]
    token_id: str | None = None
    role: Role | None = None
    rep_id: str | None = None
    manager_id: str | None = None
    name: str = Field("", description="The token's name, or the operator's login at the command line.")


class AuditRecorded(_Model):
    """`attain.audit.recorded` on `attain.audit.v1` (docs/contract.md, "The audit log"): one change to a
    tenant's settings, targets, roster, tokens or check-ins, written by the service that made it in the same
    transaction as the change. `before` and `after` are the subject's values (secrets only as "(set)"); a
    creation has no `before`, a removal no `after`."""

    audit_id: str = Field(description="Stable: the entry's id, also its CloudEvent id.")
    tenant: str
    service: str = Field(description="The service that made the change: ingest, kpi, coaching or recognition.")
    action: str = Field(description="What was done, `<thing>.<verb>`: e.g. `token.created`, `target.set`,"
                        " `policy.changed`, `check_in.acknowledged`.")
    subject: str = Field(description="What it was done to, `<kind>:<id>`: e.g. `token:t-1a2b`, `rep:ana`,"
                         " `target:rep/ana/won_revenue/2026-Q4`, `policy:tenant`.")
    actor: AuditActor
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: AwareDatetime


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event of the contract, keyed by event type (for docs and consumers)."""
    schemas: dict[str, dict[str, Any]] = {
        "canonical-event": CANONICAL_EVENT.json_schema(),
        "kpi.attainment.updated": AttainmentUpdated.model_json_schema(),
        "kpi.contest.updated": ContestUpdated.model_json_schema(),
        "coaching.task.created": TaskCreated.model_json_schema(),
        "coaching.task.escalated": TaskEscalated.model_json_schema(),
        "coaching.task.closed": TaskClosed.model_json_schema(),
        "coaching.plan.step.completed": PlanStepSettled.model_json_schema(),
        "coaching.plan.step.missed": PlanStepSettled.model_json_schema(),
        "coaching.review.published": ReviewPublished.model_json_schema(),
        "recognition.milestone.reached": MilestoneReached.model_json_schema(),
        "recognition.milestone.corrected": MilestoneCorrected.model_json_schema(),
        "tenant.upserted": TenantUpserted.model_json_schema(),
        AUDIT_RECORDED: AuditRecorded.model_json_schema(),
    }
    for type_, model in CANONICAL_DATA.items():
        schemas[type_] = model.model_json_schema()
    return schemas
