"""The control room's CRM page reads users and history from the CRM through ingest
(services/kpi/dashboard/control_settings_crm.py), ingest faked at the one function that calls it: "Propose" shows
per CRM user what a sync would do, and only when asked (ingest reads the CRM for it); "Sync users now" says what it
did; the automatic/manual choice is sent as chosen; "Start backfill" sends the day typed as its first instant in the
tenant's zone, or nothing (ingest's default); the progress, the reconciliation and "Resume" (only when a kind
failed) are on the page. Every change is a form with the page's own token, sent with the admin's session token."""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from services.kpi.dashboard import control, control_settings_crm, control_settings_queries, queries
from services.kpi.dashboard.control import Answer
from services.kpi.dashboard.web import COOKIE, Dashboard, csrf_token, session_principal
from shared.authz import Principal

SESSION = "atn_session_of_the_admin"
TENANT = queries.Tenant("acme", ZoneInfo("Europe/Berlin"), 4, None, "en")
PROPOSAL = {
    "mode": "automatic", "applied": False,
    "decisions": [
        {"crm_user_id": "5", "action": "keep", "rep_id": "carol", "reason": "already mapped", "new_rep": None},
        {"crm_user_id": "7", "action": "map", "rep_id": "alice", "reason": "the rep with this e-mail",
         "new_rep": None},
        {"crm_user_id": "8", "action": "create", "rep_id": "bo", "reason": "new in hubspot: no rep has its e-mail",
         "new_rep": {"rep_id": "bo", "name": "Bo Example", "email": "bo@example.com", "timezone": "Europe/Berlin",
                     "team_id": "sales"}},
        {"crm_user_id": "9", "action": "skip", "rep_id": None, "reason": "inactive in hubspot and no rep has its"
                                                                          " e-mail", "new_rep": None}],
    "kept": {"5": "carol"}, "mapped": {"7": "alice"}, "created": {"8": "bo"},
    "skipped": {"9": "inactive in hubspot and no rep has its e-mail"}, "republished": None}


def _job(kind: str, status: str, **changed: Any) -> dict[str, Any]:
    return {"kind": kind, "status": status, "phase": "finished" if status != "running" else "reading",
            "since": "2026-04-01T00:00:00+02:00", "high_water": None, "pages": 12, "read": 1180, "published": 1175,
            "refused": 3, "dead_lettered": 2, "failures": 0, "error": None, "resume_at": None,
            "requested_at": "2026-12-07T08:00:00+00:00", "requested_by": "token:t-admin",
            "started_at": "2026-12-07T08:00:05+00:00", "updated_at": "2026-12-07T08:30:00+00:00",
            "finished_at": None, **changed}


@dataclass
class Ingest:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, str, Any]] = field(default_factory=list)
    timeouts: dict[str, float] = field(default_factory=dict)

    async def call(self, _rt: object, service: str, method: str, path: str, token: str, *, json: Any = None,
                   wait_s: float = control.SERVICE_TIMEOUT_S, **_kw: Any) -> Answer:
        assert service == "ingest"
        self.calls.append((method, path, token, json))
        self.timeouts[path] = wait_s
        return self.answers.get((method, path), Answer(200, {}))

    def sent(self, method: str) -> list[tuple[str, str, str, Any]]:
        return [c for c in self.calls if c[0] == method]


@pytest.fixture
def ingest(monkeypatch: pytest.MonkeyPatch) -> Ingest:
    fake = Ingest()
    fake.answers[("GET", "/v1/crm/hubspot/user-mapping-mode")] = Answer(200, {"mode": "automatic",
                                                                               "team_id": "unassigned"})
    fake.answers[("GET", "/v1/crm/hubspot/backfill")] = Answer(200, {"crm": "hubspot", "jobs": [],
                                                                     "reconciliation": []})
    for crm in ("hubspot", "pipedrive", "salesforce"):
        fake.answers[("GET", f"/v1/crm/{crm}/connection")] = Answer(200, {
            "crm": crm, "secret_set": False, "org_id": None, "updated_at": None, "previous_valid_until": None,
            "webhook_url": f"https://ingest.example/v1/webhooks/{crm}/acme"})
    monkeypatch.setattr(control_settings_crm, "call", fake.call)

    async def basics(_rt: object, _tenant: str) -> tuple[Any, Any, datetime]:
        return TENANT, SimpleNamespace(when=str, day=str), datetime(2026, 12, 7, tzinfo=UTC)

    @contextlib.asynccontextmanager
    async def no_database(_pool: object, _tenant: str) -> AsyncIterator[None]:
        yield None

    async def reps(_conn: object, _tenant: str) -> list[Any]:
        return [{"rep_id": "alice", "name": "Alice", "team_id": "sales"}]

    async def tenant(_conn: object, _slug: str) -> queries.Tenant:
        return TENANT

    monkeypatch.setattr(control, "basics", basics)
    monkeypatch.setattr(control_settings_crm, "tenant_tx", no_database)
    monkeypatch.setattr(control_settings_queries, "active_reps", reps)
    monkeypatch.setattr(queries, "tenant", tenant)
    return fake


