"""The notify model refuses what cannot be routed or scheduled: unknown zones, kinds and channels, naive times."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest

from services.notify.model import CHANNELS, KINDS, Delivery, Intent, Person, Preferences, TeamChannels, team_recipient


def test_the_defaults_are_quiet_from_20_00_to_08_00_and_on_weekends_with_a_cap_of_20() -> None:
    prefs = Preferences()
    assert (prefs.quiet_start, prefs.quiet_end, prefs.weekends_quiet, prefs.daily_cap) == (time(20), time(8), True, 20)
    assert prefs.public_celebrations is True
    assert dict(prefs.channels) == {}


def test_the_kinds_and_channels_are_the_issues() -> None:
    assert KINDS == ("check_in", "escalation", "celebration", "review", "digest", "plan")
    assert CHANNELS == ("email", "slack", "teams", "webhook")


def test_a_person_with_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Person("ana", "Ana", "ana@example.com", "Europe/Atlantis")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"channels": {"check_in": ("pigeon",)}}, "unknown channel 'pigeon'"),
    ({"channels": {"gossip": ("email",)}}, "unknown kind of message 'gossip'"),
    ({"quiet_start": time(20, tzinfo=UTC)}, "local wall times"),
    ({"daily_cap": 0}, "daily_cap"),
])
def test_preferences_that_cannot_be_honoured_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Preferences(**kwargs)


def test_a_delivery_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="aware"):
        Delivery("e1", "ana", "email", "check_in", datetime(2026, 11, 18, 9), "k")


def test_a_team_recipient_is_told_apart_from_a_person() -> None:
    assert team_recipient("emea") == "team:emea"
    at = datetime(2026, 11, 18, 9, tzinfo=UTC)
    team, person = Intent("e1", "team:emea", "slack", "celebration", "k1"), Intent("e1", "ana", "email", "review", "k2")
    assert (team.to_team, person.to_team) == (True, False)
    assert (team.at(at).to_team, person.at(at).to_team) == (True, False)
    assert person.at(at) == Delivery("e1", "ana", "email", "review", at, "k2")


def test_a_team_has_slack_through_a_webhook_or_a_channel_and_teams_through_its_webhook() -> None:
    assert TeamChannels("a", slack_webhook="https://hooks.slack.test/a").has_slack
    assert TeamChannels("a", slack_channel="#wins").has_slack
    assert not TeamChannels("a", teams_webhook="https://teams.test/a").has_slack
    assert TeamChannels("a", teams_webhook="https://teams.test/a").has_teams
    assert not TeamChannels("a").has_teams
