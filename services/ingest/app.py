"""Ingest: validates CRM events and publishes them to Kafka (no consumers, no outbox events)."""

from pathlib import Path

from services.ingest.api import router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="ingest",
    schema="ingest",
    migrations=Path(__file__).with_name("migrations"),
    routers=[router],
    openapi={"description": "The only HTTP write path of Attain: canonical CRM events in, Kafka out.",
             "version": "1"},
)
