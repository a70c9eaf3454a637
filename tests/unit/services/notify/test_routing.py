"""Who hears which event on which channel: check-ins, escalations, celebrations, reviews and plans, with
preferences, team channels and stable idempotency keys."""

from __future__ import annotations

import doctest
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from services.notify import routing
from services.notify.model import Intent, Person, Preferences, TeamChannels
from services.notify.routing import channels_for, idempotency_key, route
from shared.events import (
    Evidence,
    MilestoneReached,
    PlanStepSettled,
    ReviewPublished,
    Scope,
    TaskClosed,
    TaskCreated,
    TaskEscalated,
)

AT = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)

# olaf (VP) <- mia (manager of emea) <- ana, bob; lee has no manager and a team without channels
PEOPLE = {
    p.person_id: p
    for p in (
        Person("olaf", "Olaf", "olaf@example.com", "Europe/Berlin", None, "board"),
        Person("mia", "Mia", "mia@example.com", "Europe/Berlin", "olaf", "emea"),
        Person("ana", "Ana", "ana@example.com", "Europe/Berlin", "mia", "emea"),
        Person("bob", "Bob", "bob@example.com", "America/New_York", "mia", "emea"),
        Person("lee", "Lee", "lee@example.com", "Asia/Singapore", None, "apac"),
    )
}
TEAMS = {
    "emea": TeamChannels("emea", slack_webhook="https://hooks.slack.test/emea", teams_webhook="https://teams.test/emea"),
    "apac": TeamChannels("apac"),
}
SLACK_ONLY = {"emea": TeamChannels("emea", slack_channel="#emea-wins")}
NO_PREFS: dict[str, Preferences] = {}


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def pairs(intents: list[Intent]) -> list[tuple[str, str]]:
    return [(i.recipient, i.channel) for i in intents]


def task_created(rep: str = "ana", manager: str | None = "mia") -> TaskCreated:
    return TaskCreated(task_id="task-1", rep_id=rep, manager_id=manager, rule="behind_pace", severity="warning",
                       summary="Ana is behind pace", evidence=Evidence(metric="won_revenue", actual=Decimal(3000),
                                                                        expected=Decimal(6000), period="2026-11"),
                       suggested_actions=[], training=[], due_at=AT)


def task_escalated(manager: str | None = "mia", escalated_to: str | None = None) -> TaskEscalated:
    return TaskEscalated(task_id="task-1", rep_id="ana", manager_id=manager, escalated_to=escalated_to,
                         rule="behind_pace", severity="warning", summary="Ana is behind pace", due_at=AT,
                         escalated_at=AT)


def milestone(scope: Any = Scope.REP, scope_id: str = "ana") -> MilestoneReached:
    return MilestoneReached(celebration_id="c-1", scope=scope, scope_id=scope_id, milestone="quota_100",
                            period="2026-Q4", value=Decimal(90000), headline="Ana reached 100 %", occurred_at=AT)


def review(scope: Scope = Scope.REP, scope_id: str = "ana", manager: str | None = "mia",
           members: list[str] | None = None) -> ReviewPublished:
    return ReviewPublished(review_id="r-1", scope=scope, scope_id=scope_id, name=None, manager_id=manager,
                           week="2026-W46", headline="A good week", figures=[], activities_week=12,
                           activities_week_before=10, open_tasks=0, overdue_tasks=0, members=members or [],
                           published_at=AT)


def plan_step(status: str = "completed", manager: str | None = "mia") -> PlanStepSettled:
    return PlanStepSettled(plan_id="p-1", step_id="s-1", rep_id="ana", manager_id=manager, title="Ten calls",
                           metric="calls", target=Decimal(10), progress=Decimal(10), due_at=AT, status=status,
                           settled_at=AT, plan_status="open")


def routed(tenant: str, event_type: str, data: BaseModel, prefs: dict[str, Preferences] = NO_PREFS,
           teams: dict[str, TeamChannels] = TEAMS, people: dict[str, Person] = PEOPLE) -> list[Intent]:
    return route(tenant, "evt-1", event_type, data, people, teams, prefs)


# --- check-ins ---------------------------------------------------------------------------------------------


def test_a_check_in_goes_privately_to_the_rep_and_their_manager_by_email(tenant: str) -> None:
    intents = routed(tenant, "coaching.task.created", task_created())
    assert pairs(intents) == [("ana", "email"), ("mia", "email")]
    assert {i.kind for i in intents} == {"check_in"}
    assert not any(i.to_team for i in intents)


