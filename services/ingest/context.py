"""What ingest's routes share while the service runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request

from services.ingest.crm import oauth_store
from services.ingest.crm.fetch import CrmAccess, Fetcher
from services.ingest.crm.pipeline import CrmPipeline
from services.ingest.crm.users_sync import UsersSync, users_sync_for
from services.ingest.intake import Intake
from services.ingest.limits import RateLimiter
from services.ingest.settings import IngestSettings
from shared.db import tenant_tx
from shared.registry_signing import RegistrySigner
from shared.secret_box import SecretBox
from shared.service import Runtime


@dataclass
class IngestContext:
    rt: Runtime
    settings: IngestSettings
    intake: Intake
    limiter: RateLimiter
    crm: CrmPipeline
    box: SecretBox  # seals and opens the tenants' stored CRM secrets and API tokens (CRM_SECRET_KEYS)
    signer: RegistrySigner  # signs the registry entries it announces (REGISTRY_SIGNING_KEY), loaded once
    users: UsersSync = field(init=False)  # the CRM user sync (crm/users_sync.py), made of the parts above

    def __post_init__(self) -> None:
        self.users = users_sync_for(self.rt, self.settings, self.intake, self.crm, self.box)


def make_context(rt: Runtime) -> IngestContext:
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    intake = Intake(rt.pool, rt.producer, settings.publish_timeout_s, clock=rt.clock,
                    max_ahead=timedelta(seconds=settings.max_event_ahead_s))
    box = settings.crm_secret_box()

    async def refused(access: CrmAccess) -> None:  # a 401 to an OAuth access token: renew it on the next pass
        async with tenant_tx(rt.pool, access.tenant) as conn:
            await oauth_store.mark_due(conn, access.tenant, access.crm, rt.clock.now())

    return IngestContext(
        rt=rt,
        settings=settings,
        intake=intake,
        crm=CrmPipeline(rt.pool, intake, Fetcher(settings.crm_api_timeout_s, settings.crm_api_max_response_bytes,
                                                 settings.crm_api_allowed_hosts.split(","),
                                                 on_unauthorized=refused), box),
        box=box,
        signer=settings.registry_signer(),
        limiter=RateLimiter(settings.rate_limit_requests_per_s, settings.rate_limit_request_burst,
                            settings.rate_limit_events_per_s, settings.rate_limit_event_burst),
    )


def context_of(request: Request) -> IngestContext:
    """FastAPI dependency: the running ingest's context."""
    ctx: IngestContext = request.app.state.context
    return ctx
