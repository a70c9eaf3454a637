"""Headlines: one celebratory sentence per milestone kind, in the tenant's locale and templates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.recognition.headlines import DEFAULT_TEMPLATES, kind_of, render
from services.recognition.model import Day, Settings, Standing, WonDeal
from services.recognition.rules import deal_milestones, leaderboard_finishes, quota_crossings, streak
from shared.events import Metric, Scope

NBSP = "\xa0"
QUOTA_FACTS: dict[str, Any] = {
    "name": "Ann Lee", "metric": "won_revenue", "period": "2026-Q4", "actual": Decimal(90000),
    "target": Decimal(90000), "attainment": Decimal(1), "threshold": 100,
}  # fmt: skip
RECORD_FACTS: dict[str, Any] = {
    "name": "Ann Lee", "deal_id": "d3", "amount": Decimal(120000), "currency": "EUR", "period": "2026-11-20",
    "previous_record": Decimal(80000),
}  # fmt: skip


def en(kind: str, facts: dict[str, Any], templates: dict[str, str] | None = None) -> str:
    return render(kind, facts, locale="en", currency="EUR", templates=templates)


# --- kind_of ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("milestone", "kind"), [
    ("quota_50", "quota"), ("quota_100", "quota"), ("quota_150", "quota"), ("team_goal", "team_goal"),
    ("first_win_ever", "first_win_ever"), ("first_win", "first_win"), ("personal_record", "personal_record"),
    ("team_largest_deal", "team_largest_deal"), ("activity_streak", "activity_streak"),
    ("leaderboard_1", "leaderboard"), ("leaderboard_2_won_revenue", "leaderboard"),
    ("leaderboard_10_deals_won", "leaderboard"), ("something_new", "something_new"),
])  # fmt: skip
def test_a_milestone_name_maps_to_its_template_kind(milestone: str, kind: str) -> None:
    assert kind_of(milestone) == kind


def test_every_kind_has_a_default_template() -> None:
    assert set(DEFAULT_TEMPLATES) == {"quota", "team_goal", "first_win_ever", "first_win", "personal_record",
                                      "team_largest_deal", "activity_streak", "leaderboard", "contest_started",
                                      "contest_lead", "contest_won"}  # fmt: skip


# --- default templates, en -------------------------------------------------------------------------------


def test_a_quota_headline_names_the_threshold_period_metric_and_money() -> None:
    assert en("quota", QUOTA_FACTS) == (
        "Ann Lee just hit 100% of the 2026-Q4 won revenue target: €90,000.00 of €90,000.00!")


def test_a_personal_record_headline_names_the_amount_and_the_previous_best() -> None:
    assert en("personal_record", RECORD_FACTS) == (
        "Ann Lee just set a personal record: a €120,000.00 deal (previous best €80,000.00)!")


def test_a_deal_amount_is_shown_in_the_deals_own_currency() -> None:
    text = render("first_win", {**RECORD_FACTS, "currency": "USD", "period": "2026-Q4"}, locale="en",
                  currency="EUR")
    assert text == "First win of 2026-Q4 for Ann Lee: a $120,000.00 deal!"


def test_a_count_metric_is_not_shown_as_money() -> None:
    facts = {**QUOTA_FACTS, "metric": "deals_won", "actual": Decimal("12.0000"), "target": Decimal(12)}
    assert en("quota", facts) == "Ann Lee just hit 100% of the 2026-Q4 deals won target: 12 of 12!"


def test_a_win_rate_is_shown_as_a_percentage() -> None:
    facts = {**QUOTA_FACTS, "metric": "win_rate", "actual": Decimal("0.3333"), "target": Decimal("0.3")}
    assert en("quota", facts).endswith("win rate target: 33% of 30%!")


def test_without_a_currency_amounts_have_two_places_and_no_symbol() -> None:
    assert render("quota", QUOTA_FACTS, locale="en", currency=None).endswith("target: 90,000.00 of 90,000.00!")


def test_every_milestone_a_rule_finds_renders_with_no_placeholder_left() -> None:
    now = datetime(2026, 11, 20, 14, tzinfo=UTC)
    settings = Settings()
    deal = WonDeal("d1", "r1", Decimal(5000), "EUR", now)
    found = [
        *quota_crossings(Scope.TEAM, "team-a", "2026-Q4", Metric.WON_REVENUE, None, Decimal("1.6"),
                         Decimal(144000), Decimal(90000), now, settings, "Team A"),
        *deal_milestones(deal, [], ZoneInfo("Europe/Berlin"), 1, settings, "Ann Lee"),
        *leaderboard_finishes("team-a", "2026-11", Metric.DEALS_WON, [Standing("r1", "Ann Lee", Decimal(3))],
                              now, settings),
    ]  # fmt: skip
    days = [Day(datetime(2026, 11, 16 + i, tzinfo=UTC).date(), 5) for i in range(5)]
    streaking = streak(days, now.date(), settings, rep_id="r1", at=now, name="Ann Lee")
    assert streaking is not None
    found.append(streaking)
    texts = [en(kind_of(f.milestone), dict(f.facts)) for f in found]
    assert texts == [
        "Team A just hit 50% of the 2026-Q4 won revenue target: €144,000.00 of €90,000.00!",
        "Team A reached the 2026-Q4 team goal: €144,000.00 of €90,000.00 won!",
        "Team A just hit 150% of the 2026-Q4 won revenue target: €144,000.00 of €90,000.00!",
        "First win ever for Ann Lee: a €5,000.00 deal!",
        "First win of 2026-Q4 for Ann Lee: a €5,000.00 deal!",
        "Ann Lee finished 1st in deals won for 2026-11: 3!",
        "Ann Lee met the daily goal of 5 activities 5 business days in a row!",
    ]


def test_the_team_largest_deal_headline_names_the_rep_and_the_team() -> None:
    facts = {"name": "Team A", "rep": "Ann Lee", "amount": Decimal(120000), "currency": "EUR", "period": "2026-Q4"}
    assert en("team_largest_deal", facts) == "Ann Lee closed the largest deal of 2026-Q4 for Team A: €120,000.00!"


@pytest.mark.parametrize(("place", "ordinal"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"),
                                                (12, "12th"), (13, "13th"), (21, "21st"), (22, "22nd")])  # fmt: skip
def test_places_read_as_english_ordinals(place: int, ordinal: str) -> None:
    assert en("leaderboard", {"name": "Ann", "place": place}, {"leaderboard": "{ordinal}"}) == ordinal


# --- percentages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attainment", "text"), [("0.996", "99%"), ("0.9999", "99%"), ("1", "100%"),
                                                  ("1.2345", "123%"), ("0.005", "0%")])  # fmt: skip
def test_percentages_are_rounded_down(attainment: str, text: str) -> None:
    assert en("quota", {**QUOTA_FACTS, "attainment": Decimal(attainment)}, {"quota": "{percent}"}) == text
    assert en("quota", {**QUOTA_FACTS, "attainment": Decimal(attainment)}, {"quota": "{attainment}"}) == text


@given(st.decimals(min_value=0, max_value=Decimal("0.99999"), places=5))
def test_an_attainment_below_one_never_reads_100_percent(attainment: Decimal) -> None:
    assert en("quota", {**QUOTA_FACTS, "attainment": attainment}, {"quota": "{percent}"}) != "100%"


# --- de_DE -----------------------------------------------------------------------------------------------


def test_german_amounts_and_percentages_follow_the_locale() -> None:
    text = render("quota", QUOTA_FACTS, locale="de_DE", currency="EUR")
    assert f"90.000,00{NBSP}€ of 90.000,00{NBSP}€" in text
    assert f"100{NBSP}%" in text


def test_a_german_tenant_template_reads_entirely_in_german() -> None:
    templates = {"personal_record": "{name} hat einen neuen Rekord: {amount} (bisher {previous_record})!"}
    text = render("personal_record", RECORD_FACTS, locale="de_DE", currency="EUR", templates=templates)
    assert text == f"Ann Lee hat einen neuen Rekord: 120.000,00{NBSP}€ (bisher 80.000,00{NBSP}€)!"


def test_german_dates_and_ordinals_follow_the_locale() -> None:
    facts = {"name": "Ann", "place": 2, "first_day": "2026-11-16"}
    assert render("x", facts, locale="de_DE", currency=None, templates={"x": "{ordinal} {first_day}"}) == (
        "2. 16.11.2026")
    assert render("x", facts, locale="en", currency=None, templates={"x": "{first_day}"}) == "Nov 16, 2026"


@pytest.mark.parametrize("locale", ["de-DE", "de"])
def test_locale_spellings_are_accepted(locale: str) -> None:
    assert f"90.000,00{NBSP}€" in render("quota", QUOTA_FACTS, locale=locale, currency="EUR")


@pytest.mark.parametrize("locale", ["xx_YY", "", "not a locale"])
def test_an_unknown_locale_reads_as_english(locale: str) -> None:
    assert render("quota", QUOTA_FACTS, locale=locale, currency="EUR") == en("quota", QUOTA_FACTS)


# --- tenant templates ------------------------------------------------------------------------------------


def test_a_tenant_template_overrides_the_default() -> None:
    templates = {"quota": "🎉 {name}: {percent} of {target} in {period}"}
    assert en("quota", QUOTA_FACTS, templates) == "🎉 Ann Lee: 100% of €90,000.00 in 2026-Q4"


@pytest.mark.parametrize("template", ["", "   "])
def test_an_empty_tenant_template_falls_back_to_the_default(template: str) -> None:
    assert en("quota", QUOTA_FACTS, {"quota": template}) == en("quota", QUOTA_FACTS)


def test_a_tenant_template_for_another_kind_leaves_the_default() -> None:
    assert en("quota", QUOTA_FACTS, {"first_win": "{name}!"}) == en("quota", QUOTA_FACTS)


@pytest.mark.parametrize("template", [
    "{name} hit {unknown}!",  # unknown placeholder
    "{name hit it",  # unbalanced brace
    "{name}} hit it",  # stray closing brace
    "{} hit it",  # positional field
    "{0} hit it",
    "{name.__class__} hit it",  # attribute access
    "{name[0]} hit it",  # index access
    "{name!r} hit it",  # conversion
    "{name:>40} hit it",  # format spec
    "{name:{name}} hit it",  # nested field
])  # fmt: skip
def test_a_broken_tenant_template_falls_back_to_the_default(template: str) -> None:
    assert en("quota", QUOTA_FACTS, {"quota": template}) == en("quota", QUOTA_FACTS)


def test_doubled_braces_are_literal_braces() -> None:
    assert en("quota", QUOTA_FACTS, {"quota": "{{{name}}}"}) == "{Ann Lee}"


def test_a_kind_without_a_template_gets_a_generic_sentence() -> None:
    assert en("something_new", {"name": "Ann Lee"}) == "Ann Lee reached a new milestone!"


def test_missing_facts_never_crash_a_headline() -> None:
    assert en("personal_record", {"name": "Ann Lee"}) == "Ann Lee reached a new milestone!"
    assert en("quota", {}) == "reached a new milestone!"


def test_facts_read_back_from_json_as_strings_are_formatted_too() -> None:
    facts = {key: str(value) for key, value in QUOTA_FACTS.items()}
    assert en("quota", facts) == en("quota", QUOTA_FACTS)


@given(st.text(max_size=40))
def test_no_template_text_crashes_a_headline(template: str) -> None:
    text = en("quota", QUOTA_FACTS, {"quota": template})
    assert isinstance(text, str)
    assert text
