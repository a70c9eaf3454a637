"""Single sign-on in a real browser (Debian's chromium, Playwright) against the suite's services and a real OpenID
provider (conftest.py): who signs in gets the role their groups or the roster give them, and sees what that role
may; a stranger is refused; sign-out revokes the session's token everywhere; a session near its end is renewed
with a new token and the old one retired. Screenshots in .local/test-artifacts/dashboard/ (sso-*)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Browser, Page, expect

from tests.factories import target, this_quarter
from tests.integration.audit.test_audit_log import _entries
from tests.integration.browser.test_check_ins import _tasks_of
from tests.integration.browser.test_control_core import _cell, _until
from tests.integration.browser.test_dashboard import _accessible, _shoot
from tests.integration.conftest import check_ins_from_day_one, post
from tests.integration.sso.conftest import (
    ADMIN_LOGIN,
    Idp,
    email,
    rep_event,
    session_token,
    sign_in,
    sso_tenant,
)


async def test_an_admin_of_the_providers_group_reaches_the_control_room(services: dict[str, str], provider: Idp,
                                                                      browser: Browser) -> None:
    kpi = services["kpi"]
    tenant = await sso_tenant(services, provider)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await page.goto(f"{kpi}/signin?next=/admin")
    await _accessible(page, "sign-in page with single sign-on")
    await sign_in(page, kpi, provider, tenant.slug, ADMIN_LOGIN, "/admin", shoot=_shoot)
    await expect(page).to_have_url(f"{kpi}/admin")
    await expect(page.locator("main")).to_be_visible()
    await _shoot(page, "sso-after-signin-admin")
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["attain_dashboard"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert 0 < session["expires"] - time.time() <= 3600 + 5  # the token's life, not the token form's 30 days
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {session['value']}"}) as client:
        listed = (await client.get(f"{services['ingest']}/v1/tokens")).json()["tokens"]  # an admin's token
    mine = [t for t in listed if t["name"] == f"sign-in: {ADMIN_LOGIN}"]
    assert len(mine) == 1 and mine[0]["role"] == "admin" and mine[0]["expires_at"]

    # signed in through the provider, the admin sets Bo's target in the control room and sees it on his scorecard
    quarter, _ = this_quarter(timedelta(0))
    targets = f"{kpi}/admin/targets?period={quarter}"

    async def rows_shown(p: Page) -> bool:
        return await _cell(p, "Bo: Won revenue") == ""
    await _until(page, targets, rows_shown)
    await page.get_by_label("Bo: Won revenue", exact=True).fill("77000")
    await page.get_by_role("button", name="Save changed targets").click()
    await expect(page.locator("p.said")).to_contain_text(f"Saved 1 target for {quarter}.")

    async def on_the_scorecard(p: Page) -> bool:
        card = p.locator("article.card[data-metric='won_revenue']")
        return await card.count() == 1 and "€77,000.00" in await card.inner_text()
    await _until(page, f"{kpi}/reps/bo?period={quarter}", on_the_scorecard)
    # the audit log names who did it
    (entry,) = await _entries(kpi, tenant.auth, 1, subject=f"target:rep/bo/won_revenue/{quarter}")
    assert (entry["actor"]["token_id"], entry["actor"]["role"]) == (mine[0]["token_id"], "admin")
    async with httpx.AsyncClient(timeout=10) as client:  # counted (no tenant in the labels), audited too
        metrics = (await client.get(f"{services['ingest']}/metrics")).text
    assert 'attain_ingest_sso_sessions_total{outcome="ok",step="sign_in"}' in metrics
    assert 'attain_audit_entries_total{action="target.set",service="ingest"}' in metrics
    assert tenant.slug not in metrics
    await context.close()


async def test_a_manager_sees_their_reps_check_ins_and_not_another_teams_rep(services: dict[str, str],
                                                                           provider: Idp, browser: Browser) -> None:
    kpi, coaching = services["kpi"], services["coaching"]
    tenant = await sso_tenant(services, provider)
    await check_ins_from_day_one(coaching, tenant)
    quarter, _ = this_quarter(timedelta(minutes=5))
    assert (await post(services["ingest"], tenant, [target(r, quarter, "900000")
                                                     for r in ("bo", "cy", "zorro")])).status_code == 200
    await _tasks_of(coaching, tenant, ("bo", "cy", "zorro"))
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await sign_in(page, kpi, provider, tenant.slug, email("mia"), "/check-ins")
    await expect(page).to_have_url(f"{kpi}/check-ins")
    items = page.locator("ul.tasks > li")
    await expect(items.first).to_be_visible()
    listed = {(await item.locator("a").first.inner_text()).strip() for item in await items.all()}
    assert listed == {"bo", "cy"}, listed
    await _shoot(page, "sso-after-signin-manager")
    other = await page.goto(f"{kpi}/reps/zorro")
    assert other is not None and other.status == 404
    own_rep = await page.goto(f"{kpi}/reps/bo")
    assert own_rep is not None and own_rep.status == 200
    await context.close()

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await sign_in(page, kpi, provider, tenant.slug, email("bo"), "/check-ins")
    await expect(page).to_have_url(f"{kpi}/check-ins")
    mine = {(await item.locator("a").first.inner_text()).strip() for item in await page.locator("ul.tasks > li").all()}
    assert mine == {"bo"}, mine
    for path, status in (("/reps/bo", 200), ("/reps/cy", 404), ("/reps/zorro", 404)):
        answer = await page.goto(f"{kpi}{path}")
        assert answer is not None and answer.status == status, path
    await context.close()


async def test_someone_not_on_the_roster_is_refused_with_a_clear_message(services: dict[str, str], provider: Idp,
                                                                        browser: Browser) -> None:
    kpi = services["kpi"]
    tenant = await sso_tenant(services, provider)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/signin/sso/callback" in r.url else None)
    await sign_in(page, kpi, provider, tenant.slug, email("stranger"), "/leaderboard")
    await expect(page.locator("#sso-error")).to_have_text(
        f"{email('stranger')} is not on {tenant.slug}'s roster; ask your Attain administrator")
    assert statuses == [403]
    assert "attain_dashboard" not in {c["name"] for c in await context.cookies()}
    await _accessible(page, "sign-in page refusing a stranger")
    await _shoot(page, "sso-refused")
    # nor a tenant without single sign-on, nor a forged return
    await page.goto(f"{kpi}/signin")
    await page.fill("#organisation", "no-such-organisation")
    await page.click("#sso-submit")
    await expect(page.locator("#sso-error")).to_contain_text("has no single sign-on")
    forged = await page.goto(f"{kpi}/signin/sso/callback?code=abc&state=forged")
    assert forged is not None and forged.status == 400
    await expect(page.locator("#sso-error")).to_contain_text("did not start here")
    await context.close()


async def test_sign_out_revokes_the_sessions_token_everywhere(services: dict[str, str], provider: Idp,
                                                             browser: Browser) -> None:
    kpi, ingest = services["kpi"], services["ingest"]
    tenant = await sso_tenant(services, provider)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await sign_in(page, kpi, provider, tenant.slug, ADMIN_LOGIN, "/leaderboard")
    await expect(page).to_have_url(f"{kpi}/leaderboard")
    token = await session_token(page)
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        assert (await client.get(f"{ingest}/v1/sso")).status_code == 200
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{provider.issuer}/session/end**")  # the provider's own sign-out, which asks
        await _shoot(page, "sso-provider-signout")
        await page.get_by_role("button", name="Yes, sign me out").click()
        await page.wait_for_url(f"{kpi}/signin**")  # and sends the browser back to the sign-in page
        deadline = time.monotonic() + 10
        while (status := (await client.get(f"{ingest}/v1/sso")).status_code) != 401:
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 10
        while (status := (await client.get(f"{kpi}/v1/leaderboard")).status_code) != 401:
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
    assert "attain_dashboard" not in {c["name"] for c in await context.cookies() if c["value"]}
    await context.close()


async def test_a_session_near_its_end_is_renewed_and_the_old_token_retired(services: dict[str, str],
                                                                          provider: Idp, browser: Browser) -> None:
    kpi, ingest = services["kpi"], services["ingest"]
    minutes = 0.25  # 15 s: renewed in its last 5
    tenant = await sso_tenant(services, provider, session_minutes=minutes)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await sign_in(page, kpi, provider, tenant.slug, ADMIN_LOGIN, "/leaderboard")
    await expect(page).to_have_url(f"{kpi}/leaderboard")
    signed_in, old = time.time(), await session_token(page)
    await asyncio.sleep(max(0.0, signed_in + 11 - time.time()))
    shown = await page.goto(f"{kpi}/teams")
    assert shown is not None and shown.status == 200
    await expect(page).to_have_url(f"{kpi}/teams")
    new = await session_token(page)
    assert new != old
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        tokens = {t["name"] + "|" + t["token_id"]: t for t in (await client.get(f"{ingest}/v1/tokens")).json()["tokens"]
                  if t["name"] == f"sign-in: {ADMIN_LOGIN}"}
    assert len(tokens) == 2
    ends = sorted(datetime.fromisoformat(t["expires_at"]) for t in tokens.values())
    now = datetime.now(UTC)
    assert ends[0] <= now + timedelta(minutes=2, seconds=5)  # the old one: its grace, or its own end if sooner
    assert ends[1] > now + timedelta(seconds=minutes * 60 - 10)  # the new one: a whole session
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {new}"}) as client:
        assert (await client.get(f"{ingest}/v1/sso")).status_code == 200
        assert (await client.get(f"{kpi}/v1/leaderboard")).status_code == 200
    await context.close()


async def test_a_rep_who_left_the_roster_loses_the_session_at_its_renewal(services: dict[str, str], provider: Idp,
                                                                         browser: Browser) -> None:
    kpi, ingest = services["kpi"], services["ingest"]
    tenant = await sso_tenant(services, provider, session_minutes=0.25)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await sign_in(page, kpi, provider, tenant.slug, email("bo"), "/reps/bo")
    await expect(page).to_have_url(f"{kpi}/reps/bo")
    signed_in, token = time.time(), await session_token(page)
    left = rep_event("bo", "mia") | {"data": rep_event("bo", "mia")["data"] | {"active": False}}
    assert (await post(ingest, tenant, [left])).status_code == 200
    await asyncio.sleep(max(0.0, signed_in + 11 - time.time()))
    await page.goto(f"{kpi}/leaderboard")  # due for renewal: ingest maps bo again, finds nobody, ends the session
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        deadline = time.monotonic() + 10
        while (status := (await client.get(f"{kpi}/v1/leaderboard")).status_code) != 401:
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        listed = (await client.get(f"{ingest}/v1/tokens")).json()["tokens"]
    bos = [t for t in listed if t["name"] == f"sign-in: {email('bo')}"]
    assert len(bos) == 1 and bos[0]["revoked_at"], bos  # revoked at the renewal, not merely expired; no new one
    await page.goto(f"{kpi}/leaderboard")
    await expect(page).to_have_url(f"{kpi}/signin?next=/leaderboard")
    await context.close()
