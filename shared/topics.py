"""Kafka topic names and their layout: the one place a topic is spelled.

The names are fixed by the external contract (docs/contract.md, section 3). Partition counts
are ours: they cap the parallelism of each consumer group, so they are sized for a few
replicas per service; raise them before a tenant outgrows them (they can only grow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cleanup = Literal["delete", "compact"]

FOREVER = -1  # retention.ms: never delete by age
DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000  # dead letters wait for a human: twice the broker's default week


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic of the contract with the settings it is created with."""

    name: str
    partitions: int
    cleanup: Cleanup
    # None: the broker's default (log.retention.ms, 7 days). The source topics keep everything: `kpi rebuild`
    # replays them from the beginning (docs/architecture.md, "How far back a rebuild reaches").
    retention_ms: int | None = None

    @property
    def configs(self) -> dict[str, str]:
        """The topic-level configs it is created (and reconciled) with; min.insync.replicas is the cluster's."""
        out: dict[str, str] = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        return out

    @property
    def dlq(self) -> str:
        """The dead-letter topic that takes this topic's poison messages."""
        return f"{self.name}.dlq"


# The source topics are the system of record a rebuild replays: kept forever. Deals and activities are keyed
# per rep (`<tenant>:<rep_id>`, docs/contract.md), so compacting them would keep one deal per rep: they keep
# every record instead. Roster and targets are compacted (the latest version per key); retention.ms is stated
# so that no `compact,delete` policy ever ages them out.
DEALS = Topic("sales.deals.v1", 6, "delete", FOREVER)
ACTIVITIES = Topic("sales.activities.v1", 6, "delete", FOREVER)
ROSTER = Topic("sales.roster.v1", 3, "compact", FOREVER)
TARGETS = Topic("sales.targets.v1", 3, "compact", FOREVER)
ATTAINMENT = Topic("kpi.attainment.v1", 6, "compact")
# Ours (beyond the contract's list): each contest's current standings (issue 22), the latest per contest.
CONTESTS = Topic("kpi.contests.v1", 3, "compact")
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

# Ours: the audit log (issue 17): every change to settings, targets, roster, tokens and check-in states, for a
# SIEM to subscribe to. kpi keeps the whole log in its table (`GET /v1/audit`); the topic keeps 400 days.
AUDIT = Topic("attain.audit.v1", 3, "delete", 400 * 24 * 3600 * 1000)

ALL: tuple[Topic, ...] = (DEALS, ACTIVITIES, ROSTER, TARGETS, ATTAINMENT, CONTESTS, TASKS, PLANS, REVIEWS,
                          CELEBRATIONS, TENANTS, OUTBOX_POSITIONS, AUDIT)


# Topics whose records a key's latest value replaces: a record without a value on one of them is a tombstone.
COMPACTED: frozenset[str] = frozenset(t.name for t in ALL if t.cleanup == "compact")


def all_with_dlq() -> list[Topic]:
    """Every topic of the contract plus its `.dlq` (dead letters are never compacted, and kept 14 days)."""
    out: list[Topic] = []
    for topic in ALL:
        out.append(topic)
        out.append(Topic(topic.dlq, 1, "delete", DLQ_RETENTION_MS))
    return out
