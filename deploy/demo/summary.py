"""The summary printed at the end of a run (or when it is cut short): what happened in a few lines, whether
kpi's numbers are exact against what was sent, and where to look next (plain text)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from deploy.demo.book import DealBook
from deploy.demo.feed import FeedState, rep_count
from deploy.demo.simulator import Scenario
from deploy.demo.stream import PostStats

__all__ = ["Links", "RunResult", "differences", "summary_text"]

WINNERS, SLIPPED = 3, 4
# recognition's milestone kinds (services/recognition/model.py) by the start of their names, as a person says them
MILESTONE_WORDS = {"quota": ("quota milestone", "quota milestones"), "team_goal": ("team goal", "team goals"),
                   "first_win_ever": ("first win ever", "first wins ever"),
                   "first_win": ("first win of the quarter", "first wins of the quarter"),
                   "personal_record": ("personal record", "personal records"),
                   "team_largest_deal": ("team's largest deal", "team's largest deals"),
                   "activity_streak": ("activity streak", "activity streaks"),
                   "leaderboard": ("leaderboard place", "leaderboard places"),
                   "contest": ("contest moment", "contest moments")}


@dataclass(frozen=True, slots=True)
class Links:
    """Where the dashboard is, and how to get in: the address, a sign-in token, a TV share link."""

    dashboard: str  # e.g. http://127.0.0.1:8002
    token: str
    tv_path: str | None = None  # /tv/share/...

    @property
    def signin(self) -> str:
        return f"{self.dashboard}/signin"

    @property
    def tv(self) -> str | None:
        return None if self.tv_path is None else f"{self.dashboard}{self.tv_path}"


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
    log: Path | None = None  # the run's event log
    log_lines: int = 0
    links: Links | None = None
    keep_running: bool = False  # the services stay up after the summary

    @property
    def ok(self) -> bool:
        return not self.problems and not self.interrupted


def _amount(value: Decimal | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _ratio(value: Decimal | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _names(parts: list[str], shown: int) -> str:
    more = len(parts) - shown
    return ", ".join(parts[:shown]) + (f" and {more} more" if more > 0 else "")


def summary_text(result: RunResult) -> str:
    """The summary, plain text: a heading, a few lines of story, the check of the numbers, the way in."""
    lines = [""]
    scenario = result.scenario
    if scenario is None:
        lines.append("=== Attain demo" + (" (interrupted)" if result.interrupted else "") + " ===")
    else:
        q, org = scenario.quarter, scenario.org
        lines.append(f"=== Attain demo: {q.label} played in {result.elapsed_s:.0f} s real"
                     + (" (interrupted: so far)" if result.interrupted else "") + " ===")
        ends = scenario.ends_at.astimezone(ZoneInfo(q.timezone))
        lines.append(f"tenant {result.tenant or '-'} · {len(org.reps)} reps in {len(org.teams)} teams · seed "
                     f"{result.seed} · {q.timezone} · the story ends {ends:%a %d %b %Y %H:%M}")
    if result.feed is not None and scenario is not None:
        lines += _story(result.feed, scenario)
    if result.stats is not None and scenario is not None:
        lines += _exact(result, scenario)
    if result.log is not None:
        lines.append(f"every check-in, celebration and figure of the run: {result.log} ({result.log_lines:,} lines)")
    lines += _way_in(result)
    if result.interrupted:
        lines.append("result: INTERRUPTED")
    elif result.problems:
        lines.append("result: FAILED")
        lines += [f"  - {problem}" for problem in result.problems]
    else:
        lines.append("result: OK")
    return "\n".join(lines)


def _story(feed: FeedState, scenario: Scenario) -> list[str]:
    """Winners, teams, who slipped and got a check-in, what was celebrated."""
    org = scenario.org
    standings = feed.leaderboard("rep")
    if not standings:
        return [f"kpi published no {scenario.quarter.label} won revenue figures for this tenant"]
    name = {r.rep_id: r.name for r in org.reps} | {t.team_id: t.name for t in org.teams}
    met = [s for s in standings if s.attainment is not None and s.attainment >= 1]
    top = ", ".join(f"{name.get(s.scope_id, s.scope_id)} {_ratio(s.attainment)}" for s in standings[:WINNERS])
    lines = [f"winners: {top} · {len(met)} of {len(org.reps)} reps reached their quota"]
    teams = feed.leaderboard("team")
    if teams:
        lines.append("teams: " + " · ".join(f"{name.get(t.scope_id, t.scope_id)} {_ratio(t.attainment)}"
                                            for t in teams))
    by_rep = {s.scope_id: s for s in standings}
    slipped = sorted({item.subject for item in feed.checkins if item.rule == "behind_pace"},
                     key=lambda rep: (by_rep[rep].attainment or Decimal(0)) if rep in by_rep else Decimal(0))
    who = [f"{name.get(rep, rep)} ({_ratio(by_rep[rep].attainment) if rep in by_rep else '–'})" for rep in slipped]
    closed = ", ".join(f"{n} {reason}" for reason, n in sorted(feed.closed.items(), key=lambda rn: -rn[1]))
    if who:
        lines.append(f"slipped and got a check-in: {_names(who, SLIPPED)}")
    lines.append(
        f"check-ins: {len(feed.checkins)} for {rep_count(len(feed.checkin_reps))}"
        + (f", {feed.escalations} escalated" if feed.escalations else "")
        + (f"; closed again: {closed}" if closed else "")
    )
    kinds = Counter(_kind(item.milestone) for item in feed.celebrations)
    lines.append(f"celebrations: {len(feed.celebrations)}"
                 + (" (" + ", ".join(f"{n} {_counted(kind, n)}" for kind, n in kinds.most_common()) + ")"
                    if kinds else ""))
    if feed.invalid or feed.undecodable:
        lines.append(f"derived messages off-contract: {feed.invalid + feed.undecodable}")
        lines += [f"  {problem}" for problem in feed.problems]
    return lines


def _kind(milestone: str | None) -> str:
    """The kind of a milestone ("quota_100" is a quota milestone), by the start of its name."""
    text = milestone or "milestone"
    return next((prefix for prefix in MILESTONE_WORDS if text.startswith(prefix)), text)


def _counted(kind: str, n: int) -> str:
    """A kind as said after a count: 1 team goal, 2 team goals; an unknown kind as it is."""
    one, many = MILESTONE_WORDS.get(kind, (kind, kind))
    return one if n == 1 else many


def differences(result: RunResult) -> list[str]:
    """Each rep and team whose won revenue as kpi last published it is not what ingest accepted (the demo's own
    book of the events, `DealBook`), to the cent: empty when kpi is exact."""
    scenario, feed = result.scenario, result.feed
    if scenario is None or feed is None:
        return []
    q, org = scenario.quarter, scenario.org
    expected = result.book.won(q.start, q.end)
    reps = {s.scope_id: s.actual for s in feed.leaderboard("rep")}
    teams = {s.scope_id: s.actual for s in feed.leaderboard("team")}
    out = [f"{rep.name}: kpi {_amount(reps.get(rep.rep_id))}, sent {_amount(expected.get(rep.rep_id, Decimal(0)))}"
           for rep in org.reps if reps.get(rep.rep_id) != expected.get(rep.rep_id, Decimal(0))]
    for team in org.teams:
        sent = sum((expected.get(r.rep_id, Decimal(0)) for r in org.reps if r.team_id == team.team_id), Decimal(0))
        if teams.get(team.team_id) != sent:
            out.append(f"team {team.name}: kpi {_amount(teams.get(team.team_id))}, sent {_amount(sent)}")
    return out


def _exact(result: RunResult, scenario: Scenario) -> list[str]:
    """What was sent, and whether kpi's won revenue per rep and team equals it to the cent."""
    assert result.stats is not None
    stats, q, org = result.stats, scenario.quarter, scenario.org
    lines = [
        f"sent: {stats.posted} of {len(scenario.schedule)} events in {stats.requests} requests (accepted "
        f"{stats.accepted}, re-sent and answered duplicate {stats.duplicate}, rejected {stats.rejected}"
        + (f", failed {stats.failed}" if stats.failed else "") + ")"
    ]  # fmt: skip
    lines += [f"  {count} x {reason}" for reason, count in stats.reasons.most_common(5)]
    if result.feed is None:
        return lines
    differ = differences(result)
    wrong_reps = sum(not d.startswith("team ") for d in differ)
    wrong_teams = len(differ) - wrong_reps
    won, revenue = result.book.deals_won(q.start, q.end), result.book.revenue(q.start, q.end)
    lines.append(f"numbers {'NOT exact' if differ else 'exact'}: kpi's won revenue equals what ingest accepted for "
                 f"{len(org.reps) - wrong_reps} of {len(org.reps)} reps and {len(org.teams) - wrong_teams} of "
                 f"{len(org.teams)} teams (EUR {_amount(revenue)} from {won} won deals)")
    lines += [f"  {line}" for line in differ[:3]] + ([f"  and {len(differ) - 3} more"] if len(differ) > 3 else [])
    return lines


def _way_in(result: RunResult) -> list[str]:
    links = result.links
    if links is None:
        return []
    lines = [f"dashboard: {links.signin} (sign in with the tenant's admin token: {links.token})"]
    if links.tv is not None:
        lines.append(f"TV, read-only, no sign-in: {links.tv}")
    if result.keep_running:
        lines.append("the services keep running on the story's last moment, quiet, until Ctrl-C.")
    else:
        lines.append("the services have stopped: `python -m deploy.demo --keep-running` leaves them up after the "
                     "summary, at the story's last moment, so that these links open.")
    return lines
