"""The whole-stack benchmark's load: the scenario's events and the probes' wins, paced through ingest.

`split` cuts a seeded quarter (`tests/chaos/scenario.py`) into its setup (teams, roster, targets) and an
endless load (the rest, then the quarter again as a fresh part of the org: `tests.chaos.soak._looped`);
`load` posts it at a rate, `probe` posts the probes' wins on a fixed cadence, `post` is one request.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from benchmarks.probes import Probes
from tests.chaos.soak import _looped

TICK_S, MAX_BATCH = 0.05, 1000


@dataclass
class Step:
    """One rate: what was sent, what was seen, what it cost."""

    rate: int
    seconds: float = 0.0  # of load: first request to the last answer
    accepted: int = 0  # events ingest accepted in the window (load and probes)
    posted: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # ingest's answer per event: accepted, duplicate, ...
    probes: int = 0
    to_attainment: list[float] = field(default_factory=list)  # seconds, per probe seen
    to_celebration: list[float] = field(default_factory=list)
    window_s: float = 0.0  # CPU window: first request until settled (or the drain limit)
    settled_after_s: float | None = None  # after the load ended; None: not within --drain
    cpu_s: dict[str, float] = field(default_factory=dict)  # per process, over the window
    behind_at_end: dict[str, int] = field(default_factory=dict)
    # offsets the window added to kpi.attainment.v1: its records plus one transaction marker per partition and
    # transaction (an upper bound on the records; ÷ accepted: attainment events per input event, at most)
    attainment_offsets: int = 0



async def load(args: argparse.Namespace, rate: int, seconds: float, client: httpx.AsyncClient,
                stream: Iterator[dict[str, Any]], step: Step, started: float) -> None:
    """`rate` events/s for `--seconds`: every tick one request with what is owed by then, at most `--connections`
    in flight (a slow answer does not hold the pace back); then what the last ticks still owed."""
    flying: set[asyncio.Task[int]] = set()

    def send(count: int) -> None:
        batch = [next(stream) for _ in range(count)]
        step.posted += len(batch)
        task = asyncio.create_task(post(client, batch, step.answers))
        flying.add(task)
        task.add_done_callback(flying.discard)

    while (elapsed := time.monotonic() - started) < seconds:
        owed = min(MAX_BATCH, int(rate * elapsed) - step.posted)
        if owed > 0 and len(flying) < args.connections:
            send(owed)
        await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - started - elapsed)))
    while (owed := int(rate * seconds) - step.posted) > 0:
        send(min(MAX_BATCH, owed))
    await asyncio.gather(*flying)


async def probe(args: argparse.Namespace, seconds: float, client: httpx.AsyncClient, probes: Probes,
                 numbered: Iterator[int], step: Step, started: float, mine: list[str]) -> None:
    """Every `--probe-every` seconds a probe rep's winning deal, worth exactly its target, in a request of its own
    (each in flight on its own: a slow answer does not delay the next probe); when ingest accepted it is noted."""
    async def win(rep: str) -> None:
        now = datetime.now(UTC)
        deal = event("deal.upserted", {
            "deal_id": f"{rep}-win", "rep_id": rep, "amount": args.probe_target, "currency": "EUR",
            "stage": "won", "stage_label": "Closed Won", "created_at": stamp(now - timedelta(days=1)),
            "closed_at": stamp(now), "updated_at": stamp(now)}, now)
        probes.accepted[rep] = 0.0  # known before its records can arrive
        if await post(client, [deal], step.answers):
            probes.accepted[rep] = time.monotonic()
            mine.append(rep)

    wins = []
    for k in itertools.count():
        if (wait := started + k * args.probe_every - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if time.monotonic() - started >= seconds:
            break
        wins.append(asyncio.create_task(win(f"probe-{next(numbered):05d}")))
    await asyncio.gather(*wins)



async def post(client: httpx.AsyncClient, events: list[dict[str, Any]], answers: dict[str, int] | None = None) -> int:
    """POST until ingest answers 200 (a 429 or 503 waits its Retry-After); the number accepted. Each event's
    answer is counted in `answers`."""
    for _ in range(50):
        try:
            response = await client.post("/v1/events", json=events)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
            continue
        if response.status_code == 200:
            statuses = [str(r["status"]) for r in response.json()["results"]]
            if answers is not None:
                for status in statuses:
                    answers[status] = answers.get(status, 0) + 1
            return statuses.count("accepted")
        await asyncio.sleep(float(response.headers.get("retry-after", "0.2")))
    raise SystemExit(f"ingest did not take a batch of {len(events)} events after 50 tries")



LOAD_TYPES = ("deal.upserted", "deal.deleted", "activity.logged")


def split(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """(the first loop's setup: teams, roster, targets, up to its first deal or activity; the load: the rest
    of that loop, then loop after loop, each a fresh part of the org with its own roster: `soak._looped`)."""
    first = next((i for i, e in enumerate(events) if e["type"] in LOAD_TYPES), len(events))

    def load() -> Iterator[dict[str, Any]]:
        yield from events[first:]
        loop = 1
        while True:
            yield from _looped(events, loop)
            loop += 1

    return events[:first], load()


def probe_setup(count: int, quarter: str, target: str, timezone: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        rep = f"probe-{i:05d}"
        out.append(event("rep.upserted", {"rep_id": rep, "name": f"Probe {i}", "team_id": "probes",
                                           "timezone": timezone, "active": True}, now))
        out.append(event("target.set", {"scope": "rep", "scope_id": rep, "metric": "won_revenue",
                                         "period": quarter, "value": target}, now))
    return out


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def event(type_: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"type": type_, "id": str(uuid.uuid4()), "source": "bench", "time": stamp(at), "data": data}


def quarter_of(timezone: str) -> str:
    local = datetime.now(UTC).astimezone(ZoneInfo(timezone))
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
