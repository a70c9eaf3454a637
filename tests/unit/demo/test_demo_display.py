"""The live view and the summary: what a watcher sees, on a terminal, in CI, and at the end."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from deploy.demo.book import DealBook
from deploy.demo.display import Board, PlainView, render, status_line
from deploy.demo.feed import FeedState, Standing
from deploy.demo.org import Quarter
from deploy.demo.simulator import Scenario, build_scenario
from deploy.demo.stream import EventStream, SimClock
from deploy.demo.summary import Links, RunResult, differences, summary_text
from shared.cloudevents import CloudEvent

QUARTER = Quarter.containing(datetime(2026, 11, 26, tzinfo=UTC))
AT = QUARTER.start + timedelta(days=40)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(2, QUARTER)


def _board(scenario: Scenario, anchor: float = 0.0) -> Board:
    feed = FeedState("demo-x", QUARTER.label)
    for i, rep in enumerate(scenario.org.reps):
        ratio = Decimal(i) / Decimal(10)
        feed.standings[("rep", rep.rep_id)] = Standing("rep", rep.rep_id, rep.target * ratio, rep.target, ratio,
                                                       ratio + Decimal("0.1"), AT)  # fmt: skip
    star, slow = scenario.org.reps[-1], scenario.org.reps[0]
    feed.accept(CloudEvent("c1", "recognition.milestone.reached", "recognition", AT, "demo-x",
                           {"scope_id": star.rep_id, "milestone": "quota_100",
                            "headline": f"{star.name} hit 100%!"}))  # fmt: skip
    task = {"rep_id": slow.rep_id, "severity": "critical", "summary": f"{slow.name} is behind."}
    feed.accept(CloudEvent("t1", "coaching.task.created", "coaching", AT, "demo-x", task))
    clock = SimClock(QUARTER.start, QUARTER.seconds / 100, anchor=anchor)
    client = httpx.AsyncClient(base_url="http://ingest")
    stream = EventStream(client, "tok", scenario.schedule, clock, QUARTER, DealBook())
    return Board("demo-x", scenario, 100.0, clock, stream, feed, DealBook())


def _text(width: int, board: Board) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(render(board, width, now=50.0))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 160])
def test_the_screen_shows_date_progress_leaders_teams_and_what_matters(scenario: Scenario, width: int) -> None:
    board = _board(scenario)
    text = _text(width, board)
    leader = scenario.org.reps[-1]
    assert "Leaderboard" in text and "Teams" in text and "What matters" in text
    assert "50% of 2026-Q4" in text and "Nov 2026" in text
    assert leader.name in text and f"{leader.name} hit 100%!" in text
    assert f"events 0/{len(scenario.schedule)}" in text
    assert f"+{len(scenario.org.reps) - 12} more on the dashboard" in text  # twelve rows, and the rest counted


def test_closed_check_ins_are_counted_not_listed(scenario: Scenario) -> None:
    board = _board(scenario)
    for n, reason in enumerate(["recovered", "recovered", "superseded"]):
        board.feed.accept(CloudEvent(f"x{n}", "coaching.task.closed", "coaching", AT, "demo-x",
                                     {"rep_id": "rep-001", "rule": "behind_pace", "reason": reason}))
    text = _text(160, board)
    assert "closed: 2 recovered, 1 superseded" in text and "check-in closed" not in text
    assert [item.kind for item in board.feed.ticker] == ["celebration", "check-in"]
    assert "closed: 2 recovered, 1 superseded" in status_line(board, now=50.0)


def test_the_plain_view_prints_a_line_at_the_start_at_every_tenth_and_at_the_end(scenario: Scenario) -> None:
    # PlainView reads the real monotonic clock: anchor there, or the simulated date depends on the machine's uptime
    # (at 100 real seconds a quarter, past ~37 days of uptime it overflows year 9999)
    board = _board(scenario, anchor=time.monotonic())
    out = io.StringIO()
    view = PlainView(board, Console(file=out, width=300, force_terminal=False))
    view.start()
    view.refresh()
    view.refresh()
    assert out.getvalue().count("\n") == 1  # the same tenth: nothing more
    board.clock = SimClock(QUARTER.start, QUARTER.seconds / 100, anchor=time.monotonic() - 35)
    view.refresh()
    view.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[1].startswith("[ 35%]") and lines[2].startswith("[ 35%]")
    assert "hit 100%!" not in out.getvalue() and "is behind." not in out.getvalue()  # items: in the log only
    assert all("check-ins 1 (1 rep)" in line for line in lines)


def _result(scenario: Scenario, board: Board, **changes: object) -> RunResult:
    result = RunResult(seed=2, scenario=scenario, tenant="demo-x", stats=board.stream.stats, feed=board.feed,
                       elapsed_s=101.5)
    for name, value in changes.items():
        setattr(result, name, value)
    return result


def _exact(board: Board, scenario: Scenario) -> Board:
    """Nothing sent and nothing counted: kpi is exact."""
    for rep in scenario.org.reps:
        board.feed.standings[("rep", rep.rep_id)] = Standing("rep", rep.rep_id, Decimal(0), rep.target, Decimal(0),
                                                             None, AT)
    for team in scenario.org.teams:
        board.feed.standings[("team", team.team_id)] = Standing("team", team.team_id, Decimal(0), None, None, None, AT)
    return board


def test_the_summary_tells_the_story_checks_the_numbers_and_says_where_to_look(scenario: Scenario) -> None:
    board = _board(scenario)
    links = Links("http://127.0.0.1:8002", "tok-123", "/tv/share/demo-x.abc.sig")
    text = summary_text(_result(scenario, board, links=links, log=Path("/tmp/demo-x-events.log"), log_lines=1234))
    lines = text.splitlines()
    top = sorted(scenario.org.reps, key=lambda r: -scenario.org.reps.index(r))[:3]
    assert lines[1] == "=== Attain demo: 2026-Q4 played in 102 s real ==="
    assert lines[3].startswith(f"winners: {top[0].name} 230%, {top[1].name} 220%, {top[2].name} 210% · 14 of 24 reps")
    assert "check-ins: 1 for 1 rep" in text and "celebrations: 1 (1 quota milestone)" in text
    assert "every check-in, celebration and figure of the run: /tmp/demo-x-events.log (1,234 lines)" in text
    assert "dashboard: http://127.0.0.1:8002/signin (sign in with the tenant's admin token: tok-123)" in text
    assert "TV, read-only, no sign-in: http://127.0.0.1:8002/tv/share/demo-x.abc.sig" in text
    assert "--keep-running` leaves them up" in text and text.rstrip().endswith("result: OK")
    exact = summary_text(_result(scenario, _exact(_board(scenario), scenario), links=links)).splitlines()
    assert len([line for line in exact if not line.startswith("  ")]) <= 15  # a few lines, not a table
    kept = summary_text(_result(scenario, board, links=links, keep_running=True))
    assert "keep running on the story's last moment, quiet, until Ctrl-C" in kept


def test_the_summary_says_whether_kpi_is_exact_against_what_was_sent(scenario: Scenario) -> None:
    board = _board(scenario)
    text = summary_text(_result(scenario, board))
    assert "numbers NOT exact: kpi's won revenue equals what ingest accepted for 1 of 24 reps and 0 of 4" in text
    assert "  and 24 more" in text  # 23 reps and 4 teams differ: three shown
    assert all(line.endswith(", sent 0.00") for line in differences(_result(scenario, board)))
    _exact(board, scenario)
    assert "numbers exact: kpi's won revenue equals what ingest accepted for 24 of 24 reps and 4 of 4 teams" in (
        summary_text(_result(scenario, board)))


def test_a_failed_or_interrupted_run_says_so(scenario: Scenario) -> None:
    failed = summary_text(RunResult(seed=2, problems=["no celebration reached recognition.celebrations.v1"]))
    assert "result: FAILED\n  - no celebration reached" in failed
    interrupted = summary_text(RunResult(seed=2, scenario=scenario, interrupted=True))
    assert "(interrupted: so far)" in interrupted and interrupted.rstrip().endswith("result: INTERRUPTED")


def test_the_live_pace_is_taken_at_the_current_simulated_time(scenario: Scenario) -> None:
    board = _board(scenario)
    standing = Standing("rep", "rep-001", Decimal(30), Decimal(100), Decimal("0.3"), Decimal("9.9"), AT)
    assert board.pace(standing, now=50.0) == Decimal("0.6")  # 30 of 100 halfway through
    assert board.pace(standing, now=0.0) == Decimal("9.9")  # nothing expected yet: kpi's figure
