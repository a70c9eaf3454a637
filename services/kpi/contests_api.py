"""kpi's contest API (issue 22, item 4): an admin defines, changes or cancels a contest; everyone in the tenant
reads the standings (the dashboard and the TV show them live).

A definition takes effect at once: kpi recounts the standings from the deals and activities it stores (a
contest defined mid-way, or after its start, counts what happened in its window before it was defined) and
publishes `kpi.contest.updated` in the same transaction. Start and end are local times in the tenant's zone
("2026-12-01" is its midnight; "2026-12-14T18:00" a wall-clock time; a time with an offset is taken as given).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field, field_validator, model_validator

from services.kpi import repository as repo
from services.kpi.contesting import refresh
from services.kpi.contests import Contest
from services.kpi.custom import BUILT_IN
from services.kpi.ports import PgRepository
from services.kpi.repository import StoredContest
from shared import audit
from shared.auth import Admin, Anyone
from shared.db import tenant_tx
from shared.events import ContestStanding, ContestStatus, Dec, Id
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["contests"])
Rt = Annotated[Runtime, Depends(runtime_of)]
ContestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["december-demos"])]
LocalTime = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)?)?$",
                                 examples=["2026-12-01", "2026-12-14T18:00"])]
MAX_PARTICIPANTS = 500


class ContestIn(BaseModel):
    """A contest as an admin defines it."""

    name: str = Field(min_length=1, max_length=200)
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["won_revenue", "meetings"],
                        description="a built-in metric or a KPI the tenant defined")
    participants: Literal["reps", "teams"]
    participant_ids: list[Id] = Field(min_length=1, max_length=MAX_PARTICIPANTS)
    starts: LocalTime = Field(description="local time in the tenant's zone (a date: its midnight)")
    ends: LocalTime = Field(description="local time in the tenant's zone, excluded (a date: its midnight)")
    rank_by: Literal["amount", "attainment"] = "amount"
    target: Dec | None = Field(None, gt=0, description="every participant's contest target (ranking by attainment)")
    targets: dict[Id, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict, description="a participant's own contest target, over `target`")
    prizes: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=20, description="by place: the first for the winners")
    settle_minutes: int = Field(15, ge=0, le=7 * 24 * 60, description="how long after the end late CRM records"
                                                                        " still count before the results are final")

    @field_validator("participant_ids")
    @classmethod
    def _distinct(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("participant_ids: each participant once")
        return ids

    @model_validator(mode="after")
    def _targets_of_participants(self) -> ContestIn:
        if unknown := sorted(set(self.targets) - set(self.participant_ids)):
            raise ValueError(f"targets: not participants: {', '.join(unknown)}")
        if self.rank_by == "attainment" and self.target is None and not self.targets:
            raise ValueError("rank_by attainment needs a contest target (`target`, or `targets` per participant)")
        return self


class ContestOut(BaseModel):
    contest_id: str
    name: str
    metric: str
    participants: Literal["reps", "teams"]
    participant_ids: list[str]
    starts_at: datetime
    ends_at: datetime
    final_at: datetime = Field(description="when the standings become final (the end plus the settling time)")
    rank_by: Literal["amount", "attainment"]
    target: Dec | None
    prizes: list[str]
    status: ContestStatus
    standings: list[ContestStanding]
    leaders: list[str]
    revision: int
    ties: str = Field(description="how ties are handled")


TIES = ("Equal values share a rank (1, 1, 3): tied participants share the place and each gets its prize and its"
        " celebration; by attainment, a participant without a contest target has no rank.")


def _local(text: str, zone: ZoneInfo, field_name: str) -> datetime:
    """A local time in `zone` (a date: its midnight; an offset: as given)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), zone)
        moment = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError as err:
        raise HTTPException(422, f"{field_name}: {err}") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _out(stored: StoredContest) -> ContestOut:
    c = stored.contest
    board = [ContestStanding.model_validate(s) for s in stored.standings]
    return ContestOut(contest_id=c.contest_id, name=c.name, metric=c.metric, participants=c.participants,
                      participant_ids=list(c.participant_ids), starts_at=c.starts_at, ends_at=c.ends_at,
                      final_at=c.ends_at + c.settle, rank_by=c.rank_by, target=c.target, prizes=list(c.prizes),
                      status=c.status, standings=board,
                      leaders=[s.participant_id for s in board if s.rank == 1 and s.value > 0],
                      revision=stored.revision, ties=TIES)


