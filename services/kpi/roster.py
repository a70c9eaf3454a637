"""A rep's dated teams from every roster event of theirs, whatever order they arrived in (issue 16, item 2).

kpi keeps each `rep.upserted` it applied as a version (its time, its event id, its team); a rep's team
history is a function of that set alone: the earliest version's team holds from the start of time (the
CRM told us where the rep is; their history before that counts there), and each later version whose
team differs starts a span at its time. Two versions at one time are ordered by event id. Applying the
events in any order, in one batch or many, leaves the same history; before, a late event about an earlier
move was taken as a move from its arrival's state, and the order decided the teams.

When the history changes, what the rep did from the first moment the old and new histories disagree is
re-attributed: out of the old teams, into the new (`first_difference`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from services.kpi.contributions import START_OF_TIME

Version = tuple[datetime, str, str]  # the event's time, its id, the team it puts the rep in
Span = tuple[datetime, str]  # valid from, team


def memberships_from(versions: Iterable[Version]) -> list[Span]:
    """The dated teams that `versions` make, in time order.

    >>> from datetime import UTC, datetime
    >>> t1, t2 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    >>> memberships_from([(t2, "e2", "b"), (t1, "e1", "a")]) == [(START_OF_TIME, "a"), (t2, "b")]
    True
    """
    spans: list[Span] = []
    for at, _, team in sorted(versions):
        if not spans:
            spans.append((START_OF_TIME, team))
        elif spans[-1][1] != team:
            spans.append((at, team))
    return spans


def _team_at(spans: Sequence[Span], moment: datetime) -> str | None:
    team = None
    for since, name in spans:
        if since > moment:
            break
        team = name
    return team


def first_difference(old: Sequence[Span], new: Sequence[Span]) -> datetime | None:
    """The first moment at which `old` and `new` put the rep in different teams (None: they never do).

    >>> from datetime import UTC, datetime
    >>> t1, t2 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    >>> first_difference([(START_OF_TIME, "a"), (t2, "b")], [(START_OF_TIME, "a"), (t1, "b")]) == t1
    True
    >>> first_difference([(START_OF_TIME, "a")], [(START_OF_TIME, "a")]) is None
    True
    """
    for moment in sorted({since for since, _ in old} | {since for since, _ in new}):
        if _team_at(old, moment) != _team_at(new, moment):
            return moment
    return None
