"""The control room's core sections (issue 17, items 5 and 8) in a real browser against the real stack: an admin
signs in with their token, sets a rep's won-revenue target for the quarter in the targets table and then sees it
on the rep's scorecard; a CSV with a bad line is refused by its line number and changes nothing, a good one is
saved; the roster, settings and people pages work, and a new token's secret is shown once; a manager's or a rep's
session gets 403 on every control-room page. axe-core on each page; screenshots at desktop and phone width in
.local/test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from playwright.async_api import Browser, Page, expect

from tests.factories import deal, rep, team, this_quarter
from tests.integration.browser.test_dashboard import SIZES, _accessible
from tests.integration.browser.test_dashboard import _shoot as _shoot_sizes
from tests.integration.conftest import Tenant, create_tenant, post, token_cli

ADMIN_PAGES = ("/admin", "/admin/targets", "/admin/roster", "/admin/settings", "/admin/people")


async def _until(page: Page, url: str, shown: Callable[[Page], Awaitable[bool]], timeout: float = 60) -> None:  # noqa: ASYNC109
    """Load `url` again until `shown` holds (kpi applies what ingest took within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        await page.goto(url)
        if await shown(page):
            return
        assert time.monotonic() < deadline, f"{url}: {(await page.locator('main').inner_text())[:800]}"
        await page.wait_for_timeout(400)


async def _shoot(page: Page, name: str) -> None:
    """The suite's screenshots, and at phone width the page itself does not scroll sideways (an absolutely
    placed element inside a table's scrolling box can widen it while every element's own box looks fine)."""
    await _shoot_sizes(page, name)
    await page.set_viewport_size(SIZES["phone"])
    wider = await page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    await page.set_viewport_size(SIZES["desktop"])
    assert wider <= 1, f"{name}: the page scrolls sideways by {wider} px at phone width"


async def _cell(page: Page, label: str) -> str:
    found = page.get_by_label(label, exact=True)
    return await found.input_value() if await found.count() else "<no cell>"


async def _known(kpi: str, token: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        while (await client.get(f"{kpi}/v1/leaderboard")).status_code == 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_an_admin_sets_a_target_in_the_control_room_and_sees_it_on_the_scorecard(
        services: dict[str, str], browser: Browser) -> None:
    kpi = services["kpi"]
    tenant: Tenant = await asyncio.to_thread(create_tenant)
    quarter, at = this_quarter(timedelta(minutes=5))
    events = [team("north", None), rep("ana", team="north", manager="mia", name="Ana Adler"),
              rep("bo", team="north", manager="mia", name="Bo Berg"), deal("d-ana", "ana", "4000", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    manager = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "manager", "--manager", "mia")
    ana = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "ana")
    for token in (tenant.token, manager["token"], ana["token"]):
        await _known(kpi, token)

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    await page.goto(f"{kpi}/signin?next=/admin/targets")
    await page.fill("#token", tenant.token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{kpi}/admin/targets")

    # the table: Ana's won revenue for the quarter, saved as a target.set with the admin's token
    targets = f"{kpi}/admin/targets?period={quarter}"

    async def rows_shown(p: Page) -> bool:
        return await _cell(p, "Ana Adler: Won revenue") == "" and await _cell(p, "Bo Berg: Won revenue") == ""
    await _until(page, targets, rows_shown)
    await page.get_by_label("Ana Adler: Won revenue", exact=True).fill("123456")
    await page.get_by_role("button", name="Save changed targets").click()
    await expect(page.locator("p.said")).to_contain_text(f"Saved 1 target for {quarter}.")
    await expect(page.locator("p.error")).to_have_count(0)

    async def on_the_scorecard(p: Page) -> bool:
        card = p.locator("article.card[data-metric='won_revenue']")
        return await card.count() == 1 and "€123,456.00" in await card.inner_text()
    await _until(page, f"{kpi}/reps/ana?period={quarter}", on_the_scorecard)
    await expect(page.locator("article.card[data-metric='won_revenue']")).to_contain_text("€4,000.00")  # the deal

    async def in_the_table(p: Page) -> bool:
        return await _cell(p, "Ana Adler: Won revenue") == "123456"
    await _until(page, targets, in_the_table)
    await page.get_by_label("Add a metric").select_option("calls")  # a column for a metric without targets yet
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.get_by_label("Bo Berg: Calls", exact=True)).to_have_value("")
    await _accessible(page, "control room: targets")
    await _shoot(page, "control-targets")

    # a CSV with one bad line: every problem by its line number, and nothing saved (not even the good line)
    bad = (f"scope,scope_id,metric,period,value\nrep,bo,won_revenue,{quarter},90000\n"
           f"rep,bo,won_revenue,{quarter},ten\nrep,zoe,calls,{quarter},5\n")
    await page.get_by_label("or paste its lines").fill(bad)
    await page.get_by_role("button", name="Check and save").click()
    refused = page.locator(".problems")
    await expect(refused).to_contain_text("Nothing was saved.")
    await expect(refused).to_contain_text("line 3: value 'ten' is not a number")
    await expect(refused).to_contain_text("line 4: no active rep 'zoe' on the roster")
    await expect(page.get_by_label("or paste its lines")).to_have_value(bad)  # kept, to be mended
    await _accessible(page, "control room: a refused CSV")
    await _shoot(page, "control-targets-csv-refused")

    # a good CSV afterwards (same topic, same tenant: it arrives after anything the bad one could have sent)
    good = f"scope,scope_id,metric,period,value\nteam,north,won_revenue,{quarter},500000\n"
    await page.get_by_label("or paste its lines").fill(good)
    await page.get_by_role("button", name="Check and save").click()
    await expect(page.locator("p.said")).to_contain_text(f"Saved 1 target from the file ({quarter}).")

    async def team_target_shown(p: Page) -> bool:
        return await _cell(p, "North: Won revenue") == "500000"
    await _until(page, targets, team_target_shown)
    assert await _cell(page, "Bo Berg: Won revenue") == ""  # the refused file's good line was never posted

    # the other sections render, pass axe-core and fit a phone
    await page.goto(f"{kpi}/admin/roster")
    await expect(page.locator("tr[data-rep='ana']")).to_contain_text("North")
    await _accessible(page, "control room: roster")
    await _shoot(page, "control-roster")
    await page.goto(f"{kpi}/admin/settings")
    await expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    await _accessible(page, "control room: settings")
    await _shoot(page, "control-settings")
    await page.get_by_label("Currency (ISO 4217)").fill("eur")
    await page.get_by_role("button", name="Save the settings").click()
    await expect(page.locator("p.error")).to_contain_text("Nothing was changed: currency: 'eur' is not an ISO 4217")
    await page.get_by_label("Locale").fill("de-DE")
    await page.get_by_role("button", name="Save the settings").click()
    await expect(page.locator("p.said")).to_contain_text("Changed the locale. Pages show it from the next load.")
    await expect(page.get_by_label("Locale")).to_have_value("de_DE")
    await expect(page.get_by_label("Currency (ISO 4217)")).to_have_value("EUR")
    await page.goto(f"{kpi}/admin/people")
    await page.locator("form[action='/admin/people/tokens'] select[name=role]").select_option("rep")
    await page.locator("form[action='/admin/people/tokens'] select[name=rep_id]").select_option("bo")
    await page.locator("form[action='/admin/people/tokens'] input[name=name]").fill("Bo's laptop")
    await page.get_by_role("button", name="Make the token").click()
    secret = await page.locator("#issued-token").input_value()
    assert secret.startswith("atn_"), secret
    assert secret not in page.url
    await expect(page.locator("main")).to_contain_text("Bo Berg (bo)")  # grouped by the person, named
    await _accessible(page, "control room: people")
    await _shoot(page, "control-people")
    await page.goto(f"{kpi}/admin/people")
    assert secret not in await page.content()  # shown once, never again
    made = (await page.locator("tr", has_text="Bo's laptop").locator("th").inner_text()).split()[0]

    # rotate it (a new secret, once), revoke the old one, make a TV's share link and open it elsewhere
    await page.get_by_role("button", name=f"Rotate token {made}").click()
    await expect(page.locator("#issued-h")).to_contain_text(f"The token replacing {made}")
    rotated = await page.locator("#issued-token").input_value()
    assert rotated.startswith("atn_") and rotated != secret
    await page.goto(f"{kpi}/admin/people")
    await page.get_by_role("button", name=f"Revoke token {made}").click()
    await expect(page.locator("p.said")).to_contain_text(f"Token {made} is revoked")
    await page.locator("form[action='/admin/people/share'] input[name=name]").fill("Floor TV")
    await page.get_by_role("button", name="Make the link").click()
    link = await page.locator("#issued-link").input_value()
    assert link.startswith(f"{kpi}/tv/share/"), link
    screen = await browser.new_context(viewport={"width": 1366, "height": 900})
    tv = await screen.new_page()
    await tv.goto(link)
    await expect(tv).to_have_url(f"{kpi}/tv")
    await screen.close()
    assert problems == [], problems
    await context.close()

    # a manager's or a rep's session: 403 on every control-room page
    for token in (manager["token"], ana["token"]):
        async with httpx.AsyncClient(timeout=10, cookies={"attain_dashboard": token}) as client:
            for path in ADMIN_PAGES:
                assert (await client.get(f"{kpi}{path}")).status_code == 403, path
