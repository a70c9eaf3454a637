"""Bulk loads: one 100,000-event NDJSON request, and the import CLI on a CSV with bad rows.

Every valid event lands on its topic exactly once; every invalid one is reported by its
index or line and never published; importing the same file again publishes nothing new.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import topics
from tests.integration.conftest import ROOT, Tenant, Watch

N = 100_000
BAD_EVERY = 2_000  # 50 invalid lines among the 100,000
AT = "2026-11-02T10:00:00Z"
SALES_TOPICS = (topics.DEALS.name, topics.ACTIVITIES.name)
CSV_HEADER = "deal_id,rep_id,amount,currency,stage,stage_label,created_at,closed_at,updated_at"


def _valid(n: int, prefix: str) -> dict[str, Any]:
    rep = f"rep-{n % 97}"
    if n % 3 == 0:
        data: dict[str, Any] = {"deal_id": f"{prefix}-deal-{n}", "rep_id": rep, "amount": f"{n % 9000}.50",
                                "currency": "EUR", "stage": "won", "closed_at": AT, "updated_at": AT}
        return {"type": "deal.upserted", "id": f"{prefix}-{n}", "source": "api", "time": AT, "data": data}
    data = {"activity_id": f"{prefix}-act-{n}", "rep_id": rep, "kind": "call", "occurred_at": AT, "duration_s": 60}
    return {"type": "activity.logged", "id": f"{prefix}-{n}", "source": "api", "time": AT, "data": data}


def _invalid_line(n: int, prefix: str) -> str:
    """Seven ways to be wrong, in turn: each must be rejected alone, never failing the request."""
    event = _valid(n, prefix)
    match (n // BAD_EVERY) % 7:
        case 0:
            del event["data"]["rep_id"]
        case 1:
            event["type"] = "deal.exploded"
        case 2:
            event = _valid(0, prefix) | {"id": f"{prefix}-{n}"}
            event["data"] = {**event["data"], "amount": "-1"}
        case 3:
            event["time"] = "2026-11-02T10:00:00"  # no offset
        case 4:
            return "[1, 2, 3]"
        case 5:
            return '{"type": "activity.logged", "id": '  # not JSON at all
        case _:
            event["data"] = {**event["data"], "currency": "euro"} if "currency" in event["data"] else "nope"
    return json.dumps(event)


def _body(prefix: str) -> tuple[bytes, set[int], dict[int, str]]:
    lines, bad, ids = [], set(), {}
    for n in range(N):
        if n % BAD_EVERY == BAD_EVERY - 1:
            bad.add(n)
            lines.append(_invalid_line(n, prefix))
        else:
            ids[n] = f"{prefix}-{n}"
            lines.append(json.dumps(_valid(n, prefix), separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode(), bad, ids


async def _collect(w: Watch, expected: int, timeout: float) -> Counter[str]:  # noqa: ASYNC109
    """Poll until `expected` records of the tenant arrived (or the timeout), then a little longer for extras."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(w.seen) < expected and asyncio.get_running_loop().time() < deadline:
        await w.poll(1)
    await w.poll(2)
    return Counter(str(m["id"]) for m in w.seen)


@pytest.mark.load
async def test_a_100k_event_ndjson_request_lands_every_valid_event_once_and_names_the_bad_lines(
        services: dict[str, str], tenant: Tenant, watch: Any) -> None:
    body, bad, ids = _body(f"bulk-{tenant.slug}")
    assert len(bad) == 50 and 25_000_000 < len(body) < 27_000_000  # ~26.1 MB (24.9 MiB): over a 10 or 16 MiB limit
    w = await watch(tenant.slug, *SALES_TOPICS)
    async with httpx.AsyncClient(timeout=600) as client:
        response = await client.post(f"{services['ingest']}/v1/events", content=body,
                                     headers={**tenant.auth, "content-type": "application/x-ndjson"})
    assert response.status_code == 422, response.text[:500]
    answer = response.json()
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (N - 50, 0, 50)
    rejected = [r for r in answer["results"] if r["status"] == "rejected"]
    assert {r["index"] for r in rejected} == bad
    assert all(r["reason"] for r in rejected)
    assert all(r.get("line", r["index"] + 1) == r["index"] + 1 for r in answer["results"])
    accepted = {ids[r["index"]] for r in answer["results"] if r["status"] == "accepted"}
    assert accepted == set(ids.values())

    seen = await _collect(w, len(accepted), timeout=180)
    assert set(seen) == accepted
    assert [i for i, times in seen.items() if times > 1] == []


async def test_ndjson_results_name_the_id_of_every_event_they_judge(services: dict[str, str], tenant: Tenant) -> None:
    body = "\n".join(json.dumps(_valid(n, f"ids-{tenant.slug}")) for n in range(3)) + "\n{}\n"
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{services['ingest']}/v1/events", content=body.encode(),
                                     headers={**tenant.auth, "content-type": "application/x-ndjson"})
    assert [(r["index"], r["id"], r["status"]) for r in response.json()["results"]] == [
        (0, f"ids-{tenant.slug}-0", "accepted"), (1, f"ids-{tenant.slug}-1", "accepted"),
        (2, f"ids-{tenant.slug}-2", "accepted"), (3, None, "rejected")]


