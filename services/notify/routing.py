"""Who hears an event, on which channels: a pure function of the event, the roster and the preferences.

- a check-in (``coaching.task.created``): privately to the rep and their manager;
- an escalation (``coaching.task.escalated``): to the manager's manager (the event's ``escalated_to``, else
  the roster's manager of the manager), or to the manager when nobody is above them;
- a celebration (``recognition.milestone.reached``): to the team's channel and to the rep; a rep who opted
  out of public celebrations still hears their win, but the team channel does not;
- the weekly review (``coaching.review.published``): a rep's to the rep and their manager, a team's (it
  carries the manager's scorecard and every rep's forecast) to the manager only; e-mail unless they chose;
- an action plan's step (``coaching.plan.step.completed`` or ``.missed``): to the rep and their manager.

Each person hears it on the channels they chose for its kind (`channels_for`). Recipients missing from
the roster are skipped: notify has neither their zone nor their address. Other events (a check-in closed,
a milestone corrected) reach nobody.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Final

from pydantic import BaseModel

from services.notify.model import (
    DEFAULT_PREFERENCES,
    Channel,
    Intent,
    Kind,
    Person,
    Preferences,
    TeamChannels,
    team_recipient,
)
from shared.events import (
    MilestoneReached,
    PlanStepSettled,
    ReviewPublished,
    Scope,
    TaskCreated,
    TaskEscalated,
)

__all__ = [
    "CELEBRATION",
    "CHECK_IN",
    "DATA",
    "ESCALATION",
    "PLAN_COMPLETED",
    "PLAN_MISSED",
    "REVIEW",
    "channels_for",
    "idempotency_key",
    "route",
]

CHECK_IN: Final = "coaching.task.created"
ESCALATION: Final = "coaching.task.escalated"
CELEBRATION: Final = "recognition.milestone.reached"
REVIEW: Final = "coaching.review.published"
PLAN_COMPLETED: Final = "coaching.plan.step.completed"
PLAN_MISSED: Final = "coaching.plan.step.missed"

# The events notify routes, with the model their data parses into (the handler parses with it).
DATA: Final[Mapping[str, type[BaseModel]]] = {
    CHECK_IN: TaskCreated,
    ESCALATION: TaskEscalated,
    CELEBRATION: MilestoneReached,
    REVIEW: ReviewPublished,
    PLAN_COMPLETED: PlanStepSettled,
    PLAN_MISSED: PlanStepSettled,
}


def idempotency_key(tenant: str, event_id: str, recipient: str, channel: Channel) -> str:
    """Stable: the same (tenant, event, recipient, channel) always gives the same key, whatever the order or
    number of times the event is routed. SHA-256 of the four as a JSON array, so no separator is ambiguous.

    >>> idempotency_key("acme", "e1", "ana", "email") == idempotency_key("acme", "e1", "ana", "email")
    True
    >>> idempotency_key("a|b", "c", "ana", "email") == idempotency_key("a", "b|c", "ana", "email")
    False
    """
    raw = json.dumps([tenant, event_id, recipient, channel], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def channels_for(person: Person, kind: Kind, preferences: Preferences,
                 teams: Mapping[str, TeamChannels]) -> tuple[Channel, ...]:
    """The channels ``person`` hears ``kind`` on: their choice when they made one (none: switched off), else
    e-mail, plus Slack for celebrations when their team has a Slack channel."""
    chosen = preferences.channels.get(kind)
    if chosen is not None:
        return tuple(dict.fromkeys(chosen))
    team = teams.get(person.team_id) if person.team_id is not None else None
    if kind == "celebration" and team is not None and team.has_slack:
        return ("email", "slack")
    return ("email",)


def route(tenant: str, event_id: str, event_type: str, data: BaseModel, people: Mapping[str, Person],
          teams: Mapping[str, TeamChannels], prefs: Mapping[str, Preferences]) -> list[Intent]:
    """The messages one event gives, in a stable order, each with its idempotency key.

    ``data`` is the event's data parsed with ``DATA[event_type]``; ``people`` the tenant's roster by person
    id, ``teams`` its team channels by team id, ``prefs`` the preferences people set (absent: the defaults).
    An event type notify does not route gives no message."""
    expected = DATA.get(event_type)
    if expected is None:
        return []
    if not isinstance(data, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(data).__name__}")
    return _Router(tenant, event_id, people, teams, prefs).intents(data)


class _Router:
    """One event's routing: the tenant's roster, team channels and preferences at hand."""

    def __init__(self, tenant: str, event_id: str, people: Mapping[str, Person], teams: Mapping[str, TeamChannels],
                 prefs: Mapping[str, Preferences]) -> None:
        self.tenant, self.event_id = tenant, event_id
        self.people, self.teams, self.prefs = people, teams, prefs

    def intents(self, data: BaseModel) -> list[Intent]:
        if isinstance(data, TaskCreated):
            return self.personal("check_in", [data.rep_id, data.manager_id or self.manager_of(data.rep_id)])
        if isinstance(data, TaskEscalated):
            return self.personal("escalation", [self.escalation_target(data)])
        if isinstance(data, MilestoneReached):
            return self.celebration(data)
        if isinstance(data, ReviewPublished):
            return self.review(data)
        assert isinstance(data, PlanStepSettled)
        return self.personal("plan", [data.rep_id, data.manager_id or self.manager_of(data.rep_id)])

    def intent(self, recipient: str, channel: Channel, kind: Kind) -> Intent:
        return Intent(self.event_id, recipient, channel, kind,
                      idempotency_key(self.tenant, self.event_id, recipient, channel))

    def manager_of(self, person_id: str | None) -> str | None:
        person = self.people.get(person_id) if person_id is not None else None
        if person is None or person.manager_id == person_id:
            return None
        return person.manager_id

    def escalation_target(self, data: TaskEscalated) -> str | None:
        """The manager's manager: the one coaching named, else one step up the roster from the manager; the
        manager when nobody is above them (the first of these the roster knows)."""
        manager = data.manager_id or self.manager_of(data.rep_id)
        candidates = (data.escalated_to, self.manager_of(manager), manager)
        return next((c for c in candidates if c is not None and c in self.people), None)

    def personal(self, kind: Kind, recipients: Iterable[str | None]) -> list[Intent]:
        """Each named person once, on each of their channels for ``kind``; people not in the roster skipped."""
        out: list[Intent] = []
        seen: set[str] = set()
        for person_id in recipients:
            if person_id is None or person_id in seen or person_id not in self.people:
                continue
            seen.add(person_id)
            choice = self.prefs.get(person_id, DEFAULT_PREFERENCES)
            out.extend(self.intent(person_id, channel, kind)
                       for channel in channels_for(self.people[person_id], kind, choice, self.teams))
        return out

    def team_channel(self, team_id: str | None) -> list[Intent]:
        team = self.teams.get(team_id) if team_id is not None else None
        if team is None:
            return []
        channels: list[Channel] = []
        if team.has_slack:
            channels.append("slack")
        if team.has_teams:
            channels.append("teams")
        return [self.intent(team_recipient(team.team_id), channel, "celebration") for channel in channels]

    def review(self, data: ReviewPublished) -> list[Intent]:
        """A rep's review to the rep and their manager; a team's (the manager's scorecard, every rep's forecast)
        to the manager alone: each rep hears their own."""
        if data.scope is Scope.REP:
            return self.personal("review", [data.scope_id, data.manager_id or self.manager_of(data.scope_id)])
        return self.personal("review", [data.manager_id])

    def celebration(self, data: MilestoneReached) -> list[Intent]:
        """A rep's win: the team channel (unless they opted out of public celebrations) and the rep. A team's
        win: the team channel. A contest's own moment (its start) has no team: nobody here."""
        if data.scope == Scope.TEAM:
            return self.team_channel(data.scope_id)
        if data.scope != Scope.REP:
            return []
        rep = self.people.get(data.scope_id)
        if rep is None:
            return []
        public = self.prefs.get(rep.person_id, DEFAULT_PREFERENCES).public_celebrations
        return [*(self.team_channel(rep.team_id) if public else []), *self.personal("celebration", [rep.person_id])]
