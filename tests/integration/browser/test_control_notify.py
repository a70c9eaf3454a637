"""Notifications in a real browser against the real stack (issue 19): an admin sets a team's Slack webhook in the
control room (the page then says "set"; the URL appears nowhere in it), sees a Teams webhook notify refuses named
at its field, sets the tenant's connection (token and secret never shown), sees a check-in that could not be
delivered (a rep without an e-mail address) with its reason, fixes the roster and retries it, after which the
e-mail arrives; a rep gets 403 on /admin/notifications, follows the unsubscribe link of an e-mail notify sent
them (the GET changes nothing; the button switches e-mail off for that kind; RFC 8058's one-click POST works
without a cookie), and saves their preferences on /me/notifications, read back from notify's API. axe-core on
each page; screenshots at desktop and phone width in .local/test-artifacts/dashboard/, where the pages must not
scroll sideways."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, expect

from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key
from tests.factories import team
from tests.integration.browser.test_control_core import _shoot
from tests.integration.browser.test_dashboard import _accessible
from tests.integration.conftest import BOOTSTRAP, Tenant, create_tenant, post, token_cli
from tests.integration.mailbox import wait_for_mail

WEBHOOK = "http://127.0.0.1:9/attain-webhook"  # loopback (allowed over http): nothing leaves this machine
NO_QUIET_HOURS = {"quiet_start": "00:00", "quiet_end": "00:00", "weekends_quiet": False}  # start = end: none


def _rep(rep_id: str, name: str, email: str | None) -> dict[str, Any]:
    return {"type": "rep.upserted", "id": str(uuid.uuid4()), "source": "api",
            "time": datetime.now(UTC).isoformat(),
            "data": {"rep_id": rep_id, "name": name, "team_id": "north", "manager_id": None, "email": email,
                     "timezone": "Europe/Berlin", "active": True}}


def _check_in(tenant: str, rep_id: str, name: str) -> CloudEvent:
    now = datetime.now(UTC)
    return CloudEvent(str(uuid.uuid4()), "coaching.task.created", "attain/coaching", now, tenant, {
        "task_id": f"task-{uuid.uuid4().hex[:8]}", "rep_id": rep_id, "manager_id": None, "rule": "behind_pace",
        "severity": "warning", "summary": f"{name} is at 61% of the expected won revenue.",
        "evidence": {"metric": "won_revenue", "actual": "1234.5", "expected": "2024", "period": "2026-Q4"},
        "suggested_actions": ["Review the three largest open deals"], "training": [],
        "due_at": (now + timedelta(days=2)).isoformat(), "rep_name": name, "team_id": "north"})


async def _publish_check_in(tenant: str, rep_id: str, name: str) -> None:
    """A check-in on coaching's topic, as coaching publishes one (notify reads it from there)."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        value, headers = encode(_check_in(tenant, rep_id, name))
        await producer.send_and_wait(topics.TASKS.name, value, key=message_key(tenant, rep_id), headers=headers)
    finally:
        await producer.stop()


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60,  # noqa: ASYNC109
                 page: Page | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        shown = (await page.locator("main").inner_text())[-1500:] if page is not None else ""
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}\n{shown}"
        await asyncio.sleep(0.4)


