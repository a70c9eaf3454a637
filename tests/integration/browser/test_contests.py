"""Contests on the sales floor (issue 22, item 4), in a real browser against the real stack: an admin defines a
contest whose window runs from a little before now to a few days on (so it is running, whatever the date); its
page shows the standings, and a won deal posted to ingest moves them on the open page without a reload; the
contests page lists it; the TV shows it beside its rotation and moves too; a TV opened with its share link sees
it. axe-core on the new pages; screenshots at desktop and phone width in .local/test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from shared import topics
from tests.factories import deal, rep, team
from tests.integration.browser.test_check_ins import _known
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import Tenant, create_tenant, open_watch, post, sigkill_and_restart, token_cli

CONTEST = "floor-cup"


def _utc(moment: datetime) -> str:
    """A contest's start or end with its offset: taken as given, not as the tenant's local time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _standings(kpi: str, tenant: Tenant, expected: list[tuple[str, str]], timeout: float = 60) -> None:  # noqa: ASYNC109
    """Wait until kpi's published standings are `expected` (participant, value), in order."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        while True:
            body: dict[str, Any] = (await client.get(f"{kpi}/v1/contests/{CONTEST}")).json()
            got = [(s["participant_id"], Decimal(s["value"])) for s in body.get("standings", [])]
            if got == [(p, Decimal(v)) for p, v in expected]:
                return
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.3)


async def _won(ingest: str, tenant: Tenant, deal_id: str, rep_id: str, amount: str) -> httpx.Response:
    """A deal won a minute ago: inside the contest's window."""
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    return await post(ingest, tenant, [deal(deal_id, rep_id, amount, updated_at=a_minute_ago)])


