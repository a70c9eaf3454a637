"""Which of two kpi figures of one key is the newer (shared/events.py, `supersedes`): kpi's revision when both
carry one, whatever their `as_of` (the clocks of kpi's replicas may differ); `as_of` for figures published
before revisions existed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.events import supersedes

T = datetime(2026, 10, 1, 9, tzinfo=UTC)
EARLIER = T - timedelta(hours=1)


def test_a_later_revision_wins_even_with_an_earlier_clock() -> None:
    assert supersedes(4, T, 5, EARLIER)
    assert not supersedes(5, EARLIER, 4, T)


def test_the_same_revision_again_replaces_it_a_redelivery_changes_nothing() -> None:
    assert supersedes(5, T, 5, T)


def test_without_a_revision_on_either_side_the_clock_decides() -> None:
    assert not supersedes(None, T, 5, EARLIER)
    assert supersedes(5, EARLIER, None, T)
    assert supersedes(None, EARLIER, None, T) and not supersedes(None, T, None, EARLIER)
