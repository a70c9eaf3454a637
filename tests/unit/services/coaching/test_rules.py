"""The behind-pace rule: when a rep needs a check-in, and what the task says."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.coaching.rules import BEHIND_PACE, EPOCH, Policy, Snapshot, behind_pace, task_id
from shared.events import Metric

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
HALFWAY = datetime(2026, 11, 16, tzinfo=UTC)  # elapsed share exactly 0.5: expected = 45,000.00
POLICY = Policy()


def snapshot(actual: str = "30000", target: str | None = "90000", **changes: Any) -> Snapshot:
    base = Snapshot(
        tenant="acme", rep_id="r1", name="Ann Lee", manager_id="m1", period="2026-11", metric=Metric.WON_REVENUE,
        actual=Decimal(actual), target=None if target is None else Decimal(target),
        period_start=START, period_end=END, first_seen_at=START,
    )  # fmt: skip
    return replace(base, **changes)


# --- when there is no task ---------------------------------------------------------------------------


def test_no_task_inside_the_grace_period_after_the_target_was_first_seen() -> None:
    first_seen = HALFWAY - POLICY.grace + timedelta(seconds=1)
    assert behind_pace(snapshot("0", first_seen_at=first_seen), HALFWAY, POLICY) is None


def test_a_task_once_the_grace_period_is_over() -> None:
    first_seen = HALFWAY - POLICY.grace
    assert behind_pace(snapshot("0", first_seen_at=first_seen), HALFWAY, POLICY) is not None


@pytest.mark.parametrize("now", [START - timedelta(seconds=1), END, END + timedelta(days=3)])
def test_no_task_outside_the_period(now: datetime) -> None:
    assert behind_pace(snapshot("0", first_seen_at=START - timedelta(days=30)), now, POLICY) is None


@pytest.mark.parametrize("target", [None, "0"])
def test_no_task_without_a_target(target: str | None) -> None:
    assert behind_pace(snapshot("0", target=target), HALFWAY, POLICY) is None


def test_no_task_at_exactly_the_pace_threshold() -> None:
    # 31,500 / 45,000 = 0.7 exactly
    assert behind_pace(snapshot("31500"), HALFWAY, POLICY) is None


@pytest.mark.parametrize("actual", ["45000", "90000", "200000"])
def test_no_task_on_or_above_pace(actual: str) -> None:
    assert behind_pace(snapshot(actual), HALFWAY, POLICY) is None


def test_no_task_at_the_very_start_of_the_period_when_nothing_is_expected_yet() -> None:
    policy = Policy(grace=timedelta(0))
    assert behind_pace(snapshot("0"), START, policy) is None


# --- the task ----------------------------------------------------------------------------------------


def test_just_below_the_pace_threshold_is_a_warning() -> None:
    task = behind_pace(snapshot("31499.99"), HALFWAY, POLICY)
    assert task is not None
    assert task.severity == "warning"
    assert task.rule == BEHIND_PACE


def test_exactly_at_the_critical_line_is_still_a_warning() -> None:
    task = behind_pace(snapshot("18000"), HALFWAY, POLICY)  # 0.4 of pace
    assert task is not None
    assert task.severity == "warning"


@pytest.mark.parametrize("actual", ["17999.99", "0"])
def test_below_forty_percent_of_pace_is_critical(actual: str) -> None:
    task = behind_pace(snapshot(actual), HALFWAY, POLICY)
    assert task is not None
    assert task.severity == "critical"


def test_the_thresholds_come_from_the_policy() -> None:
    policy = Policy(threshold=Decimal("0.5"), critical_below=Decimal("0.1"))
    assert behind_pace(snapshot("30000"), HALFWAY, policy) is None  # 0.667 of pace
    task = behind_pace(snapshot("20000"), HALFWAY, policy)  # 0.444 of pace
    assert task is not None
    assert task.severity == "warning"


def test_the_summary_is_one_sentence_naming_the_rep_metric_period_and_numbers() -> None:
    task = behind_pace(snapshot("30000"), HALFWAY, POLICY)
    assert task is not None
    assert task.summary == (
        "Ann Lee is at 66% of pace on won revenue for 2026-11: 30,000.00 against 45,000.00 expected by now"
        " (target 90,000.00)."
    )
    assert "\n" not in task.summary
    assert task.summary.count(". ") == 0


def test_the_summary_falls_back_to_the_rep_id_without_a_name() -> None:
    task = behind_pace(snapshot("30000", name=None), HALFWAY, POLICY)
    assert task is not None
    assert task.summary.startswith("r1 is at 66% of pace")


def test_the_task_carries_rep_manager_and_evidence() -> None:
    task = behind_pace(snapshot("20", target="100", metric=Metric.CALLS), HALFWAY, POLICY)
    assert task is not None
    assert task.rep_id == "r1"
    assert task.manager_id == "m1"
    assert task.evidence.metric is Metric.CALLS
    assert task.evidence.actual == Decimal("20")
    assert task.evidence.expected == Decimal("50.00")
    assert task.evidence.period == "2026-11"
    assert "on calls for 2026-11" in task.summary


def test_the_evidence_serialises_decimals_as_plain_strings() -> None:
    task = behind_pace(snapshot("30000"), HALFWAY, POLICY)
    assert task is not None
    evidence = task.model_dump(mode="json")["evidence"]
    assert evidence == {"metric": "won_revenue", "actual": "30000", "expected": "45000.00", "period": "2026-11"}


def test_the_task_suggests_actions_and_training() -> None:
    task = behind_pace(snapshot("30000"), HALFWAY, POLICY)
    assert task is not None
    assert task.suggested_actions
    assert all(isinstance(action, str) and action for action in task.suggested_actions)
    assert task.training


def test_the_task_is_due_two_days_from_now() -> None:
    now = HALFWAY + timedelta(hours=5, minutes=3)
    task = behind_pace(snapshot("30000"), now, POLICY)
    assert task is not None
    assert task.due_at == now + timedelta(days=2)


def test_the_task_id_is_the_rules_stable_id_for_this_cooldown_window() -> None:
    task = behind_pace(snapshot("30000"), HALFWAY, POLICY)
    assert task is not None
    assert task.task_id == str(task_id("acme", "r1", BEHIND_PACE, HALFWAY, POLICY.cooldown))
    assert uuid.UUID(task.task_id).version == 5


# --- task_id -----------------------------------------------------------------------------------------

WEEK = timedelta(days=7)
WINDOW_START = EPOCH + 2940 * WEEK  # a cool-down window boundary (2026-05-07)


def test_task_id_is_stable_within_one_cooldown_window() -> None:
    first = task_id("acme", "r1", BEHIND_PACE, WINDOW_START, WEEK)
    assert task_id("acme", "r1", BEHIND_PACE, WINDOW_START + timedelta(days=3), WEEK) == first
    assert task_id("acme", "r1", BEHIND_PACE, WINDOW_START + WEEK - timedelta(microseconds=1), WEEK) == first


def test_task_id_changes_in_the_next_cooldown_window() -> None:
    first = task_id("acme", "r1", BEHIND_PACE, WINDOW_START, WEEK)
    assert task_id("acme", "r1", BEHIND_PACE, WINDOW_START + WEEK, WEEK) != first
    assert task_id("acme", "r1", BEHIND_PACE, WINDOW_START - timedelta(microseconds=1), WEEK) != first


def test_task_id_does_not_depend_on_the_zone_now_is_given_in() -> None:
    berlin = timezone(timedelta(hours=1))
    now = WINDOW_START + timedelta(days=1)
    assert task_id("acme", "r1", BEHIND_PACE, now.astimezone(berlin), WEEK) == task_id(
        "acme", "r1", BEHIND_PACE, now, WEEK
    )


@pytest.mark.parametrize(
    ("tenant", "rep_id", "rule"), [("other", "r1", BEHIND_PACE), ("acme", "r2", BEHIND_PACE), ("acme", "r1", "x")]
)
def test_task_id_differs_per_tenant_rep_and_rule(tenant: str, rep_id: str, rule: str) -> None:
    now = WINDOW_START + timedelta(days=1)
    assert task_id(tenant, rep_id, rule, now, WEEK) != task_id("acme", "r1", BEHIND_PACE, now, WEEK)


def test_task_id_windows_follow_the_cooldown_length() -> None:
    day = timedelta(days=1)
    now = WINDOW_START + timedelta(days=3)
    assert task_id("acme", "r1", BEHIND_PACE, now, day) != task_id("acme", "r1", BEHIND_PACE, now + day, day)
    assert task_id("acme", "r1", BEHIND_PACE, now, WEEK) == task_id("acme", "r1", BEHIND_PACE, now + day, WEEK)
