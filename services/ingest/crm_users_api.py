"""Users from the CRM, for a tenant's admins (issue 21; `crm/users_sync.py`):

- `GET /v1/crm/{crm}/users/proposal`: what a sync would do now (a dry run: the CRM is read, nothing is written);
- `POST /v1/crm/{crm}/users/sync`: sync now: map, create, publish what was held back; says what it did;
- `GET|PUT /v1/crm/{crm}/user-mapping-mode`: `automatic` (the default: the CRM's users become reps by themselves)
  or `manual` (proposed only; the mapping is the admin's, `PUT /v1/crm/{crm}/users`), and the team new reps join.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.auth import AdminTenant, Context, Holder
from services.ingest.crm import users_store
from services.ingest.crm.users_rules import DEFAULT_TEAM, Action, Mode, Proposal
from services.ingest.crm.users_sync import CrmUnreadable, NoAccess, UsersSync, UsersSyncError
from services.ingest.crm_api import Crm, LimitedBody, Reprocessed
from services.ingest.intake import KafkaUnavailable
from shared import audit
from shared.db import tenant_tx
from shared.events import Id

router = APIRouter(prefix="/v1/crm", tags=["crm mappings"], route_class=LimitedBody)
ERRORS: dict[int | str, dict[str, str]] = {
    409: {"description": "the tenant gave no API token or OAuth connection for this CRM"},
    502: {"description": "the CRM's users could not be read (refused, failed, rate-limited); nothing changed"},
    503: {"description": "Kafka did not acknowledge the new reps; nothing changed; retry"}}


class NewRepOut(BaseModel):
    rep_id: str
    name: str
    email: str | None
    timezone: str
    team_id: str


class DecisionOut(BaseModel):
    crm_user_id: str
    action: Action = Field(description="keep (already mapped), map (to the rep with its e-mail), create (a new rep),"
                                       " skip (see reason)")
    rep_id: str | None
    reason: str
    new_rep: NewRepOut | None = None


class ProposalOut(BaseModel):
    mode: Mode
    applied: bool = Field(description="whether it was carried out (automatic mode, POST .../users/sync)")
    decisions: list[DecisionOut]
    kept: dict[str, str] = Field(description="CRM user id -> rep id")
    mapped: dict[str, str] = Field(description="CRM user id -> rep id")
    created: dict[str, str] = Field(description="CRM user id -> the new rep's id")
    skipped: dict[str, str] = Field(description="CRM user id -> why")
    republished: Reprocessed | None = Field(
        default=None, description="the held-back records retried after the mapping grew (None: nothing mapped)")


class ModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode
    team_id: Id | None = Field(default=None, description=f"the team new reps join (unchanged when left out;"
                                                         f" first {DEFAULT_TEAM!r})")


class ModeOut(BaseModel):
    mode: Mode
    team_id: str


def _sync(ctx: Context) -> UsersSync:
    return ctx.users


def _out(proposal: Proposal, applied: bool, republished: Reprocessed | None = None) -> ProposalOut:
    def of(action: Action) -> dict[str, str]:
        return {d.crm_user_id: d.rep_id for d in proposal.decisions if d.action == action and d.rep_id}

    decisions = [DecisionOut(crm_user_id=d.crm_user_id, action=d.action, rep_id=d.rep_id, reason=d.reason,
                             new_rep=NewRepOut(**asdict(d.new_rep)) if d.new_rep else None)
                 for d in proposal.decisions]
    return ProposalOut(mode=proposal.mode, applied=applied, decisions=decisions, kept=of("keep"), mapped=of("map"),
                       created=of("create"), republished=republished,
                       skipped={d.crm_user_id: d.reason for d in proposal.decisions if d.action == "skip"})


def _refused(err: UsersSyncError) -> HTTPException:
    if isinstance(err, NoAccess):
        return HTTPException(409, f"{err}: connect the CRM first (an API token or OAuth)")
    assert isinstance(err, CrmUnreadable)
    return HTTPException(502, str(err))


@router.get("/{crm}/users/proposal", response_model=ProposalOut, responses=ERRORS)
async def get_proposal(crm: Crm, tenant: AdminTenant, ctx: Context) -> ProposalOut:
    """Read the CRM's users and say, per user, what a sync would do now: keep its mapping, map it to the rep with
    its e-mail, create a rep, or skip it (why). Nothing is written."""
    try:
        proposal = await _sync(ctx).proposal(tenant, crm)
    except UsersSyncError as err:
        raise _refused(err) from err
    return _out(proposal, applied=False)


@router.post("/{crm}/users/sync", response_model=ProposalOut, responses=ERRORS)
async def post_sync(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context) -> ProposalOut:
    """Sync now: in automatic mode, map the CRM's users to the reps with their e-mails and create the new ones (a
    `rep.upserted` each), then publish every held-back record whose owner is now known. In manual mode, only the
    proposal (`applied` false)."""
    try:
        done = await _sync(ctx).sync_users(tenant, crm, who)
    except UsersSyncError as err:
        raise _refused(err) from err
    except KafkaUnavailable as err:
        raise HTTPException(503, f"the new reps could not be stored in Kafka ({err}); retry later",
                            headers={"Retry-After": "5"}) from err
    summary = done.republished
    republished = None if summary is None else Reprocessed(
        accepted=summary.accepted, duplicate=summary.duplicate, still_dead_lettered=summary.dead_lettered)
    return _out(done.proposal, done.applied, republished)


@router.get("/{crm}/user-mapping-mode", response_model=ModeOut)
async def get_mode(crm: Crm, tenant: AdminTenant, ctx: Context) -> ModeOut:
    """Whether the CRM's users become reps by themselves (automatic) or are only proposed (manual)."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        found = await users_store.settings(conn, tenant.slug, crm)
    return ModeOut(mode=found.mode, team_id=found.team_id)


@router.put("/{crm}/user-mapping-mode", response_model=ModeOut)
async def put_mode(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context,
                   body: ModeIn) -> ModeOut:
    """Set the mode (and the team new reps join). Back to automatic, the next sync runs within
    CRM_USERS_SYNC_CHECK_S when it is due; `POST .../users/sync` runs one at once."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        current = await users_store.settings(conn, tenant.slug, crm)
        wanted = users_store.SyncSettings(body.mode, body.team_id or current.team_id)
        before = await users_store.save_settings(conn, tenant.slug, crm, wanted)
        await audit.record(conn, tenant=tenant.slug, who=who, action="crm.user_mapping.changed",
                           subject=f"crm:{crm}/user-mapping", before={"mode": before.mode, "team_id": before.team_id},
                           after={"mode": wanted.mode, "team_id": wanted.team_id}, at=ctx.rt.clock.now(),
                           service="ingest")
    return ModeOut(mode=wanted.mode, team_id=wanted.team_id)
