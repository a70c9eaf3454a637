"""When a message may reach its recipient, and which ones a daily cap folds into a digest. Pure.

Quiet hours and weekends are the recipient's, in their own zone: a message that arrives inside them is held
until the next allowed moment (a Berlin rep's 23:00 check-in is delivered at 08:00 the next working
morning; Friday 22:00 waits until Monday 08:00 when weekends are quiet). Local wall times are turned into
moments as RFC 5545 does: a time that a spring-forward gap skips counts with the offset before the gap
(02:30 on the last Sunday of March in Berlin is 03:30 CEST), an ambiguous one is its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.notify.model import DEFAULT_PREFERENCES, Delivery, Intent, Person, Preferences

__all__ = ["Capped", "capped", "day_of", "deliver_at", "scheduled", "working_day"]

SATURDAY = 5
# With weekends quiet and quiet hours on, the longest hold is from Friday's evening to Monday's morning.
_HORIZON_DAYS = 8


def _at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The moment of a local wall time on ``day`` (fold 0: RFC 5545 for gaps, the first of two for overlaps),
    normalised so that it reads as a wall time that exists."""
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC).astimezone(zone)


def working_day(day: date, prefs: Preferences) -> bool:
    """Whether the person hears anything on local ``day`` (not their weekend, when weekends are quiet)."""
    return not (prefs.weekends_quiet and day.weekday() >= SATURDAY)


def _windows(day: date, prefs: Preferences, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The half-open stretches of local ``day`` in which a message may be delivered."""
    if not working_day(day, prefs):
        return []
    start, end = prefs.quiet_start, prefs.quiet_end
    midnight, next_midnight = _at(day, time(0), zone), _at(day + timedelta(days=1), time(0), zone)
    if start == end:
        spans = [(midnight, next_midnight)]
    elif start > end:  # quiet across midnight (20:00-08:00): the day between the morning's end and the evening's start
        spans = [(_at(day, end, zone), _at(day, start, zone))]
    else:  # quiet inside the day (12:00-13:00): before it and after it
        spans = [(midnight, _at(day, start, zone)), (_at(day, end, zone), next_midnight)]
    return [(a, b) for a, b in spans if a < b]


def deliver_at(now: datetime, person: Person, prefs: Preferences) -> datetime:
    """``now`` when the person's quiet hours and weekend allow it, else the next moment they do, in UTC (a
    moment in a zone's repeated hour never equals one in another zone, PEP 495: UTC keeps ``==`` honest).

    >>> from datetime import UTC, datetime
    >>> ana = Person("ana", "Ana", "ana@example.com", "Europe/Berlin")
    >>> deliver_at(datetime(2026, 11, 18, 22, 0, tzinfo=UTC), ana, Preferences())  # Wednesday 23:00 in Berlin
    datetime.datetime(2026, 11, 19, 7, 0, tzinfo=datetime.timezone.utc)
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(person.timezone)
    today = now.astimezone(zone).date()
    for offset in range(_HORIZON_DAYS):
        for start, end in _windows(today + timedelta(days=offset), prefs, zone):
            if now < end:
                return now if now >= start else start.astimezone(UTC)
    raise AssertionError("unreachable: every week has an allowed moment")  # pragma: no cover


def scheduled(intents: Iterable[Intent], now: datetime, people: Mapping[str, Person],
              prefs: Mapping[str, Preferences]) -> list[Delivery]:
    """Each intent with its moment: a person's after their quiet hours and weekend (`deliver_at`), a team
    channel's at once (a channel is read when its members choose, it does not ring). Every person an intent
    names must be in ``people`` (those `routing.route` returns are)."""
    out: list[Delivery] = []
    for intent in intents:
        if intent.to_team:
            out.append(intent.at(now))
        else:
            choice = prefs.get(intent.recipient, DEFAULT_PREFERENCES)
            out.append(intent.at(deliver_at(now, people[intent.recipient], choice)))
    return out


def day_of(moment: datetime, person: Person) -> date:
    """The person's local date of ``moment``: the day whose cap a delivery counts against."""
    return moment.astimezone(ZoneInfo(person.timezone)).date()


@dataclass(frozen=True, slots=True)
class Capped:
    """A person's deliveries of one day, split by their cap: ``go`` are sent, ``fold`` go into one digest."""

    go: list[Delivery]
    fold: list[Delivery]


def capped(deliveries_today: Sequence[Delivery], cap: int) -> Capped:
    """Split one person's deliveries of one local day (those already sent included) by their daily cap.

    The cap counts events, not channels: the first ``cap`` events (by ``deliver_at``, ties in the order
    given) go out on every channel the person chose, so no message is half sent; the later ones fold into
    the digest. Digests themselves neither count nor fold, and neither does a team channel's message.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 18, 9, tzinfo=UTC)
    >>> ds = [Delivery(f"e{i}", "ana", "email", "check_in", at, f"k{i}") for i in range(3)]
    >>> [d.event_id for d in capped(ds, 2).fold]
    ['e2']
    """
    if cap < 1:
        raise ValueError("cap must be at least 1")
    going: set[str] = set()
    go: list[Delivery] = []
    fold: list[Delivery] = []
    for delivery in sorted(deliveries_today, key=lambda d: d.deliver_at):
        if delivery.kind == "digest" or delivery.to_team:
            go.append(delivery)
        elif delivery.event_id in going or len(going) < cap:
            going.add(delivery.event_id)
            go.append(delivery)
        else:
            fold.append(delivery)
    return Capped(go, fold)
