"""Users from the CRM (issue 21): the CRM's users become reps, so a tenant that only connects a CRM sees its figures
without mapping anyone by hand.

`UsersSync.sync_users(tenant, crm)` reads the CRM's users (HubSpot owners, Pipedrive users, Salesforce User;
`reading/`) holding no database connection, then in one transaction, with the tenant's sync row locked (two syncs
of one CRM run one after the other): decides (`users_rules.propose`, against the mapping and reps as they are
then), adds the mapping entries, publishes a `rep.upserted` for each new rep through the intake (source
`<crm>-user-sync`; the intake writes the rep's audit entry) and writes the mapping's audit entry
(`crm.users.changed`, as `PUT /v1/crm/{crm}/users` does). After the commit every held-back record of that CRM is
retried (`CrmPipeline.reprocess`): those whose owner is now known are published. In manual mode it proposes only.

What starts a sync (`run`, ingest's timer): the tenants' CRMs that `sweep_crm_users_due` lists every
CRM_USERS_SYNC_CHECK_S: one ingest can read that was never synced (just connected), was synced longer than
CRM_USERS_SYNC_EVERY_H ago (daily), or was asked for: a webhook delivery that held a record back for an owner no
mapping names asks (`nudge`) and wakes the timer. A sync starts at most once per CRM_USERS_SYNC_RETRY_S per
tenant and CRM (the debounce, across replicas: `users_store.claim`), which is also when a failed one is tried again.
An admin's `POST /v1/crm/{crm}/users/sync` runs one at once.

Metrics: `attain_ingest_crm_users_synced_total{crm,outcome}` counts the CRM users by what became of them (kept,
mapped, created, skipped; `proposed` in manual mode), `attain_ingest_crm_user_syncs_total{crm,result}` the syncs
(done, manual, no_access, failed). One log line per sync: tenant, CRM and counts, never a name or an e-mail.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import asyncpg
from prometheus_client import Counter

from services.ingest import tenants
from services.ingest.crm import users_store
from services.ingest.crm.fetch import load_access
from services.ingest.crm.model import Crm
from services.ingest.crm.pipeline import CrmPipeline, Summary
from services.ingest.crm.reading.model import CrmUser, ReadingError
from services.ingest.crm.reading.readers import reader_for
from services.ingest.crm.reading.transport import GuardedTransport, Transport
from services.ingest.crm.users_rules import NewRep, Proposal, propose
from services.ingest.intake import Intake
from services.ingest.settings import IngestSettings
from services.ingest.tenants import Tenant
from services.ingest.validation import Verdict
from shared import audit, metrics
from shared.authz import Principal
from shared.clock import Clock
from shared.consumer import transient
from shared.db import sweep_tx, tenant_tx
from shared.events import RepUpserted, RepUpsertedEvent
from shared.secret_box import SecretBox
from shared.service import Runtime

log = logging.getLogger(__name__)
USERS_SYNCED = Counter("attain_ingest_crm_users_synced_total",
                       "CRM users the user sync went through, by CRM and what became of them (kept, mapped, created,"
                       " skipped; proposed: the tenant maps by hand).", ["crm", "outcome"])
SYNCS = Counter("attain_ingest_crm_user_syncs_total",
                "CRM user syncs, by CRM and result (done, manual, no_access, failed: the CRM could not be read).",
                ["crm", "result"])
COMPONENT = "crm-user-sync"
_OUTCOME = {"keep": "kept", "map": "mapped", "create": "created", "skip": "skipped"}


class UsersSyncError(Exception):
    """A user sync that could not be made."""


class NoAccess(UsersSyncError):
    """The tenant gave ingest no way to read this CRM (no API token, no working OAuth connection)."""


class CrmUnreadable(UsersSyncError):
    """The CRM's users could not be read (refused, failed, rate-limited): nothing was changed."""


@dataclass(frozen=True)
class Synced:
    """What a sync decided and did: `applied` is False in manual mode; `republished` is the retry of the held-back
    records (None when none was needed: no mapping added, no record waiting for an owner)."""

    proposal: Proposal
    applied: bool
    republished: Summary | None


