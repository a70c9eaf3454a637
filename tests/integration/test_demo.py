"""`make demo` end to end, compressed further (issue 23, item 5): a 20-rep quarter in 12 seconds through the real
stack, as a new user runs it (`python -m deploy.demo --keep-running`, stdout a pipe: the plain view), then a
browser opens what the summary printed.

The quarter is pinned (2026-Q4, with Christmas in it), so nothing here depends on today's date; the services run
on free ports and their own database. Checked: the summary's story and its exact numbers; a few plain lines and
an event log instead of a firehose; the TV link and the sign-in work as printed; the home page, the TV and a
rep's page show the played quarter; the leaderboard has a trend; no check-in is dated on a day off of its rep
(the tenant's holidays: Berlin's and the company's Christmas Eve and New Year's Eve; weekends; time off); and
the services stay quiet afterwards (the clock stopped where the story ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from deploy.demo.org import Quarter
from deploy.demo.runner import LOG_DIR, SERVICES
from deploy.demo.simulator import build_scenario
from deploy.local.browser import CHROMIUM_ARGS, chromium
from deploy.local.procs import free_block
from tests.integration.conftest import fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

ROOT = Path(__file__).resolve().parents[2]
QUARTER, SEED, REPS, TEAMS, DURATION_S = "2026-Q4", 3, 20, 3, 12
RUN_TIMEOUT_S = 150.0


# SIGINT as a person at a terminal has it. A suite started as a background job (CI's runner, `nohup make test &`)
# inherits SIGINT ignored, and so would the demo: it then ignored this test's Ctrl-C, was SIGKILLed after a
# minute, and its four services ran on, acting on the tenants of the tests after it.
AT_A_TERMINAL = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                 "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """The demo as a user starts it at a terminal (SIGINT at its default), its output a pipe (so: the plain
    view), in a session of its own."""
    return subprocess.Popen([sys.executable, "-c", AT_A_TERMINAL, *args[1:]], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _lines_in(path: Path) -> int | None:
    """How many lines the file has (None: there is no such file)."""
    if not path.exists():
        return None
    with path.open("rb") as log:
        return sum(1 for _ in log)


def _drain(process: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    """Go on reading what the demo prints after its summary (so that it never blocks on a full pipe, and what it
    says when it stops is in the failure message)."""
    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, name="demo-stdout", daemon=True)
    reader.start()
    return reader


def _read_until_summary(process: subprocess.Popen[str], lines: list[str]) -> None:
    """The demo's output, line by line, up to the summary's last line (`result: OK`, after which the demo keeps
    running); after any other result the demo lists its problems and exits: read them all, to the end."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("result: OK"):
            return


def _service_logs(lines: int = 30) -> str:
    """The last lines of each service's log of the demo (its problems name the one that failed; CI shows both)."""
    out = []
    for name, _ in SERVICES:
        path = LOG_DIR / f"{name}.log"
        if path.exists():
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "".join(out)


def _after(lines: list[str], prefix: str) -> str:
    found = next((line for line in lines if line.startswith(prefix)), None)
    assert found is not None, f"no line starting {prefix!r} in:\n" + "\n".join(lines)
    return found[len(prefix):]


