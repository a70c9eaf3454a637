"""The live view of the run: a rich dashboard on a terminal, periodic plain lines elsewhere (CI).

Both read the same `Board` (references to the run's live parts) and never change it. The rich
view is redrawn by the demo's own loop (`refresh()`, about four times a second), never from
a background thread, so it always sees a consistent state.
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
from deploy.demo.feed import FeedItem, FeedState, Standing
from deploy.demo.simulator import Scenario
from deploy.demo.stream import EventStream, SimClock

__all__ = ["Board", "LiveView", "PlainView", "View", "money", "percent", "render", "status_line"]

WIDE = 130  # from this width on, leaderboard and feed sit side by side
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


def status_line(board: Board, now: float | None = None) -> str:
    """One plain line with the run's state (the non-terminal view prints these)."""
    stats, feed, quarter = board.stream.stats, board.feed, board.scenario.quarter
    leader = next(iter(feed.leaderboard()), None)
    lead = f" · leader {board.name(leader.scope_id)} {percent(leader.attainment)}" if leader else ""
    failed = f", failed {stats.failed}" if stats.failed else ""
    won, revenue = board.book.deals_won(quarter.start, quarter.end), board.book.revenue(quarter.start, quarter.end)
    return (
        f"[{board.fraction(now):4.0%}] {board.local_now(now):%a %d %b %Y} · events {board.stream.sent}/"
        f"{board.stream.total} (accepted {stats.accepted}, duplicate {stats.duplicate}, rejected {stats.rejected}"
        f"{failed}) · won {won} deals {money(revenue)} · check-ins {len(feed.checkins)}"
        f" ({len(feed.checkin_reps)} reps) · celebrations {len(feed.celebrations)}{lead}"
    )


def item_line(board: Board, item: FeedItem) -> str:
    return f"  {item.at.astimezone(ZoneInfo(board.scenario.quarter.timezone)):%d %b} {item.kind}: {item.text}"


def render(board: Board, width: int, now: float | None = None) -> RenderableType:
    """The whole dashboard."""
    wide = width >= WIDE
    leaderboard = _leaderboard(board, rows=12, now=now)
    feed = _feed(board, rows=14 if wide else 8)
    if wide:
        body = Table.grid(expand=True, padding=(0, 1))
        body.add_column(ratio=11)
        body.add_column(ratio=9)
        body.add_row(leaderboard, feed)
        return Group(_header(board, now), body)
    return Group(_header(board, now), leaderboard, feed)


def _header(board: Board, now: float | None) -> Panel:
    stats, feed, quarter = board.stream.stats, board.feed, board.scenario.quarter
    fraction = board.fraction(now)
    elapsed = time.monotonic() - board.clock.anchor if now is None else now - board.clock.anchor
    clock = Table.grid(padding=(0, 2))
    clock.add_row(
        Text(f"{board.local_now(now):%a %d %b %Y %H:%M}", style="bold"),
        ProgressBar(total=1.0, completed=fraction, width=40),
        Text(f"{fraction:4.0%} of {quarter.label}"),
        Text(f"real {max(elapsed, 0):.0f}s / {board.duration:.0f}s", style="dim"),
    )
    counters = Text.assemble(
        ("events ", "dim"), f"{board.stream.sent}/{board.stream.total}",
        ("  accepted ", "dim"), str(stats.accepted), ("  duplicate ", "dim"), str(stats.duplicate),
        ("  rejected ", "dim"), (str(stats.rejected), "red" if stats.rejected else ""),
        *((("  failed ", "dim"), (str(stats.failed), "red")) if stats.failed else ()),
        ("   deals won ", "dim"), str(board.book.deals_won(quarter.start, quarter.end)),
        ("  revenue ", "dim"), money(board.book.revenue(quarter.start, quarter.end)),
        ("   check-ins ", "dim"), (str(len(feed.checkins)), "yellow"), (f" ({len(feed.checkin_reps)} reps)", "dim"),
        ("   celebrations ", "dim"), (str(len(feed.celebrations)), "green"),
    )  # fmt: skip
    title = f"Attain demo · tenant {board.tenant} · seed {board.scenario.seed} · {quarter.timezone}"
    return Panel(Group(clock, counters), title=title, title_align="left", border_style="blue")


