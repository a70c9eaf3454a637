"""From a finding to the `coaching.task.created` payload: stable ids, due dates, playbooks."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.coaching.checkins import DEFAULT_CATALOGUE, EPOCH, Playbook, compose, json_ready, task_id
from services.coaching.model import (
    BEHIND_PACE,
    FORECAST_SHORT,
    NO_ACTIVITY,
    RULES,
    STALLED_PIPELINE,
    Finding,
    Policy,
    RepView,
)
from shared.events import Evidence, Metric, TaskCreated

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")
POLICY = Policy()
WEEK = timedelta(days=7)
WINDOW_START = EPOCH + 2968 * WEEK  # a cool-down window boundary (Thursday 2026-11-19)
FRIDAY = datetime(2026, 11, 13, 10, tzinfo=BERLIN).astimezone(UTC)


def view(**changes: Any) -> RepView:
    base = RepView(
        tenant="acme", rep_id="r1", name="Ann Lee", manager_id="m1", team_id="t1", timezone=BERLIN,
        tenant_timezone=BERLIN, known_since=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return replace(base, **changes)


def finding(rule: str = BEHIND_PACE, severity: Any = "warning", **details: Any) -> Finding:
    return Finding(
        rule=rule, severity=severity, summary="Ann Lee is at 50% of pace on won revenue for 2026-11.",
        evidence=Evidence(metric=Metric.WON_REVENUE, actual=Decimal("3000"), expected=Decimal("6000.00"),
                          period="2026-11"),
        details=details,
    )  # fmt: skip


# --- task_id -----------------------------------------------------------------------------------------


def test_task_id_is_stable_within_one_cooldown_window() -> None:
    first = task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START, WEEK)
    assert uuid.UUID(first).version == 5
    for later in (timedelta(days=3), WEEK - timedelta(microseconds=1)):
        assert task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START + later, WEEK) == first


def test_task_id_changes_in_the_next_and_the_previous_window() -> None:
    first = task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START, WEEK)
    assert task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START + WEEK, WEEK) != first
    assert task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START - timedelta(microseconds=1), WEEK) != first


def test_a_finding_turning_critical_gets_a_new_task_id_in_the_same_window() -> None:
    now = WINDOW_START + timedelta(days=1)
    assert task_id("acme", "r1", BEHIND_PACE, "critical", now, WEEK) != task_id(
        "acme", "r1", BEHIND_PACE, "warning", now, WEEK
    )


@pytest.mark.parametrize(
    ("tenant", "rep_id", "rule"),
    [("other", "r1", BEHIND_PACE), ("acme", "r2", BEHIND_PACE), ("acme", "r1", NO_ACTIVITY)],
)
def test_task_id_differs_per_tenant_rep_and_rule(tenant: str, rep_id: str, rule: str) -> None:
    now = WINDOW_START + timedelta(days=1)
    assert task_id(tenant, rep_id, rule, "warning", now, WEEK) != task_id(
        "acme", "r1", BEHIND_PACE, "warning", now, WEEK
    )


def test_task_id_does_not_depend_on_the_zone_now_is_given_in() -> None:
    now = WINDOW_START + timedelta(days=1)
    shifted = now.astimezone(timezone(timedelta(hours=-8)))
    assert task_id("acme", "r1", BEHIND_PACE, "warning", shifted, WEEK) == task_id(
        "acme", "r1", BEHIND_PACE, "warning", now, WEEK
    )


def test_task_id_windows_follow_the_cooldown_length() -> None:
    day = timedelta(days=1)
    now = WINDOW_START + timedelta(days=3)
    assert task_id("acme", "r1", BEHIND_PACE, "warning", now, day) != task_id(
        "acme", "r1", BEHIND_PACE, "warning", now + day, day
    )
    assert task_id("acme", "r1", BEHIND_PACE, "warning", now, WEEK) == task_id(
        "acme", "r1", BEHIND_PACE, "warning", now + day, WEEK
    )


@pytest.mark.parametrize("cooldown", [timedelta(0), -WEEK])
def test_task_id_refuses_a_cooldown_that_is_not_positive(cooldown: timedelta) -> None:
    with pytest.raises(ValueError, match="cooldown"):
        task_id("acme", "r1", BEHIND_PACE, "warning", WINDOW_START, cooldown)


# --- compose -----------------------------------------------------------------------------------------


def test_the_task_carries_the_rep_the_manager_and_the_finding() -> None:
    task = compose(view(), finding(pace="0.5000"), FRIDAY, POLICY)
    assert isinstance(task, TaskCreated)
    assert (task.rep_id, task.manager_id, task.rep_name, task.team_id) == ("r1", "m1", "Ann Lee", "t1")
    assert (task.rule, task.severity) == (BEHIND_PACE, "warning")
    assert task.summary == "Ann Lee is at 50% of pace on won revenue for 2026-11."
    assert task.evidence.expected == Decimal("6000.00")
    assert task.details == {"pace": "0.5000"}


def test_the_task_id_is_the_one_of_the_policys_cooldown_window() -> None:
    task = compose(view(), finding(severity="critical"), FRIDAY, POLICY)
    assert task.task_id == task_id("acme", "r1", BEHIND_PACE, "critical", FRIDAY, timedelta(days=7))
    shorter = compose(view(), finding(severity="critical"), FRIDAY, POLICY.with_overrides({"cooldown_days": 1}))
    assert shorter.task_id == task_id("acme", "r1", BEHIND_PACE, "critical", FRIDAY, timedelta(days=1))


def test_a_task_raised_on_friday_is_due_on_tuesday_at_five_in_the_reps_zone() -> None:
    task = compose(view(), finding(), FRIDAY, POLICY)
    assert task.due_at == datetime(2026, 11, 17, 17, tzinfo=BERLIN)
    task = compose(view(timezone=LA), finding(), FRIDAY, POLICY)  # 01:00 on Friday in Los Angeles
    assert task.due_at == datetime(2026, 11, 17, 17, tzinfo=LA)


def test_the_due_date_skips_the_reps_days_off() -> None:
    task = compose(view(days_off=frozenset({date(2026, 11, 16), date(2026, 11, 17)})), finding(), FRIDAY, POLICY)
    assert task.due_at == datetime(2026, 11, 19, 17, tzinfo=BERLIN)


def test_the_due_date_follows_the_policy() -> None:
    policy = POLICY.with_overrides({"due_working_days": 0, "due_hour": 9})
    assert compose(view(), finding(), FRIDAY, policy).due_at == datetime(2026, 11, 16, 9, tzinfo=BERLIN)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_has_a_playbook_with_actions_and_training(rule: str) -> None:
    task = compose(view(), finding(rule, stale_deal_ids=["d-1"]), FRIDAY, POLICY)
    assert task.suggested_actions == [a for a in task.suggested_actions if a and "{" not in a]
    assert len(task.suggested_actions) >= 2
    assert task.training


def test_the_stalled_pipeline_actions_name_the_stale_deals() -> None:
    task = compose(view(), finding(STALLED_PIPELINE, stale_deal_ids=["d-1", "d-4"], days=14), FRIDAY, POLICY)
    assert task.suggested_actions[0] == (
        "Walk through the stale deals d-1, d-4: a dated next step for each, or close it as lost"
    )
    assert task.details == {"stale_deal_ids": ["d-1", "d-4"], "days": 14}


def test_without_stale_deals_the_stale_deal_action_is_left_out() -> None:
    task = compose(view(), finding(STALLED_PIPELINE, coverage="1.50", remaining="40000"), FRIDAY, POLICY)
    assert task.suggested_actions
    assert not any("stale" in action for action in task.suggested_actions)
    assert any("2026-11" in action for action in task.suggested_actions)


def test_the_forecast_short_actions_name_the_deals_that_could_close_the_gap() -> None:
    closing = ["d-7 (12,000.00 at 60% by 2026-12-10)", "d-3 (8,000.00 at 40% by 2026-12-15)"]
    deals = [{"deal_id": "d-7", "amount": "12000"}, {"deal_id": "d-3", "amount": "8000"}]
    task = compose(view(), finding(FORECAST_SHORT, gap="50000", deals=deals, closing_deals=closing), FRIDAY, POLICY)
    assert task.suggested_actions[0] == (
        "Go through the deals that could close the gap, largest expected first: d-7 (12,000.00 at 60% by"
        " 2026-12-10), d-3 (8,000.00 at 40% by 2026-12-15). For each: what must happen to win it inside 2026-11?"
    )
    assert task.details["deals"] == deals and task.details["gap"] == "50000"
    without = compose(view(), finding(FORECAST_SHORT, gap="50000", deals=[], closing_deals=[]), FRIDAY, POLICY)
    assert len(without.suggested_actions) == 2 and not any("largest" in a for a in without.suggested_actions)


def test_a_behind_pace_task_on_a_kpi_the_tenant_defined_names_it_in_words() -> None:
    demos = Finding(rule=BEHIND_PACE, severity="warning", summary="Ann Lee is at 62% of pace on demos held.",
                    evidence=Evidence(metric="demos_held", actual=Decimal("12.5"), expected=Decimal("20.00"),
                                      period="2026-11"))
    task = compose(view(), demos, FRIDAY, POLICY)
    assert task.evidence.metric == "demos_held"
    assert "Agree a weekly demos held goal for the rest of 2026-11 that closes the gap to pace" in (
        task.suggested_actions)


def test_a_tenants_own_playbook_replaces_the_default_for_its_rule() -> None:
    own = {BEHIND_PACE: Playbook(("Call {metric} owner about {period}", "Use {missing} facts", "Keep {{braces}}"),
                                 ("Our sales academy",))}  # fmt: skip
    task = compose(view(), finding(), FRIDAY, POLICY, own)
    assert task.suggested_actions == ["Call won revenue owner about 2026-11", "Keep {braces}"]
    assert task.training == ["Our sales academy"]


def test_a_rule_missing_from_the_tenants_playbooks_falls_back_to_the_default() -> None:
    own = {BEHIND_PACE: Playbook(("Ours",), ())}
    task = compose(view(), finding(NO_ACTIVITY), FRIDAY, POLICY, own)
    assert task.training == list(DEFAULT_CATALOGUE[NO_ACTIVITY].training)


def test_stray_braces_in_a_custom_text_are_kept_literally() -> None:
    own = {BEHIND_PACE: Playbook(("Fix the {pipeline",), ())}
    assert compose(view(), finding(), FRIDAY, POLICY, own).suggested_actions == ["Fix the {pipeline"]


def test_the_details_are_json_ready() -> None:
    details: dict[str, Any] = {
        "amount": Decimal("10.50"), "when": datetime(2026, 11, 13, tzinfo=UTC), "day": date(2026, 11, 13),
        "ids": ("b", "a"), "set": frozenset({"y", "x"}), "n": 3, "none": None, "nested": {"x": Decimal(1)},
    }  # fmt: skip
    task = compose(view(), finding(**details), FRIDAY, POLICY)
    assert task.details == json_ready(details) == {
        "amount": "10.50", "when": "2026-11-13T00:00:00+00:00", "day": "2026-11-13", "ids": ["b", "a"],
        "set": ["x", "y"], "n": 3, "none": None, "nested": {"x": "1"},
    }  # fmt: skip
    assert json.loads(json.dumps(task.details)) == task.details
    assert json.loads(task.model_dump_json())["details"] == task.details


def test_the_payload_round_trips_through_json() -> None:
    task = compose(view(), finding(STALLED_PIPELINE, stale_deal_ids=["d-1"]), FRIDAY, POLICY)
    assert TaskCreated.model_validate_json(task.model_dump_json()) == task
