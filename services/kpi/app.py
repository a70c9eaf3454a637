"""kpi: rolling attainment per rep against targets, exactly once, from the sales topics."""

from pathlib import Path

from services.kpi.api import router
from services.kpi.handlers import MODELS, make_handler
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
                    topics.TENANTS.name],
            models=MODELS,
            handler=make_handler,
        )
    ],
    routers=[router],
    openapi={"description": "Attainment state per rep and team.", "version": "1"},
)
