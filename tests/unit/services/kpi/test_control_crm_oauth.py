"""The control room's CRM page shows each CRM's OAuth connection (services/kpi/dashboard/control_settings_crm.py),
ingest faked at the one function that calls it: a revoked refresh token reads "revoked: <the CRM's reason>";
"Connect with <CRM>" starts the authorization through ingest with the admin's own session token and sends the
browser on to the CRM; the client form sends what was typed, an empty secret left out (the stored one kept)."""

from __future__ import annotations

import contextlib
import doctest
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from services.kpi.dashboard import control, control_settings_crm, control_settings_queries, queries
from services.kpi.dashboard.control import Answer
from services.kpi.dashboard.web import COOKIE, Dashboard, csrf_token, session_principal
from shared.authz import Principal

SESSION = "atn_session_of_the_admin"
REASON = "refresh token is invalid, expired or revoked"
AUTHORIZE = "https://app.hubspot.com/oauth/authorize?client_id=attain-app&state=s"


def _oauth(crm: str, status: str, last_error: str | None = None) -> dict[str, Any]:
    return {"crm": crm, "client_id": "attain-app" if status != "not_configured" else None, "status": status,
            "scopes": [], "expires_at": None, "connected_at": None, "last_error": last_error,
            "error_at": "2026-12-07T09:00:00+00:00" if last_error else None,
            "redirect_uri": f"https://ingest.example/v1/crm/oauth/callback/acme/{crm}"}


@dataclass
class Ingest:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, str, Any]] = field(default_factory=list)

    async def call(self, _rt: object, service: str, method: str, path: str, token: str, *, json: Any = None,
                   **_kw: Any) -> Answer:
        assert service == "ingest"
        self.calls.append((method, path, token, json))
        return self.answers.get((method, path), Answer(200, {}))


@pytest.fixture
def ingest(monkeypatch: pytest.MonkeyPatch) -> Ingest:
    fake = Ingest()
    fake.answers[("GET", "/v1/crm/oauth")] = Answer(200, {"connections": [
        _oauth("hubspot", "revoked", REASON), _oauth("pipedrive", "connected"),
        _oauth("salesforce", "not_configured")]})
    for crm in ("hubspot", "pipedrive", "salesforce"):
        fake.answers[("GET", f"/v1/crm/{crm}/connection")] = Answer(200, {
            "crm": crm, "secret_set": False, "org_id": None, "updated_at": None, "previous_valid_until": None,
            "webhook_url": f"https://ingest.example/v1/webhooks/{crm}/acme"})
    monkeypatch.setattr(control_settings_crm, "call", fake.call)

    async def basics(_rt: object, tenant: str) -> tuple[Any, Any, datetime]:
        return (queries.Tenant(tenant, ZoneInfo("UTC"), 1, None, "en"), SimpleNamespace(when=str),
                datetime(2026, 12, 7, tzinfo=UTC))

    @contextlib.asynccontextmanager
    async def no_database(_pool: object, _tenant: str) -> AsyncIterator[None]:
        yield None

    async def no_reps(_conn: object, _tenant: str) -> list[Any]:
        return []

    monkeypatch.setattr(control, "basics", basics)
    monkeypatch.setattr(control_settings_crm, "tenant_tx", no_database)
    monkeypatch.setattr(control_settings_queries, "active_reps", no_reps)
    return fake


def _client() -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(control_settings_crm.router)
    app.state.runtime = SimpleNamespace(pool=None, clock=None, settings=None, context=Dashboard())
    admin = Principal(tenant="acme", role="admin", token_id="t-admin")
    app.dependency_overrides[session_principal] = lambda: admin
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi",
                             cookies={COOKIE: SESSION})


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(control_settings_crm).failed == 0


async def test_a_revoked_refresh_token_is_shown_with_the_crms_reason(ingest: Ingest) -> None:
    async with _client() as c:
        page = await c.get("/admin/crm")
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert f"revoked: {REASON}" in text
    assert 'data-status="connected"' in page.text
    assert "no OAuth client set" in text
    assert "Connect with HubSpot</button>" in page.text and "Connect with Pipedrive</button>" in page.text
    assert "Connect with Salesforce</button>" not in page.text  # no client yet: set it first
    assert "https://ingest.example/v1/crm/oauth/callback/acme/hubspot" in page.text
    assert ("GET", "/v1/crm/oauth", SESSION, None) in ingest.calls


async def test_connect_starts_the_authorization_through_ingest_and_sends_the_browser_to_the_crm(
        ingest: Ingest) -> None:
    ingest.answers[("POST", "/v1/crm/hubspot/oauth/authorize")] = Answer(200, {"authorization_url": AUTHORIZE})
    async with _client() as c:
        page = await c.post("/admin/crm/hubspot/oauth/connect", data={"csrf": csrf_token(SESSION)})
    assert page.status_code == 200
    assert html.escape(AUTHORIZE) in page.text or AUTHORIZE in page.text
    assert ("POST", "/v1/crm/hubspot/oauth/authorize", SESSION, None) in ingest.calls


async def test_connect_needs_the_pages_own_form_token(ingest: Ingest) -> None:
    async with _client() as c:
        page = await c.post("/admin/crm/hubspot/oauth/connect", data={"csrf": "forged"})
    assert page.status_code == 403
    assert not [call for call in ingest.calls if call[0] == "POST"]


async def test_the_client_form_sends_what_was_typed_and_leaves_an_empty_secret_out(ingest: Ingest) -> None:
    async with _client() as c:
        back = await c.post("/admin/crm/salesforce/oauth/client",
                            data={"csrf": csrf_token(SESSION), "client_id": " 3MVG9 ", "client_secret": "",
                                  "auth_base": "https://test.salesforce.com"})
    assert back.status_code == 303
    assert ("PUT", "/v1/crm/salesforce/oauth/client", SESSION,
            {"client_id": "3MVG9", "client_secret": None, "auth_base": "https://test.salesforce.com"}) in ingest.calls
