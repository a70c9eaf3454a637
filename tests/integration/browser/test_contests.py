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

from tests.factories import deal, rep, team
from tests.integration.browser.test_check_ins import _known
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import Tenant, create_tenant, post, token_cli

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
