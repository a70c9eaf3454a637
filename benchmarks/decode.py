"""Decoding an internal record, before and after `shared.wire`: µs per record, side by side in one run.

    python -m benchmarks.decode [--events 20000] [--attainment-per-event 1.0] [--rounds 7]

The records are what ingest and kpi publish: `benchmarks.workload.events` (30 % `deal.upserted`, 70 %
`activity.logged`), each validated and written as ingest does (`model_dump_json`, CloudEvents headers with
the tenant extensions), plus `kpi.attainment.updated` figures as kpi writes them (default: one per input
event, the lean goal of issue 15; today's fan-out is 13). No broker: only the consumer's decode step is timed.

- **before**: the consumer's decode at 5388e05 (headers and `json.loads`, then `model_validate`), copied here
  so the baseline never moves;
- **after**: `TransactionalConsumer._decode` (headers, msgspec Struct, pydantic instance without re-validation).

The parts: `headers` (the headers and the CloudEvent, which both paths pay), `data before` (`json.loads` and
`model_validate`), `data after` (`shared.wire.decode`: guard, Struct with its checks, pydantic instance),
`struct` (the msgspec Struct alone).

Rounds alternate before/after over the same records, timed in this thread's CPU time; the median round is
reported (and the best, closest to what the code costs on a quiet core), and how many records the fast path
handed to the exact one (none, for records our producers write). A printed figure, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from benchmarks.workload import EPOCH, REPS, events
from shared import topics, wire
from shared.cloudevents import (
    H_CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_TENANT,
    H_TIME,
    H_TYPE,
    SPEC_VERSION,
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    decode,
    encode,
    message_key,
)
from shared.consumer import TransactionalConsumer, format_validation_error
from shared.errors import InvalidMessage
from shared.events import CANONICAL_DATA, AttainmentUpdated, Metric, Scope, TenantUpserted
from shared.service import GC_THRESHOLDS

MODELS: dict[str, type[BaseModel]] = {**CANONICAL_DATA, "kpi.attainment.updated": AttainmentUpdated,
                                      "tenant.upserted": TenantUpserted}
TOPIC = {"deal.upserted": topics.DEALS.name, "activity.logged": topics.ACTIVITIES.name,
         "kpi.attainment.updated": topics.ATTAINMENT.name}
TENANT, ZONE = "bench-decode", "Europe/Berlin"
EXTENSIONS = {"tenanttimezone": ZONE, "tenantfiscalstart": "1", "tenantcurrency": "EUR"}


# --- before: shared/cloudevents.decode and TransactionalConsumer._decode at 5388e05 ---------------------------


def _decode_5388e05(headers: Iterable[tuple[str, bytes]], value: bytes | None) -> CloudEvent:
    attrs: dict[str, str] = {}
    for name, raw in headers:
        try:
            attrs[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as err:
            raise InvalidMessage(f"header {name} is not UTF-8") from err
    content_type = attrs.get(H_CONTENT_TYPE, "").lower()
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        raise InvalidMessage("structured-mode CloudEvents are not accepted: use binary mode")
    missing = [h for h in (H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME, H_TENANT) if not attrs.get(h)]
    if missing:
        raise InvalidMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
    if attrs[H_SPECVERSION] != SPEC_VERSION:
        raise InvalidMessage(f"ce_specversion {attrs[H_SPECVERSION]!r} is not {SPEC_VERSION}")
    try:
        moment = datetime.fromisoformat(attrs[H_TIME])
    except ValueError as err:
        raise InvalidMessage(f"ce_time {attrs[H_TIME]!r} is not RFC 3339") from err
    if moment.tzinfo is None:
        raise InvalidMessage("ce_time has no UTC offset")
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidMessage(f"value is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise InvalidMessage("value is not a JSON object")
    known = {H_ID, H_TYPE, H_SOURCE, H_SPECVERSION, H_TIME, H_TENANT}
    extensions = {k[3:]: v for k, v in attrs.items() if k.startswith("ce_") and k not in known}
    return CloudEvent(id=attrs[H_ID], type=attrs[H_TYPE], source=attrs[H_SOURCE], time=moment,
                      tenant=attrs[H_TENANT], data=data, extensions=extensions)


def before(record: ConsumerRecord) -> BaseModel:
    event = _decode_5388e05(record.headers, record.value)
    model = MODELS.get(event.type)
    if model is None:
        raise InvalidMessage(f"ce_type {event.type!r} is not expected on {record.topic}")
    try:
        return model.model_validate(event.data)
    except ValidationError as err:
        raise InvalidMessage(f"invalid {event.type} data: {format_validation_error(err)}") from err


# --- the records ---------------------------------------------------------------------------------------------


def _record(topic: str, offset: int, key: bytes, event: CloudEvent) -> ConsumerRecord:
    value, headers = encode(event)
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), tuple(headers))


def _figure(rnd: random.Random, n: int) -> AttainmentUpdated:
    """A figure as kpi computes it (ratios to 4 places, money to 2)."""
    actual = Decimal(rnd.randrange(0, 400_000_00)) / 100
    target = Decimal(rnd.randrange(100_000, 300_000))
    return AttainmentUpdated.model_validate({
        "scope": rnd.choice((Scope.REP, Scope.REP, Scope.TEAM)), "scope_id": f"rep-{rnd.randrange(REPS):03d}",
        "period": "2026-Q4", "metric": rnd.choice((Metric.WON_REVENUE, Metric.CALLS, Metric.DEALS_WON)),
        "actual": actual, "target": target, "attainment": (actual / target).quantize(Decimal("0.0001")),
        "expected": (target * Decimal("0.5")).quantize(Decimal("0.01")),
        "pace": (actual / target * 2).quantize(Decimal("0.0001")), "projected": (actual * 2).quantize(Decimal("0.01")),
        "as_of": EPOCH + timedelta(seconds=n * 37, microseconds=n % 1_000_000),
        "period_start": datetime(2026, 9, 30, 22, tzinfo=UTC), "period_end": datetime(2026, 12, 31, 23, tzinfo=UTC),
        "team_id": "team-01", "manager_id": "mgr-01", "name": rnd.choice(("Anna Becker", "Jürgen Müller", "Zoë Patel")),
    })


def records(count: int, attainment_per_event: float, seed: int = 7) -> list[ConsumerRecord]:
    """`count` input events as ingest publishes them, with about `attainment_per_event` figures after each."""
    rnd = random.Random(seed)  # noqa: S311 - reproducible load, not secrecy
    out: list[ConsumerRecord] = []
    owed = 0.0
    for n, item in enumerate(events(count, "decode", seed)):
        data = CANONICAL_DATA[item["type"]].model_validate(item["data"])  # what ingest validated and publishes
        event = CloudEvent(id=item["id"], type=item["type"], source=item["source"],
                           time=datetime.fromisoformat(item["time"]), tenant=TENANT, data=data, extensions=EXTENSIONS)
        out.append(_record(TOPIC[item["type"]], n, message_key(TENANT, item["data"]["rep_id"]), event))
        owed += attainment_per_event
        while owed >= 1:
            owed -= 1
            figure = _figure(rnd, n)
            event = CloudEvent(id=f"fig-{n}-{owed}", type="kpi.attainment.updated", source="attain/kpi",
                               time=figure.as_of, tenant=TENANT, data=figure, extensions={"tenanttimezone": ZONE})
            key = message_key(TENANT, figure.scope, figure.scope_id, figure.period, figure.metric)
            out.append(_record(topics.ATTAINMENT.name, n, key, event))
    return out


# --- timing --------------------------------------------------------------------------------------------------


def _per_record_us(step: Callable[[ConsumerRecord], object], batch: Sequence[ConsumerRecord]) -> float:
    gc.collect()
    started = time.thread_time_ns()  # CPU time: the other processes of a busy machine weigh less than on a clock
    for record in batch:
        step(record)
    return (time.thread_time_ns() - started) / len(batch) / 1000


def _no_data(_: str, __: bytes | None) -> dict[str, Any]:
    return {}


def _type_of(record: ConsumerRecord) -> str:
    return bytes(dict(record.headers)["ce_type"]).decode()


def measure(consumer: TransactionalConsumer, batch: Sequence[ConsumerRecord],
            rounds: int) -> dict[str, dict[str, list[float]]]:
    """µs per record of each step, per record type and for the whole mix, `rounds` alternating rounds."""
    structs = {t: msgspec.json.Decoder(wire.STRUCTS[m]).decode for t, m in MODELS.items() if m in wire.STRUCTS}
    struct_of = {id(r): structs[_type_of(r)] for r in batch}
    model_of = {id(r): MODELS[_type_of(r)] for r in batch}
    steps: Mapping[str, Callable[[ConsumerRecord], object]] = {
        "before": before,
        "after": consumer._decode,
        "headers": lambda r: decode(r.headers, r.value, _no_data),  # and the CloudEvent, as both paths do
        "data before": lambda r: model_of[id(r)].model_validate(json.loads(r.value)),
        "data after": lambda r: wire.decode(model_of[id(r)], r.value),
        "struct": lambda r: struct_of[id(r)](r.value),
    }
    groups: dict[str, list[ConsumerRecord]] = {"mix": list(batch)}
    for record in batch:
        groups.setdefault(_type_of(record), []).append(record)
    found: dict[str, dict[str, list[float]]] = {g: {s: [] for s in steps} for g in groups}
    for _ in range(rounds):
        for group, members in groups.items():
            for step_name, step in steps.items():
                found[group][step_name].append(_per_record_us(step, members))
    return found


def gc_effect(consumer: TransactionalConsumer, batch: Sequence[ConsumerRecord],
              rounds: int) -> dict[str, list[float]]:
    """µs per record of the consumer's decode when the batch's results are KEPT (as the consumer keeps a
    batch until its handler has run), under CPython's default GC thresholds and under the services'
    (`shared.service.GC_THRESHOLDS`, after `gc.freeze` as `tune_gc` does), alternating rounds."""
    default = gc.get_threshold()
    found: dict[str, list[float]] = {"default": [], "tuned": []}
    try:
        for _ in range(rounds):
            for name, thresholds in (("default", default), ("tuned", GC_THRESHOLDS)):
                gc.collect()
                gc.freeze()
                gc.set_threshold(*thresholds)
                kept: list[object] = []
                started = time.thread_time_ns()
                for record in batch:
                    kept.append(consumer._decode(record))
                found[name].append((time.thread_time_ns() - started) / len(batch) / 1000)
                del kept
                gc.unfreeze()
    finally:
        gc.set_threshold(*default)
    return found


def handed_over(batch: Sequence[ConsumerRecord]) -> Counter[str]:
    """Records the fast path handed to the exact path, per type (canonical records: none)."""
    counts: Counter[str] = Counter()
    for record in batch:
        type_ = _type_of(record)
        try:
            wire.decode(MODELS[type_], record.value)
        except wire.Unsure:
            counts[type_] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="input events (deals and activities)")
    parser.add_argument("--attainment-per-event", type=float, default=1.0, help="figures published per input event")
    parser.add_argument("--rounds", type=int, default=7, help="alternating before/after rounds")
    args = parser.parse_args()
    batch = records(args.events, args.attainment_per_event)
    consumer = TransactionalConsumer(pool=None, producer=None, group_id="bench-decode", service="bench",
                                     models=MODELS, handler=None)  # type: ignore[arg-type]  # decode only
    for record in batch:  # the same models, or the comparison means nothing
        if before(record) != consumer._decode(record).data:
            raise SystemExit(f"before and after differ on {record.value!r}")
    found = measure(consumer, batch, args.rounds)
    table = Table(title=f"decode of internal records: µs per record, median of {args.rounds} alternating rounds"
                  " (best in brackets)")
    headings = ("before", "after", "after ÷ before", "headers", "data before", "data after", "struct")
    for heading in ("records", "n", *headings):
        table.add_column(heading, justify="left" if heading == "records" else "right")
    sizes = Counter(_type_of(r) for r in batch)
    for group, steps in found.items():
        med = {s: statistics.median(v) for s, v in steps.items()}
        cell = {s: f"{med[s]:.2f} ({min(v):.2f})" for s, v in steps.items()}
        cell["after ÷ before"] = f"{med['after'] / med['before']:.0%}"
        table.add_row(group, str(len(batch) if group == "mix" else sizes[group]), *(cell[h] for h in headings))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 170)
    console.print(table)
    console.print(f"handed to the exact path: {dict(handed_over(batch)) or 'none'}")
    kept = gc_effect(consumer, batch, args.rounds)
    med = {name: statistics.median(values) for name, values in kept.items()}
    console.print(f"decode with the batch kept (the consumer's case), µs per record, median of {args.rounds} rounds:"
                  f" default GC thresholds {gc.get_threshold()} {med['default']:.2f},"
                  f" the services' {GC_THRESHOLDS} {med['tuned']:.2f} ({med['tuned'] / med['default']:.0%})")

if __name__ == "__main__":
    main()
