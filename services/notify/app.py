"""notify: check-ins, celebrations and reviews delivered to the people they are for, once per channel."""

from pathlib import Path

from services.notify.api import router
from services.notify.handlers import MODELS, make_handler
from services.notify.worker import delivery_worker, digest_worker
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="notify",
    schema="notify",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[Subscription("notify", [topics.TASKS.name, topics.REVIEWS.name, topics.PLANS.name,
                                           topics.CELEBRATIONS.name, topics.ROSTER.name, topics.TENANTS.name],
                                MODELS, make_handler)],
    routers=[router],
    timers=[delivery_worker, digest_worker],
    publishes=[topics.AUDIT.name],  # who changed a team's channels, a connection, preferences (shared/audit.py)
    openapi={"description": "Notifications by e-mail, Slack and Teams, each once per recipient and channel.",
             "version": "1"},
)
