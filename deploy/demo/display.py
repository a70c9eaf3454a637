"""The live view of the run: one rich screen on a terminal, a few plain lines elsewhere (CI, pipes).

Both read the same `Board` (references to the run's live parts) and never change it. The rich view is
redrawn in place by the demo's own loop (`refresh()`, about four times a second), never from a background
thread, so it always sees a consistent state. It shows the simulated quarter's progress, the leaderboard
and the team totals as kpi publishes them, and a short ticker of what matters: celebrations, new and
escalated check-ins. Check-ins that close (recovered, superseded) are counted, not listed; every message is
in the run's event log (`feed.log_line`), whose name the summary gives.

The plain view prints one status line at the start, at every tenth of the quarter and at the end: the
story in a dozen lines, the details in the log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from deploy.demo.book import DealBook
from deploy.demo.feed import FeedItem, FeedState, Standing, rep_count
from deploy.demo.simulator import Scenario
from deploy.demo.stream import EventStream, SimClock

__all__ = ["Board", "LiveView", "PlainView", "View", "closings", "money", "percent", "render", "status_line"]

WIDE = 120  # from this width on, the leaderboard and the teams with the ticker sit side by side
LEADERBOARD_ROWS = 12
TICKER_ROWS = 9
ICONS = {"check-in": ("⚑", "yellow"), "escalation": ("⚠", "red"), "closed": ("✓", "dim"), "celebration": ("★", "green")}


@dataclass(slots=True)
class Board:
    """What the views show: the live parts of one run."""

    tenant: str
    scenario: Scenario
    duration: float
    clock: SimClock
    stream: EventStream
    feed: FeedState
    book: DealBook

    def fraction(self, now: float | None = None) -> float:
        """How far through the quarter the simulation is, 0..1."""
        return min(max(self.scenario.quarter.fraction(self.clock.now(now)), 0.0), 1.0)

    def pace(self, standing: Standing, now: float | None = None) -> Decimal | None:
        """Pace at the current simulated time: kpi only republishes a figure when it changes, so
        its own `pace` is as old as the rep's last change."""
        share = Decimal(str(round(self.fraction(now), 6)))
        if not standing.target or share <= 0:
            return standing.pace
        return standing.actual / (standing.target * share)

    def local_now(self, now: float | None = None) -> datetime:
        return self.clock.now(now).astimezone(ZoneInfo(self.scenario.quarter.timezone))

    def name(self, scope_id: str) -> str:
        rep = self.scenario.org.rep(scope_id)
        if rep is not None:
            return rep.name
        team = self.scenario.org.team(scope_id)
        return team.name if team is not None else scope_id

    def team_name(self, rep_id: str) -> str:
        rep = self.scenario.org.rep(rep_id)
        team = self.scenario.org.team(rep.team_id) if rep is not None else None
        return team.name if team is not None else "?"


class View(Protocol):
    def start(self) -> None: ...
    def refresh(self) -> None: ...
    def stop(self) -> None: ...


def money(amount: Decimal | None, symbol: str = "€") -> str:
    return "–" if amount is None else f"{symbol}{amount:,.0f}"


def percent(ratio: Decimal | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.0f}%"


def closings(feed: FeedState) -> str:
    """The check-ins that closed, counted by reason: ``31 recovered, 4 superseded`` (empty: none)."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(feed.closed.items(), key=lambda rc: -rc[1]))


def status_line(board: Board, now: float | None = None) -> str:
    """One plain line with the run's state (the non-terminal view prints these)."""
    stats, feed, quarter = board.stream.stats, board.feed, board.scenario.quarter
    leader = next(iter(feed.leaderboard()), None)
    lead = f" · leader {board.name(leader.scope_id)} {percent(leader.attainment)}" if leader else ""
    failed = f", failed {stats.failed}" if stats.failed else ""
    won, revenue = board.book.deals_won(quarter.start, quarter.end), board.book.revenue(quarter.start, quarter.end)
    closed = f", closed: {closings(feed)}" if feed.closed else ""
    return (
        f"[{board.fraction(now):4.0%}] {board.local_now(now):%a %d %b %Y} · events {board.stream.sent}/"
        f"{board.stream.total} (accepted {stats.accepted}, duplicate {stats.duplicate}, rejected {stats.rejected}"
        f"{failed}) · won {won} deals {money(revenue)} · check-ins {len(feed.checkins)}"
        f" ({rep_count(len(feed.checkin_reps))}{closed}) · celebrations {len(feed.celebrations)}{lead}"
    )