async def test_a_contest_moves_live_on_its_page_and_on_the_tv(services: dict[str, str], browser: Browser) -> None:
    kpi, ingest = services["kpi"], services["ingest"]
    tenant = await asyncio.to_thread(create_tenant)
    now = datetime.now(UTC)
    events = [team("north", None), rep("ana", team="north"), rep("bo", team="north"),
              deal("crm-a1", "ana", "4000", updated_at=now - timedelta(minutes=3)),
              deal("crm-b1", "bo", "2500", updated_at=now - timedelta(minutes=3))]
    assert (await post(ingest, tenant, events)).status_code == 200
    await _known(kpi, tenant.token)
    async with httpx.AsyncClient(timeout=30, headers=tenant.auth) as client:
        defined = await client.put(f"{kpi}/v1/contests/{CONTEST}", json={
            "name": "Floor cup", "metric": "won_revenue", "participants": "reps", "participant_ids": ["ana", "bo"],
            "starts": _utc(now - timedelta(hours=1)), "ends": _utc(now + timedelta(days=3)),
            "prizes": ["A weekend away", "Dinner for two"]})
    assert defined.status_code == 200, defined.text
    assert defined.json()["status"] == "running"
    await _standings(kpi, tenant, [("ana", "4000"), ("bo", "2500")])

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    await page.goto(f"{kpi}/signin?next=/contests/{CONTEST}")
    await page.fill("#token", tenant.token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{kpi}/contests/{CONTEST}")
    board = page.locator("table.contest-board tbody tr")
    await expect(board).to_have_count(2)
    await expect(board.nth(0).locator("th a")).to_have_text("Ana")
    await expect(board.nth(0).locator(".value")).to_have_text("€4,000.00")
    await expect(board.nth(0)).to_have_class(re.compile(r"\bleader\b"))
    await expect(board.nth(0).locator(".prize")).to_have_text("A weekend away")
    await expect(board.nth(1).locator(".value")).to_have_text("€2,500.00")
    await expect(page.locator(".status")).to_contain_text("Running")
    await expect(page.locator("#live")).to_have_text("Live")
    await _accessible(page, "contest")
    await _shoot(page, "contest")

    # live: bo wins a deal in the window; the standings move on the open page, without a reload
    await page.evaluate("window.__sameDocument = true")
    assert (await _won(ingest, tenant, "crm-b2", "bo", "5000")).status_code == 200
    await expect(board.nth(0).locator("th a")).to_have_text("Bo", timeout=30_000)
    await expect(board.nth(0).locator(".value")).to_have_text("€7,500.00")
    await expect(board.nth(0).locator(".prize")).to_have_text("A weekend away")
    await expect(board.nth(1).locator("th a")).to_have_text("Ana")
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating"

    # the contests page: its status, window, prizes and leader
    await page.goto(f"{kpi}/contests")
    row = page.locator(f'table.contests tr[data-contest="{CONTEST}"]')
    await expect(row.locator(".status")).to_contain_text("Running · ends")
    await expect(row.locator(".leaders")).to_have_text("Bo (€7,500.00)")
    await expect(row.locator(".prizes")).to_have_text("1. A weekend away; 2. Dinner for two")
    await expect(page.locator('nav a[href="/contests"]')).to_have_attribute("aria-current", "page")
    await _accessible(page, "contests")
    await _shoot(page, "contests")

    # the TV: the running contest beside the rotation, moving live too
    tv = await context.new_page()
    tv.on("pageerror", lambda err: problems.append(str(err)))
    await tv.goto(f"{kpi}/tv?every=5")
    panel = tv.locator(f'#tv-contests [data-contest="{CONTEST}"]')
    await expect(panel.locator("h3")).to_have_text("Floor cup", timeout=15_000)
    await expect(panel.locator("tbody tr").nth(0).locator("th")).to_contain_text("Bo")
    await expect(tv.locator("#live")).to_have_text("Live", timeout=15_000)
    await tv.evaluate("window.__sameDocument = true")
    assert (await _won(ingest, tenant, "crm-a2", "ana", "4000")).status_code == 200
    await expect(panel.locator("tbody tr").nth(0).locator("th")).to_contain_text("Ana", timeout=30_000)
    await expect(panel.locator("tbody tr").nth(0).locator(".value")).to_have_text("€8,000.00")
    assert await tv.evaluate("window.__sameDocument === true"), "the TV reloaded instead of updating"
    await _accessible(tv, "tv with a contest")
    await _shoot(tv, "tv-contest")
    await context.close()

    # a TV opened with its share link (a viewer, holding no token) sees the contest too
    link = await asyncio.to_thread(token_cli, "share", tenant.slug, "--name", "Floor TV")
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    screen = await context.new_page()
    screen.on("pageerror", lambda err: problems.append(str(err)))
    await screen.goto(kpi + link["path"])
    await expect(screen).to_have_url(f"{kpi}/tv")
    await expect(screen.locator(f'#tv-contests [data-contest="{CONTEST}"] h3')).to_have_text("Floor cup")
    page_of_it = await screen.goto(f"{kpi}/contests/{CONTEST}")
    assert page_of_it is not None and page_of_it.status == 200
    await context.close()
    assert problems == [], f"JavaScript errors: {problems}"


async def test_a_contest_through_the_stack_celebrates_its_start_leads_and_winner_once_across_a_sigkill(
        services: dict[str, str], browser: Browser) -> None:
    """Issue 22's acceptance: a contest run through ingest, kpi and recognition, watched live in the browser;
    recognition is SIGKILLed after the first lead was celebrated and started again while the lead changes hands;
    then the admin ends the contest early (its end moved to now, no settling time: final at once; kpi's clock
    ending one is tests/integration/kpi/test_contests.py). Every celebration (the start, each lasting lead, the
    winner with the prize) reaches recognition.celebrations.v1 exactly once, and nothing is celebrated twice."""
    kpi, ingest, recognition = services["kpi"], services["ingest"], services["recognition"]
    loop = asyncio.get_running_loop()
    tenant = await asyncio.to_thread(create_tenant)
    contest = "sprint"
    watch = await open_watch(tenant.slug, topics.CELEBRATIONS.name)
    try:
        now = datetime.now(UTC)
        assert (await post(ingest, tenant, [rep("ana"), rep("bo")])).status_code == 200
        await _known(kpi, tenant.token)
        async with httpx.AsyncClient(timeout=30, headers=tenant.auth) as client:
            settings = await client.put(f"{recognition}/v1/recognition/settings",
                                        json={"contest_lead_debounce_s": 2})
            assert settings.status_code == 200, settings.text
            definition = {"name": "Friday sprint", "metric": "won_revenue", "participants": "reps",
                          "participant_ids": ["ana", "bo"], "starts": _utc(now - timedelta(minutes=5)),
                          "ends": _utc(now + timedelta(hours=1)), "settle_minutes": 0, "prizes": ["A day off"]}
            defined = await client.put(f"{kpi}/v1/contests/{contest}", json=definition)
        assert defined.status_code == 200, defined.text

        context = await browser.new_context(viewport={"width": 1366, "height": 900})
        page = await context.new_page()
        await page.goto(f"{kpi}/signin?next=/contests/{contest}")
        await page.fill("#token", tenant.token)
        await page.click("button[type=submit]")
        board = page.locator("table.contest-board tbody tr")
        await expect(page.locator("#live")).to_have_text("Live")

        def celebrated(milestone: str, who: str) -> Any:
            return lambda m: (m["type"] == "recognition.milestone.reached" and m["data"]["milestone"] == milestone
                              and m["data"]["scope_id"] == who)

        assert (await _won(ingest, tenant, "s-a1", "ana", "3000")).status_code == 200
        await expect(board.nth(0).locator("th a")).to_have_text("Ana", timeout=30_000)
        await watch.wait_for(celebrated("contest_started", contest), timeout=60)
        await watch.wait_for(celebrated("contest_lead", "ana"), timeout=60)

        async def bo_takes_the_lead() -> None:
            assert (await _won(ingest, tenant, "s-b1", "bo", "5000")).status_code == 200

        # recognition dies on the spot; meanwhile bo takes the lead, live on the page
        await asyncio.to_thread(sigkill_and_restart, "recognition",
                                lambda: asyncio.run_coroutine_threadsafe(bo_takes_the_lead(), loop).result())
        await expect(board.nth(0).locator("th a")).to_have_text("Bo", timeout=30_000)
        await watch.wait_for(celebrated("contest_lead", "bo"), timeout=60)
        async with httpx.AsyncClient(timeout=30, headers=tenant.auth) as client:  # the admin ends it now
            ended = await client.put(f"{kpi}/v1/contests/{contest}",
                                     json=definition | {"ends": _utc(datetime.now(UTC))})
        assert ended.status_code == 200 and ended.json()["status"] == "final", ended.text
        won = await watch.wait_for(celebrated("contest_won", "bo"), timeout=60)
        assert won["data"]["facts"]["prize"] == "A day off" and won["data"]["facts"]["place"] == 1
        await expect(page.locator(".status")).to_contain_text("Final", timeout=30_000)
        await context.close()
        await watch.poll(5)  # anything late or repeated would show by now
    finally:
        await watch.consumer.stop()
    reached = [m for m in watch.seen if m["type"] == "recognition.milestone.reached"]
    assert sorted((m["data"]["milestone"], m["data"]["scope_id"]) for m in reached
                  if m["data"]["milestone"].startswith("contest_")) == [
        ("contest_lead", "ana"), ("contest_lead", "bo"), ("contest_started", contest), ("contest_won", "bo")]
    # and the rest (each rep's first win) once too: nothing at all was celebrated twice across the kill
    assert len({m["id"] for m in reached}) == len(reached)
    assert len({(m["data"]["milestone"], m["data"]["scope_id"]) for m in reached}) == len(reached)
