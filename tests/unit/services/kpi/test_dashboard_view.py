"""Dashboard view helpers: chart series by local day, the trend arrow, locale text, CSV export, the SVG chart."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.kpi.dashboard.view import (
    CSV_COLUMNS,
    cumulative_series,
    duration,
    expected_series,
    leaderboard_csv,
    money,
    number,
    percent,
    svg_chart,
    trend,
)
from shared.formatting import locale_of
from shared.periods import business_share, period_bounds
from shared.workdays import HolidayCalendar, days_off, working_share

BERLIN = ZoneInfo("Europe/Berlin")
NBSP = "\xa0"
SVG = "{http://www.w3.org/2000/svg}"
# October 2026 in Berlin: 22 business days, and DST ends on Sunday the 25th (a 25-hour day).
OCT_START, OCT_END = period_bounds("2026-10", BERLIN)
# Four whole weeks, Monday 2026-11-02 to Monday 2026-11-30: 20 business days, 1,000 a day for 20,000.
WEEKS_START = datetime(2026, 11, 2, tzinfo=BERLIN).astimezone(UTC)
WEEKS_END = datetime(2026, 11, 30, tzinfo=BERLIN).astimezone(UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def by_day(series: list[tuple[date, Decimal]]) -> dict[date, Decimal]:
    return dict(series)


# --- cumulative_series -----------------------------------------------------------------------------------


def test_the_running_total_has_one_entry_per_local_day_from_the_first_day_to_today() -> None:
    points = [(berlin(2026, 10, 1, 9), Decimal("100.50")), (berlin(2026, 10, 3, 18), Decimal(200)),
              (berlin(2026, 10, 3, 19), Decimal("0.25"))]
    series = cumulative_series(points, OCT_START, OCT_END, berlin(2026, 10, 4, 8), BERLIN)
    assert series == [(date(2026, 10, 1), Decimal("100.50")), (date(2026, 10, 2), Decimal("100.50")),
                      (date(2026, 10, 3), Decimal("300.75")), (date(2026, 10, 4), Decimal("300.75"))]


def test_days_are_the_tenants_local_days_not_utc_days() -> None:
    # 00:30 on 1 October in Berlin is still 30 September in UTC: it counts on the period's first day.
    early = berlin(2026, 10, 1, 0, 30)
    assert early.astimezone(UTC).date() == date(2026, 9, 30)
    series = cumulative_series([(early, Decimal(5))], OCT_START, OCT_END, berlin(2026, 10, 1, 1), BERLIN)
    assert series == [(date(2026, 10, 1), Decimal(5))]


def test_a_point_exactly_at_the_end_and_one_before_the_start_are_ignored() -> None:
    points = [(OCT_END, Decimal(1000)), (OCT_START - timedelta(microseconds=1), Decimal(7)),
              (OCT_START, Decimal(1)), (OCT_END - timedelta(microseconds=1), Decimal(2))]
    series = cumulative_series(points, OCT_START, OCT_END, OCT_END + timedelta(days=3), BERLIN)
    assert series[0] == (date(2026, 10, 1), Decimal(1))
    assert series[-1] == (date(2026, 10, 31), Decimal(3))


def test_after_the_period_the_series_stops_at_its_last_day() -> None:
    series = cumulative_series([], OCT_START, OCT_END, datetime(2027, 1, 1, tzinfo=UTC), BERLIN)
    assert len(series) == 31
    assert series[-1] == (date(2026, 10, 31), Decimal(0))


def test_now_exactly_at_the_end_does_not_add_the_next_month_s_first_day() -> None:
    series = cumulative_series([], OCT_START, OCT_END, OCT_END, BERLIN)
    assert series[-1][0] == date(2026, 10, 31)


def test_before_the_period_starts_the_series_is_empty() -> None:
    points = [(berlin(2026, 10, 1, 9), Decimal(1))]
    assert cumulative_series(points, OCT_START, OCT_END, OCT_START - timedelta(microseconds=1), BERLIN) == []


def test_at_the_first_instant_the_series_holds_the_first_day() -> None:
    points = [(OCT_START, Decimal(4)), (berlin(2026, 10, 1, 23), Decimal(6))]
    # a point later today (booked ahead of now) still belongs to today's total
    assert cumulative_series(points, OCT_START, OCT_END, OCT_START, BERLIN) == [(date(2026, 10, 1), Decimal(10))]


def test_the_dst_change_day_is_one_day_with_all_of_its_25_hours() -> None:
    points = [(berlin(2026, 10, 25, 0, 30), Decimal(1)),  # 22:30 UTC on the 24th
              (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), Decimal(10)),  # 02:30 CEST, before the clocks go back
              (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), Decimal(100)),  # 02:30 CET, the repeated hour
              (berlin(2026, 10, 25, 23, 30), Decimal(1000))]  # 22:30 UTC on the 25th
    series = by_day(cumulative_series(points, OCT_START, OCT_END, berlin(2026, 10, 26, 12), BERLIN))
    assert series[date(2026, 10, 24)] == 0
    assert series[date(2026, 10, 25)] == 1111
    assert sorted(series) == [date(2026, 10, 1) + timedelta(days=d) for d in range(26)]


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cumulative_series([], OCT_START, OCT_END, datetime(2026, 10, 5), BERLIN)


# --- expected_series -------------------------------------------------------------------------------------


def test_expected_pace_covers_every_day_of_the_period_and_ends_on_the_target() -> None:
    series = expected_series(Decimal(22000), OCT_START, OCT_END, BERLIN)
    assert [day for day, _ in series] == [date(2026, 10, 1) + timedelta(days=d) for d in range(31)]
    assert series[-1] == (date(2026, 10, 31), Decimal(22000))
    values = [value for _, value in series]
    assert values == sorted(values)


def test_expected_pace_is_target_times_business_share_at_each_days_end_to_the_cent() -> None:
    series = by_day(expected_series(Decimal(22000), OCT_START, OCT_END, BERLIN))
    # 1 of 22 business days: 22,000 x 0.045454 (shares are rounded down to 6 places) = 999.988 -> 999.99
    assert series[date(2026, 10, 1)] == Decimal("999.99")
    assert series[date(2026, 10, 2)] == Decimal("2000.00")
    assert all(value.as_tuple().exponent == -2 for day, value in series.items() if day != date(2026, 10, 31))


def test_expected_pace_stands_still_over_the_weekend_including_the_dst_sunday() -> None:
    series = by_day(expected_series(Decimal(22000), OCT_START, OCT_END, BERLIN))
    friday = series[date(2026, 10, 23)]
    assert series[date(2026, 10, 24)] == series[date(2026, 10, 25)] == friday
    monday_end = berlin(2026, 10, 27).astimezone(UTC)
    assert series[date(2026, 10, 26)] == (Decimal(22000) * business_share(
        OCT_START, OCT_END, monday_end, BERLIN)).quantize(Decimal("0.01"))


def test_the_last_value_is_the_target_itself_even_with_more_than_cents() -> None:
    assert expected_series(Decimal("1000.005"), OCT_START, OCT_END, BERLIN)[-1][1] == Decimal("1000.005")


def test_a_period_ending_midday_still_has_a_value_for_its_last_partial_day() -> None:
    # business_share counts the whole days before the end's local day: Monday and Tuesday, 125 each
    start, end = berlin(2026, 11, 2).astimezone(UTC), berlin(2026, 11, 4, 12).astimezone(UTC)
    assert expected_series(Decimal(250), start, end, BERLIN) == [
        (date(2026, 11, 2), Decimal("125.00")), (date(2026, 11, 3), Decimal("250.00")), (date(2026, 11, 4), 250)]


def test_an_empty_period_has_no_expected_pace() -> None:
    assert expected_series(Decimal(1), OCT_START, OCT_START, BERLIN) == []


def test_expected_pace_stands_still_on_days_off_and_is_target_times_coachings_working_share() -> None:
    start, end = period_bounds("2026-12", BERLIN)
    # Berlin's Christmas Day (Friday the 25th) and a rep's Monday the 28th off
    off = days_off(HolidayCalendar("DE", "BE"), date(2026, 12, 1), date(2026, 12, 31),
                   [(date(2026, 12, 28), date(2026, 12, 28))])
    series = by_day(expected_series(Decimal(21000), start, end, BERLIN, off))
    # 18 of 21 working days by the end of the 24th, and none more until the end of the 29th: 21,000 x 0.857142
    assert series[date(2026, 12, 24)] == series[date(2026, 12, 25)] == series[date(2026, 12, 28)] == Decimal("17999.98")
    assert series[date(2026, 12, 29)] == (Decimal(21000) * working_share(
        start, end, berlin(2026, 12, 30), BERLIN, off)).quantize(Decimal("0.01")) == Decimal("18999.98")
    assert series != by_day(expected_series(Decimal(21000), start, end, BERLIN))  # Monday to Friday alone


# --- trend -----------------------------------------------------------------------------------------------

WEEK_3 = berlin(2026, 11, 16)  # Monday midnight: the last 7 days held 5 of 20 business days, 5,000 needed


@pytest.mark.parametrize(("gain", "expected"), [
    (Decimal(5500), "up"),  # exactly 1.1 x needed
    (Decimal("5499.99"), "flat"),
    (Decimal(5000), "flat"),
    (Decimal(4500), "flat"),  # exactly 0.9 x needed
    (Decimal("4499.99"), "down"),
    (Decimal(0), "down"),
])
def test_trend_compares_the_gain_with_what_pace_needed_over_the_window(gain: Decimal, expected: str) -> None:
    assert trend(gain, Decimal(20000), WEEKS_START, WEEKS_END, WEEK_3, BERLIN) == expected


@pytest.mark.parametrize("target", [None, Decimal(0), Decimal(-5)])
def test_without_a_positive_target_there_is_no_trend(target: Decimal | None) -> None:
    assert trend(Decimal(100), target, WEEKS_START, WEEKS_END, WEEK_3, BERLIN) is None


def test_a_window_of_only_weekend_needs_nothing_so_any_gain_is_up() -> None:
    sunday_noon = berlin(2026, 11, 8, 12)
    assert trend(Decimal("0.01"), Decimal(20000), WEEKS_START, WEEKS_END, sunday_noon, BERLIN, days=1) == "up"
    assert trend(Decimal(0), Decimal(20000), WEEKS_START, WEEKS_END, sunday_noon, BERLIN, days=1) == "flat"


def test_before_the_period_nothing_is_needed() -> None:
    before = WEEKS_START - timedelta(days=1)
    assert trend(Decimal(0), Decimal(20000), WEEKS_START, WEEKS_END, before, BERLIN) == "flat"


def test_the_window_never_reaches_before_the_start() -> None:
    wednesday = berlin(2026, 11, 4)  # 2 business days into the period: 2,000 needed, not 5,000
    assert trend(Decimal(2200), Decimal(20000), WEEKS_START, WEEKS_END, wednesday, BERLIN) == "up"
    assert trend(Decimal(1799), Decimal(20000), WEEKS_START, WEEKS_END, wednesday, BERLIN) == "down"


def test_a_window_across_the_dst_change_holds_five_business_days() -> None:
    # Wednesday noon to Wednesday noon across Sunday 2026-10-25: 5 of October's 22 business days, about
    # 5,000 (5,000.006: shares are rounded down to 6 places).
    now = berlin(2026, 10, 28, 12)
    assert trend(Decimal(5501), Decimal(22000), OCT_START, OCT_END, now, BERLIN) == "up"
    assert trend(Decimal(5000), Decimal(22000), OCT_START, OCT_END, now, BERLIN) == "flat"
    assert trend(Decimal(4499), Decimal(22000), OCT_START, OCT_END, now, BERLIN) == "down"


def test_a_day_off_in_the_window_needs_less_of_the_rep() -> None:
    # Friday 2026-11-13 off: 19 working days need 20,000; the last 7 days held 4 of them, about 4,210.54 needed
    off = frozenset({date(2026, 11, 13)})
    assert trend(Decimal(4632), Decimal(20000), WEEKS_START, WEEKS_END, WEEK_3, BERLIN, days_off=off) == "up"
    assert trend(Decimal(4632), Decimal(20000), WEEKS_START, WEEKS_END, WEEK_3, BERLIN) == "flat"
    assert trend(Decimal(4000), Decimal(20000), WEEKS_START, WEEKS_END, WEEK_3, BERLIN, days_off=off) == "flat"
    assert trend(Decimal(4000), Decimal(20000), WEEKS_START, WEEKS_END, WEEK_3, BERLIN) == "down"


def test_a_window_of_zero_days_is_refused() -> None:
    with pytest.raises(ValueError, match="days"):
        trend(Decimal(1), Decimal(1), WEEKS_START, WEEKS_END, WEEK_3, BERLIN, days=0)


# --- locale text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("de_DE", "de_DE"), ("de-DE", "de_DE"), ("fr", "fr"), (None, "en"), ("", "en"), ("xx_YY", "en"),
    ("not a locale", "en"),
])
def test_locale_of_reads_both_spellings_and_falls_back_to_english(name: str | None, expected: str) -> None:
    assert str(locale_of(name)) == expected


@pytest.mark.parametrize(("locale", "currency", "expected"), [
    ("en", "EUR", "€1,234.50"),
    ("de_DE", "EUR", f"1.234,50{NBSP}€"),
    ("de-DE", "USD", f"1.234,50{NBSP}$"),
    ("xx_YY", "EUR", "€1,234.50"),
    (None, "EUR", "€1,234.50"),
    ("en", None, "1,234.50"),
    ("de_DE", None, "1.234,50"),
])
def test_money_follows_locale_and_currency(locale: str | None, currency: str | None, expected: str) -> None:
    assert money(Decimal("1234.5"), currency, locale) == expected


@pytest.mark.parametrize(("value", "locale", "expected"), [
    (Decimal("1234.50"), "en", "1,234.5"),
    (Decimal("1234.50"), "de_DE", "1.234,5"),
    (Decimal("12.00"), "en", "12"),
    (Decimal(1200000), "en", "1,200,000"),
    (Decimal("1.2E+3"), "en", "1,200"),
    (Decimal("0.125"), "en", "0.125"),
    (Decimal("1234567.1234567"), "en", "1,234,567.1234567"),  # never rounded to three places
    (Decimal("-0.00"), "en", "0"),
    (Decimal(-42), "unknown", "-42"),
])
def test_number_is_grouped_without_padding_or_rounding(value: Decimal, locale: str, expected: str) -> None:
    assert number(value, locale) == expected


@pytest.mark.parametrize(("seconds", "locale", "expected"), [
    (Decimal(7500), "en", "2 h 05 min"),
    (Decimal(0), "en", "0 h 00 min"),
    (Decimal(89), "en", "0 h 01 min"),  # to the nearest minute
    (Decimal(90), "en", "0 h 02 min"),  # half-even: 1.5 minutes read 2, 2.5 read 2
    (Decimal(150), "en", "0 h 02 min"),
    (Decimal("3599.9"), "en", "1 h 00 min"),
    (Decimal(4_500_000), "de_DE", "1.250 h 00 min"),  # hours grouped in the locale
    (Decimal(-29), "en", "0 h 00 min"),  # never "-0"
])
def test_a_duration_reads_as_hours_and_minutes(seconds: Decimal, locale: str, expected: str) -> None:
    assert duration(seconds, locale) == expected


@pytest.mark.parametrize(("ratio", "locale", "expected"), [
    (Decimal("0.7512"), "en", "75%"),
    (Decimal("0.7512"), "de_DE", f"75{NBSP}%"),
    (Decimal("0.7512"), "xx_YY", "75%"),
    (Decimal("0.996"), "en", "99%"),  # rounded down: 100% only once the target is met
    (Decimal(1), "en", "100%"),
    (Decimal("12.5"), "en", "1,250%"),
    (Decimal(0), "en", "0%"),
    (Decimal("-0.004"), "en", "0%"),
    (None, "en", "–"),
    (Decimal("NaN"), "de_DE", "–"),
])
def test_percent_is_a_whole_percentage_rounded_down(ratio: Decimal | None, locale: str, expected: str) -> None:
    assert percent(ratio, locale) == expected


# --- leaderboard_csv -------------------------------------------------------------------------------------


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def entry(**overrides: Any) -> dict[str, Any]:
    return {"rank": 1, "rep_id": "r1", "name": "Ann Lee", "team_id": "t1", "actual": Decimal("1234.50"),
            "target": Decimal(2000), "attainment": Decimal("0.6172"), **overrides}


def test_the_csv_has_a_header_and_exact_plain_numbers() -> None:
    text = leaderboard_csv([entry(), entry(rank=2, rep_id="r2", name="Bo, Jr.", actual=Decimal("1E+3"))],
                           "won_revenue", "2026-Q4")
    assert text.startswith("rank,rep_id,name,team_id,metric,period,actual,target,attainment,tied\r\n")
    assert text.endswith("\r\n")
    assert rows_of(text) == [
        list(CSV_COLUMNS),
        ["1", "r1", "Ann Lee", "t1", "won_revenue", "2026-Q4", "1234.50", "2000", "0.6172", ""],
        ["2", "r2", "Bo, Jr.", "t1", "won_revenue", "2026-Q4", "1000", "2000", "0.6172", ""],
    ]


def test_missing_values_are_empty_cells() -> None:
    text = leaderboard_csv([entry(target=None, attainment=None, name=None, team_id=None)], "deals_won", "2026-11")
    assert rows_of(text)[1] == ["1", "r1", "", "", "deals_won", "2026-11", "1234.50", "", "", ""]


def test_ties_and_unranked_rows_read_as_such() -> None:
    text = leaderboard_csv([entry(tied=True), entry(rank=None, rep_id="r9", target=None, attainment=None)],
                           "won_revenue", "2026-Q4")
    assert [row[0] for row in rows_of(text)[1:]] == ["1", ""]
    assert [row[-1] for row in rows_of(text)[1:]] == ["yes", ""]


def test_no_rows_give_the_header_alone() -> None:
    assert leaderboard_csv([], "won_revenue", "2026") == ",".join(CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rReturn"])
def test_text_a_spreadsheet_would_run_as_a_formula_is_defused(name: str) -> None:
    assert rows_of(leaderboard_csv([entry(name=name)], "won_revenue", "2026"))[1][2] == f"'{name}"


def test_every_text_cell_is_defused_but_negative_numbers_stay_numbers() -> None:
    text = leaderboard_csv([entry(rep_id="=r", team_id="@t", actual=Decimal("-5.00"))], "+m", "-p")
    assert rows_of(text)[1] == ["1", "'=r", "Ann Lee", "'@t", "'+m", "'-p", "-5.00", "2000", "0.6172", ""]


def test_harmless_text_is_left_alone() -> None:
    assert rows_of(leaderboard_csv([entry(name="Zoë 'Z' = top")], "m", "p"))[1][2] == "Zoë 'Z' = top"


# --- svg_chart -------------------------------------------------------------------------------------------

ACTUAL = [(date(2026, 11, 2), Decimal(500)), (date(2026, 11, 3), Decimal(1500)), (date(2026, 11, 4), Decimal(2600))]
EXPECTED = expected_series(Decimal(20000), WEEKS_START, WEEKS_END, BERLIN)


def chart(actual: list[tuple[date, Decimal]] = ACTUAL, expected: list[tuple[date, Decimal]] = EXPECTED,
          title: str = "Won revenue, November", chart_id: str = "won") -> str:
    return svg_chart(actual, expected, title=title, description="Actual 2,600 against 3,000 expected by today.",
                     value_label=lambda value: f"v:{value}", chart_id=chart_id)


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def polyline(root: ET.Element, kind: str) -> ET.Element | None:
    return next((e for e in root.iter(f"{SVG}polyline") if e.get("class") == kind), None)


def coordinates(line: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in (line.get("points") or "").split())]


def test_the_chart_is_well_formed_accessible_svg() -> None:
    root = ET.fromstring(chart())
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "won-title won-desc"
    assert root.get("viewBox") == "0 0 640 260"
    assert (root.get("class"), root.get("data-chart"), root.get("width")) == ("chart", "won", "100%")
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert (title.get("id"), title.text) == ("won-title", "Won revenue, November")
    assert (desc.get("id"), desc.text) == ("won-desc", "Actual 2,600 against 3,000 expected by today.")


def test_text_is_escaped() -> None:
    svg = svg_chart(ACTUAL, EXPECTED, title="Q4 <&> \"best\"", description="a < b & c", chart_id="c\"1",
                    value_label=lambda value: f"<{value}>")
    assert "Q4 &lt;&amp;&gt;" in svg
    root = ET.fromstring(svg)
    assert root.findtext(f"{SVG}title") == "Q4 <&> \"best\""
    assert root.findtext(f"{SVG}desc") == "a < b & c"
    assert root.get("data-chart") == "c\"1"
    assert "<0>" in texts(root)


def test_characters_xml_forbids_are_dropped() -> None:
    assert ET.fromstring(chart(title="bell\x07 and nul\x00")).findtext(f"{SVG}title") == "bell and nul"


def test_the_x_axis_spans_the_whole_period_and_actual_stops_at_today() -> None:
    root = ET.fromstring(chart())
    expected_line, actual_line = polyline(root, "expected"), polyline(root, "actual")
    assert expected_line is not None and actual_line is not None
    pace, done = coordinates(expected_line), coordinates(actual_line)
    assert len(pace) == 28 and len(done) == 3
    assert pace[0][0] == done[0][0] == 104.0 and pace[-1][0] == 624.0
    assert done[-1][0] == pace[2][0]
    assert expected_line.get("stroke-dasharray") and not actual_line.get("stroke-dasharray")
    assert float(actual_line.get("stroke-width") or 0) > float(expected_line.get("stroke-width") or 0)
    assert (actual_line.get("stroke"), expected_line.get("stroke")) == ("#1d4ed8", "#6b7280")


def test_the_y_axis_runs_from_zero_to_the_largest_value() -> None:
    root = ET.fromstring(chart())
    line = polyline(root, "expected")
    assert line is not None
    assert coordinates(line)[-1][1] == 44.0  # the target, the largest value, at the top of the plot
    assert coordinates(line)[0][1] == 220.0 - 176.0 * 1000 / 20000  # 1,000 on a 0..20,000 axis


def test_three_to_five_gridlines_are_labelled_by_value_label() -> None:
    labels = [text for text in texts(ET.fromstring(chart())) if text.startswith("v:")]
    assert labels == ["v:0", "v:5000", "v:10000", "v:15000", "v:20000"]
    small = [text for text in texts(ET.fromstring(chart([], []))) if text.startswith("v:")]
    assert 3 <= len(small) <= 5 and small[0] == "v:0" and small[-1] == "v:1"  # at least 0..1


def test_the_x_labels_are_the_first_middle_and_last_day() -> None:
    dates = [text for text in texts(ET.fromstring(chart())) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)]
    assert sorted(dates) == ["2026-11-02", "2026-11-15", "2026-11-29"]


def test_the_legend_names_both_lines() -> None:
    assert {"Actual", "Expected pace"} <= set(texts(ET.fromstring(chart())))


def test_an_empty_actual_series_draws_only_the_pace() -> None:
    root = ET.fromstring(chart(actual=[]))
    assert polyline(root, "actual") is None and polyline(root, "expected") is not None
    assert root.find(f"{SVG}circle") is None


def test_a_chart_with_no_data_at_all_is_still_valid() -> None:
    root = ET.fromstring(chart(actual=[], expected=[]))
    assert root.find(f"{SVG}polyline") is None
    assert "Actual" in texts(root)


def test_a_one_day_period_labels_its_day_once() -> None:
    day = [(date(2026, 11, 2), Decimal(3))]
    root = ET.fromstring(chart(actual=day, expected=day))
    assert [text for text in texts(root) if text.startswith("2026")] == ["2026-11-02"]


def test_a_negative_total_extends_the_axis_below_zero() -> None:
    root = ET.fromstring(chart(actual=[(date(2026, 11, 2), Decimal(-3000))]))
    actual_line = polyline(root, "actual")
    assert actual_line is not None and coordinates(actual_line)[0][1] == 220.0  # the bottom of the plot


def relative_luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_text_and_lines_have_at_least_4_5_to_1_contrast_on_white() -> None:
    root = ET.fromstring(chart())
    colours = {e.get("fill") for e in root.iter(f"{SVG}text")}
    colours |= {e.get("stroke") for e in root.iter(f"{SVG}polyline")}
    assert colours == {"#1f2937", "#1d4ed8", "#6b7280"}
    for colour in colours:
        assert colour is not None
        assert 1.05 / (relative_luminance(colour) + 0.05) >= 4.5, colour
