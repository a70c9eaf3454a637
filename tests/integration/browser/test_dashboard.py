"""The sales floor dashboard in a real browser (Debian's chromium, driven by Playwright) against the real
stack: sign in, read the leaderboard, open a scorecard, and watch a changed attainment and a new
celebration arrive live after events are posted to ingest; export CSV and PNG; survive a kpi restart;
no serious accessibility violation (axe-core); screenshots of every view at desktop and phone widths
in .local/test-artifacts/dashboard/ (not committed)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, expect

from deploy.local.procs import LOCAL
from tests.factories import activity, deal, rep, target, team, this_quarter
from tests.integration.conftest import Tenant, post, running
from tests.ports import free_ports

SHOTS = LOCAL / "test-artifacts" / "dashboard"
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
SERIOUS = {"serious", "critical"}
DASHBOARD_PORT = free_ports(1)[0]  # a second kpi replica of the suite's, which this test restarts (same port)


async def _until_api(url: str, tenant: Tenant, check: Any, timeout: float = 60) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        while True:
            response = await client.get(url)
            if response.status_code == 200 and check(response.json()):
                return response.json()
            assert time.monotonic() < deadline, f"{url}: {response.status_code} {response.text[:300]}"
            await asyncio.sleep(0.3)


WIDER_THAN_THE_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")].filter((el) => el.getBoundingClientRect().right > width + 1
    && !el.closest(".table-wrap"));  // a wide table scrolls inside its own box
  return wide.slice(0, 5).map((el) => `${el.tagName}.${el.getAttribute("class")} ${el.getBoundingClientRect().right}`);
}"""


