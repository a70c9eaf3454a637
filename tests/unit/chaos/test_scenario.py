"""The chaos suite's scenario generator: valid, deterministic, and exactly as messy as configured."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.kpi.handlers import MODELS
from shared import topics
from shared.cloudevents import decode
from shared.errors import InvalidMessage
from shared.events import CANONICAL_EVENT
from shared.periods import PeriodKind, period_bounds, period_of
from tests.chaos.scenario import (
    INPUT_TOPICS,
    MALFORMED_HEADER,
    MALFORMED_KINDS,
    MIN_SPAN,
    Event,
    Record,
    Scenario,
    Settings,
    generate,
)

ROOT = Path(__file__).resolve().parents[3]
# The run's clock, fixed: these tests never depend on today's date.
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SMALL = Settings(seed=11, reps_per_tenant=12, teams_per_tenant=3, deals_per_rep=10, activities_per_rep=10)
DEFAULT = Settings()
START, _ = DEFAULT.window(NOW)
TIMES = ("created_at", "closed_at", "updated_at", "occurred_at")
# What decoding says about each kind of malformed record (shared.cloudevents.decode, then the data model).
REASONS = {
    "invalid-field": "invalid", "not-json": "value is not JSON", "not-an-event": "invalid",
    "unknown-type": "is not expected", "missing-headers": "missing CloudEvents header(s): ce_id, ce_source, ce_time",
    "not-an-object": "not a JSON object", "null-value": "value is not JSON", "naive-time": "no UTC offset",
    "wrong-specversion": "ce_specversion", "structured-mode": "structured-mode", "bad-header-encoding": "not UTF-8",
}
BROKEN_FIELD = {topics.DEALS.name: "amount", topics.ACTIVITIES.name: "kind", topics.ROSTER.name: "timezone",
                topics.TARGETS.name: "value"}
BROKEN_HEADER = {"unknown-type": "ce_type", "naive-time": "ce_time", "wrong-specversion": "ce_specversion",
                 "structured-mode": "content-type", "bad-header-encoding": "ce_source"}
GOOD_TYPE = {topics.DEALS.name: b"deal.upserted", topics.ACTIVITIES.name: b"activity.logged",
             topics.ROSTER.name: b"rep.upserted", topics.TARGETS.name: b"target.set"}


@pytest.fixture(scope="module")
def timed() -> tuple[Scenario, float]:
    started = time.perf_counter()
    scenario = generate(DEFAULT, NOW)
    return scenario, time.perf_counter() - started


@pytest.fixture(scope="module")
def scenario(timed: tuple[Scenario, float]) -> Scenario:
    return timed[0]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _digest(scenario: Scenario) -> str:
    raw = json.dumps([scenario.events, scenario.stream, [asdict(t) for t in scenario.tenants],
                      {topic: [list(record) for record in records] for topic, records in scenario.malformed.items()}],
                     default=lambda value: value.hex() if isinstance(value, bytes) else repr(value))
    return hashlib.sha256(raw.encode()).hexdigest()


def _versions(events: list[Event]) -> dict[str, list[Event]]:
    """Every deal event (upserts and deletions) by deal id, in causal order."""
    out: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event["type"].startswith("deal."):
            out[event["data"]["deal_id"]].append(event)
    return out


def _split(versions: list[Event]) -> tuple[list[Event], list[Event]]:
    """(real versions, stale edits): a stale edit is older than a version sent before it."""
    real: list[Event] = []
    stale: list[Event] = []
    for version in versions:
        older = bool(real) and _at(version["data"]["updated_at"]) < _at(real[-1]["data"]["updated_at"])
        (stale if older else real).append(version)
    return real, stale


def _final(versions: list[Event]) -> Event:
    """The version that wins: newest updated_at, ties broken by event id (as kpi does)."""
    return max(versions, key=lambda e: (_at(e["data"]["updated_at"]), e["id"]))


def _consume(topic: str, record: Record) -> None:
    """Decode and validate a record as a service's consumer does (kpi's models: every canonical type)."""
    _, value, headers = record
    event = decode(headers, value)
    model = MODELS.get(event.type)
    if model is None:
        raise InvalidMessage(f"ce_type {event.type!r} is not expected on {topic}")
    try:
        model.model_validate(event.data)
    except ValidationError as err:
        raise InvalidMessage(f"invalid {event.type} data: {err}") from err


def test_default_settings_generate_in_well_under_a_minute(timed: tuple[Scenario, float]) -> None:
    # a guard against a quadratic slip, not a benchmark: 2-3 s on an idle machine, 5-9 s measured while the
    # 2-core machine ran other work (the old bound of 5 s failed there)
    assert timed[1] < 30


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert _digest(generate(SMALL, NOW)) == _digest(generate(SMALL, NOW))
    assert _digest(generate(replace(SMALL, seed=12), NOW)) != _digest(generate(SMALL, NOW))


def test_output_does_not_depend_on_the_hash_seed() -> None:
    code = ("from tests.chaos.scenario import Settings, generate; from tests.unit.chaos.test_scenario import NOW,"
            " SMALL, _digest; print(_digest(generate(SMALL, NOW)))")
    digests = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert digests == {_digest(generate(SMALL, NOW))}


def test_generating_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    generate(SMALL, NOW)
    assert capsys.readouterr() == ("", "")


def test_tenants_have_valid_slugs_varied_zones_and_the_base_currency(scenario: Scenario) -> None:
    assert [t.slug for t in scenario.tenants] == ["chaos-7-0", "chaos-7-1"]
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", t.slug) for t in scenario.tenants)
    assert len({t.timezone for t in scenario.tenants}) == 2
    assert {(t.currency, t.fiscal_start_month) for t in scenario.tenants} == {("EUR", 1)}
    assert list(scenario.events) == [t.slug for t in scenario.tenants]


def test_the_quarter_starts_at_the_latest_local_midnight_of_the_tenants_zones() -> None:
    assert DEFAULT.window(NOW)[0] == datetime(2026, 10, 1, tzinfo=ZoneInfo("America/New_York"))
    given = datetime(2026, 10, 5, tzinfo=UTC)
    assert Settings(quarter_start=given).window(NOW) == (given, NOW)


@pytest.mark.parametrize(("now", "quarter"), [
    (datetime(2027, 2, 14, 9, tzinfo=UTC), "2027-Q1"), (datetime(2027, 5, 3, 22, tzinfo=UTC), "2027-Q2"),
    (datetime(2027, 9, 30, 12, tzinfo=UTC), "2027-Q3"), (datetime(2026, 12, 31, 20, tzinfo=UTC), "2026-Q4"),
])
def test_the_scenario_is_the_quarter_so_far_at_the_clock_it_is_given(now: datetime, quarter: str) -> None:
    scenario = generate(SMALL, now)
    start, _ = SMALL.window(now)
    for events in scenario.events.values():
        assert {e["data"]["period"] for e in events if e["type"] == "target.set"} == {quarter}
        moments = [_at(e["time"]) for e in events] + [_at(e["data"][k]) for e in events for k in TIMES
                                                       if e["data"].get(k)]
        assert start <= min(moments) and max(moments) <= now
        assert max(moments) > now - (now - start) / 4  # the whole quarter so far, up to the clock


@pytest.mark.parametrize("wrong", [
    {"quarter_start": datetime(2026, 10, 5)}, {"reps_per_tenant": 1}, {"duplicate_rate": 1.5},
    {"disorder_window": 0}, {"deals_per_rep": 0}, {"malformed_per_topic": -1},
])
def test_settings_refuse_what_cannot_be_generated(wrong: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**wrong)


@pytest.mark.parametrize(("settings", "now"), [
    (SMALL, datetime(2026, 11, 20)),  # naive
    (Settings(quarter_start=datetime(2026, 9, 1, tzinfo=UTC)), NOW),  # another quarter
    (Settings(quarter_start=datetime(2026, 12, 1, tzinfo=UTC)), NOW),  # after now
    (SMALL, START + MIN_SPAN - timedelta(seconds=1)),  # the first days of a quarter: too short
])
def test_a_clock_the_scenario_cannot_be_generated_for_is_refused(settings: Settings, now: datetime) -> None:
    with pytest.raises(ValueError):
        generate(settings, now)


def test_every_event_validates_against_ingests_model(scenario: Scenario) -> None:
    for events in scenario.events.values():
        for event in events:
            assert CANONICAL_EVENT.validate_python(event).source == "chaos"
            assert json.loads(json.dumps(event)) == event  # plain JSON, nothing else


def test_timestamps_are_aware_and_inside_the_quarter_so_far(scenario: Scenario) -> None:
    for events in scenario.events.values():
        for event in events:
            moments = [_at(event["time"])] + [_at(event["data"][k]) for k in TIMES if event["data"].get(k)]
            assert all(m.tzinfo is not None and START <= m <= NOW for m in moments)
    for tenant in scenario.tenants:  # inside the one quarter the targets name, in the tenant's own zone
        label = period_of(PeriodKind.QUARTER, NOW, tenant.timezone).label
        start, end = period_bounds(label, tenant.timezone)
        assert start <= START < NOW < end


def test_ids_are_unique_per_tenant(scenario: Scenario) -> None:
    for events in scenario.events.values():
        for type_, field in (("activity.logged", "activity_id"), ("team.upserted", "team_id"), (None, None)):
            ids = [e["data"][field] if field else e["id"] for e in events if type_ in (None, e["type"])]
            assert len(set(ids)) == len(ids)


def test_sizes_follow_the_settings(scenario: Scenario) -> None:
    for events in scenario.events.values():
        kinds = Counter(e["type"] for e in events)
        assert kinds["team.upserted"] == 7
        assert kinds["activity.logged"] == 150 * 60
        assert kinds["target.set"] == 150 * 2 + 7
        assert len({e["data"]["deal_id"] for e in events if e["type"] == "deal.upserted"}) == 150 * 40
        assert 3 * 150 * 40 < kinds["deal.upserted"] < 6 * 150 * 40  # created, then edited several times


def test_teams_nest_under_one_region_and_every_rep_has_a_manager(scenario: Scenario) -> None:
    for events in scenario.events.values():
        parents = {e["data"]["team_id"]: e["data"]["parent_team_id"] for e in events if e["type"] == "team.upserted"}
        assert parents.pop("region-1") is None
        assert set(parents.values()) == {"region-1"}
        for rep in (e["data"] for e in events if e["type"] == "rep.upserted"):
            assert rep["team_id"] in parents and rep["manager_id"] == f"mgr-{rep['team_id']}"


def test_five_percent_of_reps_move_team_mid_quarter_dated_by_the_envelope_time(scenario: Scenario) -> None:
    early = START + (NOW - START) / 4
    for events in scenario.events.values():
        roster: dict[str, list[Event]] = defaultdict(list)
        for event in (e for e in events if e["type"] == "rep.upserted"):
            roster[event["data"]["rep_id"]].append(event)
        moves = {rep: evs for rep, evs in roster.items() if len(evs) > 1}
        assert len(roster) == 150 and len(moves) == 8
        for first, moved in moves.values():
            assert first["data"]["team_id"] != moved["data"]["team_id"]
            assert _at(first["time"]) < early < _at(moved["time"])


def test_a_move_may_arrive_before_the_reps_first_roster_event_kpi_does_not_depend_on_their_order() -> None:
    """The roster is shuffled like everything else (it used to be kept in causal order, because kpi took the
    first roster event to arrive as the rep's first team): with the whole stream one window, some moves come
    first, and the oracle still expects the history made of the events' times."""
    scenario = generate(replace(SMALL, reps_per_tenant=40, disorder_window=100_000), NOW)
    early = 0
    for slug, events in scenario.events.items():
        roster = [(e["data"]["rep_id"], e["id"]) for e in events if e["type"] == "rep.upserted"]
        moved = {rep for rep, n in Counter(rep for rep, _ in roster).items() if n > 1}
        assert len(moved) == 2
        delivered = [(e["data"]["rep_id"], e["id"]) for s, e in scenario.stream if s == slug and e["id"] in
                     {i for _, i in roster}]
        for rep in moved:
            early += [i for r, i in dict.fromkeys(delivered) if r == rep] != [i for r, i in roster if r == rep]
    assert early > 0


def test_a_deals_versions_move_forward_in_updated_at_but_for_a_late_stale_edit(scenario: Scenario) -> None:
    for events in scenario.events.values():
        for versions in _versions(events).values():
            real, stale = _split(versions)
            assert stale in ([], versions[-1:])  # at most one, sent after the newest version
            first = real[0]["data"]
            assert first["stage"] == "open" and first["created_at"] == first["updated_at"]
            moments = [_at(v["data"]["updated_at"]) for v in real]
            assert moments == sorted(moments) and len(set(moments)) == len(moments)
            assert all(v["type"] == "deal.upserted" for v in real[:-1])  # nothing after a deletion
            for version in (v["data"] for v in versions if v["type"] == "deal.upserted"):
                assert re.fullmatch(r"\d+\.\d{2}", version["amount"]) and version["currency"] == "EUR"
                assert version["created_at"] == first["created_at"]
                assert ("closed_at" in version) == (version["stage"] != "open")
                if "closed_at" in version:
                    assert _at(version["created_at"]) <= _at(version["closed_at"]) <= _at(version["updated_at"])


def test_some_deals_are_reopened_deleted_reassigned_or_edited_stale(scenario: Scenario) -> None:
    for events in scenario.events.values():
        reopened = deleted = reassigned = stale_edits = 0
        for versions in _versions(events).values():
            real, stale = _split(versions)
            upserts = [v["data"] for v in real if v["type"] == "deal.upserted"]
            reopened += any(v["stage"] == "won" for v in upserts) and real[-1]["data"].get("stage") == "open"
            deleted += real[-1]["type"] == "deal.deleted"
            reassigned += len({v["rep_id"] for v in upserts}) > 1
            stale_edits += len(stale)
            if stale:  # it would change the outcome if it were applied
                assert stale[0]["data"]["stage"] == "won" and _final(versions) is real[-1]
        assert reopened == 180  # 3 % of 6,000 deals
        assert deleted == 120  # 2 %
        assert reassigned == 180  # 3 %
        assert stale_edits == 60  # 1 %


def test_activities_fall_in_business_hours_in_the_reps_zone(scenario: Scenario) -> None:
    for events in scenario.events.values():
        zones = {e["data"]["rep_id"]: e["data"]["timezone"] for e in events if e["type"] == "rep.upserted"}
        deals = {e["data"]["deal_id"] for e in events if e["type"] == "deal.upserted"}
        kinds: Counter[str] = Counter()
        for data in (e["data"] for e in events if e["type"] == "activity.logged"):
            local = _at(data["occurred_at"]).astimezone(ZoneInfo(zones[data["rep_id"]]))
            assert local.weekday() < 5 and 8 <= local.hour < 18
            assert data.get("deal_id", "deal-00001") in deals
            kinds[data["kind"]] += 1
        assert set(kinds) == {"call", "email", "meeting", "demo", "task", "other"}
        assert 0.35 < kinds["call"] / sum(kinds.values()) < 0.45


def test_targets_spread_reps_over_the_three_attainment_bands(scenario: Scenario) -> None:
    for tenant in scenario.tenants:
        events = scenario.events[tenant.slug]
        period = period_of(PeriodKind.QUARTER, NOW, tenant.timezone).label
        won: dict[str, Decimal] = defaultdict(Decimal)
        for versions in _versions(events).values():
            final = _final(versions)
            if final["type"] == "deal.upserted" and final["data"]["stage"] == "won":
                won[final["data"]["rep_id"]] += Decimal(final["data"]["amount"])
        calls = Counter(e["data"]["rep_id"] for e in events
                        if e["type"] == "activity.logged" and e["data"]["kind"] == "call")
        targets = {(t["scope"], t["scope_id"], t["metric"]): Decimal(t["value"])
                   for t in (e["data"] for e in events if e["type"] == "target.set") if t["period"] == period}
        assert len(targets) == 150 * 2 + 7
        teams = {f"team-0{i}" for i in range(1, 7)} | {"region-1"}
        assert {(i, m) for s, i, m in targets if s == "team"} == {(team, "won_revenue") for team in teams}
        actuals: tuple[tuple[str, dict[str, Decimal] | Counter[str]], ...] = (("won_revenue", won), ("calls", calls))
        for metric, actual in actuals:
            shares = [Decimal(actual.get(rep, 0)) / targets[("rep", rep, m)]
                      for s, rep, m in targets if s == "rep" and m == metric]
            above, below = sum(s > 1 for s in shares), sum(s < Decimal("0.5") for s in shares)
            assert 40 <= above <= 60 and 40 <= below <= 60 and 40 <= len(shares) - above - below <= 60


def test_the_stream_holds_every_event_at_least_once_plus_the_duplicates(scenario: Scenario) -> None:
    total = sum(len(events) for events in scenario.events.values())
    canonical = {(slug, e["id"]): e for slug, events in scenario.events.items() for e in events}
    seen = Counter((slug, event["id"]) for slug, event in scenario.stream)
    assert set(seen) == set(canonical)
    assert len(scenario.stream) == total + round(0.02 * total)
    assert sum(n - 1 for n in seen.values()) == round(0.02 * total)
    first: dict[tuple[str, str], int] = {}
    for position, (slug, event) in enumerate(scenario.stream):
        assert event == canonical[(slug, event["id"])]  # a duplicate is the same event, same id
        first.setdefault((slug, event["id"]), position)
        assert position >= first[(slug, event["id"])]


def test_delivery_is_out_of_order_within_the_window_and_interleaves_tenants(scenario: Scenario) -> None:
    causal = {(slug, e["id"]): i for slug, events in scenario.events.items() for i, e in enumerate(events)}
    delivered: dict[str, list[int]] = defaultdict(list)
    for slug, event_id in dict.fromkeys((slug, event["id"]) for slug, event in scenario.stream):  # first deliveries
        delivered[slug].append(causal[(slug, event_id)])
    for order in delivered.values():
        assert order != sorted(order)
        assert all(abs(position - index) < 50 for position, index in enumerate(order))
    assert {slug for slug, _ in scenario.stream[:200]} == set(scenario.events)
    arrivals: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for slug, event in scenario.stream:
        if event["type"] == "deal.upserted":
            arrivals[(slug, event["data"]["deal_id"])].append(_at(event["data"]["updated_at"]))
    assert sum(times != sorted(times) for times in arrivals.values()) > 100  # versions arrive out of order


def test_every_malformed_record_fails_decoding_in_its_intended_way(scenario: Scenario) -> None:
    assert list(scenario.malformed) == [t.name for t in INPUT_TOPICS]
    assert [t.name for t in INPUT_TOPICS] == [t.name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER,
                                                                 topics.TARGETS)]
    kinds_seen: list[str] = []
    for topic, records in scenario.malformed.items():
        kinds = [dict(headers)[MALFORMED_HEADER].decode() for _, _, headers in records]
        assert len(records) == 3 and len(set(kinds)) == 3
        kinds_seen += kinds
        for kind, record in zip(kinds, records, strict=True):
            with pytest.raises(InvalidMessage) as caught:
                _consume(topic, record)
            assert REASONS[kind] in str(caught.value)
            assert kind != "invalid-field" or BROKEN_FIELD[topic] in str(caught.value)
            assert record[0] is not None and b":chaos-malformed/" in record[0]  # never a real entity's key
    assert sorted(set(kinds_seen)) == sorted(MALFORMED_KINDS)


