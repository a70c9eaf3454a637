"""coaching: check-in tasks when a rep falls behind pace."""

from pathlib import Path

from services.coaching.handlers import MODELS, make_handler, periodic_evaluation
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="coaching",
    schema="coaching",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[Subscription("coaching", [topics.ATTAINMENT.name], MODELS, make_handler)],
    timers=[periodic_evaluation],
    openapi={"description": "Check-in tasks, action plans and reviews.", "version": "1"},
)