async def _shoot(page: Page, name: str) -> None:
    """Screenshots at desktop and phone width; at phone width nothing may stick out of the screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)
        await page.wait_for_timeout(150)
        await page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
        if size == "phone":
            assert await page.evaluate(WIDER_THAN_THE_SCREEN) == [], f"{name}: wider than a phone"
    await page.set_viewport_size(SIZES["desktop"])


async def _accessible(page: Page, name: str) -> None:
    results = await Axe().run(page)
    serious = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert not serious, f"{name}: serious accessibility violations: {serious}"


async def test_the_sales_floor_live_in_a_browser(services: dict[str, str], tenant: Tenant, browser: Browser) -> None:
    quarter, at = this_quarter(timedelta(hours=2))
    events = [team("north", None), rep("ana", team="north", manager="mgr-1"), rep("bo", team="north", manager="mgr-1"),
              target("ana", quarter, "10000"), target("bo", quarter, "10000"),
              deal("crm-a1", "ana", "4000", updated_at=at), deal("crm-b1", "bo", "2500", updated_at=at),
              activity("act-1", "ana", "call", at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    await _until_api(f"{services['kpi']}/v1/leaderboard?period={quarter}", tenant,
                     lambda body: [s["actual"] for s in body["standings"]] == ["4000", "2500"])

    with running({"kpi": DASHBOARD_PORT}, log_suffix="-dashboard") as urls:
        kpi = urls["kpi"]
        context = await browser.new_context(viewport=SIZES["desktop"], accept_downloads=True)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda err: problems.append(str(err)))

        # sign in: a wrong token is refused with a message, the right one lands on the leaderboard
        await page.goto(f"{kpi}/")
        await expect(page).to_have_url(f"{kpi}/signin?next=/")
        await _shoot(page, "signin")
        await _accessible(page, "sign-in")
        await page.fill("#token", "not-a-token")
        await page.click("button[type=submit]")
        await expect(page.locator("#signin-error")).to_contain_text("not valid")
        await page.fill("#token", tenant.token)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{kpi}/leaderboard")
        board = page.locator("table.board tbody tr")
        await expect(board).to_have_count(2)
        await expect(page.locator("table.teams-board tbody tr[data-team=north]")).to_have_count(1)  # team v team
        await expect(board.nth(0).locator("th a")).to_have_text("Ana")
        await expect(board.nth(0).locator(".actual")).to_have_text("€4,000.00")
        await expect(board.nth(1).locator(".actual")).to_have_text("€2,500.00")
        await expect(page.locator("#live")).to_have_text("Live")
        await _shoot(page, "leaderboard")
        await _accessible(page, "leaderboard")

        # CSV export of what the board shows (exact numbers, not the formatted ones)
        exported = await page.request.get(f"{kpi}/leaderboard.csv?period={quarter}&metric=won_revenue")
        assert exported.status == 200 and "text/csv" in exported.headers["content-type"]
        rows = list(csv.DictReader(io.StringIO(await exported.text())))
        assert [(r["rank"], r["rep_id"], r["actual"], r["target"]) for r in rows] == [
            ("1", "ana", "4000", "10000"), ("2", "bo", "2500", "10000")]

        # live: bo wins a deal; the board re-ranks and a celebration pops up, without a reload
        await page.evaluate("window.__sameDocument = true")
        posted = await post(services["ingest"], tenant, [deal("crm-b2", "bo", "5000",
                                                              updated_at=datetime.now(UTC) - timedelta(minutes=1))])
        assert posted.status_code == 200
        await expect(board.nth(0).locator("th a")).to_have_text("Bo", timeout=30_000)
        await expect(board.nth(0).locator(".actual")).to_have_text("€7,500.00")
        toast = page.locator("#toasts .toast").first
        await expect(toast).to_contain_text("Bo", timeout=30_000)
        assert await page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating"

        # the scorecard: figures, the cumulative chart against the pace, the deals behind the number
        await board.nth(1).locator("th a").click()
        await expect(page).to_have_url(f"{kpi}/reps/ana?period={quarter}")
        card = page.locator('article.card[data-metric="won_revenue"]')
        await expect(card.locator("dd.actual")).to_have_text("€4,000.00")
        await expect(card.locator('svg[data-chart="chart-won_revenue"]')).to_be_visible()
        await card.locator("summary").click()
        await expect(card.locator("table.items")).to_contain_text("crm-a1")
        await expect(page.locator("#tasks-h")).to_be_visible()
        await expect(page.locator("#cheers-h + ul, #cheers-h + p")).to_be_visible()
        async with page.expect_download() as download_info:
            await card.locator("button[data-export]").click()
        png = await (await download_info.value).path()
        assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        await _shoot(page, "scorecard")
        await _accessible(page, "scorecard")

        # the team view and the manager's scorecard
        await page.goto(f"{kpi}/teams/north?period={quarter}")
        await expect(page.locator("h1")).to_contain_text("North")
        await expect(page.locator("#manager-h")).to_be_visible()
        await _shoot(page, "team")
        await _accessible(page, "team")
        await page.goto(f"{kpi}/teams")
        await _shoot(page, "teams")

        # keyboard: the skip link comes first and takes focus to the content
        await page.goto(f"{kpi}/leaderboard")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip"
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"
        await page.evaluate("window.__sameDocument = true")

        # TV mode rotates through views and shows a celebration full size
        tv = await context.new_page()
        await tv.goto(f"{kpi}/tv?every=5")
        await expect(tv.locator("#tv table.board")).to_be_visible(timeout=15_000)
        await expect(tv.locator("#live")).to_have_text("Live", timeout=15_000)
        await _shoot(tv, "tv")
        await _accessible(tv, "tv")
        await post(services["ingest"], tenant, [deal("crm-a2", "ana", "2000",
                                                     updated_at=datetime.now(UTC) - timedelta(minutes=1))])
        await expect(tv.locator("#spotlight")).to_contain_text("Ana", timeout=30_000)
        await tv.close()

    # kpi restarts: the page notices, reconnects by itself and goes on updating
    await expect(page.locator("#live")).to_have_text("Reconnecting…", timeout=20_000)
    with running({"kpi": DASHBOARD_PORT}, log_suffix="-dashboard-2"):
        await expect(page.locator("#live")).to_have_text("Live", timeout=30_000)
        await post(services["ingest"], tenant, [deal("crm-a3", "ana", "1000",
                                                     updated_at=datetime.now(UTC) - timedelta(minutes=1))])
        await expect(board.nth(0).locator(".actual")).to_have_text("€7,500.00")  # bo, unchanged
        await expect(page.locator('tr[data-rep="ana"] .actual')).to_have_text("€7,000.00", timeout=30_000)
        assert await page.evaluate("window.__sameDocument === true")
    await context.close()
    assert not problems, f"JavaScript errors: {problems}"
