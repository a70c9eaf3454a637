"""Decoding internal records once, with msgspec (`shared.wire`), checks exactly what the pydantic models check.

Each payload goes through today's path (headers and `json.loads`, then `model_validate`: the consumer's decode
at 5388e05, frozen in `benchmarks.decode`) and through the new one (`TransactionalConsumer._decode`). Both must
accept and refuse the same payloads, with the same message, and build equal models. The fast path alone
(`wire.decode`) must take every canonical payload a producer writes, and never accept what pydantic refuses.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared import wire
from shared.cloudevents import CloudEvent, encode
from shared.consumer import Incoming, TransactionalConsumer
from shared.errors import InvalidMessage
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TargetSet,
    TeamUpserted,
    TenantUpserted,
)

# tests/unit/shared is no package (no __init__.py), so alone this module would not find `tests`: the root it needs.
if str(Path(__file__).resolve().parents[3]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.decode import before as decode_at_5388e05
from tests.chaos.scenario import MALFORMED_HEADER, MALFORMED_KINDS, Settings, generate

AT = datetime(2026, 11, 5, 9, tzinfo=UTC)  # a fixed clock: nothing here depends on today's date
# Every event type a consumer of an internal topic reads (kpi, coaching and recognition together).
MODELS: dict[str, type[BaseModel]] = {
    "deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
    "rep.upserted": RepUpserted, "team.upserted": TeamUpserted, "target.set": TargetSet,
    "kpi.attainment.updated": AttainmentUpdated, "tenant.upserted": TenantUpserted,
}


@dataclass
class Record:
    """What aiokafka hands the consumer (the fields `_decode` reads)."""

    headers: list[tuple[str, bytes]]
    value: bytes | None
    topic: str = "sales.deals.v1"
    partition: int = 0
    offset: int = 7
    timestamp: int = 0
    key: bytes | None = field(default=None)


CONSUMER = TransactionalConsumer(pool=None, producer=None, group_id="g-test-wire", service="t", models=MODELS,
                                 handler=None)  # type: ignore[arg-type]  # decode only


def headers_of(type_: str) -> list[tuple[str, bytes]]:
    event = CloudEvent(id="e-1", type=type_, source="api", time=AT, tenant="acme", data={},
                       extensions={"tenanttimezone": "Europe/Berlin"})
    return encode(event)[1]


def record(type_: str, data: dict[str, Any] | bytes | None) -> Record:
    """A record as a producer writes it: the data as compact UTF-8 JSON (as pydantic's `model_dump_json`)."""
    value = data if isinstance(data, bytes) or data is None else json.dumps(
        data, separators=(",", ":"), ensure_ascii=False).encode()
    return Record(headers_of(type_), value)


def today(rec: Record) -> BaseModel:
    """The consumer's decode at 5388e05, before `shared.wire`: the reference (a frozen copy, shared with the
    benchmark, so that a change to `shared.cloudevents` cannot move it)."""
    return decode_at_5388e05(rec)


def outcome(decoder: Any, rec: Record) -> tuple[str, Any]:
    try:
        result = decoder(rec)
    except InvalidMessage as err:
        return "refused", str(err)
    except (ValueError, ArithmeticError) as err:  # pydantic lets a validator's OverflowError escape unwrapped
        return "escaped", repr(err)
    return "accepted", result.data if isinstance(result, Incoming) else result


def dumped(model: BaseModel) -> str:
    """The model's JSON, or why it has none (a lone surrogate, which pydantic accepts in a plain `str`)."""
    try:
        return model.model_dump_json()
    except ValueError as err:
        return repr(err)


def assert_same(rec: Record, *, fast: bool | None = None) -> str:
    """Both paths agree on `rec`; returns the verdict. `fast`: whether the fast path must take it (True), must
    hand it over (False), or may do either (None)."""
    old, new = outcome(today, rec), outcome(CONSUMER._decode, rec)
    if old[0] == "escaped":  # today the batch failed and the record was dead-lettered alone; now it is at once
        assert new[0] == "refused", (old, new)
    else:
        assert new[0] == old[0], (old, new)
    if old[0] == "accepted":
        assert type(new[1]) is type(old[1])
        assert new[1] == old[1]
        assert dumped(new[1]) == dumped(old[1])
        assert new[1].model_dump() == old[1].model_dump()
    elif old[0] == "refused":
        assert new[1] == old[1]  # the same message, naming the field
    event_type = dict(rec.headers).get("ce_type", b"").decode(errors="replace")
    model = MODELS.get(event_type)
    if model is not None:  # the fast path alone, against pydantic on the value alone (whatever the headers say)
        try:
            reference: BaseModel | None = model.model_validate(json.loads(rec.value or b""))
        except (ValueError, ArithmeticError):
            reference = None
        try:  # the Struct alone (no guard, no hand-over) never accepts what pydantic refuses
            msgspec.json.decode(rec.value or b"", type=wire.STRUCTS[model])
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            assert reference is not None, f"{wire.STRUCTS[model].__name__} accepted, pydantic refuses: {rec.value!r}"
        try:
            quick = wire.decode(model, rec.value)
        except wire.Unsure:
            assert fast is not True, f"the fast path handed over a canonical payload: {rec.value!r}"
        else:
            assert fast is not False, f"the fast path took a payload it must hand over: {rec.value!r}"
            assert reference is not None, f"the fast path accepted what pydantic refuses: {rec.value!r}"
            assert quick == reference and dumped(quick) == dumped(reference)
    return old[0]


# --- the corpus -------------------------------------------------------------------------------------------

T = "2026-11-05T09:00:00Z"
DEAL: dict[str, Any] = {"deal_id": "d1", "rep_id": "r1", "amount": "90000", "currency": "EUR", "stage": "won",
                        "stage_label": "Closed Won", "created_at": "2026-10-01T08:00:00+02:00", "closed_at": T,
                        "updated_at": "2026-11-05T09:00:00.123456Z"}
ACTIVITY: dict[str, Any] = {"activity_id": "a1", "rep_id": "r1", "kind": "call", "occurred_at": T,
                            "deal_id": "d1", "duration_s": 300}
REP: dict[str, Any] = {"rep_id": "r1", "name": "Zoë O'Brien", "team_id": "t1", "manager_id": "m1",
                       "email": "zoe@example.com", "timezone": "Asia/Kolkata", "active": False}
TEAM: dict[str, Any] = {"team_id": "t1", "name": "Nord", "parent_team_id": "region-1"}
TARGET: dict[str, Any] = {"scope": "team", "scope_id": "t1", "metric": "won_revenue", "period": "2026-Q4",
                          "value": "180000.50"}
FIGURE: dict[str, Any] = {"scope": "rep", "scope_id": "r1", "period": "2026-Q4", "metric": "won_revenue",
                          "actual": "90000", "target": "180000", "attainment": "0.5000", "expected": "45000.0000",
                          "pace": "2.0000", "projected": "200000.00", "as_of": T,
                          "period_start": "2026-09-30T22:00:00Z", "period_end": "2026-12-31T23:00:00Z",
                          "team_id": "t1", "manager_id": "m1", "name": "Jürgen"}
TENANT: dict[str, Any] = {"tenant": "acme", "timezone": "Europe/Berlin", "currency": "EUR", "fiscal_start_month": 4,
                          "token_sha256": "ab" * 32, "active": True, "locale": "de_DE",
                          "rates": [{"currency": "USD", "valid_from": "2026-01-01", "rate": "0.92"},
                                    {"currency": "GBP", "valid_from": "2026-06-01", "rate": "1.171234567891"}]}
BASE: dict[str, dict[str, Any]] = {
    "deal.upserted": DEAL, "deal.deleted": {"deal_id": "d1", "updated_at": T}, "activity.logged": ACTIVITY,
    "rep.upserted": REP, "team.upserted": TEAM, "target.set": TARGET, "kpi.attainment.updated": FIGURE,
    "tenant.upserted": TENANT,
}


def changed(type_: str, **changes: Any) -> dict[str, Any]:
    data = {**BASE[type_], **changes}
    return {k: v for k, v in data.items() if v is not OMIT}


OMIT = object()

# Canonical payloads, as producers write them: the fast path takes every one.
FORECAST: dict[str, Any] = {
    "closed": "40000", "commit": "25000", "best_case": "10000", "pipeline": "5000", "weighted": "61500", "gap": "35000",
    "probability": "0.42", "method": "exact", "error": "0", "open_deals": 3, "estimated": 1, "undated": 2,
    "deals": [{"deal_id": "d9", "rep_id": "r1", "amount": "25000", "probability": "0.9", "basis": "crm",
               "forecast_category": "commit", "expected_close_at": "2026-12-18T16:00:00Z"}]}
VALID: list[tuple[str, str, dict[str, Any]]] = [
    *[(type_, "base", data) for type_, data in BASE.items()],
    ("deal.upserted", "open, no dates", changed("deal.upserted", stage="open", closed_at=OMIT, created_at=OMIT,
                                                 stage_label=OMIT)),
    ("deal.upserted", "open with a null close date", changed("deal.upserted", stage="open", closed_at=None)),
    ("deal.upserted", "lost", changed("deal.upserted", stage="lost")),
    *[("deal.upserted", f"amount {a}", changed("deal.upserted", amount=a))
      for a in ("9E+4", "1.5E+3", "0.0001", "12.50", "0", "-0", "12.50000", "99999999999999.9999", " 7 ", "1_000")],
    ("deal.upserted", "an unknown field", changed("deal.upserted", win_chance="0.4")),
    ("deal.upserted", "properties", changed("deal.upserted", properties={"hs_lead_source": "Webinar", "a.b:c-d": ""})),
    ("activity.logged", "properties", changed("activity.logged", properties={"outcome": "held"})),
    ("target.set", "a KPI the tenant defined", changed("target.set", metric="demos_held")),
    ("kpi.attainment.updated", "a KPI the tenant defined", changed("kpi.attainment.updated", metric="demos_held")),
    ("deal.upserted", "a forecast", changed("deal.upserted", stage="open", closed_at=OMIT, probability="0.4",
                                            expected_close_at="2026-12-18T17:00:00+01:00", forecast_category="commit")),
    *[("deal.upserted", f"probability {p}", changed("deal.upserted", probability=p))
      for p in ("0", "1", "1.0000", "0.0001", "0.35", "-0")],
    *[("deal.upserted", f"category {c}", changed("deal.upserted", forecast_category=c))
      for c in ("pipeline", "best_case", "commit", "omitted")],
    ("deal.upserted", "an offset time", changed("deal.upserted", updated_at="2026-11-05T10:00:00+01:00")),
    ("deal.upserted", "space and lower-case separators", changed("deal.upserted", updated_at="2026-11-05 09:00:00z")),
    ("deal.upserted", "the first countable moment", changed("deal.upserted", closed_at="1970-01-01T00:00:00Z")),
    ("deal.upserted", "the last countable year", changed("deal.upserted", closed_at="9998-12-31T23:59:59Z")),
    ("deal.upserted", "9999 locally, 9998 in UTC", changed("deal.upserted", closed_at="9999-01-01T00:30:00+01:00")),
    ("deal.upserted", "200-character ids", changed("deal.upserted", deal_id="x" * 200, stage_label="y" * 200)),
    ("activity.logged", "no deal, no duration", changed("activity.logged", deal_id=None, duration_s=OMIT)),
    *[("activity.logged", f"kind {k}", changed("activity.logged", kind=k))
      for k in ("email", "meeting", "demo", "task", "other")],
    ("rep.upserted", "defaults", changed("rep.upserted", manager_id=OMIT, email=OMIT, active=OMIT)),
    ("team.upserted", "a root team", changed("team.upserted", parent_team_id=None, name=None)),
    *[("target.set", f"period {p}", changed("target.set", period=p, scope="rep", metric="calls"))
      for p in ("2026-11", "2026-W48", "2026", "2026-Q1")],
    ("kpi.attainment.updated", "no target", changed("kpi.attainment.updated", target=None, attainment=None,
                                                    expected=None, pace=None, projected=OMIT, period_start=OMIT)),
    ("kpi.attainment.updated", "a figure in year 1", changed("kpi.attainment.updated", as_of="0001-01-01T00:00:00Z")),
    ("kpi.attainment.updated", "a forecast", changed("kpi.attainment.updated", forecast=FORECAST)),
    ("kpi.attainment.updated", "a forecast without a target",
     changed("kpi.attainment.updated", forecast={**FORECAST, "probability": None, "method": None, "error": None,
                                                 "deals": []})),
    ("tenant.upserted", "before tenants had rates or a locale", changed("tenant.upserted", rates=OMIT, locale=OMIT)),
]

# Payloads pydantic's lax mode accepts by coercion, or spelled with escapes a producer does not write: the fast path
# hands them over, and the result is today's.
LAX: list[tuple[str, str, dict[str, Any] | bytes]] = [
    ("deal.upserted", "a JSON number amount", changed("deal.upserted", amount=90000)),
    ("deal.upserted", "a JSON float amount", changed("deal.upserted", amount=1.10)),
    ("deal.upserted", "a float with more digits than a float keeps",
     json.dumps(changed("deal.upserted", amount="@")).replace('"@"', "1.0000000000000001").encode()),
    ("deal.upserted", "a unix timestamp", changed("deal.upserted", updated_at=1_700_000_000)),
    ("deal.upserted", "a unix timestamp as text", changed("deal.upserted", updated_at="1700000000")),
    ("deal.upserted", "no seconds", changed("deal.upserted", updated_at="2026-11-05T09:00Z")),
    ("deal.upserted", "a comma fraction", changed("deal.upserted", updated_at="2026-11-05T09:00:00,5Z")),
    ("deal.upserted", "nanoseconds (pydantic truncates, msgspec would round)",
     changed("deal.upserted", closed_at="2026-09-30T23:59:59.9999999Z")),
    ("deal.upserted", "an escaped fraction", b'{"deal_id":"d","rep_id":"r","amount":"1","currency":"EUR","stage":'
     b'"won","closed_at":"2026-09-30T23:59:59\\u002e9999999Z","updated_at":"2026-11-05T09:00:00Z"}'),
    ("deal.upserted", "escaped non-ASCII text",
     json.dumps(changed("deal.upserted", stage_label="Gewonnen ü")).encode()),
    ("activity.logged", "a duration as text", changed("activity.logged", duration_s="300")),
    ("activity.logged", "a whole float duration", changed("activity.logged", duration_s=300.0)),
    ("activity.logged", "a boolean duration", changed("activity.logged", duration_s=True)),
    ("rep.upserted", "active as text", changed("rep.upserted", active="yes")),
    ("rep.upserted", "active as a number", changed("rep.upserted", active=0)),
    ("tenant.upserted", "a rate date with a midnight time", changed("tenant.upserted", rates=[
        {"currency": "USD", "valid_from": "2026-01-01T00:00:00", "rate": "0.92"}])),
    ("tenant.upserted", "a month as text", changed("tenant.upserted", fiscal_start_month="4")),
    ("kpi.attainment.updated", "a lone surrogate in a plain text field",
     b'{"scope":"rep","scope_id":"r","period":"\\ud800","metric":"calls","actual":"1","as_of":"2026-11-05T09:00:00Z"}'),
    ("kpi.attainment.updated", "a NUL in a plain text field", changed("kpi.attainment.updated", name="a\x00b")),
    ("target.set", "a JSON number value", changed("target.set", value=12)),
    ("deal.upserted", "a byte-order mark", b"\xef\xbb\xbf" + json.dumps(DEAL).encode()),
]

# Refused by the models: the cases of tests/unit/shared/test_events.py, then every other rule of shared/events.py.
INVALID: list[tuple[str, str, dict[str, Any] | bytes | None]] = [
    *[("deal.upserted", f"{f}={v!r}", changed("deal.upserted", **{f: v})) for f, v in (
        ("amount", "-0.01"), ("amount", "NaN"), ("amount", "Infinity"), ("amount", "-Infinity"), ("amount", "sNaN"),
        ("amount", "0.00001"), ("amount", "123456789012345678901"), ("amount", "1e-5"), ("amount", "0.000010"),
        ("amount", "100000000000000000.0"), ("amount", "1E+17"), ("amount", "lots"), ("amount", "0x10"),
        ("amount", True), ("amount", None), ("amount", "-250.00"),
        ("currency", "eur"), ("currency", "EURO"), ("currency", "EUR\n"), ("currency", "€UR"), ("currency", 978),
        ("stage", "pending"), ("stage", "WON"), ("stage", None),
        ("deal_id", ""), ("deal_id", 17), ("deal_id", "d\x00"), ("rep_id", "x" * 201), ("rep_id", None),
        ("stage_label", "y" * 201), ("stage_label", "a\x00"), ("stage_label", 3),
        ("updated_at", "2026-11-05T09:00:00"), ("updated_at", "2026-11-05"), ("updated_at", "yesterday"),
        ("updated_at", None), ("updated_at", "2026-11-05T24:00:00Z"), ("updated_at", "2026-02-30T09:00:00Z"),
        ("closed_at", "0281-03-01T00:00:00Z"), ("closed_at", "1969-12-31T23:59:59Z"),
        ("closed_at", "1970-01-01T00:30:00+01:00"), ("created_at", "9999-06-01T00:00:00Z"),
        ("created_at", "2026-11-05T09:00:00+24:00"),
        ("properties", {"bad name": "x"}), ("properties", {"x": "y" * 501}), ("properties", {"x": "a\x00"}),
        ("properties", {"x": 1}), ("properties", {f"p{i}": "v" for i in range(51)}), ("properties", ["x"]),
        ("probability", "1.0001"), ("probability", "-0.1"), ("probability", "0.12345"), ("probability", "NaN"),
        ("probability", "Infinity"), ("probability", "2"), ("probability", "50%"), ("forecast_category", "Commit"),
        ("forecast_category", "maybe"), ("expected_close_at", "2026-12-18"),
        ("expected_close_at", "0281-03-01T00:00:00Z"), ("expected_close_at", "2026-12-18T17:00:00"),
    )],
    *[("deal.upserted", f"a {s} deal without a close date", changed("deal.upserted", stage=s, closed_at=c))
      for s in ("won", "lost") for c in (None, OMIT)],
    *[("deal.upserted", f"no {f}", changed("deal.upserted", **{f: OMIT}))
      for f in ("deal_id", "rep_id", "amount", "currency", "stage", "updated_at")],
    ("deal.upserted", "a time past year 9999 in UTC", changed("deal.upserted", updated_at="9999-12-31T23:00:00-05:00")),
    ("deal.upserted", "a time before year 1 in UTC", changed("deal.upserted", created_at="0001-01-01T00:30:00+01:00")),
    ("deal.deleted", "no updated_at", changed("deal.deleted", updated_at=OMIT)),
    ("deal.deleted", "an empty id", changed("deal.deleted", deal_id="")),
    *[("activity.logged", f"{f}={v!r}", changed("activity.logged", **{f: v})) for f, v in (
        ("duration_s", -1), ("duration_s", 1.5), ("duration_s", "five"), ("kind", "carrier-pigeon"),
        ("kind", "Call"), ("occurred_at", "2026-11-05T09:00:00"), ("deal_id", ""), ("activity_id", "a" * 201),
        ("rep_id", "r\x00"),
    )],
    *[("rep.upserted", f"{f}={v!r}", changed("rep.upserted", **{f: v})) for f, v in (
        ("timezone", "Europe/Atlantis"), ("timezone", "Mars/Olympus_Mons"), ("timezone", ""), ("timezone", "America"),
        ("timezone", None), ("name", ""), ("name", "n" * 201), ("name", "A\x00"), ("email", "e" * 321),
        ("email", "a\x00@b"), ("active", "maybe"), ("active", None), ("manager_id", ""), ("team_id", None),
    )],
    ("rep.upserted", "no timezone", changed("rep.upserted", timezone=OMIT)),
    ("team.upserted", "its own parent", changed("team.upserted", parent_team_id="t1")),
    ("team.upserted", "a long name", changed("team.upserted", name="n" * 201)),
    ("team.upserted", "an empty parent", changed("team.upserted", parent_team_id="")),
    *[("target.set", f"period {p!r}", changed("target.set", period=p))
      for p in ("2026-Q5", "2026-00", "2026-W60", "2026-q4", "26", "1969", "2026-13", "", None)],
    *[("target.set", f"{f}={v!r}", changed("target.set", **{f: v})) for f, v in (
        ("metric", "Revenue"), ("metric", "won-revenue"), ("metric", "x" * 41), ("scope", "region"),
        ("value", "-1000.00"), ("value", "1.00001"), ("value", "NaN"), ("scope_id", ""),
    )],
    *[("kpi.attainment.updated", f"{f}={v!r}", changed("kpi.attainment.updated", **{f: v})) for f, v in (
        ("actual", "NaN"), ("target", "Infinity"), ("pace", "lots"), ("as_of", "2026-11-05T09:00:00"),
        ("scope_id", ""), ("scope_id", "s\x00"), ("metric", "Velocity"), ("period_end", "never"), ("name", 3),
    )],
    ("kpi.attainment.updated", "no actual", changed("kpi.attainment.updated", actual=OMIT)),
    *[("kpi.attainment.updated", f"forecast {f}={v!r}", changed("kpi.attainment.updated", forecast={**FORECAST, f: v}))
      for f, v in (("weighted", "NaN"), ("probability", "Infinity"), ("open_deals", -1), ("method", "guess"),
                   ("gap", None), ("deals", [{**FORECAST["deals"][0], "basis": "hunch"}]),
                   ("deals", [{**FORECAST["deals"][0], "expected_close_at": "2026-12-18"}]),
                   ("deals", FORECAST["deals"] * 11), ("estimated", "one"))],
    ("kpi.attainment.updated", "a forecast without closed",
     changed("kpi.attainment.updated", forecast={k: v for k, v in FORECAST.items() if k != "closed"})),
    *[("tenant.upserted", f"rate {r!r}", changed("tenant.upserted", rates=[
        {"currency": "USD", "valid_from": "2026-01-01", "rate": r}])) for r in ("0", "-1", "1.0000000000001", "NaN")],
    ("tenant.upserted", "a lower-case rate currency", changed("tenant.upserted", rates=[
        {"currency": "usd", "valid_from": "2026-01-01", "rate": "1"}])),
    ("tenant.upserted", "a bad rate date", changed("tenant.upserted", rates=[
        {"currency": "USD", "valid_from": "2026-02-30", "rate": "1"}])),
    ("tenant.upserted", "no token", changed("tenant.upserted", token_sha256=OMIT)),
    ("tenant.upserted", "rates not a list", changed("tenant.upserted", rates={"USD": "1"})),
    # the value itself
    ("deal.upserted", "not JSON", b'{"deal_id": "d1", "amo'),
    ("deal.upserted", "not UTF-8", b"\xff\xfe not json"),
    ("deal.upserted", "not an object", b"[1, 2]"),
    ("deal.upserted", "null", b"null"),
    ("deal.upserted", "no value", None),
    ("deal.upserted", "an empty value", b""),
    ("deal.upserted", "trailing data", json.dumps(DEAL).encode() + b"x"),
    ("deal.upserted", "a control character in a string", json.dumps(DEAL).replace("d1", "d\t1").encode()),
    ("deal.upserted", "NaN as a JSON literal", json.dumps(DEAL).replace('"90000"', "NaN").encode()),
    ("deal.upserted", "not an event", b'{"hello": "world"}'),
    ("target.set", "the poison test's deal", b'{"deal_id": "d-p", "amount": "lots"}'),
]


def _id(case: tuple[str, str, Any]) -> str:
    return f"{case[0]}: {case[1]}"


@pytest.mark.parametrize("case", VALID, ids=_id)
def test_canonical_payloads_take_the_fast_path_and_build_the_same_model(case: tuple[str, str, Any]) -> None:
    assert assert_same(record(case[0], case[2]), fast=True) == "accepted"


@pytest.mark.parametrize("case", LAX, ids=_id)
def test_payloads_pydantic_coerces_are_handed_to_the_exact_path_and_accepted_as_today(
        case: tuple[str, str, Any]) -> None:
    assert assert_same(record(case[0], case[2]), fast=False) == "accepted"


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_invalid_payloads_are_refused_by_both_with_the_same_message(case: tuple[str, str, Any]) -> None:
    assert assert_same(record(case[0], case[2]), fast=False) in ("refused", "escaped")


def test_a_time_past_the_last_datetime_is_refused_at_once_naming_its_field() -> None:
    """The models refuse it with their own message (they used to let an OverflowError out, which failed the
    whole batch and had it retried record by record); both paths name the field."""
    rec = record("deal.upserted", changed("deal.upserted", updated_at="9999-12-31T23:00:00-05:00"))
    with pytest.raises(InvalidMessage, match=r"invalid deal\.upserted data: updated_at: .*between 1970 and 9998"):
        today(rec)
    with pytest.raises(InvalidMessage, match=r"invalid deal\.upserted data: updated_at: .*between 1970 and 9998"):
        CONSUMER._decode(rec)


def test_the_consumer_hands_the_handler_a_model_and_the_event_its_attributes() -> None:
    msg = CONSUMER._decode(record("deal.upserted", DEAL))
    assert isinstance(msg.data, DealUpserted) and msg.event.data is msg.data
    assert msg.data.amount == Decimal("90000") and isinstance(msg.data.amount, Decimal)
    assert msg.data.updated_at == datetime(2026, 11, 5, 9, 0, 0, 123456, tzinfo=UTC)
    assert (msg.event.id, msg.event.type, msg.event.source, msg.event.tenant, msg.event.time) == (
        "e-1", "deal.upserted", "api", "acme", AT)
    assert msg.event.tenant_timezone == "Europe/Berlin"
    assert (msg.topic, msg.partition, msg.offset) == ("sales.deals.v1", 0, 7)
    with pytest.raises(ValidationError):
        msg.data.amount = Decimal(1)  # type: ignore[misc]  # frozen, like a validated model


def test_a_tenant_entry_carries_pydantic_exchange_rates() -> None:
    entry = CONSUMER._decode(record("tenant.upserted", TENANT)).data
    assert isinstance(entry, TenantUpserted)
    assert [type(r).__name__ for r in entry.rates] == ["ExchangeRate", "ExchangeRate"]
    assert entry.rates[1].rate == Decimal("1.171234567891")


def test_an_unexpected_type_is_refused_naming_the_topic() -> None:
    assert assert_same(record("deal.exploded", DEAL)) == "refused"
    with pytest.raises(InvalidMessage, match=r"ce_type 'deal\.exploded' is not expected on sales\.deals\.v1"):
        CONSUMER._decode(record("deal.exploded", DEAL))


def test_a_model_without_a_struct_is_decoded_the_exact_way() -> None:
    class Other(BaseModel):
        n: int

    with pytest.raises(wire.Unsure):
        wire.decode(Other, b'{"n": 1}')
    assert wire.decoder_for(Other) is None


# --- the chaos suite's malformed records -----------------------------------------------------------------


def _malformed() -> list[tuple[str, Record]]:
    small = Settings(seed=3, tenants=1, reps_per_tenant=2, teams_per_tenant=1, deals_per_rep=2,
                     activities_per_rep=2, malformed_per_topic=len(MALFORMED_KINDS))
    scenario = generate(small, datetime(2026, 11, 20, 12, tzinfo=UTC))
    out = []
    for topic, records in scenario.malformed.items():
        for key, value, headers in records:
            out.append((f"{topic}: {dict(headers)[MALFORMED_HEADER].decode()}", Record(headers, value, topic, key=key)))
    return out


MALFORMED = _malformed()


def test_the_chaos_corpus_holds_every_malformed_kind() -> None:
    assert {name.split(": ")[1] for name, _ in MALFORMED} == set(MALFORMED_KINDS)


@pytest.mark.parametrize("case", MALFORMED, ids=[name for name, _ in MALFORMED])
def test_each_malformed_chaos_record_is_refused_by_both_with_the_same_message(case: tuple[str, Record]) -> None:
    assert assert_same(case[1]) == "refused"  # (a broken header may come with a good value: the fast path may take it)


# --- property: any payload at all --------------------------------------------------------------------------

_texts = st.one_of(st.text(max_size=5), st.text(min_size=195, max_size=205), st.sampled_from(["", "\x00", "a\x00b"]))
_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"\A[-+]?[0-9]{0,24}(\.[0-9]{0,14})?([eE][-+]?[0-9]{1,2})?\Z"),
    st.integers(-(10**25), 10**25), st.floats(allow_nan=False, allow_infinity=False),
)
_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets).map(
        lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,10})?)?"
                  r"([Zz]|[-+][0-9]{2}:?[0-9]{2})?\Z"),
    st.datetimes(min_value=datetime(1969, 12, 30), max_value=datetime(1970, 1, 2), timezones=_offsets).map(
        lambda d: d.isoformat()),
    st.integers(-(10**11), 10**11),
)
_anything = st.one_of(st.none(), st.booleans(), st.integers(), _texts, st.lists(st.integers(), max_size=2))
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "deal_id": _texts, "rep_id": _texts, "activity_id": _texts, "team_id": _texts, "scope_id": _texts,
    "manager_id": _texts, "parent_team_id": _texts, "stage_label": _texts, "name": _texts, "email": _texts,
    "amount": _decimals, "value": _decimals, "actual": _decimals, "target": _decimals, "attainment": _decimals,
    "expected": _decimals, "pace": _decimals, "projected": _decimals,
    "currency": st.one_of(st.sampled_from(["EUR", "usd", "EURO", "EUR\n"]), st.text(max_size=4)),
    "stage": st.sampled_from(["open", "won", "lost", "WON", "pending"]),
    "kind": st.sampled_from(["call", "email", "meeting", "demo", "task", "other", "fax"]),
    "scope": st.sampled_from(["rep", "team", "region"]),
    "metric": st.sampled_from(["won_revenue", "calls", "win_rate", "revenue"]),
    "period": st.one_of(st.sampled_from(["2026-Q4", "2026-11", "2026-W48", "2026", "2026-Q5", "1969", "2026-W54"]),
                        st.from_regex(r"\A[0-9]{4}(-([0-9]{2}|Q[0-9]|W[0-9]{2}))?\Z"), _texts),
    "timezone": st.sampled_from(["Europe/Berlin", "UTC", "Europe/Atlantis", "America", "", "Asia/Kolkata"]),
    "created_at": _moments, "closed_at": _moments, "updated_at": _moments, "occurred_at": _moments,
    "as_of": _moments, "period_start": _moments, "period_end": _moments,
    "duration_s": st.one_of(st.integers(-5, 10**20), st.floats(-1, 1e4), st.sampled_from(["12", "x"])),
    "active": st.one_of(st.booleans(), st.sampled_from([0, 1, 2, "yes", "off", "maybe"])),
    "fiscal_start_month": st.one_of(st.integers(-1, 13), st.sampled_from(["4", 4.0, 4.5])),
    "rates": st.lists(st.fixed_dictionaries({
        "currency": st.sampled_from(["USD", "usd"]),
        "valid_from": st.one_of(st.dates().map(str), st.sampled_from(["2026-02-30", "2026-01-01T00:00:00", "x"])),
        "rate": _decimals}), max_size=2),
}


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    """A payload of a random consumed type: each field kept, dropped, or replaced by a random value."""
    type_ = draw(st.sampled_from(sorted(BASE)))
    data: dict[str, Any] = {}
    for name, good in BASE[type_].items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "null", "random", "anything"]))
        if choice == "keep":
            data[name] = good
        elif choice == "null":
            data[name] = None
        elif choice == "random":
            data[name] = draw(_FIELDS.get(name, _anything))
        elif choice == "anything":
            data[name] = draw(_anything)
    ascii_only = draw(st.booleans())
    return type_, json.dumps(data, ensure_ascii=ascii_only, separators=(",", ":")).encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_any_payload_is_accepted_or_refused_alike_and_decoded_to_equal_models(payload: tuple[str, bytes]) -> None:
    assert_same(record(*payload))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(BASE)), st.data())
