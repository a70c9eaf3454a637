"""The demo's view of the derived topics: its tenant only, each ce_id once, the latest figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from deploy.demo.feed import FeedState
from shared.cloudevents import CloudEvent

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _attainment(rep: str, actual: str, attainment: str | None, *, at: datetime = T0, period: str = "2026-Q4",
                metric: str = "won_revenue", scope: str = "rep", event_id: str | None = None,
                tenant: str = "demo-1") -> CloudEvent:  # fmt: skip
    data: dict[str, Any] = {
        "scope": scope, "scope_id": rep, "period": period, "metric": metric, "actual": actual,
        "target": "100000.00", "attainment": attainment, "expected": "50000.00", "pace": "0.80",
        "as_of": at.isoformat(),
    }  # fmt: skip
    event_id = event_id or f"a-{rep}-{actual}-{period}-{metric}"
    return CloudEvent(event_id, "kpi.attainment.updated", "kpi", at, tenant, data)


def _task(rep: str, event_id: str, tenant: str = "demo-1") -> CloudEvent:
    data = {
        "task_id": event_id, "rep_id": rep, "manager_id": "mgr-dach", "rule": "behind_pace", "severity": "warning",
        "summary": f"{rep} is at 50% of pace", "suggested_actions": ["call"], "training": [],
        "evidence": {"metric": "won_revenue", "actual": "1", "expected": "2", "period": "2026-Q4"},
        "due_at": (T0 + timedelta(days=2)).isoformat(),
    }  # fmt: skip
    return CloudEvent(event_id, "coaching.task.created", "coaching", T0, tenant, data)


def _celebration(rep: str) -> CloudEvent:
    data = {
        "celebration_id": f"c-{rep}", "scope": "rep", "scope_id": rep, "milestone": "quota_100", "period": "2026-Q4",
        "value": "100000.00", "headline": f"{rep} hit 100%!", "occurred_at": T0.isoformat(),
    }  # fmt: skip
    return CloudEvent(f"c-{rep}", "recognition.milestone.reached", "recognition", T0, "demo-1", data)


def test_only_the_demo_tenants_messages_count() -> None:
    state = FeedState("demo-1", "2026-Q4")
    assert state.accept(_task("rep-001", "t1", tenant="someone-else")) is None
    assert state.foreign == 1 and state.messages == 0 and not state.checkins


def test_a_repeated_ce_id_is_counted_once() -> None:
    state = FeedState("demo-1", "2026-Q4")
    assert state.accept(_task("rep-001", "t1")) is not None
    assert state.accept(_task("rep-001", "t1")) is None
    state.accept(_task("rep-001", "t2"))
    state.accept(_task("rep-002", "t3"))
    assert (len(state.checkins), state.checkin_reps, state.repeats) == (3, {"rep-001", "rep-002"}, 1)


def test_celebrations_keep_their_headline() -> None:
    state = FeedState("demo-1", "2026-Q4")
    item = state.accept(_celebration("rep-007"))
    assert item is not None and item.kind == "celebration" and item.text == "rep-007 hit 100%!"
    assert state.celebrations == [item]


def test_the_leaderboard_keeps_the_latest_quarterly_won_revenue_per_rep_best_first() -> None:
    state = FeedState("demo-1", "2026-Q4")
    state.accept(_attainment("rep-001", "10000.00", "0.10"))
    state.accept(_attainment("rep-001", "30000.00", "0.30", at=T0 + timedelta(hours=1)))
    state.accept(_attainment("rep-001", "20000.00", "0.20", at=T0 - timedelta(hours=1)))  # late, older
    state.accept(_attainment("rep-002", "50000.00", "0.50"))
    state.accept(_attainment("rep-003", "90000.00", "0.90", period="2026-11"))  # another period
    state.accept(_attainment("rep-003", "90.00", "0.90", metric="calls"))  # another metric
    state.accept(_attainment("rep-004", "0.00", None))
    state.accept(_attainment("team-dach", "80000.00", "0.40", scope="team"))
    board = state.leaderboard()
    assert [(s.scope_id, str(s.actual)) for s in board] == [
        ("rep-002", "50000.00"), ("rep-001", "30000.00"), ("rep-004", "0.00"),
    ]  # fmt: skip
    assert [s.scope_id for s in state.leaderboard("team")] == ["team-dach"]


def test_off_contract_payloads_are_counted_and_named() -> None:
    state = FeedState("demo-1", "2026-Q4")
    broken = _attainment("rep-001", "lots", "0.1")
    assert state.accept(broken) is None
    task = _task("rep-002", "t9")
    state.accept(CloudEvent(task.id, task.type, task.source, task.time, task.tenant, {**task.data, "severity": "huge"}))
    assert state.invalid == 2 and len(state.problems) == 2
    assert not state.standings
    assert len(state.checkins) == 1  # still a check-in, even if its payload is off


def test_quiet_time_counts_from_the_last_message_or_the_given_start() -> None:
    state = FeedState("demo-1", "2026-Q4")
    assert state.quiet_for(now=110.0, since=100.0) == 10.0
    state.accept(_task("rep-001", "t1"), now=105.0)
    assert state.quiet_for(now=110.0, since=100.0) == 5.0
    assert state.quiet_for(now=110.0, since=108.0) == 2.0