def test_a_check_in_without_a_manager_in_the_event_finds_the_manager_in_the_roster(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.created", task_created(manager=None))) == [
        ("ana", "email"), ("mia", "email")]


def test_a_check_in_of_a_rep_without_any_manager_reaches_the_rep_alone(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.created", task_created(rep="lee", manager=None))) == [("lee", "email")]


def test_a_check_in_follows_the_channels_each_person_chose_for_check_ins(tenant: str) -> None:
    prefs = {"ana": Preferences(channels={"check_in": ("slack",)}),
             "mia": Preferences(channels={"check_in": ("email", "teams", "email")})}
    assert pairs(routed(tenant, "coaching.task.created", task_created(), prefs)) == [
        ("ana", "slack"), ("mia", "email"), ("mia", "teams")]


def test_a_person_who_switched_a_kind_off_does_not_hear_it(tenant: str) -> None:
    prefs = {"mia": Preferences(channels={"check_in": ()})}
    assert pairs(routed(tenant, "coaching.task.created", task_created(), prefs)) == [("ana", "email")]


def test_people_missing_from_the_roster_are_skipped(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.created", task_created(manager="gone"))) == [("ana", "email")]


# --- escalations -------------------------------------------------------------------------------------------


def test_an_escalation_goes_to_the_managers_manager(tenant: str) -> None:
    intents = routed(tenant, "coaching.task.escalated", task_escalated())
    assert pairs(intents) == [("olaf", "email")]
    assert intents[0].kind == "escalation"


def test_an_escalation_goes_to_whom_coaching_escalated_it_when_it_says(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.escalated", task_escalated(escalated_to="lee"))) == [("lee", "email")]


def test_an_escalation_goes_to_the_manager_when_nobody_is_above_them(tenant: str) -> None:
    people = {**PEOPLE, "mia": Person("mia", "Mia", "mia@example.com", "Europe/Berlin", None, "emea")}
    assert pairs(routed(tenant, "coaching.task.escalated", task_escalated(), people=people)) == [("mia", "email")]


def test_an_escalation_without_a_manager_in_the_event_walks_up_from_the_reps_manager(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.escalated", task_escalated(manager=None))) == [("olaf", "email")]


def test_an_escalation_to_someone_the_roster_does_not_know_falls_back_up_the_roster(tenant: str) -> None:
    assert pairs(routed(tenant, "coaching.task.escalated", task_escalated(escalated_to="gone"))) == [
        ("olaf", "email")]


def test_an_escalation_with_no_manager_anywhere_reaches_nobody(tenant: str) -> None:
    data = TaskEscalated(task_id="task-2", rep_id="lee", manager_id=None, escalated_to=None, rule="no_activity",
                         severity="warning", summary="No activity", due_at=AT, escalated_at=AT)
    assert routed(tenant, "coaching.task.escalated", data) == []


# --- celebrations ------------------------------------------------------------------------------------------


def test_a_reps_win_is_posted_to_the_team_channels_and_reaches_the_rep(tenant: str) -> None:
    intents = routed(tenant, "recognition.milestone.reached", milestone())
    assert pairs(intents) == [("team:emea", "slack"), ("team:emea", "teams"), ("ana", "email"), ("ana", "slack")]
    assert {i.kind for i in intents} == {"celebration"}


def test_an_opted_out_reps_win_is_not_posted_to_the_team_channel_but_still_reaches_the_rep(tenant: str) -> None:
    prefs = {"ana": Preferences(public_celebrations=False)}
    intents = routed(tenant, "recognition.milestone.reached", milestone(), prefs)
    assert not any(i.to_team for i in intents)
    assert pairs(intents) == [("ana", "email"), ("ana", "slack")]


def test_a_celebration_adds_slack_for_the_rep_only_when_the_team_has_a_slack_channel(tenant: str) -> None:
    assert pairs(routed(tenant, "recognition.milestone.reached", milestone(scope_id="lee"))) == [("lee", "email")]
    assert pairs(routed(tenant, "recognition.milestone.reached", milestone(), teams=SLACK_ONLY)) == [
        ("team:emea", "slack"), ("ana", "email"), ("ana", "slack")]


def test_a_teams_win_is_posted_to_the_team_channel(tenant: str) -> None:
    assert pairs(routed(tenant, "recognition.milestone.reached", milestone(Scope.TEAM, "emea"))) == [
        ("team:emea", "slack"), ("team:emea", "teams")]
    assert routed(tenant, "recognition.milestone.reached", milestone(Scope.TEAM, "apac")) == []


def test_a_contests_own_moment_and_an_unknown_reps_win_reach_nobody(tenant: str) -> None:
    assert routed(tenant, "recognition.milestone.reached", milestone("contest", "q4-push")) == []
    assert routed(tenant, "recognition.milestone.reached", milestone(scope_id="gone")) == []


# --- reviews and plans -------------------------------------------------------------------------------------


def test_a_reps_weekly_review_goes_to_the_rep_and_their_manager_by_email(tenant: str) -> None:
    intents = routed(tenant, "coaching.review.published", review())
    assert pairs(intents) == [("ana", "email"), ("mia", "email")]
    assert {i.kind for i in intents} == {"review"}


def test_a_teams_weekly_review_goes_to_the_manager_only(tenant: str) -> None:
    data = review(Scope.TEAM, "emea", members=["ana", "bob"])
    assert pairs(routed(tenant, "coaching.review.published", data)) == [("mia", "email")]
    assert routed(tenant, "coaching.review.published", review(Scope.TEAM, "apac", manager=None)) == []


@pytest.mark.parametrize("event_type", ["coaching.plan.step.completed", "coaching.plan.step.missed"])
def test_a_plan_step_goes_to_the_rep_and_their_manager(tenant: str, event_type: str) -> None:
    intents = routed(tenant, event_type, plan_step(status=event_type.rsplit(".", 1)[1]))
    assert pairs(intents) == [("ana", "email"), ("mia", "email")]
    assert {i.kind for i in intents} == {"plan"}


def test_events_notify_does_not_route_reach_nobody(tenant: str) -> None:
    closed = TaskClosed(task_id="task-1", rep_id="ana", manager_id="mia", rule="behind_pace", reason="completed",
                        closed_at=AT)
    assert routed(tenant, "coaching.task.closed", closed) == []


def test_data_of_the_wrong_model_for_its_type_is_refused(tenant: str) -> None:
    with pytest.raises(TypeError, match="TaskCreated"):
        routed(tenant, "coaching.task.created", milestone())


def test_every_routed_type_names_the_model_its_data_parses_into() -> None:
    assert set(routing.DATA) == {"coaching.task.created", "coaching.task.escalated", "recognition.milestone.reached",
                                 "coaching.review.published", "coaching.plan.step.completed",
                                 "coaching.plan.step.missed"}


# --- channels and keys -------------------------------------------------------------------------------------


def test_the_default_channel_is_email_for_every_kind_but_a_celebration_with_team_slack() -> None:
    ana = PEOPLE["ana"]
    for kind in ("check_in", "escalation", "review", "digest", "plan"):
        assert channels_for(ana, kind, Preferences(), TEAMS) == ("email",)
    assert channels_for(ana, "celebration", Preferences(), TEAMS) == ("email", "slack")
    assert channels_for(ana, "celebration", Preferences(), {}) == ("email",)


def test_the_same_event_routed_twice_gives_the_same_idempotency_keys(tenant: str) -> None:
    first = routed(tenant, "recognition.milestone.reached", milestone())
    again = routed(tenant, "recognition.milestone.reached", milestone())
    assert [i.idempotency_key for i in first] == [i.idempotency_key for i in again]
    assert len({i.idempotency_key for i in first}) == len(first)


def test_the_idempotency_key_differs_by_tenant_event_recipient_and_channel(tenant: str) -> None:
    key = idempotency_key(tenant, "evt-1", "ana", "email")
    assert key == idempotency_key(tenant, "evt-1", "ana", "email")
    others = {idempotency_key(f"{tenant}-x", "evt-1", "ana", "email"), idempotency_key(tenant, "evt-2", "ana", "email"),
              idempotency_key(tenant, "evt-1", "mia", "email"), idempotency_key(tenant, "evt-1", "ana", "slack")}
    assert key not in others
    assert len(others) == 4


def test_the_idempotency_key_is_what_the_key_function_gives_for_the_intent(tenant: str) -> None:
    for intent in routed(tenant, "coaching.task.created", task_created()):
        assert intent.idempotency_key == idempotency_key(tenant, "evt-1", intent.recipient, intent.channel)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(routing).failed == 0
