"""Fair pace: a team's working days are weekdays minus the tenant's holidays, a rep's minus their time off too."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.kpi import pace as pace_module
from services.kpi.pace import calendar_of, days_off_in, local_days, pace, share
from shared.events import Holidays
from shared.periods import business_share, period_bounds
from shared.workdays import NO_CALENDAR, HolidayCalendar, days_off, working_share

BERLIN = ZoneInfo("Europe/Berlin")
DE_BE = HolidayCalendar("DE", "BE")
WEEK_20 = period_bounds("2026-W20", BERLIN)  # Monday 11 to Sunday 17 May 2026; Thursday the 14th is Ascension Day
FRIDAY_15 = datetime(2026, 5, 15, tzinfo=BERLIN)  # midnight: Monday to Thursday gone


def test_the_worked_examples_hold() -> None:
    assert doctest.testmod(pace_module).failed == 0


def test_a_day_after_a_public_holiday_a_team_has_passed_fewer_working_days_than_weekdays() -> None:
    assert share(*WEEK_20, FRIDAY_15, BERLIN, DE_BE) == Decimal("0.750000")  # 3 of 4 working days
    assert business_share(*WEEK_20, FRIDAY_15, BERLIN) == Decimal("0.800000")  # 4 of 5 weekdays
    assert share(*WEEK_20, FRIDAY_15, BERLIN, NO_CALENDAR) == Decimal("0.800000")  # no calendar: Monday to Friday


def test_a_reps_share_is_coachings_working_share_with_the_holidays_and_their_time_off() -> None:
    leave = [(date(2026, 5, 12), date(2026, 5, 12))]  # Tuesday off
    off = days_off(DE_BE, date(2026, 5, 11), date(2026, 5, 17), leave)
    assert off == {date(2026, 5, 12), date(2026, 5, 14)}
    assert share(*WEEK_20, FRIDAY_15, BERLIN, DE_BE, leave) == working_share(*WEEK_20, FRIDAY_15, BERLIN, off)
    assert share(*WEEK_20, FRIDAY_15, BERLIN, DE_BE, leave) == Decimal("0.666666")  # 2 of 3


def test_pace_computes_a_reps_own_share_only_where_their_time_off_meets_the_period() -> None:
    bounds = {"2026-W20": WEEK_20, "2026-05": period_bounds("2026-05", BERLIN)}
    fair = pace(bounds, FRIDAY_15, BERLIN, DE_BE, {"ann": [(date(2026, 5, 4), date(2026, 5, 5))],
                                                      "bob": [(date(2026, 5, 11), date(2026, 5, 11))]})
    assert set(fair.shares) == {("2026-W20", None), ("2026-05", None), ("2026-05", "ann"), ("2026-W20", "bob"),
                                ("2026-05", "bob")}
    assert fair.share("2026-W20", "ann") == fair.share("2026-W20") == Decimal("0.750000")  # her leave was before
    assert fair.share("2026-W20", "bob") == Decimal("0.666666")
    assert fair.share("2026-W20", "cy") == fair.share("2026-W20")  # no time off: the team's pace
    assert fair.days_off_of("2026-05", "ann") == fair.days_off_of("2026-05") | {date(2026, 5, 4), date(2026, 5, 5)}
    # May 2026 in Berlin: Labour Day (Friday the 1st), Ascension Day (Thursday the 14th), Whit Monday (the 25th)
    assert fair.days_off_of("2026-05") == {date(2026, 5, 1), date(2026, 5, 14), date(2026, 5, 25)}


def test_time_off_beyond_the_period_counts_only_its_days_inside() -> None:
    leave = [(date(2026, 4, 27), date(2026, 5, 12))]
    assert days_off_in(*WEEK_20, BERLIN, DE_BE, leave) == {date(2026, 5, 11), date(2026, 5, 12), date(2026, 5, 14)}
    assert local_days(*period_bounds("2026-12", BERLIN), BERLIN) == (date(2026, 12, 1), date(2026, 12, 31))


def test_a_stored_calendar_reads_back_and_an_unreadable_one_counts_no_holidays() -> None:
    stored = json.dumps(Holidays(country="DE", subdivision="BE", added=[{"day": "2026-12-24", "name": "Eve"}],
                                 removed=["2026-05-01"]).model_dump(mode="json"))
    calendar = calendar_of(stored)
    assert calendar == HolidayCalendar("DE", "BE", {date(2026, 12, 24): "Eve"}, frozenset({date(2026, 5, 1)}))
    assert calendar_of(None) == NO_CALENDAR
    # a country this process's `holidays` library does not know: logged, and no batch fails over it
    assert calendar_of(json.dumps({"country": "XX"})) == NO_CALENDAR
    assert calendar_of(Holidays(country="DE")) == HolidayCalendar("DE")


def test_before_the_period_nothing_is_expected_and_after_it_everything() -> None:
    before, after = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    assert share(*WEEK_20, before, BERLIN, DE_BE) == Decimal("0.000000")
    assert share(*WEEK_20, after, BERLIN, DE_BE, [(date(2026, 5, 11), date(2026, 5, 15))]) == Decimal("1.000000")
