"""The input side of an import: the file's rows as canonical events, and how far an import got.

A CSV file has a header row naming the data fields of one kind (deals, activities, roster,
targets) plus, optionally, `id`, `time` and `source`. An optional field's column may be left out
of the header, or its cell blank: deals' `expected_close_at`, `probability` and `forecast_category`
(docs/contract.md, section 2) are such columns. A probability is 0 to 1 with at most 4 places, as
the contract has it: a file is canonical data, so it is not rounded as a CRM's percentage is, and
ingest names a value the contract refuses. Deals and activities may carry CRM properties (the
contract's `properties`, what a KPI the tenant defines may filter on): a column `property:<name>`
(`property:segment`, `property:lead_source`) is the property `<name>`, its cell the value, as text;
a blank cell carries nothing. ingest refuses, by line, a name or value the contract does not allow
(more than 50 properties, a name outside `[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}`, a value over 500
characters). An NDJSON file holds canonical events or, with a kind, plain data rows (which may
name properties the same way, or hold a `properties` object). Each row becomes a `Row`: the event
to send, or the reason it cannot even be built (a missing cell, a bad number), always with its
physical line number.

Event ids are deterministic when the row has none, so importing a file twice (or resuming a
run that overlaps the last one) is answered "duplicate" and publishes nothing new.

Reading is pure (lines in, rows out). The checkpoint (`FILE.attain-import.json`) and the rejected
rows (`FILE.rejected.ndjson`) are small files kept next to the input; `Watermark` decides, from
batches answered out of order, how far the checkpoint may move.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

HEAD_BYTES = 64 * 1024  # hashed into the fingerprint of the file
ID_MAX = 200  # shared.events.Id
ENVELOPE_COLUMNS = ("id", "time", "source")
DECIMAL_FIELDS = frozenset({"amount", "value", "probability"})
INT_FIELDS = frozenset({"duration_s"})
BOOL_FIELDS = frozenset({"active"})
TRUE, FALSE = frozenset({"true", "t", "yes", "y", "1"}), frozenset({"false", "f", "no", "n", "0"})
PROPERTY = "property:"  # a column `property:<name>`: the CRM property <name> (module docstring)
WITH_PROPERTIES = frozenset({"deals", "activities"})  # the kinds whose events carry `properties`


class UsageError(ValueError):
    """The file as a whole cannot be imported as asked (unknown kind, header lacks a column)."""


class RowError(ValueError):
    """One row cannot be turned into an event; the message names the field."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What a kind of row becomes: the event type, its data fields, and how its id is made."""

    name: str
    type: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    key: tuple[str, ...]  # the natural key in the id; must be present to build one
    time_field: str | None  # the event's `time` when the row has none
    versioned: bool  # key identifies one version (deal + updated_at); otherwise a hash of the data is added


KINDS: dict[str, KindSpec] = {
    "deals": KindSpec(
        "deals", "deal.upserted",
        ("deal_id", "rep_id", "amount", "currency", "stage", "stage_label", "created_at", "closed_at", "updated_at",
         "expected_close_at", "probability", "forecast_category"),
        ("deal_id", "rep_id", "amount", "currency", "stage", "updated_at"), ("deal_id", "updated_at"),
        "updated_at", versioned=True),
    "activities": KindSpec(
        "activities", "activity.logged", ("activity_id", "rep_id", "kind", "occurred_at", "deal_id", "duration_s"),
        ("activity_id", "rep_id", "kind", "occurred_at"), ("activity_id",), "occurred_at", versioned=True),
    "roster": KindSpec(
        "roster", "rep.upserted", ("rep_id", "name", "team_id", "manager_id", "email", "timezone", "active"),
        ("rep_id", "name", "team_id", "timezone"), ("rep_id",), None, versioned=False),
    "targets": KindSpec(
        "targets", "target.set", ("scope", "scope_id", "metric", "period", "value"),
        ("scope", "scope_id", "metric", "period", "value"), ("scope", "scope_id", "metric", "period"), None,
        versioned=False),
}
KIND_OF_TYPE = {spec.type: spec for spec in KINDS.values()}


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the file: an event to send, or a local rejection. Lines are 1-based and physical."""

    line: int
    last_line: int  # differs from `line` when a quoted CSV cell spans lines
    end_offset: int  # bytes of the file read through this row (progress, resume)
    event: dict[str, Any] | None
    reason: str | None = None
    raw: Any = None  # what the file said, for the rejected-rows report


class Lines:
    """Decoded lines of a binary stream, counting line numbers and bytes as they are read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.number = 0
        self.offset = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._chunks)
        self.number += 1
        self.offset += len(raw)
        try:
            text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"line {self.number} is not UTF-8 (byte {err.start}); convert the file") from err
        return text


