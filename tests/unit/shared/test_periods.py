"""The period calendar: parsing, DST-correct local bounds, fiscal years, elapsed share."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shared.periods import (
    Period,
    PeriodError,
    PeriodKind,
    business_share,
    elapsed_share,
    parse_period,
    period_bounds,
    period_of,
    periods_containing,
    validate_timezone,
)

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
MICROSECOND = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def labels(periods: list[Period]) -> list[str]:
    return [p.label for p in periods]


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("2026-11", PeriodKind.MONTH),
        ("2026-01", PeriodKind.MONTH),
        ("2026-Q4", PeriodKind.QUARTER),
        ("2026-W48", PeriodKind.WEEK),
        ("2026-W01", PeriodKind.WEEK),
        ("2026", PeriodKind.YEAR),
        ("1970", PeriodKind.YEAR),
        ("9999-12", PeriodKind.MONTH),
    ],
)
def test_parse_period_accepts_each_contract_form(text: str, kind: PeriodKind) -> None:
    period = parse_period(text)
    assert period == Period(kind, text)
    assert str(period) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-1",
        "26-11",
        "2026-q4",
        "2026-w48",
        "2026-W5",
        " 2026-11",
        "2026-11 ",
        "2026-11\n",
        "2026-11-01",
        "2026-H1",
        "2026-M11",
        "２０２６",
        "2026/11",
        "20261",
    ],
)
def test_parse_period_rejects_malformed_text_naming_it(text: str) -> None:
    with pytest.raises(PeriodError, match=re.escape(repr(text))):
        parse_period(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-00",
        "2026-13",
        "2026-Q0",
        "2026-Q5",
        "2026-W00",
        "2026-W54",
        "2021-W53",
        "2027-W53",
        "1969",
        "1969-12",
        "0000",
    ],
)
def test_parse_period_rejects_out_of_range_values_naming_the_text(text: str) -> None:
    with pytest.raises(PeriodError, match=re.escape(repr(text))):
        parse_period(text)


def test_period_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_period("nope")


def test_week_53_exists_only_in_long_iso_years() -> None:
    assert parse_period("2020-W53").kind is PeriodKind.WEEK
    assert parse_period("2026-W53").kind is PeriodKind.WEEK
    with pytest.raises(PeriodError, match=r"week must be 1\.\.52 in ISO year 2021"):
        parse_period("2021-W53")


def test_period_rejects_a_label_of_another_kind() -> None:
    with pytest.raises(PeriodError, match="is a quarter, not a month"):
        Period(PeriodKind.MONTH, "2026-Q4")


def test_period_turns_a_plain_kind_string_into_the_enum() -> None:
    assert Period("month", "2026-11").kind is PeriodKind.MONTH  # type: ignore[arg-type]


# --- zones and arguments -------------------------------------------------------------


def test_validate_timezone_returns_the_zone() -> None:
    assert validate_timezone("Europe/Berlin") == BERLIN


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "America", "/etc/localtime", "Europe/Berlin "]
)
def test_validate_timezone_rejects_unknown_names_clearly(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown time zone {re.escape(repr(name))}"):
        validate_timezone(name)


def test_period_bounds_rejects_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Berlin'"):
        period_bounds("2026-11", "Berlin")


@pytest.mark.parametrize("month", [0, 13, -1])
def test_fiscal_start_month_outside_1_to_12_is_rejected(month: int) -> None:
    with pytest.raises(ValueError, match=r"fiscal start month must be 1\.\.12"):
        period_bounds("2026", "UTC", month)


def test_period_of_rejects_an_unknown_kind() -> None:
    with pytest.raises(PeriodError, match="unknown period kind 'fortnight'"):
        period_of("fortnight", utc(2026, 11, 5), "UTC")


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 5, 12)
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        period_of(PeriodKind.MONTH, naive, "UTC")
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        periods_containing(naive, "UTC")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        elapsed_share("2026-11", naive, "UTC")


# --- bounds --------------------------------------------------------------------------


def test_bounds_are_aware_utc_datetimes() -> None:
    start, end = period_bounds("2026-11", BERLIN)
    assert start.tzinfo is UTC and end.tzinfo is UTC


def test_period_bounds_accepts_a_period_or_its_label() -> None:
    assert period_bounds(parse_period("2026-Q4"), "Europe/Berlin") == period_bounds(
        "2026-Q4", BERLIN
    )


def test_march_in_berlin_runs_between_local_midnights_and_loses_an_hour() -> None:
    start, end = period_bounds("2026-03", BERLIN)
    assert start == utc(2026, 2, 28, 23)  # 00:00 CET
    assert end == utc(2026, 3, 31, 22)  # 00:00 CEST
    assert start.astimezone(BERLIN) == datetime(2026, 3, 1, tzinfo=BERLIN)
    assert end - start == timedelta(days=31) - timedelta(hours=1)


def test_october_in_berlin_gains_an_hour() -> None:
    start, end = period_bounds("2026-10", BERLIN)
    assert (start, end) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert end - start == timedelta(days=31, hours=1)


def test_quarter_in_berlin_starts_at_local_midnight() -> None:
    start, end = period_bounds("2026-Q4", BERLIN)
    assert (start, end) == (utc(2026, 9, 30, 22), utc(2026, 12, 31, 23))


def test_week_with_berlin_spring_forward_is_167_hours() -> None:
    start, end = period_bounds("2026-W13", BERLIN)
    assert (start, end) == (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=167)


def test_november_in_los_angeles_spans_the_fall_back() -> None:
    start, end = period_bounds("2026-11", LOS_ANGELES)
    assert (start, end) == (utc(2026, 11, 1, 7), utc(2026, 12, 1, 8))
    assert end - start == timedelta(days=30, hours=1)


def test_year_in_los_angeles_runs_between_pacific_standard_midnights() -> None:
    assert period_bounds("2026", LOS_ANGELES) == (
        utc(2026, 1, 1, 8),
        utc(2027, 1, 1, 8),
    )


def test_month_starting_in_a_midnight_dst_gap_starts_at_the_transition() -> None:
    # Asuncion jumped from 00:00 to 01:00 on 2023-10-01: local midnight never happened.
    zone = ZoneInfo("America/Asuncion")
    start, _ = period_bounds("2023-10", zone)
    assert start == utc(2023, 10, 1, 4)
    assert start.astimezone(zone).replace(tzinfo=None) == datetime(2023, 10, 1, 1)
    assert period_bounds("2023-09", zone)[1] == start
    assert period_of(PeriodKind.MONTH, start - MICROSECOND, zone).label == "2023-09"


def test_iso_week_1_of_2026_starts_in_december_2025() -> None:
    assert period_bounds("2026-W01", "UTC") == (utc(2025, 12, 29), utc(2026, 1, 5))
    assert period_of(PeriodKind.WEEK, utc(2025, 12, 29), "UTC").label == "2026-W01"


def test_iso_week_53_of_2020_ends_in_january_2021() -> None:
    assert period_bounds("2020-W53", "UTC") == (utc(2020, 12, 28), utc(2021, 1, 4))
    assert period_of(PeriodKind.WEEK, utc(2021, 1, 3, 12), "UTC").label == "2020-W53"
    assert period_of(PeriodKind.WEEK, utc(2021, 1, 4), "UTC").label == "2021-W01"


def test_months_and_weeks_ignore_the_fiscal_start() -> None:
    for label in ("2026-11", "2026-W48"):
        assert period_bounds(label, BERLIN, 4) == period_bounds(label, BERLIN)


def test_a_period_ending_after_year_9999_has_no_bounds() -> None:
    assert period_bounds("9999-11", "UTC")[1] == utc(9999, 12, 1)
    with pytest.raises(PeriodError, match="'9999' ends after year 9999"):
        period_bounds("9999", "UTC")


# --- fiscal years ----------------------------------------------------------------------


def test_fiscal_start_2_names_the_year_by_the_calendar_year_it_ends_in() -> None:
    assert period_bounds("2027", "UTC", 2) == (utc(2026, 2, 1), utc(2027, 2, 1))
    assert period_bounds("2027-Q1", "UTC", 2) == (utc(2026, 2, 1), utc(2026, 5, 1))
    assert period_bounds("2027-Q4", "UTC", 2) == (utc(2026, 11, 1), utc(2027, 2, 1))


def test_fiscal_start_4_quarters_and_year() -> None:
    assert period_bounds("2027", "UTC", 4) == (utc(2026, 4, 1), utc(2027, 4, 1))
    assert period_bounds("2027-Q1", "UTC", 4) == (utc(2026, 4, 1), utc(2026, 7, 1))
    assert period_bounds("2027-Q4", "UTC", 4) == (utc(2027, 1, 1), utc(2027, 4, 1))


def test_fiscal_quarter_bounds_are_local_midnights_too() -> None:
    assert period_bounds("2027-Q1", BERLIN, 4) == (
        utc(2026, 3, 31, 22),
        utc(2026, 6, 30, 22),
    )


@pytest.mark.parametrize(
    ("start_month", "day", "quarter", "year"),
    [
        (1, date(2026, 11, 5), "2026-Q4", "2026"),
        (2, date(2026, 1, 31), "2026-Q4", "2026"),
        (2, date(2026, 2, 1), "2027-Q1", "2027"),
        (2, date(2026, 4, 30), "2027-Q1", "2027"),
        (2, date(2026, 5, 1), "2027-Q2", "2027"),
        (2, date(2027, 1, 31), "2027-Q4", "2027"),
        (4, date(2026, 3, 31), "2026-Q4", "2026"),
        (4, date(2026, 4, 1), "2027-Q1", "2027"),
        (4, date(2026, 7, 1), "2027-Q2", "2027"),
        (4, date(2027, 1, 15), "2027-Q4", "2027"),
        (12, date(2026, 12, 1), "2027-Q1", "2027"),
        (12, date(2026, 11, 30), "2026-Q4", "2026"),
    ],
)
def test_period_of_maps_local_days_to_fiscal_quarters_and_years(
    start_month: int, day: date, quarter: str, year: str
) -> None:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN)
    assert period_of(PeriodKind.QUARTER, moment, BERLIN, start_month).label == quarter
    assert period_of("year", moment, BERLIN, start_month).label == year


@pytest.mark.parametrize("start_month", range(1, 13))
def test_fiscal_bounds_and_period_of_round_trip(start_month: int) -> None:
    texts = ["2026", "2027"] + [f"{y}-Q{q}" for y in (2026, 2027) for q in range(1, 5)]
    for period in map(parse_period, texts):
        start, end = period_bounds(period, LOS_ANGELES, start_month)
        assert period_of(period.kind, start, LOS_ANGELES, start_month) == period
        assert (
            period_of(period.kind, end - MICROSECOND, LOS_ANGELES, start_month)
            == period
        )
        assert period_of(period.kind, end, LOS_ANGELES, start_month) != period


# --- the tenant's midnight, not UTC's --------------------------------------------------


def test_just_after_midnight_in_berlin_is_november_while_utc_is_still_october() -> None:
    moment = utc(2026, 10, 31, 23, 30)
    assert period_of(PeriodKind.MONTH, moment, "UTC").label == "2026-10"
    assert period_of(PeriodKind.MONTH, moment, BERLIN).label == "2026-11"


def test_evening_in_los_angeles_is_october_while_utc_is_already_november() -> None:
    moment = utc(2026, 11, 1, 5)
    assert period_of(PeriodKind.MONTH, moment, "UTC").label == "2026-11"
    assert period_of(PeriodKind.MONTH, moment, LOS_ANGELES).label == "2026-10"


def test_last_microsecond_before_local_midnight_stays_in_the_month() -> None:
    moment = datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=BERLIN)
    assert period_of(PeriodKind.MONTH, moment, BERLIN).label == "2026-10"
    assert period_of(PeriodKind.MONTH, moment + MICROSECOND, BERLIN).label == "2026-11"


def test_new_years_eve_utc_is_already_next_year_in_berlin() -> None:
    moment = utc(2026, 12, 31, 23, 30)
    assert labels(periods_containing(moment, BERLIN)) == [
        "2027-01",
        "2027-Q1",
        "2026-W53",
        "2027",
    ]
    assert labels(periods_containing(moment, "UTC")) == [
        "2026-12",
        "2026-Q4",
        "2026-W53",
        "2026",
    ]


def test_periods_containing_returns_one_of_each_kind() -> None:
    periods = periods_containing(utc(2026, 11, 5, 9), BERLIN, 2)
    assert [p.kind for p in periods] == list(PeriodKind)
    assert labels(periods) == ["2026-11", "2027-Q4", "2026-W45", "2027"]


def test_period_of_depends_on_the_instant_not_the_moments_zone() -> None:
    instant = utc(2026, 10, 31, 23, 30)
    in_tokyo = instant.astimezone(ZoneInfo("Asia/Tokyo"))
    assert periods_containing(in_tokyo, LOS_ANGELES) == periods_containing(
        instant, LOS_ANGELES
    )


# --- elapsed share -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "share"),
    [
        (utc(2025, 12, 1), "0.000000"),
        (utc(2026, 1, 1), "0.000000"),
        (utc(2026, 1, 16, 12), "0.500000"),
        (utc(2026, 2, 1) - timedelta(seconds=1), "0.999999"),
        (utc(2026, 2, 1), "1.000000"),
        (utc(2027, 6, 1), "1.000000"),
    ],
)
def test_elapsed_share_at_start_middle_end_and_outside(
    now: datetime, share: str
) -> None:
    result = elapsed_share("2026-01", now, "UTC")
    assert result == Decimal(share)
    assert str(result) == share


def test_elapsed_share_rounds_down_so_one_means_the_period_is_over() -> None:
    start, end = period_bounds("2026-01", "UTC")
    assert elapsed_share("2026-01", end - MICROSECOND, "UTC") < 1
    assert elapsed_share("2026-01", start + MICROSECOND, "UTC") == 0


def test_elapsed_share_counts_real_hours_across_dst() -> None:
    start, _ = period_bounds("2026-W13", BERLIN)  # 167 real hours
    assert elapsed_share(
        "2026-W13", start + timedelta(hours=83, minutes=30), BERLIN
    ) == Decimal("0.5")


def test_elapsed_share_follows_the_fiscal_start() -> None:
    now = utc(2026, 3, 1)  # one month into FY2027 Q1 when the year starts in February
    share = elapsed_share(parse_period("2027-Q1"), now, "UTC", 2)
    assert share == Decimal(28 * 86400 * 1_000_000 // (89 * 86400)) / 1_000_000


# --- property: every moment lies inside the bounds of its own periods -------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Los_Angeles",
    "America/Asuncion",
    "America/Santiago",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Apia",
    "Australia/Lord_Howe",
]


def test_every_moment_lies_within_the_bounds_of_the_periods_containing_it() -> None:
    rng = random.Random(20261105)
    low, high = utc(1971, 1, 1).timestamp(), utc(2099, 12, 31).timestamp()
    for _ in range(1000):
        moment = datetime.fromtimestamp(rng.uniform(low, high), UTC)
        zone = ZoneInfo(rng.choice(ZONES))
        fiscal = rng.randint(1, 12)
        for period in periods_containing(moment, zone, fiscal):
            start, end = period_bounds(period, zone, fiscal)
            assert start <= moment < end, (period, zone, fiscal, moment)
            # start is the first instant of its local day
            assert (start - MICROSECOND).astimezone(zone).date() < start.astimezone(
                zone
            ).date()
            assert period_of(period.kind, start, zone, fiscal) == period
            assert period_of(period.kind, end - MICROSECOND, zone, fiscal) == period


# --- business-day pace ----------------------------------------------------------------------------

def test_business_share_counts_weekdays_only_in_the_tenants_zone() -> None:
    start, end = period_bounds("2026-11", "Europe/Berlin")  # November 2026: 21 weekdays
    berlin = ZoneInfo("Europe/Berlin")
    monday = datetime(2026, 11, 2, 0, tzinfo=berlin)  # Sunday the 1st was not a business day
    assert business_share(start, end, monday, "Europe/Berlin") == Decimal("0.000000")
    monday_noon = datetime(2026, 11, 2, 12, tzinfo=berlin)
    assert business_share(start, end, monday_noon, "Europe/Berlin") == Decimal("0.023809")  # half of 1/21
    tuesday = datetime(2026, 11, 3, 0, tzinfo=berlin)
    assert business_share(start, end, tuesday, "Europe/Berlin") == Decimal("0.047619")  # 1/21
    friday_end = datetime(2026, 11, 7, 0, tzinfo=berlin)  # Saturday midnight: 5 of 21
    sunday_noon = datetime(2026, 11, 8, 12, tzinfo=berlin)
    assert business_share(start, end, friday_end, "Europe/Berlin") == Decimal("0.238095")
    assert business_share(start, end, sunday_noon, "Europe/Berlin") == Decimal("0.238095")  # the weekend stands
    assert business_share(start, end, end, "Europe/Berlin") == Decimal("1.000000")
    assert business_share(start, end, start - timedelta(days=3), "Europe/Berlin") == Decimal("0.000000")


def test_business_share_is_monotonic_and_reaches_one_only_at_the_end() -> None:
    start, end = period_bounds("2026-Q4", "America/Los_Angeles")
    shares = [business_share(start, end, start + timedelta(hours=h), "America/Los_Angeles")
              for h in range(0, 92 * 24, 5)]
    assert shares == sorted(shares) and shares[-1] < 1
    assert business_share(start, end, end - timedelta(microseconds=1), "America/Los_Angeles") < 1
