"""kpi: rolling attainment per rep against targets, exactly once, from the sales topics."""

from pathlib import Path

from services.kpi import audit
from services.kpi.api import router
from services.kpi.contesting import clock
from services.kpi.contests_api import router as contests
from services.kpi.dashboard import live, pages
from services.kpi.handlers import LINGER_S, MAX_BATCH, MODELS, make_handler
from services.kpi.kpis_api import router as kpis
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="kpi",
    schema="kpi",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[
        Subscription(
            group="kpi",
            topics=[topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name,
                    topics.TENANTS.name, topics.AUDIT.name],
            models=MODELS,
            handler=make_handler,
            # under backlog a larger batch applies many events per transaction, and each figure it
            # moves is saved and published once for the whole batch
            max_batch=MAX_BATCH,
            linger_s=LINGER_S,
        )
    ],
    routers=[router, contests, kpis, audit.router, pages.router],
    timers=[live.run, clock],
    context=pages.make_context,
    credential_cookie=pages.COOKIE,  # the dashboard's reads are rate-limited per token too
    publishes=[topics.ATTAINMENT.name, topics.CONTESTS.name, topics.AUDIT.name],
    reads=[topics.CELEBRATIONS.name],  # the dashboard's live stream (dashboard/live.py), without a group
    openapi={"description": "Attainment state per rep and team.", "version": "1"},
)
