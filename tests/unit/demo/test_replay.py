"""The replay's pure parts: the records ingest would publish, the clock's steps, the summary and its digest."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from deploy.demo.org import Profile
from deploy.demo.replay import (
    QUARTER,
    TaskRow,
    build_feed,
    digest,
    outbox_record,
    steps,
    summarise,
    tenant_of,
)
from deploy.demo.replay import Offsets as ReplayOffsets
from deploy.demo.simulator import build_scenario
from shared import topics
from shared.cloudevents import decode

SCENARIO = build_scenario(3, QUARTER, reps=20, teams=3)
TENANT = tenant_of(QUARTER)
BERLIN = ZoneInfo("Europe/Berlin")


def test_the_quarter_is_fixed() -> None:
    assert QUARTER.label == "2026-Q3"
    assert QUARTER.start == datetime(2026, 6, 30, 22, tzinfo=UTC)


def test_the_feed_is_what_ingest_would_publish() -> None:
    feed = build_feed(SCENARIO, TENANT)
    first = feed.items[0].record
    assert first.topic == topics.TENANTS.name
    assert decode(first.headers, first.value).type == "tenant.upserted"
    events = [decode(d.record.headers, d.record.value) for d in feed.items[1:]]
    assert len({(e.source, e.id) for e in events}) == len(events)  # re-sent events left out, as ingest does
    assert feed.duplicates == sum(s.delivery == "duplicate" for s in SCENARIO.schedule) > 0
    assert len(events) + feed.duplicates == len(SCENARIO.schedule)
    assert all(e.tenant_timezone == "Europe/Berlin" and e.extensions["tenantcurrency"] == "EUR" for e in events)
    offsets = [d.offset for d in feed.items]
    assert offsets == sorted(offsets)
    by_topic: dict[str, list[int]] = {}
    for d in feed.items:
        by_topic.setdefault(d.record.topic, []).append(d.record.offset)
    assert all(found == list(range(len(found))) for found in by_topic.values())
    assert set(by_topic) == {
        topics.TENANTS.name,
        topics.ROSTER.name,
        topics.TARGETS.name,
        topics.DEALS.name,
        topics.ACTIVITIES.name,
    }


def test_a_deletion_is_keyed_by_its_deals_owner() -> None:
    feed = build_feed(SCENARIO, TENANT)
    owners: dict[str, str] = {}
    deletions = 0
    for d in feed.items[1:]:
        event = decode(d.record.headers, d.record.value)
        data = dict(event.data)
        if event.type == "deal.upserted":
            owners[data["deal_id"]] = data["rep_id"]
        elif event.type == "deal.deleted":
            deletions += 1
            assert d.record.key == f"{TENANT.slug}:{owners[data['deal_id']]}".encode()
    assert deletions > 0


def test_the_feed_is_the_same_every_time() -> None:
    one, two = build_feed(SCENARIO, TENANT), build_feed(SCENARIO, TENANT)
    assert [(d.offset, d.record) for d in one.items] == [(d.offset, d.record) for d in two.items]


def test_steps_cover_the_quarter() -> None:
    instants = steps(QUARTER, timedelta(hours=3))
    assert instants[0] == QUARTER.start
    assert instants[-1] < QUARTER.end <= instants[-1] + timedelta(hours=3)
    assert len(instants) == 92 * 8  # July, August, September
    with pytest.raises(ValueError, match="positive"):
        steps(QUARTER, timedelta(0))


def test_an_outbox_row_becomes_the_record_the_relay_publishes() -> None:
    row = {
        "topic": topics.ATTAINMENT.name,
        "key": b"replay:rep:rep-001",
        "value": b"{}",
        "headers": json.dumps([["ce_type", "kpi.attainment.updated"], ["ce_id", "x"]]),
    }
    offsets = ReplayOffsets()
    at = QUARTER.start
    first, second = outbox_record(offsets, row, at), outbox_record(offsets, row, at)
    assert (first.offset, second.offset) == (0, 1)
    assert first.headers == [("ce_type", b"kpi.attainment.updated"), ("ce_id", b"x")]
    assert (first.topic, first.key, first.value, first.partition) == (row["topic"], row["key"], b"{}", 0)


def _task(
    n: int,
    rule: str,
    created: datetime,
    *,
    manager: str = "mgr-a",
    severity: str = "warning",
    status: str = "open",
    reason: str | None = None,
    escalated: datetime | None = None,
) -> TaskRow:
    return TaskRow(
        f"00000000-0000-0000-0000-{n:012d}",
        f"rep-{n % 3:03d}",
        manager,
        rule,
        severity,
        created,
        created + timedelta(days=2),
        status,
        escalated,
        None,
        reason,
    )


MONDAY = datetime(2026, 7, 13, 8, tzinfo=UTC)  # ISO week 2026-W29
TASKS = [
    _task(1, "behind_pace", MONDAY, severity="critical", escalated=MONDAY + timedelta(days=3)),
    _task(2, "behind_pace", MONDAY + timedelta(days=7), status="closed", reason="recovered"),
    _task(3, "no_activity", MONDAY + timedelta(days=1), manager="mgr-b"),
    _task(4, "stalled_pipeline", datetime(2026, 7, 19, 22, 30, tzinfo=UTC)),  # Monday 00:30 in Berlin: W30
]


def test_the_summary_counts_per_rule_week_manager_and_profile() -> None:
    profiles = {"rep-000": Profile.SLIPPING, "rep-001": Profile.STEADY, "rep-002": Profile.STRONG}
    s = summarise(TASKS, Counter({"coaching.task.created": 4, "coaching.task.closed": 1}), BERLIN, profiles)
    assert s.tasks == 4
    assert s.rules == ("behind_pace", "stalled_pipeline", "no_activity")
    assert s.by_rule[0] == ("behind_pace", 2, 1, 1, 1, 1)
    assert s.by_week == (("2026-W29", (1, 0, 1)), ("2026-W30", (1, 1, 0)))
    assert s.by_manager == (("mgr-a", 2, 3, 1, 1), ("mgr-b", 1, 1, 0, 0))
    assert dict((p, (reps, pace, tasks)) for p, reps, pace, tasks in s.by_profile) == {
        "strong": (1, 1, 1),
        "steady": (1, 1, 2),
        "slipping": (1, 0, 1),
    }
    assert dict(s.outbox)["coaching.task.escalated"] == 0
    assert dict(s.by_status) == {"open": 3, "closed": 1}
    assert s.slipping == (("rep-000", None),)  # rep-000 had a no_activity check-in only: never caught
    both = summarise(TASKS, Counter(), BERLIN, profiles | {"rep-001": Profile.SLIPPING})
    assert both.slipping == (("rep-000", None), ("rep-001", "2026-07-13"))


def test_the_digest_is_order_free_and_sees_every_change() -> None:
    assert digest(TASKS) == digest(list(reversed(TASKS)))
    changed = [
        *TASKS[:3],
        _task(4, "stalled_pipeline", datetime(2026, 7, 19, 22, 30, tzinfo=UTC), status="closed", reason="recovered"),
    ]
    assert digest(changed) != digest(TASKS)
    assert digest(TASKS[:3]) != digest(TASKS)