def item_line(board: Board, item: FeedItem) -> str:
    return f"  {item.at.astimezone(ZoneInfo(board.scenario.quarter.timezone)):%d %b} {item.kind}: {item.text}"


def render(board: Board, width: int, now: float | None = None) -> RenderableType:
    """The whole screen."""
    leaderboard = _leaderboard(board, LEADERBOARD_ROWS, now)
    side = Group(_teams(board), _ticker(board, TICKER_ROWS))
    if width >= WIDE:
        body = Table.grid(expand=True, padding=(0, 1))
        body.add_column(ratio=11)
        body.add_column(ratio=9)
        body.add_row(leaderboard, side)
        return Group(_header(board, now), body)
    return Group(_header(board, now), leaderboard, side)


def _header(board: Board, now: float | None) -> Panel:
    stats, feed, quarter = board.stream.stats, board.feed, board.scenario.quarter
    fraction = board.fraction(now)
    elapsed = time.monotonic() - board.clock.anchor if now is None else now - board.clock.anchor
    clock = Table.grid(padding=(0, 2))
    stopped = board.clock.until is not None and board.clock.now(now) >= board.clock.until
    clock.add_row(
        Text(f"{board.local_now(now):%a %d %b %Y %H:%M}", style="bold"),
        ProgressBar(total=1.0, completed=fraction, width=40),
        Text(f"{fraction:4.0%} of {quarter.label}" + (" · the story ends here" if stopped else "")),
        Text(f"real {max(elapsed, 0):.0f}s / {board.duration:.0f}s", style="dim"),
    )
    won, revenue = board.book.deals_won(quarter.start, quarter.end), board.book.revenue(quarter.start, quarter.end)
    counters = Text.assemble(
        ("events ", "dim"), f"{board.stream.sent}/{board.stream.total}",
        ("  accepted ", "dim"), str(stats.accepted), ("  duplicate ", "dim"), str(stats.duplicate),
        ("  rejected ", "dim"), (str(stats.rejected), "red" if stats.rejected else ""),
        *((("  failed ", "dim"), (str(stats.failed), "red")) if stats.failed else ()),
        ("   deals won ", "dim"), str(won), ("  revenue ", "dim"), money(revenue),
    )  # fmt: skip
    coaching = Text.assemble(
        ("check-ins ", "dim"), (str(len(feed.checkins)), "yellow"),
        (f" for {rep_count(len(feed.checkin_reps))}", "dim"),
        ("  escalated ", "dim"), (str(feed.escalations), "red" if feed.escalations else ""),
        *((("  closed: ", "dim"), (closings(feed), "dim")) if feed.closed else ()),
        ("   celebrations ", "dim"), (str(len(feed.celebrations)), "green"),
    )  # fmt: skip
    title = f"Attain demo · tenant {board.tenant} · seed {board.scenario.seed} · {quarter.timezone}"
    return Panel(Group(clock, counters, coaching), title=title, title_align="left", border_style="blue")


