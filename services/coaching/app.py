"""coaching: check-in tasks when reps fall behind, action plans, weekly reviews, manager scorecards."""

from pathlib import Path

from services.coaching.api import router
from services.coaching.handlers import MODELS, make_handler
from services.coaching.timers import evaluator, periodic_evaluation
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="coaching",
    schema="coaching",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[Subscription("coaching", [topics.ATTAINMENT.name, topics.ACTIVITIES.name, topics.DEALS.name,
                                             topics.ROSTER.name, topics.TENANTS.name], MODELS, make_handler)],
    routers=[router],
    timers=[evaluator, periodic_evaluation],
    publishes=[topics.TASKS.name, topics.PLANS.name, topics.REVIEWS.name, topics.AUDIT.name],
    openapi={"description": "Check-in tasks, action plans, reviews and manager scorecards.", "version": "1"},
)
