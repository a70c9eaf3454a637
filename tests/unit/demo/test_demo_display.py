"""The live view and the summary: what a watcher sees, on a terminal, in CI, and at the end."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from rich.console import Console

from deploy.demo.book import DealBook
from deploy.demo.display import Board, PlainView, render, status_line
from deploy.demo.feed import FeedState, Standing
from deploy.demo.org import Quarter
from deploy.demo.simulator import Scenario, build_scenario
from deploy.demo.stream import EventStream, SimClock
from deploy.demo.summary import RunResult, summary_text
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
                           {"scope_id": star.rep_id, "headline": f"{star.name} hit 100%!"}))  # fmt: skip
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
def test_the_dashboard_shows_date_progress_leaders_and_the_feed(scenario: Scenario, width: int) -> None:
    board = _board(scenario)
    text = _text(width, board)
    leader = scenario.org.reps[-1]
    assert "Leaderboard" in text and "Check-ins and celebrations" in text
    assert "50% of 2026-Q4" in text and "Nov 2026" in text
    assert leader.name in text and f"{leader.name} hit 100%!" in text
    assert f"events 0/{len(scenario.schedule)}" in text


def test_the_plain_view_prints_each_feed_item_once_and_a_status_line(scenario: Scenario) -> None:
    # PlainView reads the real monotonic clock: anchor there, or the simulated date depends on the machine's uptime
    # (at 100 real seconds a quarter, past ~37 days of uptime it overflows year 9999)
    board = _board(scenario, anchor=time.monotonic())
    out = io.StringIO()
    view = PlainView(board, Console(file=out, width=300, force_terminal=False), every_s=3600)
    view.start()
    view.refresh()
    text = out.getvalue()
    assert text.count("hit 100%!") == 1 and text.count("is behind.") == 1
    assert text.count("check-ins 1 (1 reps)") == 1
    assert "celebrations 1" in status_line(board, now=board.clock.anchor + 50.0)


def test_the_summary_lists_top_ten_and_bottom_three_and_what_was_seen(scenario: Scenario) -> None:
    board = _board(scenario)
    result = RunResult(seed=2, scenario=scenario, tenant="demo-x", stats=board.stream.stats, feed=board.feed,
                       elapsed_s=101.5)  # fmt: skip
    text = summary_text(result)
    ranks = [line.split(".")[0].strip() for line in text.splitlines() if line.startswith("  ") and ". " in line[:8]]
    assert ranks == [str(n) for n in range(1, 11)] + [str(n) for n in range(22, 25)]
    assert "check-ins: 1 for 1 distinct reps" in text
    assert "celebrations: 1" in text and f"  - {scenario.org.reps[-1].name} hit 100%!" in text
    assert "elapsed: 101.5 s real" in text and text.rstrip().endswith("result: OK")


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
