"""The chaos run's verdict on made-up results: unearned celebrations, missed and unearned check-ins, skipped
faults, and the run's clock (never today's date: every instant here is fixed)."""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy.local import kafka, pg_cluster
from tests.chaos import faults, fleet
from tests.chaos.oracle import TenantConfig
from tests.chaos.run import Context, run_clock
from tests.chaos.verdict import (
    CheckIn,
    Outcome,
    cheers,
    compare_celebrations,
    compare_check_ins,
    earned_check_ins,
    table,
)

NOW = datetime(2026, 11, 16, 9, tzinfo=UTC)  # a Monday: 10 of November's 21 weekdays are behind us
BERLIN = TenantConfig("acme", "Europe/Berlin")


def _outcome(**counts: int) -> Outcome:
    outcome = Outcome("poison", 100, lost=0, duplicated=0, mismatched=0, uncelebrated=0, undead=0, faulty=0,
                      recover_s=1.0, elapsed_s=9.0)
    for name, value in counts.items():
        setattr(outcome, name, value)
    return outcome


# --- celebrations ------------------------------------------------------------------------------------------


def test_a_celebration_no_figure_could_have_earned_is_unearned() -> None:
    expected = cheers("acme", {("rep", "ann", "2026-Q4", "won_revenue", 50)})
    reachable = expected | cheers("acme", {("rep", "ann", "2026-Q4", "won_revenue", 100)})
    celebrated = [("acme", "rep", "ann", "quota_50", "2026-Q4"),
                  ("acme", "rep", "ann", "quota_100", "2026-Q4"),  # reached for a moment: earned
                  ("acme", "rep", "bob", "quota_150", "2026-Q4"),  # never within reach
                  ("acme", "team", "north", "team_goal", "2026-Q4"),
                  ("acme", "rep", "ann", "quota_50_calls", "2026-11")]
    uncelebrated, unearned = compare_celebrations(expected, reachable, celebrated)
    assert uncelebrated == []
    assert unearned == [("acme", "rep", "ann", "quota_50_calls", "2026-11"),
                        ("acme", "rep", "bob", "quota_150", "2026-Q4"),
                        ("acme", "team", "north", "team_goal", "2026-Q4")]


def test_milestones_the_oracle_does_not_model_are_not_judged_and_missing_ones_still_count() -> None:
    expected = cheers("acme", {("team", "north", "2026-Q4", "won_revenue", 100)})
    assert expected == {("acme", "team", "north", "team_goal", "2026-Q4")}
    celebrated = [("acme", "rep", "ann", "first_win_ever", "ever"), ("acme", "rep", "ann", "first_win", "2026-Q4"),
                  ("acme", "rep", "ann", "personal_record", "2026-11-16")]
    assert compare_celebrations(expected, expected, celebrated) == ([("acme", "team", "north", "team_goal",
                                                                      "2026-Q4")], [])


# --- check-ins ---------------------------------------------------------------------------------------------


def _events(ann_won: str) -> list[dict[str, Any]]:
    at = "2026-10-01T00:00:00+00:00"
    return [{"type": "target.set", "id": "t1", "source": "api", "time": at,
             "data": {"scope": "rep", "scope_id": "ann", "metric": "won_revenue", "period": "2026-11",
                      "value": "90000"}},
            {"type": "deal.upserted", "id": "d1", "source": "crm", "time": "2026-11-05T10:00:00+00:00",
             "data": {"deal_id": "d1", "rep_id": "ann", "amount": ann_won, "currency": "EUR", "stage": "won",
                      "closed_at": "2026-11-05T10:00:00+00:00", "updated_at": "2026-11-05T10:00:00+00:00"}}]


def test_a_rep_behind_pace_at_the_end_without_a_check_in_is_missed() -> None:
    raised = [CheckIn("acme", "ann", "2026-11", "won_revenue", NOW)]
    behind = {("acme", "ann"), ("acme", "bob"), ("other", "ann")}
    missed, unearned = compare_check_ins(behind, raised, set(raised))
    assert missed == [("acme", "bob"), ("other", "ann")]
    assert unearned == []


def test_zero_check_ins_do_not_pass_when_reps_are_behind_pace() -> None:
    assert compare_check_ins({("acme", "ann")}, [], set()) == ([("acme", "ann")], [])


def test_a_check_in_outside_the_earned_set_is_unearned() -> None:
    good = CheckIn("acme", "ann", "2026-11", "won_revenue", NOW)
    bad = CheckIn("acme", "bob", "2026-11", "won_revenue", NOW)
    assert compare_check_ins(set(), [good, bad], {good}) == ([], [bad])


