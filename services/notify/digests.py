"""Digests: what a person's daily cap folds together, and each manager's morning list of open check-ins.

- **The daily cap** (`cap`, in the consumer's batch transaction): a person's events of one local day past
  their ``daily_cap`` (`schedule.capped`, counting what was scheduled to them that day already) are kept
  `folded`, each marked with the digest it went into, ``cap:<person>:<day>``; that digest is one delivery
  per channel the person hears digests on, due at their first allowed moment of the next day. A replayed
  batch decides the same: the events already scheduled that day include the replayed ones, which go.
- **The managers' digest** (`open_check_ins`, a timer): on each working day of a manager (their own zone,
  their weekends), once, a list of their reps' check-ins still open, ``open:<manager>:<day>``, due at the
  start of their day. Its idempotency key makes the day's digest once, however often the timer runs.

The digests are deliveries like any other (`deliveries`): once per recipient and channel, retried, kept
when they cannot be delivered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from services.notify.model import DEFAULT_PREFERENCES, Delivery, Person, Preferences, TeamChannels
from services.notify.repository import OpenCheckIn
from services.notify.routing import channels_for, idempotency_key
from services.notify.schedule import capped, day_of, deliver_at, working_day

__all__ = ["CAP_DIGEST", "OPEN_DIGEST", "CapPlan", "cap", "manager_digests"]

CAP_DIGEST: Final = "attain.notify.digest.capped"  # the event type of a cap's digest (notify's own)
OPEN_DIGEST: Final = "attain.notify.digest.open_check_ins"  # of a manager's open check-ins


class DayCounts(Protocol):
    async def events_on_day(self, tenant: str, recipients: Sequence[str],
                            windows: Sequence[tuple[datetime, datetime]]) -> dict[tuple[str, datetime], set[str]]: ...


@dataclass(frozen=True, slots=True)
class CapPlan:
    """What a batch's cap decided: deliveries to fold, by the digest they go into, and the digests to add."""

    folds: dict[str, list[str]] = field(default_factory=dict)
    digests: list[tuple[Delivery, str, dict[str, Any]]] = field(default_factory=list)


def _day_window(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def _digest(tenant: str, digest_id: str, event_type: str, person: Person, prefs: Preferences,
            teams: Mapping[str, TeamChannels], at: datetime, data: dict[str, Any]) -> list[
        tuple[Delivery, str, dict[str, Any]]]:
    return [(Delivery(digest_id, person.person_id, channel, "digest", at,
                      idempotency_key(tenant, digest_id, person.person_id, channel)), event_type, data)
            for channel in channels_for(person, "digest", prefs, teams)]


async def cap(repo: DayCounts, tenant: str, deliveries: Sequence[Delivery], people: Mapping[str, Person],
              prefs: Mapping[str, Preferences], teams: Mapping[str, TeamChannels]) -> CapPlan:
    """Split a batch's deliveries by their recipients' daily caps (see the module's docstring)."""
    by_day: dict[tuple[str, date], list[Delivery]] = defaultdict(list)
    for d in deliveries:
        if not d.to_team and d.kind != "digest" and d.recipient in people:
            by_day[(d.recipient, day_of(d.deliver_at, people[d.recipient]))].append(d)
    if not by_day:
        return CapPlan()
    keys = list(by_day)
    windows = [_day_window(day, ZoneInfo(people[person].timezone)) for person, day in keys]
    found = await repo.events_on_day(tenant, [person for person, _ in keys], windows)  # one query for the batch
    seen = {key: found.get((key[0], window[0]), set()) for key, window in zip(keys, windows, strict=True)}
    plan = CapPlan()
    for (person_id, day), new in by_day.items():
        person, choice = people[person_id], prefs.get(person_id, DEFAULT_PREFERENCES)
        before = seen[(person_id, day)]
        fresh = [d for d in new if d.event_id not in before]  # a replayed event goes, as it went before
        room = choice.daily_cap - len(before)
        if not fresh:
            continue
        fold = fresh if room <= 0 else capped(fresh, room).fold
        if not fold:
            continue
        digest_id = f"cap:{person_id}:{day.isoformat()}"
        plan.folds[digest_id] = [d.idempotency_key for d in fold]
        morning = deliver_at(_day_window(day, ZoneInfo(person.timezone))[1], person, choice)
        plan.digests.extend(_digest(tenant, digest_id, CAP_DIGEST, person, choice, teams, morning,
                                    {"person_id": person_id, "day": day.isoformat()}))
    return plan


def manager_digests(tenant: str, now: datetime, open_items: Sequence[OpenCheckIn], people: Mapping[str, Person],
                    prefs: Mapping[str, Preferences], teams: Mapping[str, TeamChannels]) -> list[
        tuple[Delivery, str, dict[str, Any]]]:
    """Today's digest for each manager with reps' check-ins open, on a working day of theirs (none on their
    weekend: Monday's lists what is open then). Pure: the same inputs on the same local day give the same
    deliveries, keys included."""
    by_manager: dict[str, list[OpenCheckIn]] = defaultdict(list)
    for item in open_items:
        manager = item.manager_id or (people[item.rep_id].manager_id if item.rep_id in people else None)
        if manager is not None and manager != item.rep_id and manager in people:
            by_manager[manager].append(item)
    out: list[tuple[Delivery, str, dict[str, Any]]] = []
    for manager_id, items in sorted(by_manager.items()):
        person, choice = people[manager_id], prefs.get(manager_id, DEFAULT_PREFERENCES)
        zone = ZoneInfo(person.timezone)
        today = now.astimezone(zone).date()
        start = deliver_at(now, person, choice)
        if not working_day(today, choice) or start.astimezone(zone).date() != today:
            continue  # their weekend, or today's quiet evening: tomorrow's digest lists what is open then
        data = {"manager_id": manager_id, "day": today.isoformat(), "items": [
            {"rep_name": people[i.rep_id].name if i.rep_id in people else i.rep_id, "summary": i.summary,
             "due_at": (i.due_at or i.opened_at).isoformat()} for i in items]}
        out += _digest(tenant, f"open:{manager_id}:{today.isoformat()}", OPEN_DIGEST, person, choice, teams,
                       start, data)
    return out
