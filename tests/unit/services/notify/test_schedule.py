"""Quiet hours and weekends in the recipient's own zone (across both of Berlin's DST changes), team channels
at once, and the daily cap that folds the rest into a digest."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify import schedule
from services.notify.model import Delivery, Intent, Kind, Person, Preferences
from services.notify.schedule import capped, day_of, deliver_at, scheduled

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANA = Person("ana", "Ana", "ana@example.com", "Europe/Berlin", "mia", "emea")
BOB = Person("bob", "Bob", "bob@example.com", "America/New_York", "mia", "emea")
LEE = Person("lee", "Lee", "lee@example.com", "Asia/Singapore", None, "apac")
DEFAULTS = Preferences()
EVERY_DAY = Preferences(weekends_quiet=False)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


# --- quiet hours -------------------------------------------------------------------------------------------


def test_a_berlin_rep_at_23_00_gets_it_at_08_00() -> None:
    held = deliver_at(berlin(2026, 11, 18, 23, 0), ANA, DEFAULTS)  # a Wednesday
    assert held == berlin(2026, 11, 19, 8, 0)
    assert held.astimezone(BERLIN).isoformat() == "2026-11-19T08:00:00+01:00"


def test_a_message_in_allowed_hours_goes_at_once() -> None:
    now = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
    assert deliver_at(now, ANA, DEFAULTS) is now


def test_a_message_before_the_morning_waits_until_the_quiet_hours_end_that_day() -> None:
    assert deliver_at(berlin(2026, 11, 18, 3, 0), ANA, DEFAULTS) == berlin(2026, 11, 18, 8, 0)


@pytest.mark.parametrize(("local", "expected"), [
    ((7, 59, 59), (2026, 11, 18, 8, 0)),
    ((8, 0, 0), (2026, 11, 18, 8, 0)),
    ((19, 59, 59), (2026, 11, 18, 19, 59, 59)),
    ((20, 0, 0), (2026, 11, 19, 8, 0)),
])
def test_quiet_hours_start_at_their_start_and_end_at_their_end(local: tuple[int, int, int],
                                                                 expected: tuple[int, ...]) -> None:
    assert deliver_at(berlin(2026, 11, 18, *local), ANA, DEFAULTS) == berlin(*expected)


def test_quiet_hours_are_the_recipients_own() -> None:
    now = datetime(2026, 11, 18, 22, 0, tzinfo=UTC)  # 23:00 in Berlin, 17:00 in New York, 06:00 Thursday in Singapore
    assert deliver_at(now, ANA, DEFAULTS) == berlin(2026, 11, 19, 8, 0)
    assert deliver_at(now, BOB, DEFAULTS) == now
    assert deliver_at(now, LEE, DEFAULTS) == datetime(2026, 11, 19, 8, 0, tzinfo=ZoneInfo("Asia/Singapore"))


def test_a_held_message_is_given_in_utc() -> None:
    held = deliver_at(datetime(2026, 11, 18, 3, 0, tzinfo=UTC), BOB, DEFAULTS)  # 22:00 in New York
    assert held.tzinfo is UTC
    assert held.astimezone(NEW_YORK).isoformat() == "2026-11-18T08:00:00-05:00"


def test_quiet_hours_inside_the_day_hold_until_they_end() -> None:
    lunch = Preferences(quiet_start=time(12, 0), quiet_end=time(13, 0))
    assert deliver_at(berlin(2026, 11, 18, 12, 30), ANA, lunch) == berlin(2026, 11, 18, 13, 0)
    now = berlin(2026, 11, 18, 23, 0)
    assert deliver_at(now, ANA, lunch) == now


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    none = Preferences(quiet_start=time(9, 0), quiet_end=time(9, 0))
    now = berlin(2026, 11, 18, 3, 0)
    assert deliver_at(now, ANA, none) == now
    assert deliver_at(berlin(2026, 11, 21, 15, 0), ANA, none) == berlin(2026, 11, 23, 0, 0)  # Saturday: Monday


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        deliver_at(datetime(2026, 11, 18, 23, 0), ANA, DEFAULTS)


# --- weekends ----------------------------------------------------------------------------------------------


def test_friday_22_00_waits_until_monday_08_00_when_weekends_are_quiet() -> None:
    assert deliver_at(berlin(2026, 11, 20, 22, 0), ANA, DEFAULTS) == berlin(2026, 11, 23, 8, 0)


@pytest.mark.parametrize("local", [(2026, 11, 21, 12, 0), (2026, 11, 22, 23, 30), (2026, 11, 23, 0, 30)])
def test_a_message_on_the_weekend_or_before_monday_morning_waits_until_monday_08_00(local: tuple[int, ...]) -> None:
    assert deliver_at(berlin(*local), ANA, DEFAULTS) == berlin(2026, 11, 23, 8, 0)


def test_friday_22_00_goes_on_saturday_morning_when_weekends_are_not_quiet() -> None:
    assert deliver_at(berlin(2026, 11, 20, 22, 0), ANA, EVERY_DAY) == berlin(2026, 11, 21, 8, 0)
    now = berlin(2026, 11, 21, 12, 0)
    assert deliver_at(now, ANA, EVERY_DAY) == now


def test_the_weekend_is_the_recipients_own() -> None:
    now = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # Saturday 00:30 in Berlin, Friday 18:30 in New York
    assert deliver_at(now, ANA, DEFAULTS) == berlin(2026, 11, 23, 8, 0)
    assert deliver_at(now, BOB, DEFAULTS) == now


# --- DST: the last Sundays of March and October in Berlin --------------------------------------------------


def test_spring_forward_night_ends_at_08_00_summer_time() -> None:
    held = deliver_at(berlin(2026, 3, 28, 23, 0), ANA, EVERY_DAY)  # Saturday, CET
    assert held == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST: eight hours later, not nine
    assert held.astimezone(BERLIN).isoformat() == "2026-03-29T08:00:00+02:00"


def test_fall_back_night_ends_at_08_00_winter_time() -> None:
    held = deliver_at(berlin(2026, 10, 24, 23, 0), ANA, EVERY_DAY)  # Saturday, CEST
    assert held == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)  # 08:00 CET: ten hours later
    assert held.astimezone(BERLIN).isoformat() == "2026-10-25T08:00:00+01:00"


def test_a_weekend_across_a_dst_change_waits_until_monday_08_00_local() -> None:
    assert deliver_at(berlin(2026, 3, 27, 22, 0), ANA, DEFAULTS) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert deliver_at(berlin(2026, 10, 23, 22, 0), ANA, DEFAULTS) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_a_quiet_end_that_the_spring_gap_skips_counts_with_the_offset_before_the_gap() -> None:
    early = Preferences(quiet_start=time(22, 0), quiet_end=time(2, 30), weekends_quiet=False)
    held = deliver_at(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), ANA, early)  # 01:30 CET
    # RFC 5545: 02:30 does not exist that night; it is read as 02:30+01:00
    assert held.astimezone(BERLIN).isoformat() == "2026-03-29T03:30:00+02:00"


@pytest.mark.parametrize("utc_hour", [0, 1])  # 02:30 CEST, then 02:30 CET: the repeated hour
def test_a_message_in_the_repeated_hour_of_october_waits_until_08_00_winter_time(utc_hour: int) -> None:
    held = deliver_at(datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC), ANA, EVERY_DAY)
    assert held == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_a_quiet_end_in_the_repeated_hour_is_its_first_occurrence() -> None:
    early = Preferences(quiet_start=time(22, 0), quiet_end=time(2, 30), weekends_quiet=False)
    held = deliver_at(datetime(2026, 10, 25, 0, 0, tzinfo=UTC), ANA, early)  # 02:00 CEST
    assert held == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not the 02:30 CET an hour later


ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Singapore", "Australia/Lord_Howe",
                         "America/Santiago", "Pacific/Chatham"])
PREFS = st.builds(Preferences, quiet_start=st.sampled_from([time(20), time(22, 30), time(0), time(12), time(2, 30)]),
                  quiet_end=st.sampled_from([time(8), time(6, 45), time(0), time(13), time(2, 30)]),
                  weekends_quiet=st.booleans())


def _allowed(moment: datetime, prefs: Preferences) -> bool:
    """The rule, read straight off the preferences: the local wall time is outside quiet hours and weekends."""
    wall = moment.time()
    if prefs.weekends_quiet and moment.weekday() >= 5:
        return False
    start, end = prefs.quiet_start, prefs.quiet_end
    if start == end:
        return True
    if start > end:
        return end <= wall < start
    return not start <= wall < end


def _near_a_dst_change(local: datetime) -> bool:
    """Within three hours of an offset change, wall times are skipped or repeated: the plain oracle does not hold."""
    return any(local.utcoffset() != (local + timedelta(hours=h)).astimezone(local.tzinfo).utcoffset()
               for h in (-3, 3))


@settings(max_examples=300, deadline=None)
@given(now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC)), zone=ZONES, prefs=PREFS)
def test_a_message_goes_at_the_first_allowed_moment_in_the_recipients_zone(now: datetime, zone: str,
                                                                            prefs: Preferences) -> None:
    person, tz = Person("p", "P", None, zone), ZoneInfo(zone)
    at = deliver_at(now, person, prefs)
    assert now <= at < now + timedelta(days=4)
    assert deliver_at(at, person, prefs) == at  # what it gives is itself allowed: holding again changes nothing
    local = at.astimezone(tz)
    if _near_a_dst_change(local):
        return
    assert _allowed(local, prefs)
    if at != now:  # held: quiet from now until then, and it goes when the quiet ends
        assert local.time() in (prefs.quiet_end, time(0))
        step = now
        while step < at:
            assert not _allowed(step.astimezone(tz), prefs) or _near_a_dst_change(step.astimezone(tz))
            step += timedelta(minutes=15)


# --- scheduling intents ------------------------------------------------------------------------------------


def test_a_team_channel_hears_at_once_and_a_person_after_their_quiet_hours() -> None:
    now = berlin(2026, 11, 18, 23, 0)
    intents = [Intent("e1", "team:emea", "slack", "celebration", "k1"),
               Intent("e1", "ana", "email", "celebration", "k2")]
    team, ana = scheduled(intents, now, {"ana": ANA}, {})
    assert (team.recipient, team.deliver_at) == ("team:emea", now)
    assert (ana.recipient, ana.deliver_at, ana.idempotency_key) == ("ana", berlin(2026, 11, 19, 8, 0), "k2")


def test_scheduling_follows_each_persons_own_preferences() -> None:
    now = berlin(2026, 11, 18, 21, 0)
    late = {"ana": Preferences(quiet_start=time(22, 0), quiet_end=time(7, 0))}
    [ana] = scheduled([Intent("e1", "ana", "email", "check_in", "k1")], now, {"ana": ANA}, late)
    assert ana.deliver_at == now


def test_the_day_a_delivery_counts_against_is_the_recipients_local_day() -> None:
    moment = datetime(2026, 11, 18, 23, 30, tzinfo=UTC)
    assert day_of(moment, ANA).isoformat() == "2026-11-19"
    assert day_of(moment, BOB).isoformat() == "2026-11-18"


# --- the daily cap -----------------------------------------------------------------------------------------

NINE = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)


def delivery(event: str, minute: int = 0, channel: str = "email", kind: Kind = "check_in",
             recipient: str = "ana") -> Delivery:
    return Delivery(event, recipient, channel, kind, NINE + timedelta(minutes=minute),  # type: ignore[arg-type]
                    f"{event}/{recipient}/{channel}")


def test_deliveries_up_to_the_cap_all_go_out() -> None:
    ds = [delivery(f"e{i}", i) for i in range(3)]
    assert capped(ds, 3).go == ds
    assert capped(ds, 3).fold == []


def test_deliveries_past_the_cap_fold_into_the_digest() -> None:
    ds = [delivery(f"e{i}", i) for i in range(5)]
    result = capped(ds, 3)
    assert [d.event_id for d in result.go] == ["e0", "e1", "e2"]
    assert [d.event_id for d in result.fold] == ["e3", "e4"]


def test_the_cap_counts_events_so_no_message_is_half_sent() -> None:
    ds = [delivery(f"e{i}", i, channel) for i in range(3) for channel in ("email", "slack")]
    result = capped(ds, 2)
    assert [(d.event_id, d.channel) for d in result.go] == [("e0", "email"), ("e0", "slack"), ("e1", "email"),
                                                            ("e1", "slack")]
    assert [(d.event_id, d.channel) for d in result.fold] == [("e2", "email"), ("e2", "slack")]


def test_the_earliest_deliveries_go_out_whatever_order_they_come_in() -> None:
    late, early = delivery("late", 30), delivery("early", 5)
    result = capped([late, early], 1)
    assert (result.go, result.fold) == ([early], [late])


def test_digests_and_team_channels_neither_count_nor_fold() -> None:
    ds = [delivery("e0", 0), delivery("digest", 1, kind="digest"), delivery("e1", 2, recipient="team:emea"),
          delivery("e2", 3)]
    result = capped(ds, 1)
    assert [d.event_id for d in result.go] == ["e0", "digest", "e1"]
    assert [d.event_id for d in result.fold] == ["e2"]


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="cap"):
        capped([], 0)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(schedule).failed == 0
