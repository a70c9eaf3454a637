"""A rep's dated teams from their roster versions (services/kpi/roster.py): the same whatever order the
versions arrive in, and the first moment two histories disagree."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from services.kpi.contributions import START_OF_TIME
from services.kpi.roster import first_difference, memberships_from

SEP, OCT10, OCT14 = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 10, tzinfo=UTC),
                     datetime(2026, 10, 14, tzinfo=UTC))


def test_the_earliest_version_holds_from_the_start_of_time_and_later_ones_from_their_time() -> None:
    versions = [(SEP, "e1", "east"), (OCT10, "e2", "west"), (OCT14, "e3", "east")]
    expected = [(START_OF_TIME, "east"), (OCT10, "west"), (OCT14, "east")]
    assert all(memberships_from(order) == expected for order in itertools.permutations(versions))


def test_a_version_that_changes_nothing_starts_no_span_and_a_tie_is_ordered_by_event_id() -> None:
    assert memberships_from([(SEP, "e1", "east"), (OCT10, "e2", "east")]) == [(START_OF_TIME, "east")]
    assert memberships_from([(OCT10, "b", "west"), (OCT10, "a", "east")]) == [(START_OF_TIME, "east"),
                                                                             (OCT10, "west")]


def test_the_first_difference_is_where_the_teams_first_disagree() -> None:
    old = [(START_OF_TIME, "east"), (OCT14, "west")]
    assert first_difference(old, [(START_OF_TIME, "east"), (OCT10, "west")]) == OCT10  # a move found earlier
    assert first_difference([], [(START_OF_TIME, "east")]) == START_OF_TIME  # a newcomer: all their history
    assert first_difference([(START_OF_TIME, "west"), (OCT10, "east")], [(START_OF_TIME, "east")]) == START_OF_TIME
    assert first_difference(old, list(old)) is None
