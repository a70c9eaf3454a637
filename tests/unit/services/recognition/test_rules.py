"""Milestones: which an attainment reached, their stable ids, and the words that celebrate them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.recognition.rules import MILESTONES, celebration_id, headline, reached
from shared.events import AttainmentUpdated, Metric, Scope

NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def update(attainment: str | None = "1.0000", target: str | None = "90000", actual: str = "90000",
           **changes: Any) -> AttainmentUpdated:  # fmt: skip
    fields: dict[str, Any] = {
        "scope": "rep", "scope_id": "r1", "period": "2026-Q4", "metric": "won_revenue", "actual": actual,
        "target": target, "attainment": attainment, "as_of": NOW, "name": "Ann Lee",
    }  # fmt: skip
    fields.update(changes)
    return AttainmentUpdated(**fields)


# --- reached -------------------------------------------------------------------------------------------


def test_full_attainment_of_won_revenue_reaches_quota_100() -> None:
    [milestone] = reached("acme", update(), NOW)
    assert milestone.milestone == "quota_100"
    assert milestone.scope is Scope.REP
    assert milestone.scope_id == "r1"
    assert milestone.period == "2026-Q4"
    assert milestone.value == Decimal("90000")
    assert milestone.occurred_at == NOW


def test_attainment_above_one_reaches_quota_100_with_the_actual_as_value() -> None:
    [milestone] = reached("acme", update("1.3333", actual="120000"), NOW)
    assert milestone.milestone == "quota_100"
    assert milestone.value == Decimal("120000")


def test_attainment_just_below_one_reaches_nothing() -> None:
    assert reached("acme", update("0.9999", actual="89991"), NOW) == []


@pytest.mark.parametrize("metric", [m for m in Metric if m is not Metric.WON_REVENUE])
def test_only_won_revenue_is_celebrated(metric: Metric) -> None:
    assert reached("acme", update("2.0000", metric=metric), NOW) == []


@pytest.mark.parametrize(("attainment", "target"), [(None, "90000"), ("1.0000", None), ("1.0000", "0"), (None, None)])
def test_nothing_is_reached_without_a_target_or_an_attainment(attainment: str | None, target: str | None) -> None:
    assert reached("acme", update(attainment, target=target), NOW) == []


def test_a_team_reaching_its_target_is_celebrated_under_its_team_scope() -> None:
    [milestone] = reached("acme", update(scope="team", scope_id="team-a", name=None), NOW)
    assert milestone.scope is Scope.TEAM
    assert milestone.scope_id == "team-a"
    assert milestone.headline.startswith("team-a just hit 100%")


def test_the_milestone_serialises_value_as_a_plain_decimal_string() -> None:
    [milestone] = reached("acme", update(actual="9E+4"), NOW)
    assert milestone.model_dump(mode="json")["value"] == "90000"


# --- celebration_id ------------------------------------------------------------------------------------


def test_the_celebration_id_is_the_stable_id_of_tenant_scope_id_milestone_and_period() -> None:
    [milestone] = reached("acme", update(), NOW)
    assert milestone.celebration_id == str(celebration_id("acme", "rep", "r1", "quota_100", "2026-Q4"))
    assert uuid.UUID(milestone.celebration_id).version == 5


def test_the_same_milestone_has_the_same_id_whatever_the_numbers_and_time() -> None:
    first = reached("acme", update(), NOW)[0].celebration_id
    later = reached("acme", update("1.2000", actual="108000"), datetime(2026, 12, 30, tzinfo=UTC))[0]
    assert later.celebration_id == first


def test_celebration_id_is_the_same_for_a_scope_enum_and_its_string() -> None:
    assert celebration_id("acme", Scope.REP, "r1", "quota_100", "2026-Q4") == celebration_id(
        "acme", "rep", "r1", "quota_100", "2026-Q4"
    )


@pytest.mark.parametrize(
    "other",
    [
        ("globex", "rep", "r1", "quota_100", "2026-Q4"),
        ("acme", "team", "r1", "quota_100", "2026-Q4"),
        ("acme", "rep", "r2", "quota_100", "2026-Q4"),
        ("acme", "rep", "r1", "quota_150", "2026-Q4"),
        ("acme", "rep", "r1", "quota_100", "2027-Q1"),
        ("acme", "rep", "r1", "quota_100", "2026-11"),
    ],
)
def test_celebration_id_differs_when_any_part_differs(other: tuple[str, str, str, str, str]) -> None:
    assert celebration_id(*other) != celebration_id("acme", "rep", "r1", "quota_100", "2026-Q4")


# --- headline ------------------------------------------------------------------------------------------


def test_the_headline_reads_as_a_sentence_with_name_percent_period_and_amounts() -> None:
    [milestone] = reached("acme", update("1.0500", actual="94500"), NOW)
    assert milestone.headline == (
        "Ann Lee just hit 105% of the 2026-Q4 won revenue target with 94,500.00 against 90,000.00!"
    )


def test_the_headline_is_one_line_starting_with_the_name_and_naming_the_period() -> None:
    text = headline(update("1.0000"), MILESTONES[0])
    assert "\n" not in text
    assert text.startswith("Ann Lee ")
    assert "2026-Q4" in text
    assert text.rstrip()[-1] in ".!"
    assert "E+" not in text
    assert "Decimal" not in text
    assert "won_revenue" not in text


def test_the_headline_falls_back_to_the_scope_id_without_a_name() -> None:
    assert headline(update(name=None), MILESTONES[0]).startswith("r1 just hit 100% of the 2026-Q4")


def test_the_headline_rounds_the_percentage_to_a_whole_number() -> None:
    assert "just hit 123% of" in headline(update("1.2345", actual="111105"), MILESTONES[0])
