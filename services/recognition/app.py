"""recognition: celebrates every milestone exactly once."""

from pathlib import Path

from services.recognition.handlers import MODELS, make_handler
from shared import topics
from shared.service import ServiceSpec, Subscription

SPEC = ServiceSpec(
    name="recognition",
    schema="recognition",
    migrations=Path(__file__).with_name("migrations"),
    subscriptions=[Subscription("recognition", [topics.ATTAINMENT.name], MODELS, make_handler)],
    openapi={"description": "Milestone ledger and celebrations.", "version": "1"},
)
