"""`python -m services.ingest import FILE...`: bulk import of CSV or NDJSON files through `POST /v1/events`.

Rows become canonical events (`importer_csv`), sent as NDJSON batches with a few in flight.
Each acknowledged batch moves a checkpoint next to the file (`FILE.attain-import.json`), so a
re-run after Ctrl-C or a crash continues after the last line every earlier batch was answered
for; ids are deterministic, so the overlap is answered "duplicate". Rejected rows, with their
line numbers, go to `FILE.rejected.ndjson` and are listed at the end.

The tenant's token comes from `--token-file PATH` ('-': standard input) or $ATTAIN_TOKEN, never from the
command line (where `ps` shows it).

Exit status: 0 all rows accepted or duplicate, 1 some rejected, 2 usage error (bad arguments,
file or token), 3 unfinished (ingest unavailable after retries), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx
from rich import progress as rp
from rich.console import Console

from services.ingest.cli import NOT_ON_ARGV, read_secret
from services.ingest.cli import UsageError as SecretError
from services.ingest.importer_csv import (
    KINDS,
    Checkpoint,
    Lines,
    Outcome,
    Row,
    UsageError,
    Watermark,
    fingerprint,
    load_checkpoint,
    read_csv,
    read_ndjson,
    rejections_of,
    save_checkpoint,
    write_rejections,
)
from shared.cli import program

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNFINISHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SHOWN_REJECTIONS = 50
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
NDJSON_HEADERS = {"content-type": "application/x-ndjson"}
PLAIN_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    token: str
    kind: str | None
    fmt: str | None
    source: str
    batch: int
    concurrency: int
    retries: int
    resume: bool


class Aborted(Exception):
    """The import cannot go on: the token or URL was refused, or ingest stayed unavailable."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.message, self.usage = message, usage


