"""Single sign-on against a real OpenID provider (idp.py says which, and why not Dex): one provider per test
module, its client registered with kpi's callback; each test makes its own tenant whose roster holds the
provider's people, and points the tenant's single sign-on at the provider."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.integration.browser.conftest import browser  # noqa: F401 - the browser tests' chromium, here too
from tests.integration.conftest import LOGS, Tenant, create_tenant, post
from tests.integration.sso import idp
from tests.ports import free_ports

RUN = uuid.uuid4().hex[:8]  # the provider's people are this module's: their e-mails never meet another run's
ADMIN_LOGIN = "kilgore@kilgore.trout"  # as Dex's mock connector: a person who is in the group "authors"
ADMIN_GROUP = "authors"


def email(who: str) -> str:
    return f"{who}-{RUN}@acme.test"


# the roster of every test tenant: (rep id, manager id); mia manages bo and cy, zed manages zorro
ROSTER = (("mia", None), ("bo", "mia"), ("cy", "mia"), ("zed", None), ("zorro", "zed"))
PEOPLE = (*(who for who, _ in ROSTER), "stranger")  # the stranger has an account at the provider, not on the roster


@dataclass(frozen=True)
class Idp:
    issuer: str
    client_id: str
    client_secret: str


@pytest.fixture(scope="module")
def provider(services: dict[str, str]) -> Iterator[Idp]:
    kpi = services["kpi"]
    client: dict[str, Any] = {"client_id": f"attain-{RUN}", "client_secret": secrets.token_urlsafe(24),
              "redirect_uris": [f"{kpi}/signin/sso/callback"], "post_logout_redirect_uris": [f"{kpi}/signin"],
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}
    accounts: dict[str, dict[str, Any]] = {
        ADMIN_LOGIN: {"email": ADMIN_LOGIN, "email_verified": True, "groups": [ADMIN_GROUP], "name": "Kilgore Trout"},
        **{email(who): {"email": email(who), "email_verified": True, "groups": ["sales"], "name": who.title()}
           for who in PEOPLE}}
    (port,) = free_ports(1)
    with idp.running(port, [client], accounts, LOGS / "oidc-provider.log") as issuer:
        yield Idp(issuer, client["client_id"], client["client_secret"])


def rep_event(rep_id: str, manager_id: str | None) -> dict[str, Any]:
    return {"type": "rep.upserted", "id": uuid.uuid4().hex, "source": "api",
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "data": {"rep_id": rep_id, "name": rep_id.title(), "team_id": f"team-{manager_id or rep_id}",
                     "manager_id": manager_id, "email": email(rep_id), "timezone": "Europe/Berlin", "active": True}}


async def sso_tenant(services: dict[str, str], provider: Idp, session_minutes: float = 60) -> Tenant:
    """A new tenant with the roster, its single sign-on pointed at the provider (admins: group "authors")."""
    tenant = await asyncio.to_thread(create_tenant)
    answer = await post(services["ingest"], tenant, [rep_event(who, boss) for who, boss in ROSTER])
    assert answer.status_code == 200, answer.text
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        put = await client.put(f"{services['ingest']}/v1/sso", json={
            "issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret,
            "admin_groups": [ADMIN_GROUP], "viewer_groups": [], "session_minutes": session_minutes})
    assert put.status_code == 200, put.text
    return tenant


async def sign_in(page: Page, kpi: str, provider: Idp, tenant: str, login: str, next_path: str = "/",
                  shoot: Any = None) -> None:
    """Through the dashboard's sign-in page and the provider's own login form (any password: its development
    login), back to the dashboard."""
    await page.goto(f"{kpi}/signin?next={next_path}")
    await page.fill("#organisation", tenant)
    if shoot:
        await shoot(page, "sso-signin")
    await page.click("#sso-submit")
    await page.wait_for_url(f"{provider.issuer}/**")
    await expect(page.locator("input[name=login]")).to_be_visible()
    if shoot:
        await shoot(page, "sso-provider-login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "any password will do")
    await page.locator("button[type=submit]").first.click()
    await page.wait_for_url(f"{kpi}/**")


async def session_token(page: Page) -> str:
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    return cookies["attain_dashboard"]
