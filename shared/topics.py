"""Kafka topic names and their layout: the one place a topic is spelled.

The names are fixed by the external contract (docs/contract.md, section 3). Partition counts
are ours: they cap the parallelism of each consumer group, so they are sized for a few
replicas per service; raise them before a tenant outgrows them (they can only grow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cleanup = Literal["delete", "compact"]


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic of the contract with the settings it is created with."""

    name: str
    partitions: int
    cleanup: Cleanup

    @property
    def dlq(self) -> str:
        """The dead-letter topic that takes this topic's poison messages."""
        return f"{self.name}.dlq"


DEALS = Topic("sales.deals.v1", 6, "delete")
ACTIVITIES = Topic("sales.activities.v1", 6, "delete")
ROSTER = Topic("sales.roster.v1", 3, "compact")
TARGETS = Topic("sales.targets.v1", 3, "compact")
ATTAINMENT = Topic("kpi.attainment.v1", 6, "compact")
TASKS = Topic("coaching.tasks.v1", 3, "delete")
# Ours (beyond the contract's list): action-plan step outcomes and the weekly review digests.
PLANS = Topic("coaching.plans.v1", 3, "delete")
REVIEWS = Topic("coaching.reviews.v1", 3, "delete")
CELEBRATIONS = Topic("recognition.celebrations.v1", 3, "delete")
# Internal (not in the contract): the tenant registry ingest owns, so the other services can
# authenticate read API calls and know each tenant's calendar without reading ingest's tables.
TENANTS = Topic("attain.tenants.v1", 1, "compact")
# Internal: how far each outbox relay has published, written in the same Kafka transaction as the rows.
OUTBOX_POSITIONS = Topic("attain.outbox-positions.v1", 1, "compact")

ALL: tuple[Topic, ...] = (DEALS, ACTIVITIES, ROSTER, TARGETS, ATTAINMENT, TASKS, PLANS, REVIEWS, CELEBRATIONS,
                          TENANTS, OUTBOX_POSITIONS)


def all_with_dlq() -> list[Topic]:
    """Every topic of the contract plus its `.dlq` (dead letters are never compacted)."""
    out: list[Topic] = []
    for topic in ALL:
        out.append(topic)
        out.append(Topic(topic.dlq, 1, "delete"))
    return out