def guess_kind(columns: Iterable[str]) -> str:
    """The kind whose required columns the header has, when exactly one fits."""
    present = set(columns)
    fits = [spec.name for spec in KINDS.values() if set(spec.required) <= present]
    if len(fits) != 1:
        raise UsageError("cannot tell the kind from the header; pass --kind " + "|".join(KINDS))
    return fits[0]


def read_csv(lines: Lines, kind: str | None, source: str, now: datetime) -> tuple[str, Iterator[Row]]:
    """The kind and the rows of a CSV file; `UsageError` when the header does not fit the kind."""
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise UsageError("the file is empty: a CSV import needs a header row")
    spec = KINDS[kind or guess_kind(header)]
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise UsageError(f"the header lacks required column(s) of {spec.name}: {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise UsageError("the header names a column twice")

    def rows() -> Iterator[Row]:
        first = lines.number + 1
        for cells in reader:
            line, first = first, lines.number + 1
            if not any(cell.strip() for cell in cells):
                continue
            yield _csv_row(spec, header, cells, line, lines, source, now)

    return spec.name, rows()


def _csv_row(spec: KindSpec, header: list[str], cells: list[str], line: int, lines: Lines, source: str,
             now: datetime) -> Row:
    if len(cells) != len(header):
        return Row(line, lines.number, lines.offset, None,
                   f"row has {len(cells)} cells, the header names {len(header)} columns", cells)
    values = dict(zip(header, cells, strict=True))
    try:
        event = build_event(spec, values, source, now)
    except RowError as err:
        return Row(line, lines.number, lines.offset, None, str(err), values)
    return Row(line, lines.number, lines.offset, event, raw=values)


def read_ndjson(lines: Lines, kind: str | None, source: str, now: datetime) -> Iterator[Row]:
    """Rows of an NDJSON file: canonical events (missing id, source or time filled in), or data rows of `kind`."""
    spec = KINDS[kind] if kind else None
    for text in lines:
        if not text.strip():
            continue
        here = (lines.number, lines.number, lines.offset)
        try:
            item = json.loads(text, parse_float=str)
        except json.JSONDecodeError as err:
            yield Row(*here, None, f"not valid JSON: {err.msg} (column {err.colno})", text.rstrip("\r\n"))
            continue
        try:
            event = _ndjson_event(item, spec, source, now)
        except RowError as err:
            yield Row(*here, None, str(err), item)
            continue
        yield Row(*here, event, raw=item)


def _ndjson_event(item: Any, spec: KindSpec | None, source: str, now: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise RowError("the line is not a JSON object")
    if "type" not in item:
        if spec is None:
            raise RowError('no "type": not a canonical event (pass --kind to import plain data rows)')
        return build_event(spec, item, source, now)
    event = dict(item)
    data = event.get("data")
    of_type = KIND_OF_TYPE.get(str(event["type"]))
    event.setdefault("source", source)
    if "time" not in event and isinstance(data, dict):
        field = of_type.time_field if of_type else "updated_at"
        event["time"] = data.get(field) if field and data.get(field) else now.isoformat()
    if "id" not in event:
        event["id"] = _bounded(f"import:{event['type']}", [_digest(data)])
    return event


def build_event(spec: KindSpec, values: dict[str, Any], source: str, now: datetime) -> dict[str, Any]:
    """The canonical event of one data row; `RowError` when a cell cannot be read."""
    data = {name: _convert(name, values[name]) for name in spec.fields if not _blank(values.get(name))}
    if spec.name in WITH_PROPERTIES and (properties := properties_of(values)):
        data["properties"] = properties
    for name in spec.key:
        if name not in data:
            raise RowError(f"{name}: required (the event id is made from it)")
    event_id = _text(values.get("id")) or event_id_of(spec, data)
    time = _text(values.get("time")) or (data.get(spec.time_field) if spec.time_field else None)
    return {"type": spec.type, "id": event_id, "source": _text(values.get("source")) or source,
            "time": time or now.isoformat(), "data": data}


def properties_of(values: dict[str, Any]) -> dict[str, Any]:
    """A row's CRM properties: an NDJSON row's `properties` object, then its `property:<name>` cells (blank ones
    carry nothing; text is stripped). Checked by ingest, which names what the contract refuses.

    >>> properties_of({"deal_id": "d1", "property:segment": " SMB ", "property:region": "", "property:seats": 40,
    ...                "property:renewal": True})
    {'segment': 'SMB', 'seats': '40', 'renewal': 'true'}
    """
    given = values.get("properties")
    found: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    for column, cell in values.items():
        if column.startswith(PROPERTY) and not _blank(cell):
            found[column.removeprefix(PROPERTY)] = json.dumps(cell) if isinstance(cell, bool) else _text(cell)
    return found


def event_id_of(spec: KindSpec, data: dict[str, Any]) -> str:
    """`import:<kind>:<natural key>`, plus a hash of the data for kinds without a version field."""
    parts = [str(data[name]) for name in spec.key]
    if not spec.versioned:
        parts.append(_digest(data)[:16])
    return _bounded(f"import:{spec.name}", parts)


def _bounded(prefix: str, parts: list[str]) -> str:
    candidate = ":".join([prefix, *parts])
    if len(candidate) <= ID_MAX:
        return candidate
    return f"{prefix}:sha256:{hashlib.sha256(candidate.encode()).hexdigest()}"


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    return None if _blank(value) else str(value).strip()


def _convert(name: str, value: Any) -> Any:
    """Cells to the JSON types of the contract: decimals as exact strings, ints, booleans, text."""
    if isinstance(value, str):
        value = value.strip()
    if name in DECIMAL_FIELDS:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise RowError(f"{name}: {value!r} is not a number") from None
        if not number.is_finite():
            raise RowError(f"{name}: {value!r} is not a number")
        return str(value)
    if name in INT_FIELDS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("+-").isdigit():
            return int(value)
        raise RowError(f"{name}: {value!r} is not a whole number")
    if name in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE | FALSE:
            return str(value).lower() in TRUE
        raise RowError(f"{name}: {value!r} is not true or false")
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# --- how far an import got: the checkpoint and the rejected rows, kept next to the file ----------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one batch: counts, and the rejected rows with their line numbers."""

    last_line: int
    end_offset: int
    accepted: int = 0
    duplicate: int = 0
    rejections: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far an import got: every row through `line` has been answered for."""

    fingerprint: dict[str, Any]
    params: dict[str, str]
    line: int = 0
    offset: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0

    def advanced(self, done: Outcome) -> Checkpoint:
        return replace(self, line=done.last_line, offset=done.end_offset, accepted=self.accepted + done.accepted,
                       duplicate=self.duplicate + done.duplicate, rejected=self.rejected + len(done.rejections))


def fingerprint(path: Path) -> dict[str, Any]:
    """Size, mtime and a hash of the first 64 KiB: a changed file never resumes from an old checkpoint."""
    with path.open("rb") as stream:
        head = hashlib.sha256(stream.read(HEAD_BYTES)).hexdigest()
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


def load_checkpoint(path: Path, fp: dict[str, Any], params: dict[str, str]) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint to resume from, if it is for this very file and these options; and what to tell the user."""
    if not path.exists():
        return None, None
    try:
        found = Checkpoint(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None, f"ignoring the unreadable checkpoint {path.name}; starting from the top"
    if found.fingerprint != fp:
        return None, "the file changed since the checkpoint was written; starting from the top"
    if found.params != params:
        return None, "the checkpoint was written with other options (url, token, kind, source); starting from the top"
    return found, f"resuming after line {found.line} ({path.name}; --no-resume starts over)"


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a crash leaves the old checkpoint or the new one, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as stream:
        json.dump(asdict(checkpoint), stream)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(path)


class Watermark:
    """Batches finish out of order; the checkpoint moves past a batch only once all before it are done."""

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, Outcome] = {}

    def complete(self, seq: int, outcome: Outcome) -> list[Outcome]:
        """Record batch `seq`; return the outcomes the checkpoint can now pass, in order."""
        self._waiting[seq] = outcome
        passed = []
        while self._next in self._waiting:
            passed.append(self._waiting.pop(self._next))
            self._next += 1
        return passed


def rejections_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def write_rejections(path: Path, items: list[dict[str, Any]] | tuple[dict[str, Any], ...], *,
                     append: bool = False) -> None:
    if not items and not append:
        path.unlink(missing_ok=True)
    if items:
        with path.open("a" if append else "w") as stream:
            stream.writelines(json.dumps(item) + "\n" for item in items)