async def test_the_demo_tells_its_story_and_leaves_a_dashboard_worth_opening(tmp_path: Path) -> None:
    database = await fresh_database(f"demo_{uuid.uuid4().hex[:8]}")
    base = free_block(len(SERVICES))  # below the ephemeral range: no outgoing connection takes one of them meanwhile
    args = [sys.executable, "-m", "deploy.demo", "--quarter", QUARTER, "--seed", str(SEED), "--reps", str(REPS),
            "--teams", str(TEAMS), "--duration", str(DURATION_S), "--port-base", str(base), "--keep-running"]
    env = {**os.environ, "DATABASE_URL": database, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = _start(args, env)
    lines: list[str] = []
    reader: threading.Thread | None = None
    try:
        await asyncio.wait_for(asyncio.to_thread(_read_until_summary, process, lines), RUN_TIMEOUT_S)
        printed = "\n".join(lines)
        assert lines and lines[-1] == "result: OK", printed + _service_logs()
        reader = _drain(process, lines)
        assert len(lines) <= 40, printed  # the story in a few lines; the details went to the log

        # the story, and numbers exact against what was sent
        assert _after(lines, "=== Attain demo: ").startswith(f"{QUARTER} played in"), printed
        assert re.search(r"^winners: .+ · \d+ of 20 reps reached their quota$", printed, re.M), printed
        assert re.search(r"^slipped and got a check-in: \S+", printed, re.M), printed
        assert re.search(r"^check-ins: \d+ for \d+ reps", printed, re.M), printed
        assert re.search(r"^celebrations: [1-9]\d* \(", printed, re.M), printed
        assert re.search(r"^numbers exact: kpi's won revenue equals what ingest accepted for 20 of 20 reps and 3 of "
                         r"3 teams", printed, re.M), printed
        log = re.fullmatch(r"(\S+) \(([\d,]+) lines\)", _after(lines, "every check-in, celebration and figure of the "
                                                                     "run: "))
        assert log is not None and int(log[2].replace(",", "")) > 100, printed
        assert _lines_in(Path(log[1])) == int(log[2].replace(",", ""))

        signin = re.fullmatch(r"(http://127\.0\.0\.1:\d+)/signin \(sign in with the tenant's admin token: (\S+)\)",
                              _after(lines, "dashboard: "))
        assert signin is not None, printed
        dashboard, token = signin[1], signin[2]
        assert dashboard == f"http://127.0.0.1:{base + 1}"
        tv_link = _after(lines, "TV, read-only, no sign-in: ")
        assert tv_link.startswith(f"{dashboard}/tv/share/"), printed
        assert "keep running on the story's last moment, quiet, until Ctrl-C" in printed

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                await _the_pages_show_the_played_quarter(browser, dashboard, token, tv_link, tmp_path)
            finally:
                await browser.close()
        await _no_check_in_on_a_day_off_and_quiet_afterwards(base, token)
        assert process.poll() is None, "the demo stopped although --keep-running was given"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the demo stops its services
        try:
            code = await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
    if reader is not None:
        reader.join(10)
    assert code == 0, "\n".join(lines) + _service_logs()


async def _the_pages_show_the_played_quarter(browser: Browser, dashboard: str, token: str, tv_link: str,
                                             shots: Path) -> None:
    """The TV link and the sign-in as printed; the home page, the TV and a rep's page on the played quarter, with
    a trend on the leaderboard."""
    screen = await browser.new_context(viewport={"width": 1600, "height": 900})
    tv = await screen.new_page()
    await tv.goto(tv_link)
    assert tv.url == f"{dashboard}/tv"
    await tv.wait_for_selector("main")
    assert f"period={QUARTER}" in await tv.content()
    await tv.screenshot(path=str(shots / "tv.png"))
    await screen.close()

    person = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await person.new_page()
    await page.goto(f"{dashboard}/signin")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{dashboard}/leaderboard")  # home: the leaderboard of the quarter with figures
    assert QUARTER in await page.title()
    assert "No figures" not in await page.inner_text("main")
    trends = await page.locator("td.trend [class^=trend-]").count()
    assert trends > 0, "the trend column is empty"
    await page.screenshot(path=str(shots / "home.png"), full_page=True)
    await page.goto(f"{dashboard}/reps/rep-001")
    assert QUARTER in await page.title()
    await person.close()


async def _no_check_in_on_a_day_off_and_quiet_afterwards(base: int, token: str) -> None:
    """Each check-in was raised on a working day of its rep, in their own zone; and after the summary nothing
    moves: the same check-ins and the same `as_of` a few seconds apart (the clock stopped where the story ended)."""
    coaching, kpi = f"http://127.0.0.1:{base + 2}", f"http://127.0.0.1:{base + 1}"
    scenario = build_scenario(SEED, Quarter.of(QUARTER), reps=REPS, teams=TEAMS)
    zones = {rep.rep_id: ZoneInfo(rep.timezone) for rep in scenario.org.reps}
    leave = {(t.rep_id, day) for t in scenario.time_off for day in t.days()}
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10, headers=auth) as client:
        listed = (await client.get(f"{coaching}/v1/holidays", params={"year": 2026})).json()["holidays"]
        holidays = {date.fromisoformat(h["day"]) for h in listed}
        assert {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2026, 12, 31)} <= holidays

        async def tasks() -> list[dict[str, object]]:
            listed: list[dict[str, object]] = (await client.get(f"{coaching}/v1/tasks",
                                                                params={"limit": 500})).json()["tasks"]
            return listed

        async def as_of() -> str:
            board = (await client.get(f"{kpi}/v1/leaderboard", params={"metric": "won_revenue"})).json()
            assert board["period"] == QUARTER
            return str(board["as_of"])

        first, stamp = await tasks(), await as_of()
        assert first, "no check-in at all"
        for task in first:
            rep_id = str(task["rep_id"])
            created = datetime.fromisoformat(str(task["created_at"])).astimezone(zones[rep_id]).date()
            assert created.weekday() < 5 and created not in holidays and (rep_id, created) not in leave, task
        await asyncio.sleep(3)
        assert [t["task_id"] for t in await tasks()] == [t["task_id"] for t in first]
        assert await as_of() == stamp
