"""Working days, the working share of a period, due dates: weekends and days off are not working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.periods import business_share, period_bounds, share_between
from shared.workdays import (
    HolidayCalendar,
    days_off,
    due_at,
    is_working_day,
    local_midnight,
    recent_working_days,
    working_days,
    working_share,
)

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")
JERUSALEM = ZoneInfo("Asia/Jerusalem")
NONE: frozenset[date] = frozenset()
NOV_START, NOV_END = period_bounds("2026-11", BERLIN)  # 21 working days: Mon 2 .. Mon 30


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)


def days(first: date, count: int) -> frozenset[date]:
    return frozenset(first + timedelta(days=i) for i in range(count))


# --- working_days ------------------------------------------------------------------------------------


def test_a_full_week_has_five_working_days() -> None:
    assert working_days(date(2026, 11, 16), date(2026, 11, 23), NONE) == 5


@pytest.mark.parametrize(
    ("first", "after"), [(date(2026, 11, 16), date(2026, 11, 16)), (date(2026, 11, 20), date(2026, 11, 16))]
)
def test_an_empty_or_reversed_range_has_no_working_day(first: date, after: date) -> None:
    assert working_days(first, after, NONE) == 0


def test_days_off_on_weekdays_inside_the_range_are_not_working_days() -> None:
    off = frozenset({date(2026, 11, 18), date(2026, 11, 21), date(2026, 11, 30)})  # Wed; Sat; outside
    assert working_days(date(2026, 11, 16), date(2026, 11, 23), off) == 4


def test_november_2026_has_twenty_one_working_days_and_twenty_with_a_holiday() -> None:
    assert working_days(date(2026, 11, 1), date(2026, 12, 1), NONE) == 21
    assert working_days(date(2026, 11, 1), date(2026, 12, 1), frozenset({date(2026, 11, 13)})) == 20


def test_a_saturday_is_never_a_working_day_and_a_day_off_neither() -> None:
    assert not is_working_day(date(2026, 11, 21), NONE)
    assert not is_working_day(date(2026, 11, 20), frozenset({date(2026, 11, 20)}))
    assert is_working_day(date(2026, 11, 20), NONE)


# --- working_share -----------------------------------------------------------------------------------


def test_a_holiday_narrows_the_working_days_of_the_period() -> None:
    off = frozenset({date(2026, 11, 13)})
    assert working_share(NOV_START, NOV_END, local(BERLIN, 2026, 11, 16), BERLIN, off) == Decimal("0.450000")  # 9/20


def test_the_share_is_zero_at_and_before_the_start_and_one_at_and_after_the_end() -> None:
    for now, share in [(NOV_START - timedelta(days=1), "0.000000"), (NOV_START, "0.000000"), (NOV_END, "1.000000"),
                       (NOV_END + timedelta(days=3), "1.000000")]:  # fmt: skip
        assert working_share(NOV_START, NOV_END, now, BERLIN, NONE) == Decimal(share)


def test_the_share_stands_still_over_a_day_off_as_over_a_weekend() -> None:
    off = frozenset({date(2026, 11, 13)})
    thursday_night = working_share(NOV_START, NOV_END, local(BERLIN, 2026, 11, 13), BERLIN, off)
    for now in [local(BERLIN, 2026, 11, 13, 15), local(BERLIN, 2026, 11, 14, 12), local(BERLIN, 2026, 11, 16)]:
        assert working_share(NOV_START, NOV_END, now, BERLIN, off) == thursday_night == Decimal("0.450000")


def test_the_elapsed_part_of_a_working_day_counts() -> None:
    # Monday 16 noon: 10 whole working days and half of the 11th, of 21
    assert working_share(NOV_START, NOV_END, local(BERLIN, 2026, 11, 16, 12), BERLIN, NONE) == Decimal("0.500000")


def test_a_period_whose_every_weekday_is_off_expects_nothing_until_its_end() -> None:
    start, end = period_bounds("2026-W47", BERLIN)
    off = days(date(2026, 11, 16), 5)
    assert working_share(start, end, local(BERLIN, 2026, 11, 20, 23), BERLIN, off) == Decimal("0.000000")
    assert working_share(start, end, end, BERLIN, off) == Decimal("1.000000")


def test_a_period_without_any_weekday_falls_back_to_elapsed_time() -> None:
    start, end = local(BERLIN, 2026, 11, 21), local(BERLIN, 2026, 11, 23)  # Saturday and Sunday
    now = local(BERLIN, 2026, 11, 22)
    assert working_share(start, end, now, BERLIN, NONE) == share_between(start, end, now) == Decimal("0.500000")


def test_the_working_days_are_the_local_dates_of_the_zone_given() -> None:
    # Saturday 00:30 in Berlin is still Friday 15:30 in Los Angeles: week 47 of each zone
    now = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert working_share(*period_bounds("2026-W47", BERLIN), now, BERLIN, NONE) == Decimal("1.000000")
    assert working_share(*period_bounds("2026-W47", LA), now, LA, NONE) == Decimal("0.929166")  # (4 + 15.5/24) / 5


def test_local_midnights_follow_the_dst_change() -> None:
    start, end = period_bounds("2026-10", BERLIN)  # 22 working days; clocks go back on Sunday the 25th
    sunday_late = datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC)  # 23:59:59 CET
    monday_noon = datetime(2026, 10, 26, 11, tzinfo=UTC)  # 12:00 CET
    assert local_midnight(date(2026, 10, 26), BERLIN) == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert working_share(start, end, sunday_late, BERLIN, NONE) == Decimal("0.772727")  # 17/22
    assert working_share(start, end, monday_noon, BERLIN, NONE) == Decimal("0.795454")  # 17.5/22


def test_a_working_day_of_23_hours_counts_its_real_length() -> None:
    # Israel springs forward on Friday 2026-03-27 at 02:00: at noon 11 of the day's 23 hours have passed
    start, end = period_bounds("2026-W13", JERUSALEM)
    noon = local(JERUSALEM, 2026, 3, 27, 12)
    assert working_share(start, end, noon, JERUSALEM, NONE) == Decimal("0.895652")  # (4 + 11/23) / 5


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        working_share(NOV_START, NOV_END, datetime(2026, 11, 16), BERLIN, NONE)


ZONES = st.sampled_from([BERLIN, LA, JERUSALEM, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")])


@st.composite
def periods(draw: st.DrawFn) -> tuple[datetime, datetime, ZoneInfo, frozenset[date]]:
    tz = draw(ZONES)
    first = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
    length = draw(st.integers(min_value=1, max_value=120))
    off = frozenset(first + timedelta(days=i) for i in draw(st.sets(st.integers(0, length - 1), max_size=20)))
    return local_midnight(first, tz), local_midnight(first + timedelta(days=length), tz), tz, off


@given(periods(), st.floats(-0.2, 1.2), st.floats(-0.2, 1.2))
def test_the_working_share_is_monotonic_in_now_and_within_zero_and_one(
    period: tuple[datetime, datetime, ZoneInfo, frozenset[date]], a: float, b: float
) -> None:
    start, end, tz, off = period
    early, late = sorted(start + (end - start) * x for x in (a, b))
    first, second = (working_share(start, end, now, tz, off) for now in (early, late))
    assert Decimal(0) <= first <= second <= Decimal(1)
    assert first.as_tuple().exponent == -6


@given(periods(), st.floats(-0.2, 1.2))
def test_without_days_off_the_working_share_is_the_business_share(
    period: tuple[datetime, datetime, ZoneInfo, frozenset[date]], x: float
) -> None:
    start, end, tz, _ = period
    now = start + (end - start) * x
    assert working_share(start, end, now, tz, NONE) == business_share(start, end, now, tz)


# --- due_at ------------------------------------------------------------------------------------------


def test_due_two_working_days_on_at_the_due_hour_skipping_the_weekend() -> None:
    friday = local(BERLIN, 2026, 11, 13, 10)
    assert due_at(friday, BERLIN, NONE, 2, 17) == datetime(2026, 11, 17, 16, tzinfo=UTC)  # Tuesday 17:00 CET


def test_due_date_skips_a_day_off() -> None:
    friday = local(BERLIN, 2026, 11, 13, 10)
    assert due_at(friday, BERLIN, frozenset({date(2026, 11, 16)}), 2, 17) == local(BERLIN, 2026, 11, 18, 17)


def test_due_today_with_zero_days_when_the_hour_is_still_ahead() -> None:
    assert due_at(local(BERLIN, 2026, 11, 16, 9), BERLIN, NONE, 0, 17) == local(BERLIN, 2026, 11, 16, 17)


@pytest.mark.parametrize("hour", [17, 18])
def test_due_the_next_working_day_when_the_hour_is_not_after_now(hour: int) -> None:
    friday = local(BERLIN, 2026, 11, 13, hour)
    assert due_at(friday, BERLIN, NONE, 0, 17) == local(BERLIN, 2026, 11, 16, 17)


@pytest.mark.parametrize("ahead", [0, 1])
def test_a_task_raised_on_saturday_is_due_on_monday(ahead: int) -> None:
    saturday = local(BERLIN, 2026, 11, 14, 10)
    assert due_at(saturday, BERLIN, NONE, ahead, 17) == local(BERLIN, 2026, 11, 16, 17)


def test_the_due_date_is_in_the_zone_given() -> None:
    # 03:00 UTC on Saturday is Friday 19:00 in Los Angeles
    now = datetime(2026, 11, 14, 3, tzinfo=UTC)
    assert due_at(now, LA, NONE, 2, 17) == local(LA, 2026, 11, 17, 17)  # Tuesday 17:00 PST
    assert due_at(now, BERLIN, NONE, 2, 17) == local(BERLIN, 2026, 11, 17, 17)
    assert due_at(now, LA, NONE, 2, 17) - due_at(now, BERLIN, NONE, 2, 17) == timedelta(hours=9)


def test_the_due_hour_is_local_across_the_dst_change() -> None:
    friday = local(BERLIN, 2026, 10, 22, 10)  # Thursday; due Monday 26 after the clocks went back
    assert due_at(friday, BERLIN, NONE, 2, 17) == datetime(2026, 10, 26, 16, tzinfo=UTC)
    assert due_at(friday, BERLIN, NONE, 1, 17) == datetime(2026, 10, 23, 15, tzinfo=UTC)


@pytest.mark.parametrize(("ahead", "hour"), [(-1, 17), (1, 24), (1, -1)])
def test_due_at_refuses_nonsense(ahead: int, hour: int) -> None:
    with pytest.raises(ValueError):
        due_at(local(BERLIN, 2026, 11, 16), BERLIN, NONE, ahead, hour)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    ZONES,
    st.sets(st.integers(0, 30), max_size=12),
    st.integers(0, 5),
    st.integers(5, 21),
)
def test_due_at_is_a_working_day_at_the_hour_after_now(
    now: datetime, tz: ZoneInfo, offsets: set[int], ahead: int, hour: int
) -> None:
    today = now.astimezone(tz).date()
    off = frozenset(today + timedelta(days=i) for i in offsets)
    due = due_at(now, tz, off, ahead, hour)
    local_due = due.astimezone(tz)
    assert due.tzinfo is UTC
    assert due > now
    assert is_working_day(local_due.date(), off)
    assert (local_due.hour, local_due.minute, local_due.second) == (hour, 0, 0)
    if ahead > 0:  # exactly `ahead` working days after today, counting the due day
        assert working_days(today + timedelta(days=1), local_due.date() + timedelta(days=1), off) == ahead
    elif is_working_day(today, off) and now.astimezone(tz).hour < hour:
        assert local_due.date() == today
    else:
        assert working_days(today + timedelta(days=1), local_due.date() + timedelta(days=1), off) == 1


# --- recent_working_days -----------------------------------------------------------------------------


def test_on_monday_the_recent_working_days_are_last_weeks() -> None:
    assert recent_working_days(date(2026, 11, 16), 3, NONE) == [
        date(2026, 11, 13),
        date(2026, 11, 12),
        date(2026, 11, 11),
    ]


def test_recent_working_days_skip_days_off_and_never_include_today() -> None:
    off = frozenset({date(2026, 11, 13)})
    assert recent_working_days(date(2026, 11, 16), 3, off) == [
        date(2026, 11, 12),
        date(2026, 11, 11),
        date(2026, 11, 10),
    ]
    assert recent_working_days(date(2026, 11, 17), 1, NONE) == [date(2026, 11, 16)]


def test_on_a_sunday_the_recent_working_days_end_on_friday() -> None:
    assert recent_working_days(date(2026, 11, 15), 2, NONE) == [date(2026, 11, 13), date(2026, 11, 12)]


def test_no_recent_working_days_are_asked_for_none() -> None:
    assert recent_working_days(date(2026, 11, 16), 0, NONE) == []


# --- the holiday calendar (issue 18, item 3) -------------------------------------------------------------


def test_a_countrys_public_holidays_come_from_the_holidays_library_per_subdivision() -> None:
    berlin = HolidayCalendar("DE", "BE").between(date(2026, 3, 1), date(2026, 3, 31))
    bavaria = HolidayCalendar("DE", "BY").between(date(2026, 1, 1), date(2026, 1, 31))
    assert berlin == {date(2026, 3, 8): "Women's Day"}  # a Berlin holiday only
    assert date(2026, 1, 6) in bavaria and date(2026, 1, 6) not in HolidayCalendar("DE", "BE").between(
        date(2026, 1, 1), date(2026, 1, 31))  # Epiphany: Bavaria, not Berlin


def test_added_days_count_and_removed_ones_do_not_and_the_json_round_trips() -> None:
    calendar = HolidayCalendar("DE", added={date(2026, 12, 24): "Christmas Eve"},
                               removed=frozenset({date(2026, 12, 26)}))
    assert calendar.between(date(2026, 12, 20), date(2026, 12, 31)) == {date(2026, 12, 24): "Christmas Eve",
                                                                        date(2026, 12, 25): "Christmas Day"}
    assert HolidayCalendar.of(calendar.to_json()) == calendar
    assert HolidayCalendar.of(None).between(date(2026, 1, 1), date(2026, 12, 31)) == {}


@pytest.mark.parametrize(("country", "subdivision", "message"), [
    ("XX", None, "unknown country 'XX'"), ("DE", "ZZ", "unknown subdivision 'ZZ' of DE"),
    (None, "BE", "subdivision 'BE' needs a country")])
def test_an_unknown_country_or_subdivision_is_refused_by_name(country: str | None, subdivision: str | None,
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HolidayCalendar(country, subdivision)


def test_days_off_are_the_holidays_and_every_day_of_the_time_off_in_range() -> None:
    off = days_off(HolidayCalendar("DE"), date(2026, 4, 1), date(2026, 4, 10), [(date(2026, 4, 9), date(2026, 4, 20))])
    assert sorted(off) == [date(2026, 4, 3), date(2026, 4, 6), date(2026, 4, 9), date(2026, 4, 10)]


def test_a_stored_calendar_this_process_cannot_read_counts_no_holidays_rather_than_failing() -> None:
    # e.g. a country an older `holidays` library in one service does not know: every service reads it alike
    assert HolidayCalendar.of({"country": "XX", "added": [{"day": "2026-12-24", "name": "Eve"}]}) == HolidayCalendar()
    assert HolidayCalendar.of('{"added": [{"day": "not a day"}]}') == HolidayCalendar()
