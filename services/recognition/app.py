"""recognition: celebrates every milestone exactly once, with a headline worth posting."""

from pathlib import Path

from services.recognition.api import router
from services.recognition.config import ConfigCache
from services.recognition.handlers import MODELS, contest_leads, make_handler, period_closer
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="recognition",
    schema="recognition",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[Subscription("recognition", [topics.ATTAINMENT.name, topics.DEALS.name, topics.ACTIVITIES.name,
                                                topics.ROSTER.name, topics.TENANTS.name, topics.CONTESTS.name], MODELS,
                                  make_handler)],
    routers=[router],
    timers=[period_closer, contest_leads],
    context=lambda rt: ConfigCache(),  # each tenant's settings and calendar, shared by consumer, timer and API
    publishes=[topics.CELEBRATIONS.name, topics.AUDIT.name],
    openapi={"description": "Milestone ledger, celebrations and trophy cases.", "version": "1"},
)