def _leaderboard(board: Board, rows: int, now: float | None = None) -> Panel:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("#", justify="right", width=3, no_wrap=True)
    table.add_column("Rep", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("Team", no_wrap=True, overflow="ellipsis", style="dim", ratio=2)
    table.add_column("Won", justify="right", no_wrap=True, min_width=9)
    table.add_column("Target", justify="right", style="dim", no_wrap=True, min_width=9)
    table.add_column("Attain.", justify="right", no_wrap=True, min_width=7)
    table.add_column("Pace", justify="right", no_wrap=True, min_width=4)
    standings = board.feed.leaderboard("rep")
    for rank, standing in enumerate(standings[:rows], start=1):
        table.add_row(
            str(rank), board.name(standing.scope_id), board.team_name(standing.scope_id), money(standing.actual),
            money(standing.target), _attainment(standing), _pace(board.pace(standing, now)),
        )  # fmt: skip
    if not standings:
        table.add_row("", Text("waiting for kpi.attainment.v1 …", style="dim"), "", "", "", "", "")
    elif len(standings) > rows:
        table.caption, table.caption_justify = f"+{len(standings) - rows} more on the dashboard", "left"
    return Panel(table, title=f"Leaderboard · won revenue {board.scenario.quarter.label}", title_align="left")


def _teams(board: Board) -> Panel:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("Team", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("Won", justify="right", no_wrap=True, min_width=10)
    table.add_column("Target", justify="right", style="dim", no_wrap=True, min_width=10)
    table.add_column("Attain.", justify="right", no_wrap=True, min_width=7)
    teams = board.feed.leaderboard("team")
    for standing in teams:
        table.add_row(board.name(standing.scope_id), money(standing.actual), money(standing.target),
                      _attainment(standing))
    if not teams:
        table.add_row(Text("waiting for the team figures …", style="dim"), "", "", "")
    return Panel(table, title="Teams", title_align="left")


def _attainment(standing: Standing) -> Text:
    style = "bold green" if standing.attainment is not None and standing.attainment >= 1 else ""
    return Text(percent(standing.attainment), style=style)


def _pace(pace: Decimal | None) -> Text:
    if pace is None:
        return Text("–", style="dim")
    style = "red" if pace < Decimal("0.7") else "yellow" if pace < 1 else "green"
    return Text(f"{pace:.2f}", style=style)


def _ticker(board: Board, rows: int) -> Panel:
    lines: list[RenderableType] = []
    zone = ZoneInfo(board.scenario.quarter.timezone)
    for item in reversed(board.feed.ticker[-rows:]):
        icon, style = ICONS.get(item.kind, ("·", ""))
        if item.kind == "check-in" and item.severity == "critical":
            style = "red"
        lines.append(Text.assemble(
            (f"{icon} ", style), (f"{item.at.astimezone(zone):%d %b} ", "dim"), item.text,
            no_wrap=True, overflow="ellipsis",
        ))  # fmt: skip
    if not lines:
        lines.append(Text("no check-ins or celebrations yet", style="dim"))
    return Panel(Group(*lines), title="What matters · ★ celebrations  ⚑ check-ins  ⚠ escalated", title_align="left")


class LiveView:
    """One rich screen, redrawn in place on `refresh()`; what it last showed stays on the terminal."""

    def __init__(self, board: Board, console: Console) -> None:
        self.board, self.console = board, console
        self._live = Live(console=console, auto_refresh=False, transient=False, vertical_overflow="crop")

    def start(self) -> None:
        self._live.start()
        self.refresh()

    def refresh(self) -> None:
        self._live.update(render(self.board, self.console.width), refresh=True)

    def stop(self) -> None:
        self.refresh()
        self._live.stop()


class PlainView:
    """Plain lines for logs: the state at the start, at every tenth of the quarter and at the end."""

    def __init__(self, board: Board, console: Console, steps: int = 10) -> None:
        self.board, self.console, self.steps = board, console, steps
        self._printed: int | None = None  # the last tenth printed

    def start(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        step = int(self.board.fraction() * self.steps)
        if self._printed is None or step > self._printed:
            self._printed = step
            self._print()

    def stop(self) -> None:
        self._print()

    def _print(self) -> None:
        self.console.print(status_line(self.board), markup=False, highlight=False, soft_wrap=True)
