"""The control room's settings sections (issue 17, item 5) in a real browser against the real stack: an admin signs
in with their token, adds a holiday (coaching counts it) and a rep's time off, changes a coaching policy field
(coaching has it; a value coaching refuses is shown next to its field), saves recognition settings, sets a HubSpot
secret (the page then says "set"; the value appears nowhere in it), and maps a held-back HubSpot user with one
click, after which the held-back deal reaches kpi. A rep gets 403 on every section. axe-core on each page;
screenshots at desktop and phone width in .local/test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.factories import rep, target, this_quarter
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import Tenant, create_tenant, post, token_cli
from tests.integration.test_webhooks_hubspot import _deliver, _event

SECRET = "hs-client-secret-typed-in-the-browser-91c2"


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.4)


async def _get(url: str, tenant: Tenant, **params: Any) -> Any:
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        answer = await client.get(url, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _known(kpi: str, token: str) -> None:
    async def known() -> bool:
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            return (await client.get(f"{kpi}/v1/leaderboard")).status_code != 401
    await _until("kpi knows the token", known)


async def _sign_in(page: Page, kpi: str, token: str, where: str) -> None:
    await page.goto(f"{kpi}/signin?next={where}")
    await page.fill("#token", token)
    await page.click("button[type=submit]")


async def test_an_admin_sets_the_tenant_up_in_the_control_rooms_settings_sections(services: dict[str, str],
                                                                                 browser: Browser) -> None:
    kpi, coaching, ingest = services["kpi"], services["coaching"], services["ingest"]
    tenant = await asyncio.to_thread(create_tenant)
    quarter, at = this_quarter(timedelta(minutes=2))
    events = [rep("ana", team="north", manager="mia", name="Ana Alves"), rep("bo", team="south", manager="zed"),
              target("ana", quarter, "50000")]
    assert (await post(ingest, tenant, events)).status_code == 200
    ana = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "ana")
    await _known(kpi, tenant.token)
    await _known(kpi, ana["token"])

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, tenant.token, "/admin/calendar")
    await expect(page).to_have_url(f"{kpi}/admin/calendar")

    # holidays: the tenant calendar, counted by coaching too
    await page.get_by_label("Day", exact=True).fill("2031-05-20")
    await page.get_by_label("Name", exact=True).fill("Founders' day")
    await page.get_by_role("button", name="Add the day").click()
    await expect(page.locator("p.said")).to_contain_text("2031-05-20 Founders' day added")
    await expect(page.locator("tr[data-day='2031-05-20']")).to_contain_text("added by the tenant")

    async def counted() -> bool:
        days = (await _get(f"{coaching}/v1/holidays", tenant, year=2031))["holidays"]
        return any(d["day"] == "2031-05-20" and d["name"] == "Founders' day" for d in days)
    await _until("coaching counts the holiday", counted)

    # time off: a time_off.set through ingest, listed by coaching
    form = page.locator("form[action='/admin/calendar/time-off']:has(button:text('Add time off'))")
    await form.get_by_label("Rep").select_option("ana")
    await form.get_by_label("First day").fill("2031-07-01")
    await form.get_by_label("Last day").fill("2031-07-03")
    await form.get_by_label("Reason").fill("Summer")
    await form.get_by_role("button", name="Add time off").click()
    await expect(page.locator("p.said")).to_contain_text("time off of ana added")

    async def on_leave() -> bool:
        leave = (await _get(f"{coaching}/v1/reps/ana/time-off", tenant))["time_off"]
        return any(t["first_day"] == "2031-07-01" and t["last_day"] == "2031-07-03" for t in leave)
    await _until("coaching has the time off", on_leave)
    await page.goto(f"{kpi}/admin/calendar?rep=ana&year=2031")
    await expect(page.locator("table.time-off")).to_contain_text("Summer")
    await _accessible(page, "control room: calendar")
    await _shoot(page, "control-calendar")

    # coaching policy: one field changed; a refused value named next to its field, nothing saved
    await page.goto(f"{kpi}/admin/coaching")
    await page.get_by_label("Due at, hour").fill("16")
    await page.get_by_role("button", name="Save the policy").click()
    await expect(page.locator("p.said")).to_contain_text("policy saved")
    assert (await _get(f"{coaching}/v1/policies", tenant))["overrides"] == {"due_hour": 16}
    await page.get_by_label("Due at, hour").fill("24")
    await page.get_by_role("button", name="Save the policy").click()
    await expect(page.locator("#e-due_hour")).to_contain_text("due_hour: Input should be less than or equal to 23")
    await expect(page.get_by_label("Due at, hour")).to_have_value("24")  # what was typed stays to be corrected
    assert (await _get(f"{coaching}/v1/policies", tenant))["overrides"] == {"due_hour": 16}
    await _accessible(page, "control room: coaching (a refused value)")
    await _shoot(page, "control-coaching")
    await page.goto(f"{kpi}/admin/coaching")
    playbook = page.locator("#playbook-stalled_pipeline")
    await playbook.get_by_label("Suggested actions").fill("Call the buyer this week\nClose or drop it")
    await playbook.get_by_role("button").click()
    await expect(page.locator("p.said")).to_contain_text("the playbook of stalled_pipeline saved")
    book = (await _get(f"{coaching}/v1/catalogue", tenant))["stalled_pipeline"]
    assert book["suggested_actions"] == ["Call the buyer this week", "Close or drop it"] and book["custom"]

    # a team's overrides, on top of the tenant's
    await page.get_by_label("Policy of").select_option("north")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(f"{kpi}/admin/coaching?team=north")
    await page.get_by_label("Cooldown, days").fill("3")
    await page.get_by_role("button", name="Save the team's policy").click()
    await expect(page.locator("p.said")).to_contain_text("team north's policy saved")
    team = await _get(f"{coaching}/v1/policies/teams/north", tenant)
    assert team["overrides"] == {"cooldown_days": 3} and team["effective"]["due_hour"] == 16

    # recognition
    await page.goto(f"{kpi}/admin/recognition")
    await page.get_by_label("Streak length, business days").fill("4")
    await page.get_by_label("Announce corrections").select_option("true")
    await page.get_by_role("button", name="Save the recognition settings").click()
    await expect(page.locator("p.said")).to_contain_text("recognition settings saved")
    settings = await _get(f"{services['recognition']}/v1/recognition/settings", tenant)
    assert settings["overrides"] == {"streak_days": 4, "corrections": True}
    await _accessible(page, "control room: recognition")
    await _shoot(page, "control-recognition")

    # CRM: the HubSpot secret, set and never shown
    await page.goto(f"{kpi}/admin/crm")
    await expect(page.locator("tr[data-crm='hubspot'] .secret-state")).to_have_text("not set")
    await page.get_by_label("HubSpot secret").fill(SECRET)
    await page.get_by_role("button", name="Set the HubSpot secret").click()
    await expect(page.locator("p.said")).to_contain_text("the HubSpot secret is set")
    await expect(page.locator("tr[data-crm='hubspot'] .secret-state")).to_contain_text("set")
    await expect(page.locator("tr[data-crm='hubspot'] .secret-state")).not_to_contain_text("not set")
    assert SECRET not in await page.content()
    assert SECRET not in page.url

    # a won deal of a HubSpot user nobody mapped is held back ...
    url = f"{ingest}/v1/webhooks/hubspot/{tenant.slug}"
    t0 = int(at.timestamp() * 1000)
    delivered = await _deliver(url, [
        _event(5150, "deal.creation", t0, event_id=1),
        _event(5150, "deal.propertyChange", t0, "amount", "7300", event_id=2),
        _event(5150, "deal.propertyChange", t0, "hubspot_owner_id", "4711", event_id=3),
        _event(5150, "deal.propertyChange", t0, "dealstage", "closedwon", event_id=4)], secret=SECRET)
    assert delivered.status_code == 200, delivered.text  # the secret set in the browser verifies it
    await page.goto(f"{kpi}/admin/crm")
    held = page.locator("table.held tr[data-object='5150']")
    await expect(held).to_contain_text("hubspot user '4711' is not mapped to a rep")
    await _accessible(page, "control room: crm")
    await _shoot(page, "control-crm")
    # ... and one click maps the user and publishes it
    await held.get_by_label("Rep for user 4711").select_option("ana")
    await held.get_by_role("button", name="Map and publish").click()
    await expect(page.locator("p.said")).to_contain_text("HubSpot user 4711 mapped to ana: 1 held-back record(s)"
                                                         " published")
    await expect(page.locator("table.held tr[data-object='5150']")).to_have_count(0)
    assert (await _get(f"{ingest}/v1/crm/hubspot/users", tenant))["users"] == {"4711": "ana"}

    async def in_kpi() -> bool:
        async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
            card = await client.get(f"{kpi}/v1/scorecards/ana", params={"period": quarter})
        figures = card.json().get("figures", []) if card.status_code == 200 else []
        won = [f for f in figures if f["metric"] == "won_revenue"]
        return bool(won) and won[0]["actual"] == "7300"
    await _until("kpi counts the released deal", in_kpi)
    await context.close()

    # not an admin: every section refuses
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, ana["token"], "/reps/ana")
    await expect(page).to_have_url(f"{kpi}/reps/ana")
    for section in ("calendar", "coaching", "recognition", "crm"):
        refused = await page.goto(f"{kpi}/admin/{section}")
        assert refused is not None and refused.status == 403, section
    await context.close()
    assert problems == []
