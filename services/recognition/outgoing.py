"""What recognition says: the ledger entry of a found milestone and the events it publishes. Pure.

`entry` renders a milestone's headline for the tenant (locale, currency, templates: `headlines.py`);
`celebration` and `correction` build the outbox rows of `recognition.milestone.reached` and
`recognition.milestone.corrected`, keyed by the scope's id so one rep's (or team's) events stay ordered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from services.recognition.headlines import kind_of, render, with_also
from services.recognition.model import Corrected, Drop, Entry, Found, TenantConfig
from services.recognition.repository import Outgoing
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.events import MilestoneCorrected, MilestoneReached

__all__ = ["REACHED", "SOURCE", "bundled", "celebration", "correction", "entry"]

SOURCE = "attain/recognition"
REACHED, CORRECTED = "recognition.milestone.reached", "recognition.milestone.corrected"


def entry(found: Found, config: TenantConfig, metric: str | None = None, status: str = "celebrated") -> Entry:
    """A found milestone with the headline the tenant's settings give it."""
    settings = config.settings
    headline = render(kind_of(found.milestone), found.facts, locale=settings.locale, currency=config.calendar.currency,
                      templates=settings.templates)
    return Entry(found, headline, metric, status)


def bundled(lead: Entry, others: Sequence[Entry], config: TenantConfig) -> Entry:
    """The lead of a celebration that carries ``others`` too: its headline names them ("... Also: first win
    of 2026-Q4.") and its facts list every milestone, highest first (``milestones``)."""
    settings = config.settings
    headline = with_also(lead.headline, [(kind_of(o.found.milestone), o.found.facts) for o in others],
                         locale=settings.locale, currency=config.calendar.currency)
    facts = {**lead.found.facts, "milestones": [lead.found.milestone, *(o.found.milestone for o in others)]}
    return replace(lead, found=replace(lead.found, facts=facts), headline=headline)


def celebration(tenant: str, item: Entry, celebration_id: str) -> Outgoing:
    """The outbox row announcing a milestone the ledger took now."""
    found = item.found
    facts = {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in found.facts.items()}
    name = found.facts.get("name")
    milestones = list(found.facts.get("milestones") or [found.milestone])
    event = MilestoneReached(celebration_id=celebration_id, scope=found.scope, scope_id=found.scope_id,
                             milestone=found.milestone, period=found.period, value=found.value, headline=item.headline,
                             occurred_at=found.occurred_at, name=str(name) if name else None, facts=facts,
                             milestones=milestones)
    return (topics.CELEBRATIONS.name, message_key(tenant, found.scope_id),
            CloudEvent(id=celebration_id, type=REACHED, source=SOURCE, time=found.occurred_at, tenant=tenant,
                       data=event))


def correction(tenant: str, row: Corrected, drop: Drop, now: datetime) -> Outgoing:
    """The outbox row of a celebrated milestone's one correction (its figure fell back below it)."""
    event = MilestoneCorrected(
        celebration_id=row.celebration_id, scope=row.scope, scope_id=row.scope_id, milestone=row.milestone,
        period=row.period, value=drop.actual, corrected_at=now,
        headline=f"Correction: {drop.name or drop.scope_id} is back at {drop.actual} for {drop.period}"
                 f" ({row.milestone} was celebrated before)")
    return (topics.CELEBRATIONS.name, message_key(tenant, row.scope_id),
            CloudEvent(id=f"{row.celebration_id}:corrected", type=CORRECTED, source=SOURCE, time=now, tenant=tenant,
                       data=event))
