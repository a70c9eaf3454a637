"""From a `Finding` to the `coaching.task.created` payload: what the manager is asked to do, and by when.

Pure: the task id, the due date and the playbook text are functions of the view, the finding, ``now``
and the policy. A playbook's lines may name facts of the finding in braces (``{stale_deal_ids}``,
``{period}``, ``{metric}``, any key of ``finding.details``); a line naming a fact the finding lacks is
left out, so "walk through the stale deals" only appears when there are some.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.coaching.model import (
    ACTIVITY_SHORTFALL,
    BEHIND_PACE,
    FALLING_WIN_RATE,
    FORECAST_SHORT,
    NO_ACTIVITY,
    STALLED_PIPELINE,
    Finding,
    Policy,
    RepView,
)
from shared import workdays as calendar
from shared.events import TaskCreated

__all__ = ["DEFAULT_CATALOGUE", "EPOCH", "NAMESPACE", "Playbook", "compose", "json_ready", "task_id"]

NAMESPACE = uuid.UUID("9a4c2e17-8d3b-4f6a-a1c5-7e2d0b9f6c34")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Playbook:
    """What a manager can do about one rule's finding: concrete actions and training to offer."""

    suggested_actions: tuple[str, ...]
    training: tuple[str, ...]


DEFAULT_CATALOGUE: Mapping[str, Playbook] = {
    BEHIND_PACE: Playbook(
        suggested_actions=(
            "Review the open pipeline together and pick the three deals most likely to close in {period}",
            "Agree a weekly {metric} goal for the rest of {period} that closes the gap to pace",
            "Book a 15-minute follow-up in one week to check the gap is closing",
        ),
        training=("Pipeline hygiene and forecasting", "Closing techniques"),
    ),
    ACTIVITY_SHORTFALL: Playbook(
        suggested_actions=(
            "Go through last week's calendar together: what took the time meant for {metric}?",
            "Block two prospecting slots a day in the calendar for the coming week",
            "Agree a daily {metric} goal and review it at the next one-to-one",
        ),
        training=("Time-blocking for prospecting", "Call and meeting preparation"),
    ),
    STALLED_PIPELINE: Playbook(
        suggested_actions=(
            "Walk through the stale deals {stale_deal_ids}: a dated next step for each, or close it as lost",
            "List the accounts to open this week to rebuild pipeline coverage for {period}",
            "Check that every open deal has a next step and a close date in the CRM",
        ),
        training=("Pipeline generation and prospecting", "Deal qualification and reviews"),
    ),
    FALLING_WIN_RATE: Playbook(
        suggested_actions=(
            "Review the deals lost in the last weeks together: at which stage, and why?",
            "Compare how recent deals were qualified with the ones won before",
            "Role-play discovery and negotiation on a live deal",
        ),
        training=("Discovery and qualification", "Objection handling and negotiation"),
    ),
    NO_ACTIVITY: Playbook(
        suggested_actions=(
            "Check in personally first: is anything blocking (workload, tools, something personal)?",
            "Make sure activities reach the CRM: a sync problem looks the same as silence",
            "Agree the next three concrete activities and when they happen",
        ),
        training=("CRM logging habits", "Daily planning and prospecting routines"),
    ),
    FORECAST_SHORT: Playbook(
        suggested_actions=(
            "Go through the deals that could close the gap, largest expected first: {closing_deals}."
            " For each: what must happen to win it inside {period}?",
            "Look for deals that could be pulled into {period}, and open deals without a close date to date",
            "List the accounts to open this week: the rest of the gap needs new pipeline that can close in {period}",
        ),
        training=("Forecasting and pipeline coverage", "Deal qualification and closing plans"),
    ),
}


def task_id(tenant: str, rep_id: str, rule: str, severity: str, now: datetime, cooldown: timedelta) -> str:
    """Stable per (tenant, rep, rule, severity, cool-down window): a unique key on it backs the cool-down.

    Windows are ``cooldown``-long slices of time since 1970-01-01 UTC, so the id does not depend on the
    zone ``now`` is given in. A finding that turns critical gets a new id inside the same window.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    if cooldown <= timedelta(0):
        raise ValueError(f"cooldown must be positive, got {cooldown}")
    window = (now - EPOCH) // cooldown
    return str(uuid.uuid5(NAMESPACE, f"{tenant}|{rep_id}|{rule}|{severity}|{window}"))


def compose(
    view: RepView,
    finding: Finding,
    now: datetime,
    policy: Policy,
    catalogue: Mapping[str, Playbook] = DEFAULT_CATALOGUE,
) -> TaskCreated:
    """The check-in task for ``finding``: due ``policy.due_working_days`` working days on, at
    ``policy.due_hour`` in the rep's zone (never a weekend or a day off); the playbook from
    ``catalogue``, or the default one when it has none for the rule.

    Example: a stalled-pipeline finding with stale deals d-1 and d-4, raised on Friday 2026-11-13 at
    10:00 in Europe/Berlin, is due Tuesday 2026-11-17 at 17:00 local, and suggests "Walk through the
    stale deals d-1, d-4: a dated next step for each, or close it as lost".
    """
    playbook = catalogue.get(finding.rule) or DEFAULT_CATALOGUE.get(finding.rule) or Playbook((), ())
    details = json_ready(finding.details)
    facts = {key: _fact(value) for key, value in details.items()}
    facts |= {"period": finding.evidence.period, "metric": finding.evidence.metric.replace("_", " ")}
    return TaskCreated(
        task_id=task_id(
            view.tenant, view.rep_id, finding.rule, finding.severity, now, timedelta(days=policy.cooldown_days)
        ),
        rep_id=view.rep_id,
        manager_id=view.manager_id,
        rule=finding.rule,
        severity=finding.severity,
        summary=finding.summary,
        evidence=finding.evidence,
        suggested_actions=_lines(playbook.suggested_actions, facts),
        training=_lines(playbook.training, facts),
        due_at=calendar.due_at(now, view.timezone, view.days_off, policy.due_working_days, policy.due_hour),
        rep_name=view.name,
        team_id=view.team_id,
        details=details,
    )


def json_ready(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``details`` that `json.dumps` takes as is: Decimals, dates and other values become
    strings, sequences lists, mappings dicts; strings, ints, bools and None stay."""
    return {str(key): _json_value(value) for key, value in details.items()}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return json_ready(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_json_value(item) for item in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def _fact(value: Any) -> str:
    """How a detail reads inside a sentence: lists joined by commas."""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)


def _lines(templates: tuple[str, ...], facts: Mapping[str, str]) -> list[str]:
    """Each template with the facts filled in; one that names a missing or empty fact is left out."""
    lines: list[str] = []
    for template in templates:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        except ValueError:  # stray braces in a custom text: it is meant literally
            lines.append(template)
            continue
        if any(not facts.get(name) for name in names):
            continue
        try:
            lines.append(template.format_map(facts))
        except (ValueError, IndexError, KeyError, AttributeError):
            lines.append(template)
    return lines