def test_each_malformed_record_is_broken_in_one_way_only() -> None:
    """With its one defect repaired, a record decodes: so what the DLQ reports is the intended defect."""
    scenario = generate(replace(SMALL, malformed_per_topic=len(MALFORMED_KINDS)), NOW)
    for topic, records in scenario.malformed.items():
        good = {"ce_type": GOOD_TYPE[topic], "ce_time": b"2026-11-02T10:00:00+00:00", "ce_specversion": b"1.0",
                "content-type": b"application/json", "ce_source": b"chaos"}
        for key, value, headers in records:
            kind = dict(headers)[MALFORMED_HEADER].decode()
            if kind in BROKEN_HEADER:
                _consume(topic, (key, value, [(n, good[n] if n == BROKEN_HEADER[kind] else v) for n, v in headers]))
            elif kind == "missing-headers":
                _consume(topic, (key, value, [*headers, ("ce_id", b"x"), ("ce_source", b"chaos"),
                                              ("ce_time", good["ce_time"])]))
            else:  # a broken value: the headers alone are a valid binary-mode CloudEvent
                decode(headers, b"{}")


@pytest.mark.parametrize("per_topic", [1, 2, 3, 5, len(MALFORMED_KINDS)])
def test_a_record_without_a_value_is_never_dealt_to_a_compacted_topic(per_topic: int) -> None:
    """On roster and targets (compacted) a record without a value is a tombstone, which consumers skip by
    design: as poison it would be expected in `.dlq` and never reach it."""
    scenario = generate(replace(SMALL, malformed_per_topic=per_topic), NOW)
    compacted = {t.name for t in INPUT_TOPICS if t.cleanup == "compact"}
    for topic, records in scenario.malformed.items():
        assert len(records) == per_topic
        for _, value, headers in records:
            assert value is not None or topic not in compacted, dict(headers)[MALFORMED_HEADER]
