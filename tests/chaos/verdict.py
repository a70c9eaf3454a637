"""What a chaos run found, and the pure comparisons that decide it: no I/O, so they are unit-tested on made-up
results (`tests/unit/chaos/test_verdict.py`).

The columns of the table (`table`), each a count that must be 0 for a PASS:

- lost: events ingest never acknowledged, plus deals kpi does not hold at their final version;
- duplicated: an output record (`ce_id`), a celebration id or a check-in (rep, rule, severity) published twice;
- mismatched: kpi figures (actual or target) that differ from the oracle's;
- uncelebrated: quota milestones the oracle says the FINAL figures reached, never celebrated;
- unearned cheers: quota celebrations (`quota_<t>`, `quota_<t>_<metric>`, `team_goal`) that no figure kpi may
  have reported could have earned (outside `oracle.thresholds_reachable`: a celebration of a milestone that
  was reached for a moment while the quarter streamed in, then lost again, is earned: a milestone is
  celebrated once, ever). Other milestone kinds (first win, records, streaks, leaderboards) are not judged;
- missed check-ins: reps the oracle finds behind pace at the end of the run (coaching's `behind_pace` rule, on
  the final figures, at the moment the run saw everything applied, less `CLOCK_SLACK`) who never got a
  `behind_pace` check-in during the run;
- unearned check-ins: `behind_pace` check-ins for a rep who was never behind pace at any moment coaching
  evaluated (the rule: see `earned_check_ins`);
- not in DLQ: malformed records that did not reach their `.dlq` topic;
- skipped: faults that could not be applied (a broker or database this checkout did not start, a replica
  that was not running): a run that did not suffer its fault proves nothing, so it fails;
- faulty (no column of its own, FAIL and a note): what the fault itself found wrong (a SIGTERM that did not
  exit 0 in time).

Why check-ins are judged the way `earned_check_ins` says: coaching evaluates the latest figures it holds at its
own `now` (`services/coaching/rules.py` `behind_pace`, through `_active`). The run streams a whole quarter
so far in minutes while the clock already stands at its end, so while it streams, a rep's figure may read
anything from 0 (kpi may apply the rep's target before any of the rep's deals: other topics, other
partitions) up: every rep with a target is legitimately behind pace for a moment, and a check-in raised then
is earned whenever the rule could fire at all at that moment. Once everything is applied, the figures are the
oracle's final ones, and a check-in raised then must be one the oracle finds on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from tests.chaos import oracle

# How far the services' clocks may lag the run's (a pinned clock starts in each process a moment after it was
# spawned): the end-of-run behind-pace set is taken this much before the run saw everything applied.
CLOCK_SLACK = timedelta(seconds=30)
QUOTA_MILESTONE = re.compile(r"quota_\d+(_[a-z_]+)?|team_goal")

Cheer = tuple[str, str, str, str, str]  # (tenant, scope, scope_id, milestone, period)


class CheckIn(NamedTuple):
    """One `coaching.task.created` of the `behind_pace` rule: whose, on which figure, raised when (its
    `ce_time`: coaching's `now` when it evaluated)."""

    tenant: str
    rep_id: str
    period: str
    metric: str
    at: datetime


@dataclass
class Outcome:
    scenario: str
    events: int
    lost: int
    duplicated: int
    mismatched: int
    uncelebrated: int
    undead: int  # malformed records not in a .dlq topic
    faulty: int  # what the fault itself found wrong
    recover_s: float
    elapsed_s: float
    notes: list[str] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)  # how much was checked: figures, milestones, ...
    memory_kib: dict[str, tuple[int, int]] = field(default_factory=dict)  # replica: (at start, at end)
    unearned_cheers: int = 0
    missed_check_ins: int = 0
    unearned_check_ins: int = 0
    skipped: int = 0  # faults that could not be applied

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.uncelebrated or self.undead
                    or self.faulty or self.unearned_cheers or self.missed_check_ins or self.unearned_check_ins
                    or self.skipped)


