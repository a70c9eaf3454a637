"""Managers act in the product (issue 17, item 6), in a real browser against the real stack: a manager signs in
with their own token, sees their reps' check-ins and no one else's, acknowledges one and completes another with
an outcome; another team's rep is not theirs to open; a rep sees and acts on their own check-ins only and is
offered no plan; a TV opened with its share link shows the floor. axe-core on the new page; screenshots at
desktop and phone width in .local/test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.factories import rep, target, this_quarter
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import Tenant, check_ins_from_day_one, create_tenant, post, token_cli


async def _tasks_of(coaching: str, tenant: Tenant, reps: tuple[str, ...], timeout: float = 90) -> dict[str, Any]:  # noqa: ASYNC109
    """Each rep's first check-in, once coaching has made one for every rep."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        while True:
            found = {r: (await client.get(f"{coaching}/v1/tasks?rep_id={r}")).json()["tasks"] for r in reps}
            if all(found.values()):
                return {r: tasks[0] for r, tasks in found.items()}
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.5)


async def _sign_in(page: Page, kpi: str, token: str) -> None:
    await page.goto(f"{kpi}/signin?next=/check-ins")
    await page.fill("#token", token)
    await page.click("button[type=submit]")


async def _known(kpi: str, token: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        while (await client.get(f"{kpi}/v1/leaderboard")).status_code == 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_a_manager_acts_on_their_reps_check_ins_and_a_rep_on_their_own(services: dict[str, str],
                                                                            browser: Browser) -> None:
    kpi, coaching = services["kpi"], services["coaching"]
    tenant = await asyncio.to_thread(create_tenant)
    await check_ins_from_day_one(coaching, tenant)  # every rep gets a check-in, whatever the date
    quarter, _ = this_quarter(timedelta(minutes=5))
    events = [rep("annika", manager="mia", team="north"), rep("bertil", manager="mia", team="north"),
              rep("zorro", manager="zed", team="south"),
              *(target(r, quarter, "900000") for r in ("annika", "bertil", "zorro"))]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    tasks = await _tasks_of(coaching, tenant, ("annika", "bertil", "zorro"))
    manager = (await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "manager", "--manager", "mia"))
    annika = (await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "annika"))
    tv = await asyncio.to_thread(token_cli, "share", tenant.slug, "--name", "Floor TV")
    for token in (manager["token"], annika["token"]):
        await _known(kpi, token)

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, manager["token"])
    await expect(page).to_have_url(f"{kpi}/check-ins")
    items = page.locator("ul.tasks > li")
    await expect(items.first).to_be_visible()
    listed = {(await item.locator("a").first.inner_text()).strip() for item in await items.all()}
    assert listed == {"annika", "bertil"}, listed  # mia's reps, and only theirs
    await expect(page.locator("main")).not_to_contain_text("zorro", ignore_case=True)
    await expect(page.locator("header.top >> text=Control room")).to_have_count(0)  # an admin's alone
    await _accessible(page, "check-ins (manager)")
    await _shoot(page, "check-ins-manager")

    def item_of(task: dict[str, Any]) -> Any:
        return page.locator(f"ul.tasks > li:has(form[action='/check-ins/{task['task_id']}/complete'])")

    await item_of(tasks["bertil"]).get_by_role("button", name="Acknowledge").click()
    await expect(page).to_have_url(f"{kpi}/check-ins")
    await expect(item_of(tasks["bertil"])).to_contain_text("acknowledged")
    await item_of(tasks["annika"]).get_by_label("Outcome").fill("Agreed two extra demos a week")
    await item_of(tasks["annika"]).get_by_role("button", name="Complete").click()
    await expect(page).to_have_url(f"{kpi}/check-ins")
    await expect(item_of(tasks["annika"])).to_have_count(0)  # completed: no longer open
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        done = (await client.get(f"{coaching}/v1/tasks/{tasks['annika']['task_id']}")).json()
        acked = (await client.get(f"{coaching}/v1/tasks/{tasks['bertil']['task_id']}")).json()
        other = (await client.get(f"{coaching}/v1/tasks/{tasks['zorro']['task_id']}")).json()
    assert done["status"] == "completed" and done["outcome"] == "Agreed two extra demos a week"
    assert acked["status"] == "acknowledged" and other["status"] == "open"
    refused = await page.goto(f"{kpi}/reps/zorro")
    assert refused is not None and refused.status == 404  # another manager's rep
    # did it help? mia's reps' check-ins are followed up; the page names their rules, never zorro's manager
    effect = await page.goto(f"{kpi}/coaching-effect")
    assert effect is not None and effect.status == 200
    await expect(page.locator("table.effect tbody tr").first).to_be_visible()
    await expect(page.locator("main")).to_contain_text("check-ins opened from")
    by_manager = await page.goto(f"{kpi}/coaching-effect?by=manager")
    assert by_manager is not None and by_manager.status == 200
    keys = {await row.get_attribute("data-key") for row in await page.locator("table.effect tbody tr").all()}
    assert keys == {"mia"}, keys
    await _accessible(page, "coaching effect (manager)")
    await _shoot(page, "coaching-effect-manager")
    await context.close()

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, annika["token"])
    await expect(page).to_have_url(f"{kpi}/check-ins")
    mine = {(await item.locator("a").first.inner_text()).strip()
            for item in await page.locator("ul.tasks > li").all()}
    assert mine <= {"annika"}, mine  # her own, if any is still open; nobody else's
    await _shoot(page, "check-ins-rep")
    own = await page.goto(f"{kpi}/reps/annika")
    assert own is not None and own.status == 200
    assert await page.get_by_role("button", name="Make an action plan").count() == 0
    refused = await page.goto(f"{kpi}/reps/bertil")
    assert refused is not None and refused.status == 404
    await context.close()

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda err: problems.append(str(err)))
    await page.goto(kpi + tv["path"])
    await expect(page).to_have_url(f"{kpi}/tv")
    await _shoot(page, "tv-share-link")
    cookie = next(c for c in await context.cookies() if c["name"] == "attain_dashboard")
    assert cookie["value"].startswith("share:") and cookie["httpOnly"]
    await context.close()
    assert problems == []