def test_any_canonical_payload_a_producer_writes_takes_the_fast_path(type_: str, data: st.DataObject) -> None:
    """Whatever valid model a producer holds, its `model_dump_json` is decoded fast, to an equal model."""
    base = MODELS[type_].model_validate(BASE[type_])
    changes: dict[str, Any] = {}
    for name in ("amount", "value", "actual", "pace"):
        if name in BASE[type_]:
            changes[name] = data.draw(st.decimals(min_value=0, max_value=10**15, places=4))
    for name in ("updated_at", "closed_at", "occurred_at", "as_of"):
        if name in BASE[type_]:
            changes[name] = data.draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9997, 1, 1),
                                                   timezones=_offsets))
    for name in ("deal_id", "rep_id", "name", "scope_id", "team_id"):
        if name in BASE[type_]:
            changes[name] = data.draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]),
                                              min_size=1, max_size=200))
    produced = base.model_copy(update=changes)
    value = produced.model_dump_json().encode()
    assert assert_same(Record(headers_of(type_), value), fast=True) == "accepted"


# --- the dead-letter path, end to end through `TransactionalConsumer.process` (no PostgreSQL, no broker) --------


class FakeConnection:
    """Just what `TransactionalConsumer` asks of a connection: no stored offsets, statements accepted."""

    async def fetch(self, *_: Any) -> list[Any]:
        return []

    async def execute(self, *_: Any) -> str:
        return ""

    async def executemany(self, *_: Any) -> None:
        return None

    def transaction(self) -> FakeConnection:
        return self

    def acquire(self) -> FakeConnection:  # the pool is the connection
        return self

    async def __aenter__(self) -> FakeConnection:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, bytes]]] = []

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes | None,
                            headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((topic, value, dict(headers)))


