"""Events dated far in the future are refused at the door, naming the field and the bound: services order
versions by those moments, so one dated 2099 would win over every correction that follows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.ingest.validation import judge, refuse_future, too_far_ahead
from tests.factories import deal, rep, target, team

NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)
LATEST = NOW + timedelta(days=1)


def test_a_target_dated_2099_is_refused_naming_time_and_the_bound() -> None:
    [verdict] = refuse_future([judge(0, target("r1", "2026-Q4", "1000", at=datetime(2099, 1, 1, tzinfo=UTC)))],
                              LATEST)
    assert verdict.event is None
    assert verdict.reason == ("time: must not be later than 2026-11-19T10:00:00+00:00 (ingest's clock plus"
                              " MAX_EVENT_AHEAD_S); got 2099-01-01T00:00:00+00:00")


def test_events_up_to_the_bound_pass_unchanged() -> None:
    verdicts = [judge(0, rep("r1", at=NOW)), judge(1, team("t1", None, at=LATEST)),
                judge(2, target("r1", "2026-Q4", "1", at=NOW - timedelta(days=400)))]
    assert refuse_future(verdicts, LATEST) == verdicts


def test_a_deal_updated_in_the_future_is_refused_by_its_updated_at() -> None:
    event = judge(0, deal("d1", "r1", "10", updated_at=NOW)).event
    assert event is not None
    data = event.data.model_copy(update={"updated_at": LATEST + timedelta(seconds=1)})
    later = event.model_copy(update={"data": data})
    assert (too_far_ahead(later, LATEST) or "").startswith("data.updated_at: must not be later than")


def test_a_rejected_verdict_keeps_its_own_reason() -> None:
    bad = judge(0, {"type": "target.set", "id": "x"})
    assert refuse_future([bad], LATEST) == [bad]