async def _api(method: str, url: str, token: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        return await client.request(method, url, json=body)


async def _known(kpi: str, token: str) -> None:
    async def known() -> bool:
        return (await _api("GET", f"{kpi}/v1/leaderboard", token)).status_code != 401
    await _until("kpi knows the token", known)


async def _sign_in(page: Page, kpi: str, token: str, where: str) -> None:
    await page.goto(f"{kpi}/signin?next={where}")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{kpi}{where}")


async def _quiet_hours_off(notify: str, tenant: Tenant, *people: str) -> None:
    """No quiet hours and no quiet weekends for `people` (the test runs at any hour), once notify has them on
    its roster (404 before) and knows the tenant's token (401 before)."""
    for person in people:
        async def stored(person: str = person) -> bool:
            answer = await _api("PUT", f"{notify}/v1/notify/preferences/{person}", tenant.token, NO_QUIET_HOURS)
            assert answer.status_code in (200, 401, 404), answer.text
            return answer.status_code == 200
        await _until(f"notify has {person} on its roster", stored)


async def test_an_admin_sets_up_notifications_and_a_rep_chooses_theirs(services: dict[str, str],
                                                                       browser: Browser) -> None:
    kpi, notify, ingest = services["kpi"], services["notify"], services["ingest"]
    tenant = await asyncio.to_thread(create_tenant)
    ana_mail, bo_mail = f"ana-{tenant.slug}@example.com", f"bo-{tenant.slug}@example.com"
    events = [team("north", None), _rep("ana", "Ana Alves", ana_mail), _rep("bo", "Bo Berg", None)]
    assert (await post(ingest, tenant, events)).status_code == 200
    ana = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "ana")
    for token in (tenant.token, ana["token"]):
        await _known(kpi, token)
    await _quiet_hours_off(notify, tenant, "ana", "bo")
    slack_url = f"http://127.0.0.1:9/slack/{uuid.uuid4().hex}"  # loopback: nothing is posted in this test

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, tenant.token, "/admin/notifications")
    north = page.locator("tr[data-team='north']")
    await expect(north.locator(".slack_webhook-state")).to_have_text("not set")

    # a team's Slack webhook: set, then shown as "set" and never as the URL
    await north.get_by_label("the Slack webhook URL of North").fill(slack_url)
    await north.get_by_role("button", name="Save the channels of North").click()
    await expect(page.locator("p.said")).to_contain_text("Team north: Slack webhook set.")
    await expect(north.locator(".slack_webhook-state")).to_have_text("set")
    assert slack_url not in await page.content() and slack_url not in page.url
    teams = (await _api("GET", f"{notify}/v1/notify/teams", tenant.token)).json()["teams"]
    assert {"team_id": "north", "slack_webhook": "(set)", "teams_webhook": None}.items() <= next(
        t for t in teams if t["team_id"] == "north").items()

    # a Teams webhook notify refuses: named at its field, nothing saved, the URL not echoed
    await north.get_by_label("the Teams webhook URL of North").fill("http://teams.example.com/workflow")
    await north.get_by_role("button", name="Save the channels of North").click()
    await expect(north.locator("[id$='-teams_webhook'].field-error")).to_contain_text(
        "teams_webhook must be an https:// URL")
    await expect(north.locator(".teams_webhook-state")).to_have_text("not set")
    assert "teams.example.com" not in await page.content()

    # the tenant's connection: the token and the secret write-only, the URL shown
    await page.goto(f"{kpi}/admin/notifications")
    bot, secret = f"xoxb-{uuid.uuid4().hex}", f"whsec_{uuid.uuid4().hex}"
    await page.get_by_label("Slack bot token", exact=True).fill(bot)
    await page.get_by_label("Webhook URL", exact=True).fill(WEBHOOK)
    await page.get_by_label("Webhook signing secret", exact=True).fill(secret)
    await page.get_by_role("button", name="Save the connection").click()
    await expect(page.locator("p.said")).to_contain_text("The connection is saved.")
    await expect(page.locator(".secret-state[data-field='slack_bot_token']")).to_have_text("set")
    await expect(page.get_by_label("Webhook URL", exact=True)).to_have_value(WEBHOOK)
    html = await page.content()
    assert bot not in html and secret not in html
    assert (await _api("GET", f"{notify}/v1/notify/connection", tenant.token)).json() == {
        "slack_bot_token": "(set)", "webhook_url": WEBHOOK, "webhook_secret": "(set)"}

    # a check-in for a rep without an e-mail address: not delivered, with the reason
    await _publish_check_in(tenant.slug, "bo", "Bo Berg")

    bos = "table.undelivered tr[data-recipient='bo'][data-kind='check_in']"

    async def shown_dead() -> bool:
        await page.goto(f"{kpi}/admin/notifications")
        return await page.locator(bos).count() == 1
    # notify's first start in a fresh database replays the topics' history (other tests' check-ins): its worker
    # may be busy with those for a while
    await _until("the undelivered check-in is shown", shown_dead, timeout=180, page=page)
    row = page.locator(bos)
    await expect(row.locator(".reason")).to_have_text("bo has no e-mail address on the roster")
    for words in ("Bo Berg (bo)", "Check-ins", "E-mail"):
        await expect(row).to_contain_text(words)
    await _accessible(page, "control room: notifications")
    await _shoot(page, "control-notify")

    # the roster fixed, one click sends it again, and it arrives
    assert (await post(ingest, tenant, [_rep("bo", "Bo Berg", bo_mail)])).status_code == 200
    deadline = time.monotonic() + 120
    while True:  # notify may take the roster's change a moment after the click: then it is dead again, retried
        await page.goto(f"{kpi}/admin/notifications")
        dead = page.locator(bos)
        if await dead.count():
            await dead.get_by_role("button", name="Retry").click()
            await expect(page.locator("p.said")).to_contain_text("1 message handed back to be sent again")
        try:
            mail = await wait_for_mail(bo_mail, lambda m: m["Subject"] == "Check-in with Bo Berg", timeout=5)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the retried check-in never reached Bo"
    await page.goto(f"{kpi}/admin/notifications")
    await expect(page.locator(bos)).to_have_count(0)
    await context.close()

    # a rep: no control room; an e-mail's unsubscribe link; their own preferences
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda err: problems.append(str(err)))
    await _sign_in(page, kpi, ana["token"], "/me/notifications")
    refused = await page.goto(f"{kpi}/admin/notifications")
    assert refused is not None and refused.status == 403

    await _publish_check_in(tenant.slug, "ana", "Ana Alves")
    mail = await wait_for_mail(ana_mail, lambda m: m["Subject"] == "Check-in with Ana Alves", timeout=120)
    link = str(mail["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{kpi}/unsubscribe?t="), link
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mine = f"{notify}/v1/notify/preferences/me"
    before = (await _api("GET", mine, ana["token"])).json()
    assert "check_in" not in before["channels"]  # the default: e-mail

    reader = await browser.new_context(viewport={"width": 1366, "height": 900})  # a mail client: no session
    opened = await reader.new_page()
    opened.on("pageerror", lambda err: problems.append(str(err)))
    await opened.goto(link)
    await expect(opened.get_by_role("button", name="Unsubscribe")).to_be_visible()
    assert (await _api("GET", mine, ana["token"])).json() == before  # opening the link changed nothing
    await _accessible(opened, "unsubscribe: confirm")
    await _shoot(opened, "unsubscribe-confirm")
    await opened.get_by_role("button", name="Unsubscribe").click()
    await expect(opened.locator("#unsubscribed")).to_contain_text("you no longer get check-ins by e-mail")
    assert (await _api("GET", mine, ana["token"])).json()["channels"]["check_in"] == []
    await _accessible(opened, "unsubscribe: done")
    await _shoot(opened, "unsubscribe-done")
    await reader.close()
    async with httpx.AsyncClient(timeout=10) as client:  # RFC 8058: the provider posts, with no cookie at all
        one_click = await client.post(link, content=b"List-Unsubscribe=One-Click",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        forged = await client.post(f"{kpi}/unsubscribe?t=forged", content=b"List-Unsubscribe=One-Click",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200 and "no longer get check-ins by e-mail" in one_click.text
    assert forged.status_code == 400

    await page.goto(f"{kpi}/me/notifications")
    await expect(page.get_by_label("Check-ins by E-mail")).not_to_be_checked()  # the link's change, shown
    await page.get_by_label("The daily digest by E-mail").uncheck()
    await page.get_by_label("Reviews by Webhook").check()
    await page.get_by_label("At most per day").fill("5000")
    await page.get_by_role("button", name="Save my notifications").click()
    await expect(page.locator("#e-daily_cap")).to_contain_text("daily_cap: Input should be less than or equal to")
    await expect(page.get_by_label("At most per day")).to_have_value("5000")  # as typed, to be corrected
    await expect(page.get_by_label("The daily digest by E-mail")).not_to_be_checked()  # and the rest as ticked
    await _accessible(page, "my notifications (a refused value)")
    await page.get_by_label("At most per day").fill("5")
    await page.get_by_role("button", name="Save my notifications").click()
    await expect(page.locator("p.said")).to_contain_text("Saved")
    saved = (await _api("GET", mine, ana["token"])).json()
    assert saved["channels"]["digest"] == [] and saved["channels"]["review"] == ["email", "webhook"]
    assert saved["channels"]["check_in"] == [] and "celebration" not in saved["channels"]  # the rest as it was
    assert saved["daily_cap"] == 5 and saved["quiet_start"] == saved["quiet_end"] == "00:00"
    await expect(page.get_by_role("link", name="My notifications")).to_have_attribute("aria-current", "page")
    await _accessible(page, "my notifications")
    await _shoot(page, "me-notifications")
    await context.close()
    assert problems == []