async def test_poison_records_are_dead_lettered_with_todays_reasons_and_the_good_ones_handled() -> None:
    """The records of tests/integration/test_poison.py, and a lax one, in one batch with two good records."""
    handled: list[Incoming] = []

    async def handler(_: Any, batch: Any) -> None:
        handled.extend(batch)

    producer = FakeProducer()
    consumer = TransactionalConsumer(pool=FakeConnection(), producer=producer, group_id="g-test-wire-dlq",
                                     service="kpi", models=MODELS, handler=handler)
    poison_headers = [(n, v) for n, v in headers_of("deal.upserted") if not n.startswith("ce_tenant")]
    poison_headers.append(("ce_tenant", b"acme"))
    batch = [
        Record(poison_headers, b'{"deal_id": "d-p", "amount": "lots"}', offset=1),
        Record([*poison_headers[:1], ("ce_tenant", b"acme")], b"\xff\xfe not json", offset=2),
        record("deal.upserted", DEAL),
        record("activity.logged", changed("activity.logged", duration_s="300")),  # lax: accepted, as today
    ]
    for offset, rec in enumerate(batch[2:], start=3):
        rec.offset = offset
    await consumer.process(batch)
    assert [(m.offset, type(m.data).__name__) for m in handled] == [(3, "DealUpserted"), (4, "ActivityLogged")]
    assert handled[1].data == ActivityLogged.model_validate({**ACTIVITY, "duration_s": 300})
    assert [(topic, value) for topic, value, _ in producer.sent] == [
        ("sales.deals.v1.dlq", batch[0].value), ("sales.deals.v1.dlq", batch[1].value)]
    reasons = [headers["attain_error"].decode() for _, _, headers in producer.sent]
    assert reasons[0].startswith("invalid deal.upserted data: rep_id: Field required")
    assert "amount" in reasons[0]
    assert reasons[1].startswith("missing CloudEvents header(s): ce_type, ce_source, ce_specversion")
    assert [h["attain_original_offset"] for _, _, h in producer.sent] == [b"1", b"2"]