async def _one(rt: Runtime, tenant: str, contest_id: str) -> ContestOut:
    async with tenant_tx(rt.pool, tenant) as conn:
        found = await repo.contests_of(conn, tenant, contest_id)
    if not found:
        raise HTTPException(404, f"no contest {contest_id!r}")
    return _out(found[0])


@router.put("/contests/{contest_id}", response_model=ContestOut, responses={401: {}, 403: {}, 409: {}, 422: {}})
async def put_contest(contest_id: ContestId, body: ContestIn, who: Admin, rt: Rt) -> ContestOut:
    """Define or change a contest (admins). Its standings are counted at once from what kpi stores, and
    published. A contest that is final or cancelled cannot be changed (409): its results stand."""
    tenant, now = who.tenant, rt.clock.now()
    async with tenant_tx(rt.pool, tenant) as conn:
        cal = await repo.calendar(conn, tenant)
        zone = ZoneInfo(cal.timezone)
        starts, ends = _local(body.starts, zone, "starts"), _local(body.ends, zone, "ends")
        if ends <= starts:
            raise HTTPException(422, "ends: must be after starts")
        if body.metric not in BUILT_IN and body.metric not in {k.kpi_id for k in await repo.kpis_of(conn, tenant)}:
            raise HTTPException(422, f"metric: {body.metric!r} is neither a built-in metric"
                                     f" ({', '.join(sorted(BUILT_IN))}) nor a KPI the tenant defined")
        contest = Contest(contest_id, body.name, body.metric, body.participants, tuple(body.participant_ids), starts,
                          ends, body.rank_by, body.target, dict(body.targets), tuple(body.prizes),
                          timedelta(minutes=body.settle_minutes))
        await repo.lock_tenant(conn, tenant, exclusive=False)
        if not await repo.put_contest(conn, tenant, contest, now):
            raise HTTPException(409, f"contest {contest_id!r} is final or cancelled: its results stand; define a"
                                     " new one")
        store = PgRepository(conn)
        await store.enqueue(await refresh(store, tenant, await store.books(tenant), [contest_id], now))
        await audit.record(conn, tenant=tenant, who=who, action="contest.defined", subject=f"contest:{contest_id}",
                           before=None, after=body.model_dump(mode="json"), at=now, service="kpi")
    rt.relay.wake()
    return await _one(rt, tenant, contest_id)


@router.delete("/contests/{contest_id}", response_model=ContestOut, responses={401: {}, 403: {}, 404: {}})
async def cancel_contest(contest_id: ContestId, who: Admin, rt: Rt) -> ContestOut:
    """Cancel a contest that is not final (admins): nobody is celebrated for it. Cancelling it again is a no-op."""
    tenant, now = who.tenant, rt.clock.now()
    async with tenant_tx(rt.pool, tenant) as conn:
        await repo.lock_tenant(conn, tenant, exclusive=False)
        if await repo.cancel_contest(conn, tenant, contest_id, now):
            store = PgRepository(conn)
            await store.enqueue(await refresh(store, tenant, await store.books(tenant), [contest_id], now))
            await audit.record(conn, tenant=tenant, who=who, action="contest.cancelled",
                               subject=f"contest:{contest_id}", before={"status": "open"},
                               after={"status": "cancelled"}, at=now, service="kpi")
    rt.relay.wake()
    return await _one(rt, tenant, contest_id)


@router.get("/contests", response_model=list[ContestOut], responses={401: {}})
async def list_contests(who: Anyone, rt: Rt, status: ContestStatus | None = None) -> list[ContestOut]:
    """The tenant's contests, latest start first, with their standings (every role: contests are public in the
    tenant, like the leaderboard)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        found = await repo.contests_of(conn, who.tenant)
    return [_out(s) for s in found if status is None or s.contest.status == status]


@router.get("/contests/{contest_id}", response_model=ContestOut, responses={401: {}, 404: {}})
async def get_contest(contest_id: ContestId, who: Anyone, rt: Rt) -> ContestOut:
    """One contest and its standings, as last published."""
    return await _one(rt, who.tenant, contest_id)