class UsersSync:
    """The CRM user sync of one ingest process (module docstring)."""

    def __init__(self, pool: asyncpg.Pool, intake: Intake, pipeline: CrmPipeline, box: SecretBox,
                 transport: Transport, clock: Clock, *, every: timedelta = timedelta(hours=24),
                 retry: timedelta = timedelta(minutes=10), check_s: float = 60.0) -> None:
        self._pool, self._intake, self._pipeline, self._box = pool, intake, pipeline, box
        self._transport, self._clock = transport, clock
        self._every, self._retry, self._check_s = every, retry, check_s
        self._wake = asyncio.Event()

    async def read_users(self, tenant: Tenant, crm: Crm) -> list[CrmUser]:
        """The CRM's users; the access is read in a short transaction of its own, none is held while the CRM
        answers."""
        async with tenant_tx(self._pool, tenant.slug) as conn:
            access = await load_access(conn, tenant.slug, crm, self._box, self._clock.now())
        if access is None:
            raise NoAccess(f"{tenant.slug} gave no api token or oauth connection for {crm}")
        try:
            return await reader_for(crm, self._transport).list_users(access)
        except ReadingError as err:
            raise CrmUnreadable(f"the users of {crm} could not be read: {err}") from err

    async def proposal(self, tenant: Tenant, crm: Crm) -> Proposal:
        """What a sync would do now (a dry run: nothing is written)."""
        users = await self._read(tenant, crm)
        async with tenant_tx(self._pool, tenant.slug) as conn:
            return await self._propose(conn, tenant, crm, users, lock=False)

    async def sync_users(self, tenant: Tenant, crm: Crm, who: Principal | None = None) -> Synced:
        """Read the CRM's users, apply the proposal (automatic mode) and publish what was held back (module
        docstring). `who`: the admin who asked (the audit log's actor); None: the timer. Raises `NoAccess`,
        `CrmUnreadable` (nothing changed), `KafkaUnavailable` (nothing committed)."""
        started = self._clock.now()
        try:
            users = await self._read(tenant, crm)
        except CrmUnreadable as err:
            async with tenant_tx(self._pool, tenant.slug) as conn:
                await users_store.finished(conn, tenant.slug, crm, started, str(err))
            raise
        async with tenant_tx(self._pool, tenant.slug) as conn:
            proposal = await self._propose(conn, tenant, crm, users, lock=True)
            added = proposal.new_mapping() if proposal.applies else {}
            if added:
                before = await users_store.user_mapping(conn, tenant.slug, crm)
                await users_store.add_mapping(conn, tenant.slug, crm, added)
                await audit.record(conn, tenant=tenant.slug, who=who, action="crm.users.changed",
                                   subject=f"crm:{crm}/users", before=before, after={**added, **before},
                                   at=started, service="ingest",
                                   actor=None if who else audit.actor_of(None, name=COMPONENT))
                events = [rep_event(crm, d.crm_user_id, d.new_rep, started)
                          for d in proposal.decisions if d.new_rep is not None]
                outcomes = await self._intake.accept(tenant, [Verdict(i, e.id, e) for i, e in enumerate(events)],
                                                     conn=conn, who=who)
                for outcome in outcomes:
                    if outcome.status == "rejected":  # the rep is mapped all the same: its deals are not held back
                        log.warning("a rep from the crm was refused", extra={
                            "tenant": tenant.slug, "crm": crm, "rep": events[outcome.index].data.rep_id,
                            "reason": outcome.reason})
            # what is held back for an owner is retried when the mapping grew, and also when an earlier retry did
            # not get through (Kafka away after the mapping's commit) and a record still waits for a mapped owner
            retry = proposal.applies and (bool(added) or await users_store.owner_now_mapped(conn, tenant.slug, crm))
            await users_store.finished(conn, tenant.slug, crm, started, None)
        republished = await self._pipeline.reprocess(tenant, crm) if retry else None
        _report(tenant, crm, proposal, republished)
        return Synced(proposal, proposal.applies, republished)

    async def nudge(self, tenant: Tenant, crm: str) -> None:
        """After a delivery held records back: ask for a sync when one waits for an owner no mapping names and the
        tenant maps automatically, and wake the timer (it starts one within the debounce)."""
        async with tenant_tx(self._pool, tenant.slug) as conn:
            asked = await users_store.request(conn, tenant.slug, crm, self._clock.now())
        if asked:
            self._wake.set()

    async def run(self) -> None:
        """The timer: every `check_s`, or at once when nudged, sync every tenant's CRM that is due."""
        while True:
            try:
                async with asyncio.timeout(self._check_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.sync_due()
            except Exception as err:  # a failed pass is counted and logged; the timer never dies (service.every)
                metrics.count_timer_failure(COMPONENT, err, transient(err))

    async def sync_due(self) -> int:
        """One pass: sync each CRM due now that this replica claims; how many were synced."""
        now = self._clock.now()
        async with sweep_tx(self._pool) as conn:
            due = await users_store.due(conn, now, self._every, self._retry)
        done = 0
        for slug, crm in due:
            async with tenant_tx(self._pool, slug) as conn:
                tenant = await tenants.by_slug(conn, slug)
                claimed = tenant is not None and await users_store.claim(conn, slug, crm, now, self._retry)
            if not claimed or tenant is None:
                continue  # another replica's, or started within the debounce
            try:
                await self.sync_users(tenant, cast(Crm, crm))
                done += 1
            except UsersSyncError as err:
                log.warning("crm user sync failed, will retry", extra={"tenant": slug, "crm": crm, "error": str(err)})
        return done

    async def _read(self, tenant: Tenant, crm: Crm) -> list[CrmUser]:
        try:
            return await self.read_users(tenant, crm)
        except NoAccess:
            SYNCS.labels(crm, "no_access").inc()
            raise
        except CrmUnreadable:
            SYNCS.labels(crm, "failed").inc()
            raise

    async def _propose(self, conn: asyncpg.Connection, tenant: Tenant, crm: Crm, users: list[CrmUser], *,
                       lock: bool) -> Proposal:
        chosen = await users_store.settings(conn, tenant.slug, crm, lock=lock)
        return propose(crm, users, await users_store.reps(conn, tenant.slug),
                       await users_store.user_mapping(conn, tenant.slug, crm), tenant_timezone=tenant.timezone,
                       mode=chosen.mode, team_id=chosen.team_id)


def rep_event(crm: str, crm_user_id: str, rep: NewRep, at: datetime) -> RepUpsertedEvent:
    """The `rep.upserted` that creates `rep` from CRM user `crm_user_id` at `at`. Its id is new for each sync (a
    rep created again after its mapping was removed by hand is published again), its source names the sync."""
    digest = hashlib.sha256(f"{crm_user_id}\n{rep.rep_id}\n{at.isoformat()}".encode()).hexdigest()[:32]
    return RepUpsertedEvent(type="rep.upserted", id=f"crm-users:{crm}:{digest}", source=f"{crm}-user-sync", time=at,
                            data=RepUpserted(rep_id=rep.rep_id, name=rep.name, team_id=rep.team_id, email=rep.email,
                                             timezone=rep.timezone))


def _report(tenant: Tenant, crm: str, proposal: Proposal, republished: Summary | None) -> None:
    counts = proposal.counts()
    for action, n in counts.items():
        if n:
            shown = proposal.applies or action in ("keep", "skip")  # manual: a map or a create is only proposed
            USERS_SYNCED.labels(crm, _OUTCOME[action] if shown else "proposed").inc(n)
    SYNCS.labels(crm, "done" if proposal.applies else "manual").inc()
    log.info("crm users synced", extra={
        "tenant": tenant.slug, "crm": crm, "mode": proposal.mode, "users": len(proposal.decisions),
        "kept": counts["keep"], "mapped": counts["map"], "reps_created": counts["create"], "skipped": counts["skip"],
        "republished": republished.accepted if republished else 0,
        "still_held_back": republished.dead_lettered if republished else None})


def users_sync_for(rt: Runtime, settings: IngestSettings, intake: Intake, pipeline: CrmPipeline,
                   box: SecretBox) -> UsersSync:
    """The sync of a running ingest, reading through the readers' guarded transport (CRM_API_ALLOWED_HOSTS)."""
    transport = GuardedTransport(allowed_hosts=settings.crm_api_allowed_hosts.split(","))
    return UsersSync(rt.pool, intake, pipeline, box, transport, rt.clock,
                     every=timedelta(hours=settings.crm_users_sync_every_h),
                     retry=timedelta(seconds=settings.crm_users_sync_retry_s),
                     check_s=settings.crm_users_sync_check_s)


async def crm_users_sync(rt: Runtime) -> None:
    """ingest's timer: the CRM user syncs due (`UsersSync.run`)."""
    await rt.context.users.run()