def test_while_streaming_a_rep_on_pace_at_the_end_may_rightly_get_a_check_in() -> None:
    quiet = NOW + timedelta(minutes=5)
    early = CheckIn("acme", "ann", "2026-11", "won_revenue", NOW)  # her deal may not have been applied yet
    no_target = CheckIn("acme", "bob", "2026-11", "won_revenue", NOW)
    assert earned_check_ins(BERLIN, _events("90000"), [early, no_target], quiet) == {early}


def test_once_everything_is_applied_a_check_in_must_match_the_final_figures() -> None:
    quiet = NOW - timedelta(minutes=5)
    late = CheckIn("acme", "ann", "2026-11", "won_revenue", NOW)
    # on pace at the end (90,000 won): raised on final figures, so never earned; behind (1,000): earned
    assert earned_check_ins(BERLIN, _events("90000"), [late], quiet) == set()
    assert earned_check_ins(BERLIN, _events("1000"), [late], quiet) == {late}
    # another tenant's check-ins are that tenant's business
    assert earned_check_ins(BERLIN, _events("1000"), [late._replace(tenant="other")], quiet) == set()


# --- the table and the exit status -------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["unearned_cheers", "missed_check_ins", "unearned_check_ins", "skipped"])
def test_each_new_count_fails_the_run_and_shows_in_the_table(count: str) -> None:
    assert _outcome().ok
    outcome = _outcome(**{count: 2})
    assert not outcome.ok
    head, _, row = table([outcome]).splitlines()
    cells = dict(zip([h.strip() for h in head.split("  ") if h.strip()], row.split(), strict=True))
    column = {"unearned_cheers": "unearned cheers", "missed_check_ins": "missed check-ins",
              "unearned_check_ins": "unearned check-ins", "skipped": "skipped"}[count]
    assert cells[column] == "2" and cells["result"] == "FAIL"


# --- skipped faults ------------------------------------------------------------------------------------------


def _context(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(fleet, "LOGS", tmp_path)
    ctx = Context(fleet.Fleet("unit", {}), random.Random(1), total=10)
    ctx.done.set()  # the stream is over: a fault waiting for its share goes on at once
    return ctx


async def test_a_broker_restart_on_a_broker_this_checkout_did_not_start_is_skipped(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, monkeypatch)
    monkeypatch.setattr(kafka, "broker_pid", lambda: None)
    await faults.broker_restart(ctx)
    assert ctx.skipped == ["broker restart: the broker is not one this checkout started"]
    assert any("fault skipped" in note for note in ctx.notes)


async def test_a_postgres_fault_on_a_server_this_checkout_did_not_start_is_skipped(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, monkeypatch)
    monkeypatch.setattr(pg_cluster, "local_pid", lambda: None)
    await faults.postgres_restart(ctx)
    assert len(ctx.skipped) == 1


async def test_signalling_a_replica_that_is_not_running_is_a_skipped_fault(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, monkeypatch)
    monkeypatch.setattr(faults, "SESSION_TIMEOUT_S", 0.0)
    monkeypatch.setattr(ctx.fleet, "start", lambda service, index=0: ctx.fleet.replica(service, index))
    monkeypatch.setattr(ctx.fleet, "wait_ready", lambda replicas, timeout=120: None)
    await faults.zombie(ctx)  # no replica runs: nothing paused, nothing stopped
    assert ctx.skipped == [f"{sig} {service}#{index}: not running" for sig, index in (("SIGSTOP", 0), ("SIGTERM", 1))
                           for service in ("kpi", "coaching", "recognition")]


# --- the run's clock -------------------------------------------------------------------------------------------


def test_a_pinned_run_clock_starts_at_its_instant_and_runs_on() -> None:
    clock = run_clock(NOW)
    first = clock.now()
    assert NOW <= first < NOW + timedelta(seconds=5)
    assert clock.now() >= first
    assert run_clock(None).now() > NOW - timedelta(days=36500)  # the system clock (no date assumed)


def test_every_replica_runs_on_the_fleets_clock_from_the_moment_it_starts(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet, "LOGS", tmp_path)
    spawned: list[dict[str, str]] = []

    class _Process:
        def __init__(self, args: list[str], **kw: Any) -> None:
            spawned.append(kw["env"])

        def poll(self) -> int:
            return 0  # "exited": the next start spawns again

    monkeypatch.setattr(subprocess, "Popen", _Process)
    pinned = fleet.Fleet("unit", {}, clock=run_clock(NOW))
    pinned.start("kpi")
    pinned.start("kpi")
    fleet.Fleet("unit", {"ATTAIN_CLOCK": "system"}).start("kpi")
    first, again, unpinned = (env["ATTAIN_CLOCK"] for env in spawned)
    assert first.startswith("scaled:2026-11-16T09:00:0") and first.endswith("@1")
    assert again >= first  # a restart does not go back in time
    assert unpinned == "system"
