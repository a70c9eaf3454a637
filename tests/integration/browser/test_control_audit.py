"""The control room's audit page (issue 17, items 7 and 8) in a real browser: an admin sees each change with who
made it and what it changed (before → after), filters it, and the page passes axe-core at desktop and phone
width."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from playwright.async_api import Browser, expect

from tests.factories import rep, target, this_quarter
from tests.integration.audit.test_audit_log import _entries
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import create_tenant


async def test_the_control_room_shows_the_log_to_an_admin(services: dict[str, str], browser: Browser) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    quarter, _ = this_quarter(timedelta(0))
    async with httpx.AsyncClient(timeout=30, headers=tenant.auth) as client:
        for value in ("100000", "125000"):
            posted = await client.post(f"{services['ingest']}/v1/events",
                                       json=[rep("ana"), target("ana", quarter, value)])
            assert posted.status_code == 200, posted.text
    await _entries(services["kpi"], tenant.auth, 4)  # the tenant created, the rep, the target twice
    page = await browser.new_page()
    await page.goto(f"{services['kpi']}/signin?next=/admin/audit")
    await page.fill("#token", tenant.token)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Audit log")
    rows = page.locator("table.audit tbody tr")
    await expect(rows).to_have_count(4)
    newest = rows.first
    await expect(newest).to_contain_text("target.set")
    await expect(newest).to_contain_text("admin token initial")
    await expect(newest.locator("ul.changes li")).to_have_text("value: 100000 → 125000")
    await page.fill("input[name=subject]", "rep:")
    await page.click("form.audit-filters button")
    await expect(rows).to_have_count(1)
    await _accessible(page, "audit log")
    await _shoot(page, "control-audit")
    await page.goto(f"{services['kpi']}/leaderboard")  # every page's menu offers an admin the control room
    await page.click("header.top >> text=Control room")
    await expect(page.locator("h1")).to_have_text("Control room")
    await page.close()