def _leaderboard(board: Board, rows: int, now: float | None = None) -> Panel:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("#", justify="right", width=3)
    table.add_column("Rep", no_wrap=True, overflow="ellipsis")
    table.add_column("Team", no_wrap=True, overflow="ellipsis", style="dim")
    table.add_column("Won", justify="right")
    table.add_column("Target", justify="right", style="dim")
    table.add_column("Attain.", justify="right")
    table.add_column("Pace", justify="right")
    standings = board.feed.leaderboard("rep")
    for rank, standing in enumerate(standings[:rows], start=1):
        table.add_row(
            str(rank), board.name(standing.scope_id), board.team_name(standing.scope_id), money(standing.actual),
            money(standing.target), _attainment(standing), _pace(board.pace(standing, now)),
        )  # fmt: skip
    if not standings:
        table.add_row("", Text("waiting for kpi.attainment.v1 …", style="dim"), "", "", "", "", "")
    teams = board.feed.leaderboard("team")
    caption = "   ".join(f"{board.name(t.scope_id)} {percent(t.attainment)}" for t in teams)
    return Panel(Group(table, Text(caption, style="dim")) if teams else table,
                 title=f"Leaderboard · won revenue {board.scenario.quarter.label}", title_align="left")  # fmt: skip


def _attainment(standing: Standing) -> Text:
    style = "bold green" if standing.attainment is not None and standing.attainment >= 1 else ""
    return Text(percent(standing.attainment), style=style)


def _pace(pace: Decimal | None) -> Text:
    if pace is None:
        return Text("–", style="dim")
    style = "red" if pace < Decimal("0.7") else "yellow" if pace < 1 else "green"
    return Text(f"{pace:.2f}", style=style)


def _feed(board: Board, rows: int) -> Panel:
    lines: list[RenderableType] = []
    zone = ZoneInfo(board.scenario.quarter.timezone)
    for item in reversed(board.feed.items[-rows:]):
        icon, style = ICONS.get(item.kind, ("·", ""))
        if item.kind == "check-in" and item.severity == "critical":
            style = "red"
        lines.append(Text.assemble(
            (f"{icon} ", style), (f"{item.at.astimezone(zone):%d %b} ", "dim"), item.text,
            no_wrap=True, overflow="ellipsis",
        ))  # fmt: skip
    if not lines:
        lines.append(Text("no check-ins or celebrations yet", style="dim"))
    return Panel(Group(*lines), title="Check-ins and celebrations", title_align="left")


class LiveView:
    """A rich dashboard, redrawn on `refresh()`."""

    def __init__(self, board: Board, console: Console) -> None:
        self.board, self.console = board, console
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def start(self) -> None:
        self._live.start()
        self.refresh()

    def refresh(self) -> None:
        self._live.update(render(self.board, self.console.width), refresh=True)

    def stop(self) -> None:
        self.refresh()
        self._live.stop()


class PlainView:
    """Plain lines for logs: each check-in and celebration as it comes, the state every few seconds."""

    def __init__(self, board: Board, console: Console, every_s: float = 5.0) -> None:
        self.board, self.console, self.every_s = board, console, every_s
        self._printed_items = 0
        self._last_status: float | None = None

    def start(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        items = self.board.feed.items
        for item in items[self._printed_items :]:
            self.console.print(item_line(self.board, item), markup=False, highlight=False, soft_wrap=True)
        self._printed_items = len(items)
        now = time.monotonic()
        if self._last_status is None or now - self._last_status >= self.every_s:
            self._last_status = now
            self.console.print(status_line(self.board, now), markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self._last_status = None
        self.refresh()
