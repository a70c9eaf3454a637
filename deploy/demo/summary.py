"""The plain-text summary printed at the end of a run (or when it is cut short)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from deploy.demo.book import DealBook
from deploy.demo.feed import FeedState, Standing
from deploy.demo.simulator import Scenario
from deploy.demo.stream import PostStats

__all__ = ["RunResult", "summary_text"]

TOP, BOTTOM = 10, 3


@dataclass(slots=True)
class RunResult:
    """What one run did; any part may be missing when it stopped early."""

    seed: int
    scenario: Scenario | None = None
    tenant: str | None = None
    stats: PostStats | None = None
    feed: FeedState | None = None
    book: DealBook = field(default_factory=DealBook)
    elapsed_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.interrupted


def _amount(value: Decimal | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _ratio(value: Decimal | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def summary_text(result: RunResult) -> str:
    """The summary, plain text, one fact per line."""
    lines = ["", "=== Attain demo: summary" + (" (interrupted: so far)" if result.interrupted else "") + " ==="]
    scenario = result.scenario
    if scenario is not None:
        quarter, org = scenario.quarter, scenario.org
        lines.append(
            f"tenant {result.tenant or '-'} · quarter {quarter.label} ({quarter.timezone}) · seed {result.seed}"
            f" · {len(org.reps)} reps in {len(org.teams)} teams"
        )
    if result.stats is not None and scenario is not None:
        stats = result.stats
        lines.append(
            f"events posted: {stats.posted} of {len(scenario.schedule)} (accepted {stats.accepted}, "
            f"duplicate {stats.duplicate}, rejected {stats.rejected}"
            + (f", failed {stats.failed}" if stats.failed else "") + f") in {stats.requests} requests"
        )  # fmt: skip
        lines += [f"  {count} x {reason}" for reason, count in stats.reasons.most_common(5)]
        q = scenario.quarter
        won, revenue = result.book.deals_won(q.start, q.end), result.book.revenue(q.start, q.end)
        lines.append(f"deals won: {won} · revenue EUR {_amount(revenue)} (what the events ingest took add up to)")
    if result.feed is not None and scenario is not None:
        lines += _leaderboard(result, result.feed, scenario)
        feed = result.feed
        lines.append(
            f"check-ins: {len(feed.checkins)} for {len(feed.checkin_reps)} distinct reps"
            + (f" ({feed.escalations} escalated)" if feed.escalations else "")
        )
        lines.append(f"celebrations: {len(feed.celebrations)}")
        lines += [f"  - {item.text}" for item in feed.celebrations]
        if feed.invalid or feed.undecodable:
            lines.append(f"derived messages off-contract: {feed.invalid + feed.undecodable}")
            lines += [f"  {problem}" for problem in feed.problems]
    lines.append(f"elapsed: {result.elapsed_s:.1f} s real")
    if result.interrupted:
        lines.append("result: INTERRUPTED")
    elif result.problems:
        lines.append("result: FAILED")
        lines += [f"  - {problem}" for problem in result.problems]
    else:
        lines.append("result: OK")
    return "\n".join(lines)


def _leaderboard(result: RunResult, feed: FeedState, scenario: Scenario) -> list[str]:
    standings = feed.leaderboard("rep")
    q = scenario.quarter
    if not standings:
        return [f"leaderboard: kpi published no {q.label} won revenue figures for this tenant"]
    lines = [f"leaderboard (won revenue {q.label}, as kpi last published it):"]
    shown: list[tuple[int, Standing]] = list(enumerate(standings, start=1))
    if len(shown) > TOP + BOTTOM:
        shown = [*shown[:TOP], (0, standings[0]), *shown[-BOTTOM:]]
    zone = ZoneInfo(q.timezone)
    for rank, standing in shown:
        if rank == 0:
            lines.append("   ...")
            continue
        rep = scenario.org.rep(standing.scope_id)
        team = scenario.org.team(rep.team_id) if rep is not None else None
        pace = "–" if standing.pace is None else f"{standing.pace:.2f}"
        lines.append(
            f"  {rank:>3}. {(rep.name if rep else standing.scope_id):<22} {(team.name if team else ''):<20}"
            f" {_amount(standing.actual):>12} / {_amount(standing.target):>12}  {_ratio(standing.attainment):>5}"
            f"  pace {pace} on {standing.as_of.astimezone(zone):%d %b}"
        )
    expected = result.book.won(q.start, q.end)
    by_rep = {s.scope_id: s.actual for s in standings}
    differ = [rep for rep in scenario.org.reps if by_rep.get(rep.rep_id) != expected.get(rep.rep_id, Decimal(0))]
    total = len(scenario.org.reps)
    lines.append(f"kpi's won revenue matches the events ingest took for {total - len(differ)} of {total} reps")
    lines += [
        f"  {rep.name}: kpi {_amount(by_rep.get(rep.rep_id))}, events {_amount(expected.get(rep.rep_id, Decimal(0)))}"
        for rep in differ[:5]
    ]
    return lines