def _client() -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(control_settings_crm.router)
    app.state.runtime = SimpleNamespace(pool=None, clock=None, settings=None, context=Dashboard())
    admin = Principal(tenant="acme", role="admin", token_id="t-admin")
    app.dependency_overrides[session_principal] = lambda: admin
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi",
                             cookies={COOKIE: SESSION})


def _said(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/admin/crm"
    return parse_qs(location.query)


async def test_propose_shows_per_crm_user_what_a_sync_would_do(ingest: Ingest) -> None:
    ingest.answers[("GET", "/v1/crm/hubspot/users/proposal")] = Answer(200, PROPOSAL)
    async with _client() as c:
        page = await c.get("/admin/crm", params={"crm": "hubspot", "propose": "1"})
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "kept: rep carol" in text
    assert "mapped to rep alice" in text and "the rep with this e-mail" in text
    assert "created as rep bo (Bo Example, team sales)" in text
    assert "skipped" in text and "inactive in hubspot and no rep has its e-mail" in text
    assert ("GET", "/v1/crm/hubspot/users/proposal", SESSION, None) in ingest.calls
    assert ingest.timeouts["/v1/crm/hubspot/users/proposal"] > control.SERVICE_TIMEOUT_S  # it reads the whole CRM


async def test_the_crm_is_not_read_for_a_proposal_unless_asked(ingest: Ingest) -> None:
    async with _client() as c:
        page = await c.get("/admin/crm", params={"crm": "hubspot"})
    assert page.status_code == 200, page.text
    assert not [call for call in ingest.calls if call[1].endswith("/users/proposal")]
    assert 'value="automatic" checked' in page.text  # the current mode is the one chosen
    assert "Sync users now</button>" in page.text and "Propose</button>" in page.text


async def test_a_proposal_ingest_cannot_read_says_why(ingest: Ingest) -> None:
    ingest.answers[("GET", "/v1/crm/hubspot/users/proposal")] = Answer(409, {"detail": "no API access to hubspot"})
    async with _client() as c:
        page = await c.get("/admin/crm", params={"crm": "hubspot", "propose": "1"})
    assert page.status_code == 200
    assert "the proposal for the HubSpot users: no API access to hubspot" in html.unescape(page.text)


async def test_sync_now_says_what_it_did(ingest: Ingest) -> None:
    ingest.answers[("POST", "/v1/crm/hubspot/users/sync")] = Answer(200, {
        **PROPOSAL, "applied": True, "republished": {"accepted": 4, "duplicate": 0, "still_dead_lettered": 1}})
    async with _client() as c:
        back = await c.post("/admin/crm/hubspot/users/sync", data={"csrf": csrf_token(SESSION)})
    said = _said(back)
    assert said["said"] == ["HubSpot users synced: 1 mapped, 1 created, 1 kept, 1 skipped; 4 held-back record(s)"
                            " republished, 1 still held back"]
    assert "propose" not in said
    assert ("POST", "/v1/crm/hubspot/users/sync", SESSION, None) in ingest.calls


async def test_sync_in_manual_mode_changes_nothing_and_shows_the_proposal(ingest: Ingest) -> None:
    ingest.answers[("POST", "/v1/crm/pipedrive/users/sync")] = Answer(200, {**PROPOSAL, "mode": "manual"})
    async with _client() as c:
        back = await c.post("/admin/crm/pipedrive/users/sync", data={"csrf": csrf_token(SESSION)})
    said = _said(back)
    assert said["propose"] == ["1"] and said["crm"] == ["pipedrive"]
    assert said["said"][0].startswith("Pipedrive is in manual mode: nothing was changed")


async def test_sync_needs_the_pages_own_form_token(ingest: Ingest) -> None:
    async with _client() as c:
        back = await c.post("/admin/crm/hubspot/users/sync", data={"csrf": "forged"})
    assert back.status_code == 403
    assert not ingest.sent("POST")


async def test_the_mode_is_sent_as_chosen_and_an_empty_team_left_out(ingest: Ingest) -> None:
    async with _client() as c:
        first = await c.post("/admin/crm/hubspot/users/mode",
                             data={"csrf": csrf_token(SESSION), "mode": "manual", "team_id": " sales "})
        second = await c.post("/admin/crm/hubspot/users/mode",
                              data={"csrf": csrf_token(SESSION), "mode": "automatic", "team_id": ""})
    assert first.status_code == second.status_code == 303
    assert [c[3] for c in ingest.sent("PUT")] == [{"mode": "manual", "team_id": "sales"}, {"mode": "automatic"}]
    assert all(c[1] == "/v1/crm/hubspot/user-mapping-mode" and c[2] == SESSION for c in ingest.sent("PUT"))


async def test_a_backfill_since_a_day_starts_at_its_first_instant_in_the_tenants_zone(ingest: Ingest) -> None:
    async with _client() as c:
        back = await c.post("/admin/crm/salesforce/backfill",
                            data={"csrf": csrf_token(SESSION), "since": "2026-01-15"})
    assert "error" not in _said(back)
    assert ingest.sent("POST") == [("POST", "/v1/crm/salesforce/backfill", SESSION,
                                    {"since": "2026-01-15T00:00:00+01:00"})]


async def test_a_backfill_without_a_day_leaves_the_start_to_ingest(ingest: Ingest) -> None:
    async with _client() as c:
        await c.post("/admin/crm/hubspot/backfill", data={"csrf": csrf_token(SESSION), "since": ""})
    assert ingest.sent("POST") == [("POST", "/v1/crm/hubspot/backfill", SESSION, {})]


async def test_a_backfill_since_no_day_is_refused_here(ingest: Ingest) -> None:
    async with _client() as c:
        back = await c.post("/admin/crm/hubspot/backfill", data={"csrf": csrf_token(SESSION), "since": "15.1.26"})
    assert _said(back)["error"] == ["the backfill was not started: since: 15.1.26 is not a day (YYYY-MM-DD)"]
    assert not ingest.sent("POST")


async def test_a_backfill_ingest_refuses_says_why(ingest: Ingest) -> None:
    ingest.answers[("POST", "/v1/crm/hubspot/backfill")] = Answer(409, {"detail": "a backfill of hubspot is running"})
    async with _client() as c:
        back = await c.post("/admin/crm/hubspot/backfill", data={"csrf": csrf_token(SESSION)})
    assert _said(back)["error"] == ["the HubSpot backfill was not started: a backfill of hubspot is running"]


async def test_the_progress_and_reconciliation_are_shown_and_a_failed_kind_can_be_resumed(ingest: Ingest) -> None:
    ingest.answers[("GET", "/v1/crm/hubspot/backfill")] = Answer(200, {"crm": "hubspot", "jobs": [
        _job("deals", "done"), _job("activities", "failed", error="HubSpot answered 500", failures=5)],
        "reconciliation": [{"kind": "deals", "watermark": "2026-12-07T08:00:00+00:00", "passes": 3,
                            "last_pass_at": "2026-12-07T08:05:00+00:00", "last_read": 40, "last_missed": 2,
                            "missed_total": 17, "last_error": None, "error_at": None}]})
    async with _client() as c:
        page = await c.get("/admin/crm", params={"crm": "hubspot"})
    assert page.status_code == 200, page.text
    assert 'data-kind="activities" data-status="failed"' in page.text
    assert "HubSpot answered 500" in page.text
    assert "<td>1175</td>" in page.text and "<td>17</td>" in page.text  # published; missed by the webhooks
    assert 'action="/admin/crm/hubspot/backfill/resume"' in page.text
    assert "empty: 2026-04-01, the fiscal year's first day" in html.unescape(page.text)


async def test_nothing_to_resume_while_every_kind_runs_or_is_done(ingest: Ingest) -> None:
    ingest.answers[("GET", "/v1/crm/hubspot/backfill")] = Answer(200, {"crm": "hubspot", "jobs": [
        _job("deals", "done"), _job("activities", "running", phase="throttled",
                                    resume_at="2026-12-07T09:00:00+00:00")], "reconciliation": []})
    async with _client() as c:
        page = await c.get("/admin/crm", params={"crm": "hubspot"})
    assert "/backfill/resume" not in page.text
    assert "2026-12-07T09:00:00+00:00" in page.text  # when a rate limit lets it go on


async def test_resume_asks_ingest_to_go_on_from_where_it_stopped(ingest: Ingest) -> None:
    async with _client() as c:
        back = await c.post("/admin/crm/hubspot/backfill/resume", data={"csrf": csrf_token(SESSION)})
    assert "said" in _said(back)
    assert ingest.sent("POST") == [("POST", "/v1/crm/hubspot/backfill", SESSION, {"resume": True})]
