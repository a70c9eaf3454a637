"""What notify's pure core sees and decides: people, their preferences, team channels, deliveries. No I/O.

`routing.route` turns one event into `Intent`s (who hears it, on which channel, under which idempotency
key); `schedule.scheduled` gives each a `deliver_at` in the recipient's own time zone (a `Delivery`);
`schedule.capped` folds what passes a person's daily cap into their digest. The repository fills these
from notify's tables (the roster, the people of the tenant, the control room's team channels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Final, Literal, get_args

from shared.periods import validate_timezone

__all__ = [
    "CHANNELS",
    "DEFAULT_PREFERENCES",
    "KINDS",
    "TEAM_PREFIX",
    "Channel",
    "Delivery",
    "Intent",
    "Kind",
    "Person",
    "Preferences",
    "TeamChannels",
    "team_recipient",
]

Channel = Literal["email", "slack", "teams", "webhook"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)

# What a message is about: each person chooses channels per kind (`Preferences.channels`).
Kind = Literal["check_in", "escalation", "celebration", "review", "digest", "plan"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

TEAM_PREFIX: Final = "team:"  # a recipient that is a team's channel, not a person: "team:<team_id>"


def team_recipient(team_id: str) -> str:
    """The recipient id of a team's channel: ``team_recipient("emea") == "team:emea"``."""
    return f"{TEAM_PREFIX}{team_id}"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone notify may address: a rep (or manager) of the tenant's roster, by the roster's rep id.

    ``email`` is None when the roster has no address: an e-mail (or a Slack DM, found by e-mail) to them is
    then kept as undeliverable with that reason, not dropped here. ``locale`` None: the tenant's."""

    person_id: str
    name: str
    email: str | None
    timezone: str  # IANA, e.g. Europe/Berlin: quiet hours and weekends are this person's
    manager_id: str | None = None
    team_id: str | None = None
    locale: str | None = None

    def __post_init__(self) -> None:
        validate_timezone(self.timezone)


@dataclass(frozen=True, slots=True)
class Preferences:
    """One person's choices. A kind absent from ``channels`` gets the default (`routing.channels_for`):
    e-mail, plus Slack for celebrations when the person's team has a Slack channel; a kind present with no
    channels is switched off for them.

    Quiet hours run from ``quiet_start`` to ``quiet_end`` in the person's own zone (local wall times; start
    after end wraps midnight, as the default 20:00-08:00 does; start equal to end means none).
    ``public_celebrations`` False keeps the person's wins out of the team channel (they still hear them)."""

    channels: Mapping[Kind, tuple[Channel, ...]] = field(default_factory=dict)
    public_celebrations: bool = True
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
    weekends_quiet: bool = True
    daily_cap: int = 20

    def __post_init__(self) -> None:
        for kind, chosen in self.channels.items():
            if kind not in KINDS:
                raise ValueError(f"unknown kind of message {kind!r}: expected one of {', '.join(KINDS)}")
            unknown = [c for c in chosen if c not in CHANNELS]
            if unknown:
                raise ValueError(f"unknown channel {unknown[0]!r}: expected one of {', '.join(CHANNELS)}")
        if self.quiet_start.tzinfo is not None or self.quiet_end.tzinfo is not None:
            raise ValueError("quiet hours are local wall times: no tzinfo")
        if self.daily_cap < 1:
            raise ValueError("daily_cap must be at least 1")


DEFAULT_PREFERENCES: Final = Preferences()


@dataclass(frozen=True, slots=True)
class TeamChannels:
    """Where a team's public messages go, as set in the control room: a Slack incoming webhook or a channel
    (for ``chat.postMessage``), and a Microsoft Teams Workflows webhook. None: not set."""

    team_id: str
    slack_webhook: str | None = None
    slack_channel: str | None = None
    teams_webhook: str | None = None

    @property
    def has_slack(self) -> bool:
        return bool(self.slack_webhook or self.slack_channel)

    @property
    def has_teams(self) -> bool:
        return bool(self.teams_webhook)


@dataclass(frozen=True, slots=True)
class Intent:
    """One message to send: an event to one recipient on one channel. ``idempotency_key`` is stable (the
    same tenant, event, recipient and channel always give the same key): the receiver sees it, and a unique
    constraint on it keeps a replayed event from being sent twice."""

    event_id: str
    recipient: str  # a person id, or "team:<team_id>" for a team's channel
    channel: Channel
    kind: Kind
    idempotency_key: str

    @property
    def to_team(self) -> bool:
        return self.recipient.startswith(TEAM_PREFIX)

    def at(self, deliver_at: datetime) -> Delivery:
        """This intent, scheduled for ``deliver_at`` (aware)."""
        return Delivery(self.event_id, self.recipient, self.channel, self.kind, deliver_at, self.idempotency_key)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An `Intent` with the moment it may go out: now, or after the recipient's quiet hours or weekend."""

    event_id: str
    recipient: str
    channel: Channel
    kind: Kind
    deliver_at: datetime  # aware
    idempotency_key: str

    def __post_init__(self) -> None:
        if self.deliver_at.utcoffset() is None:
            raise ValueError("deliver_at must be timezone-aware")

    @property
    def to_team(self) -> bool:
        return self.recipient.startswith(TEAM_PREFIX)