def backoff_s(attempt: int) -> float:
    """Exponential, capped at 30 s, with jitter so concurrent batches do not retry in step."""
    return min(30.0, 0.5 * 2.0 ** min(attempt, 10)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not secrecy


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment: datetime = parsedate_to_datetime(value)
        return max(0.0, (moment - now).total_seconds())
    except (TypeError, ValueError):
        return None


class Sender:
    """Posts batches as NDJSON, retrying what is transient and splitting what is too large."""

    def __init__(self, client: httpx.AsyncClient, options: Options, note: Callable[[str], None],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client, self._url, self._retries = client, f"{options.url}/v1/events", options.retries
        self._note, self._sleep = note, sleep

    async def send(self, batch: list[Row]) -> Outcome:
        rows = [row for row in batch if row.event is not None]
        verdicts = await self._post(rows) if rows else []
        rejections = [_rejection(row, row.reason) for row in batch if row.event is None]
        counts = {"accepted": 0, "duplicate": 0}
        for row, (status, reason) in zip(rows, verdicts, strict=True):
            if status in counts:
                counts[status] += 1
            else:
                rejections.append(_rejection(row, reason))
        return Outcome(batch[-1].last_line, batch[-1].end_offset, counts["accepted"], counts["duplicate"],
                       tuple(sorted(rejections, key=lambda r: int(r["line"]))))

    async def _post(self, rows: list[Row]) -> list[tuple[str, str | None]]:
        body = b"".join(json.dumps(row.event, separators=(",", ":")).encode() + b"\n" for row in rows)
        response = await self._request(body)
        if response.status_code in (200, 422):
            return _verdicts(response, len(rows))
        detail = _detail(response)
        if response.status_code == 413 or (response.status_code == 400 and "limit" in detail):
            if len(rows) > 1:
                half = len(rows) // 2
                return await self._post(rows[:half]) + await self._post(rows[half:])
            return [("rejected", f"refused by ingest: {detail}")]
        raise Aborted(f"ingest answered HTTP {response.status_code}: {detail}",
                      usage=response.status_code in (401, 403, 404))

    async def _request(self, body: bytes) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._client.post(self._url, content=body, headers=NDJSON_HEADERS)
            except httpx.TransportError as err:
                problem, wait = f"{type(err).__name__} {err}".strip(), backoff_s(attempt)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code} {_detail(response)}"
                wait = retry_after_s(response.headers.get("retry-after"), datetime.now(UTC)) or backoff_s(attempt)
            if attempt >= self._retries:
                raise Aborted(f"ingest unavailable after {attempt} retries ({problem})")
            attempt += 1
            self._note(f"{problem}; retry {attempt} in {wait:.1f} s")
            await self._sleep(wait)


def _verdicts(response: httpx.Response, count: int) -> list[tuple[str, str | None]]:
    try:
        by_index = {int(r["index"]): r for r in response.json()["results"]}
    except (ValueError, KeyError, TypeError) as err:
        raise Aborted(f"ingest answered HTTP {response.status_code} without readable results") from err
    missing: dict[str, Any] = {"status": "rejected", "reason": "ingest returned no result for this event"}
    return [(str(r["status"]), r.get("reason")) for r in (by_index.get(i, missing) for i in range(count))]


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _rejection(row: Row, reason: str | None) -> dict[str, Any]:
    event_id = row.event.get("id") if row.event else None
    return {"line": row.line, "id": event_id, "reason": reason or "rejected", "row": row.raw}


class Progress:
    """A progress bar on a terminal; a plain line every few seconds otherwise (logs, CI)."""

    def __init__(self, path: Path, start: Checkpoint, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self._name, self._total, self._last = path.name, max(1, path.stat().st_size), time.monotonic()
        self._bar = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
                                rp.TransferSpeedColumn(), rp.TimeRemainingColumn(), console=self._console)
        self._task = self._bar.add_task(self._name, total=self._total, completed=start.offset)

    def __enter__(self) -> Progress:
        if self._console.is_terminal:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.stop()

    def update(self, cp: Checkpoint) -> None:
        text = f"{self._name}: {cp.accepted:,} accepted, {cp.duplicate:,} duplicate, {cp.rejected:,} rejected"
        self._bar.update(self._task, completed=cp.offset, description=text)
        if not self._console.is_terminal and time.monotonic() - self._last >= PLAIN_PROGRESS_EVERY_S:
            self._last = time.monotonic()
            self._console.print(f"{text} (through line {cp.line:,}, {100 * cp.offset / self._total:.0f}%)")

    def note(self, message: str) -> None:
        self._console.print(f"{self._name}: {message}", markup=False)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{program('services.ingest')} import",
                                description="Import CSV or NDJSON files through POST /v1/events, resumably.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--url", required=True, help="ingest's base URL, e.g. http://127.0.0.1:8001")
    p.add_argument("--token-file", type=Path, metavar="PATH",
                   help="read the tenant's bearer token from this file (one line; '-': standard input);"
                        " default: $ATTAIN_TOKEN")
    p.add_argument("--token", dest="token_on_argv", help=argparse.SUPPRESS)  # refused, with how instead
    p.add_argument("--kind", choices=sorted(KINDS), help="what the rows are (CSV: guessed from the header)")
    p.add_argument("--format", choices=("csv", "ndjson"), dest="fmt", help="default: from the file extension")
    p.add_argument("--source", default="import", help="the events' source when a row names none")
    p.add_argument("--batch", type=int, default=2000, help="rows per request (default 2000)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    p.add_argument("--retries", type=int, default=10, help="retries of a request on 429/503/errors")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="ignore a checkpoint; send everything")
    return p


def token_of(args: argparse.Namespace, stdin: TextIO) -> str:
    """The bearer token: from --token-file (or standard input), else $ATTAIN_TOKEN; never from the command line,
    where `ps` would show it to every user of the machine."""
    if args.token_on_argv is not None:
        raise SecretError(NOT_ON_ARGV.format(what="--token", how="use --token-file PATH ('-': standard input)"
                                                                " or set ATTAIN_TOKEN"))
    if args.token_file is not None:
        return read_secret("the token", args.token_file, stdin)
    token = os.environ.get("ATTAIN_TOKEN", "")
    if not token:
        raise SecretError("no token: use --token-file PATH ('-': standard input) or set ATTAIN_TOKEN")
    return token


def main(argv: list[str], stdin: TextIO | None = None) -> int:
    """Import each file in turn; the exit status is the worst of them."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # argparse printed the usage
        return int(done.code or 0)
    try:
        token = token_of(args, sys.stdin if stdin is None else stdin)
    except SecretError as err:
        Console(stderr=True).print(f"error: {err}", markup=False)
        return EXIT_USAGE
    if args.batch < 1 or args.concurrency < 1 or args.retries < 0:
        Console(stderr=True).print("error: --batch and --concurrency must be >= 1, --retries >= 0")
        return EXIT_USAGE
    options = Options(url=args.url.rstrip("/"), token=token, kind=args.kind, fmt=args.fmt,
                      source=args.source, batch=args.batch, concurrency=args.concurrency,
                      retries=args.retries, resume=args.resume)
    worst = EXIT_OK
    for path in args.files:
        code = import_file(path, options)
        worst = max(worst, code)
        if code in (EXIT_USAGE, EXIT_INTERRUPTED):
            return code
    return worst


def import_file(path: Path, options: Options, transport: httpx.AsyncBaseTransport | None = None,
                out: Console | None = None) -> int:
    """Import one file; prints progress and the rejected rows, returns the exit status."""
    out = out or Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    fmt = options.fmt or {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}.get(path.suffix.lower())
    if fmt is None:
        err.print(f"error: {path}: cannot tell the format from the extension; pass --format csv|ndjson")
        return EXIT_USAGE
    if not path.is_file():
        err.print(f"error: {path}: no such file")
        return EXIT_USAGE
    params = {"format": fmt, "kind": options.kind or "", "source": options.source, "url": options.url,
              "token_sha256": hashlib.sha256(options.token.encode()).hexdigest()[:16]}
    state_path = path.with_name(path.name + ".attain-import.json")
    rejected_path = path.with_name(path.name + ".rejected.ndjson")
    start = Checkpoint(fingerprint(path), params)
    if options.resume:
        found, note = load_checkpoint(state_path, start.fingerprint, params)
        if note:
            err.print(f"{path.name}: {note}")
        start = found or start
    write_rejections(rejected_path, [r for r in rejections_of(rejected_path) if r["line"] <= start.line]
                     if start.line else [])
    try:
        with path.open("rb") as stream:
            lines = Lines(stream)
            now = datetime.now(UTC)
            if fmt == "csv":
                _, rows = read_csv(lines, options.kind, options.source, now)
            else:
                rows = read_ndjson(lines, options.kind, options.source, now)
            final = asyncio.run(_send(rows, start, options, state_path, rejected_path, path, transport))
    except UsageError as problem:
        err.print(f"error: {path}: {problem}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print(f"\n{path.name}: interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    except Aborted as problem:
        hint = "" if problem.usage else "; run the same command again to resume"
        err.print(f"error: {path.name}: {problem.message}{hint}")
        return EXIT_USAGE if problem.usage else EXIT_UNFINISHED
    state_path.unlink(missing_ok=True)  # complete: a re-run re-sends and is answered "duplicate"
    return _report(out, path, final, start.line, rejected_path)


async def _send(rows: Iterator[Row], start: Checkpoint, options: Options, state_path: Path, rejected_path: Path,
                path: Path, transport: httpx.AsyncBaseTransport | None) -> Checkpoint:
    checkpoint, watermark = start, Watermark()
    slots = asyncio.Semaphore(options.concurrency)
    headers, timeout = {"Authorization": f"Bearer {options.token}"}, httpx.Timeout(300, connect=10)
    async with httpx.AsyncClient(transport=transport, headers=headers, timeout=timeout) as client:
        with Progress(path, start) as progress:
            sender = Sender(client, options, progress.note)

            async def run(seq: int, batch: list[Row]) -> None:
                nonlocal checkpoint
                try:
                    outcome = await sender.send(batch)
                finally:
                    slots.release()
                write_rejections(rejected_path, outcome.rejections, append=True)
                done = watermark.complete(seq, outcome)
                if done:
                    for finished in done:
                        checkpoint = checkpoint.advanced(finished)
                    save_checkpoint(state_path, checkpoint)
                    progress.update(checkpoint)

            try:
                fresh = (row for row in rows if row.last_line > start.line)  # the rest was answered before
                async with asyncio.TaskGroup() as group:
                    for seq, batch in enumerate(iter(lambda: list(islice(fresh, options.batch)), [])):
                        await slots.acquire()
                        group.create_task(run(seq, batch))
            except* (Aborted, UsageError) as failed:  # one reason is enough; the rest were cancelled with it
                raise failed.exceptions[0] from None
            progress.update(checkpoint)
    return checkpoint


def _report(out: Console, path: Path, final: Checkpoint, resumed_after: int, rejected_path: Path) -> int:
    rejected = sorted(rejections_of(rejected_path), key=lambda r: int(r["line"]))
    resumed = f" (resumed after line {resumed_after})" if resumed_after else ""
    out.print(f"{path.name}: {final.accepted + final.duplicate + final.rejected} rows: {final.accepted} accepted, "
              f"{final.duplicate} duplicate, {final.rejected} rejected{resumed}")
    if not rejected:
        rejected_path.unlink(missing_ok=True)
        return EXIT_OK
    write_rejections(rejected_path, rejected)  # in line order
    for item in rejected[:SHOWN_REJECTIONS]:
        out.print(f"  line {item['line']}: {item['reason']}", markup=False)
    more = f"{len(rejected) - SHOWN_REJECTIONS} more, all " if len(rejected) > SHOWN_REJECTIONS else ""
    out.print(f"  ({more}in {rejected_path})", markup=False)
    return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