def _deals_csv(rows: int, bad: dict[int, str]) -> str:
    """A deals CSV; `bad` maps a data row number (1-based) to the broken row that replaces it."""
    lines = [CSV_HEADER]
    for n in range(1, rows + 1):
        lines.append(bad.get(n, f"d{n},rep-{n % 13},{n}.25,EUR,won,Won,2026-10-01T00:00:00Z,{AT},{AT}"))
    return "\n".join(lines) + "\n"


BAD_ROWS = {  # data row -> (row, reason fragment); a quoted line break shifts the lines after it by one
    3: ('d3,rep-1,7,EUR,open,"Needs\nreview",,,' + AT, None),  # valid, spans physical lines 4-5
    10: (f"d10,rep-1,12;5,EUR,open,,,,{AT}", "amount: '12;5' is not a number"),  # found by the CLI, never sent
    20: ("d20,rep-1,100,EUR", "row has 4 cells"),  # found by the CLI
    30: (f"d30,rep-1,-5,EUR,open,,,,{AT}", "data.amount"),  # found by ingest
    40: (f"d40,rep-1,5,EUR,won,Won,,,{AT}", "closed_at is required"),  # found by ingest
    50: (f"d50,rep-1,5,euro,open,,,,{AT}", "data.currency"),  # found by ingest
}
BAD_LINES = {n + 2: reason for n, (_, reason) in BAD_ROWS.items() if reason}  # header + the quoted line break


async def _import(csv_file: Path, url: str, tenant: Tenant, *extra: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest.importer", str(csv_file), "--url", url, *extra, cwd=ROOT,
        env={**os.environ, "ATTAIN_TOKEN": tenant.token}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.load
async def test_the_import_cli_names_bad_rows_by_line_and_a_second_run_publishes_nothing_new(
        services: dict[str, str], tenant: Tenant, watch: Any, tmp_path: Path) -> None:
    csv_file = tmp_path / "deals.csv"
    csv_file.write_text(_deals_csv(300, {n: row for n, (row, _) in BAD_ROWS.items()}))
    w = await watch(tenant.slug, topics.DEALS.name)

    code, out = await _import(csv_file, services["ingest"], tenant, "--batch", "40")
    assert code == 1, out
    assert "300 rows: 295 accepted, 0 duplicate, 5 rejected" in out
    for line, reason in BAD_LINES.items():
        assert f"line {line}: " in out and reason in out.split(f"line {line}: ", 1)[1].splitlines()[0], out
    reported = [json.loads(x) for x in (tmp_path / "deals.csv.rejected.ndjson").read_text().splitlines()]
    assert [r["line"] for r in reported] == sorted(BAD_LINES)
    seen = await _collect(w, 295, timeout=60)
    assert len(seen) == 295 and max(seen.values()) == 1
    assert "import:deals:d3:" + AT in seen and not any(key.startswith(("import:deals:d10:", "import:deals:d30:"))
                                                       for key in seen)

    again, out = await _import(csv_file, services["ingest"], tenant)
    assert again == 1 and "300 rows: 0 accepted, 295 duplicate, 5 rejected" in out, out
    w.seen.clear()
    await w.poll(3)
    assert w.seen == []


@pytest.mark.load
async def test_an_import_killed_midway_resumes_after_its_checkpoint_and_publishes_each_row_once(
        services: dict[str, str], tenant: Tenant, watch: Any, tmp_path: Path) -> None:
    csv_file, state = tmp_path / "deals.csv", tmp_path / "deals.csv.attain-import.json"
    log = tmp_path / "import.log"
    csv_file.write_text(_deals_csv(3000, {}))
    w = await watch(tenant.slug, topics.DEALS.name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest.importer", str(csv_file), "--url", services["ingest"],
        "--batch", "10", "--concurrency", "1", cwd=ROOT, env={**os.environ, "ATTAIN_TOKEN": tenant.token},
        stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT)
    for _ in range(6000):  # up to a minute
        if proc.returncode is not None or (state.exists() and json.loads(state.read_text())["line"] > 500):
            break
        await asyncio.sleep(0.01)
    assert proc.returncode is None, f"the import ended by itself ({proc.returncode}): {log.read_text()}"
    proc.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
    await proc.wait()
    checkpoint = json.loads(state.read_text())["line"]
    assert 500 < checkpoint < 3001

    code, out = await _import(csv_file, services["ingest"], tenant)
    assert code == 0, out
    assert f"resuming after line {checkpoint}" in out and "3000 rows: " in out
    seen = await _collect(w, 3000, timeout=60)
    assert len(seen) == 3000 and max(seen.values()) == 1  # the overlap was answered "duplicate", not re-published
    assert not state.exists()