def milestone(scope: str, metric: str, threshold: int) -> str:
    """recognition's name for a quota threshold (`services/recognition/rules.py` `quota_crossings`)."""
    if scope == "team" and metric == "won_revenue" and threshold == 100:
        return "team_goal"
    return f"quota_{threshold}" if metric == "won_revenue" else f"quota_{threshold}_{metric}"


def cheers(tenant: str, crossings: Iterable[tuple[str, str, str, str, int]]) -> set[Cheer]:
    """The celebrations the oracle's (scope, id, period, metric, threshold) crossings stand for."""
    return {(tenant, scope, scope_id, milestone(scope, metric, t), period)
            for scope, scope_id, period, metric, t in crossings}


def compare_celebrations(expected: set[Cheer], reachable: set[Cheer],
                         celebrated: Iterable[Cheer]) -> tuple[list[Cheer], list[Cheer]]:
    """(uncelebrated, unearned), each sorted: `expected` milestones (final figures) never celebrated, and quota
    celebrations outside `reachable` (what any figure kpi may have reported could reach; it holds `expected`).
    Milestones of other kinds are not judged."""
    seen = set(celebrated)
    allowed = reachable | expected
    unearned = [c for c in seen - allowed if QUOTA_MILESTONE.fullmatch(c[3])]
    return sorted(expected - seen), sorted(unearned)


def earned_check_ins(config: oracle.TenantConfig, events: Sequence[Mapping[str, Any]],
                     check_ins: Iterable[CheckIn], quiet: datetime) -> set[CheckIn]:
    """The `behind_pace` check-ins of one tenant that coaching could rightly have raised.

    Raised before `quiet` (the moment the run saw every event applied everywhere): earned when the rule could
    fire at its moment on SOME figure kpi may have reported (`oracle.behind_pace_possible`: a target > 0 on a
    pace metric, its period running, past the grace share). Raised at or after `quiet`: coaching held the final
    figures, so earned only when the oracle finds the rep behind pace on that very (period, metric) at that
    moment (`oracle.behind_pace` on all the events)."""
    mine = [c for c in check_ins if c.tenant == config.slug]
    early = [c for c in mine if c.at < quiet]
    possible = oracle.behind_pace_possible(config, events, [(c.rep_id, c.period, c.metric, c.at) for c in early])
    earned = {c for c in early if (c.rep_id, c.period, c.metric, c.at) in possible}
    for at in sorted({c.at for c in mine if c.at >= quiet}):
        behind = oracle.behind_pace(config, events, at)
        earned |= {c for c in mine if c.at == at and (c.rep_id, c.period, c.metric) in behind}
    return earned


def compare_check_ins(behind_at_end: set[tuple[str, str]], check_ins: Iterable[CheckIn],
                      earned: set[CheckIn]) -> tuple[list[tuple[str, str]], list[CheckIn]]:
    """(missed, unearned), each sorted: (tenant, rep) behind pace at the end without any `behind_pace`
    check-in during the run, and the check-ins not in `earned`."""
    raised = list(check_ins)
    covered = {(c.tenant, c.rep_id) for c in raised}
    return sorted(behind_at_end - covered), sorted(c for c in raised if c not in earned)


_HEAD = ("scenario", "events", "lost", "duplicated", "mismatched", "uncelebrated", "unearned cheers",
         "missed check-ins", "unearned check-ins", "not in DLQ", "skipped", "recover s", "total s", "result")


def table(outcomes: list[Outcome]) -> str:
    rows = [_HEAD] + [(o.scenario, str(o.events), str(o.lost), str(o.duplicated), str(o.mismatched),
                       str(o.uncelebrated), str(o.unearned_cheers), str(o.missed_check_ins),
                       str(o.unearned_check_ins), str(o.undead), str(o.skipped), f"{o.recover_s:.1f}",
                       f"{o.elapsed_s:.0f}", "PASS" if o.ok else "FAIL") for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
