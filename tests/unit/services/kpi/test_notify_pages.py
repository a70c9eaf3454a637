"""A person's notification pages (services/kpi/dashboard/notify_pages.py) on the real routes and templates, notify
faked at the one function that calls it: the unsubscribe link's GET changes nothing; its button needs the page's
own form token; RFC 8058's one-click POST needs none (its sealed token is the authentication); a session that
speaks for no person gets 403 on /me/notifications; a person's save sends what they ticked, and a refusal is
shown next to its field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.kpi.dashboard import notify_pages
from services.kpi.dashboard.control import Answer
from services.kpi.dashboard.web import COOKIE, Dashboard, csrf_token, session_principal
from shared.authz import Principal

SESSION = "atn_session_of_ana"
PREFERENCES = {"person_id": "ana", "channels": {"digest": []}, "public_celebrations": True, "quiet_start": "20:00",
               "quiet_end": "08:00", "weekends_quiet": True, "daily_cap": 20,
               "kinds": ["check_in", "escalation", "celebration", "review", "digest", "plan"],
               "channels_available": ["email", "slack", "webhook"]}


@dataclass
class Notify:
    """notify's answers, by method and path, and every call made."""

    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, str, Any]] = field(default_factory=list)

    async def call(self, _rt: object, service: str, method: str, path: str, token: str, *, json: Any = None,
                   **_kw: Any) -> Answer:
        assert service == "notify"
        self.calls.append((method, path, token, json))
        return self.answers.get((method, path), Answer(200, {}))

    def writes(self) -> list[tuple[str, str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Notify:
    fake = Notify()
    monkeypatch.setattr(notify_pages, "call", fake.call)

    async def basics(_rt: object, tenant: str) -> tuple[Any, None, datetime]:
        return SimpleNamespace(slug=tenant), None, datetime(2026, 12, 7, tzinfo=UTC)

    monkeypatch.setattr(notify_pages, "basics", basics)
    return fake


def app_for(who: Principal | None) -> FastAPI:
    app = FastAPI()
    app.include_router(notify_pages.router)
    app.state.runtime = SimpleNamespace(pool=None, clock=None, settings=None, context=Dashboard())
    if who is not None:
        app.dependency_overrides[session_principal] = lambda: who
    return app


def client(app: FastAPI, **cookies: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi", cookies=cookies)


async def test_opening_the_unsubscribe_link_changes_nothing_and_offers_a_button(notify: Notify) -> None:
    async with client(app_for(None)) as c:
        page = await c.get("/unsubscribe", params={"t": "sealed-token"})
    assert page.status_code == 200
    assert 'name="t" value="sealed-token"' in page.text and "Unsubscribe</button>" in page.text
    assert notify.calls == []
    assert notify_pages.FORM_COOKIE in page.cookies


async def test_the_button_unsubscribes_with_the_pages_own_form_token(notify: Notify) -> None:
    notify.answers["POST", "/v1/notify/unsubscribe"] = Answer(200, {"person_id": "ana", "kind": "check_in",
                                                                    "channels": ["slack"]})
    async with client(app_for(None)) as c:
        await c.get("/unsubscribe", params={"t": "sealed-token"})
        nonce = c.cookies[notify_pages.FORM_COOKIE]
        done = await c.post("/unsubscribe", data={"t": "sealed-token", "csrf": csrf_token(nonce)})
    assert done.status_code == 200, done.text
    assert notify.writes() == [("POST", "/v1/notify/unsubscribe", "", {"token": "sealed-token"})]
    assert "you no longer get check-ins by e-mail" in done.text and "You still get them by Slack" in done.text


async def test_a_button_posted_from_another_site_is_refused_and_changes_nothing(notify: Notify) -> None:
    async with client(app_for(None)) as c:
        forged = await c.post("/unsubscribe", data={"t": "sealed-token", "csrf": csrf_token("")})
    async with client(app_for(None), **{notify_pages.FORM_COOKIE: "n"}) as c:
        guessed = await c.post("/unsubscribe", data={"t": "sealed-token", "csrf": "x"})
    assert forged.status_code == 403 and guessed.status_code == 403
    assert notify.calls == []


async def test_rfc_8058s_one_click_post_needs_no_cookie_its_token_in_the_url(notify: Notify) -> None:
    notify.answers["POST", "/v1/notify/unsubscribe"] = Answer(200, {"person_id": "ana", "kind": "review",
                                                                    "channels": []})
    async with client(app_for(None)) as c:
        done = await c.post("/unsubscribe?t=sealed-token", content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200, done.text
    assert notify.writes() == [("POST", "/v1/notify/unsubscribe", "", {"token": "sealed-token"})]
    assert "You get no reviews at all now" in done.text


async def test_a_token_notify_does_not_open_is_a_400_page(notify: Notify) -> None:
    notify.answers["POST", "/v1/notify/unsubscribe"] = Answer(400, {"detail": "not a valid unsubscribe token"})
    async with client(app_for(None)) as c:
        refused = await c.post("/unsubscribe?t=forged", content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 400 and "not valid" in refused.text


async def test_a_session_that_speaks_for_no_person_has_no_notifications_of_its_own(notify: Notify) -> None:
    async with client(app_for(Principal("acme", "admin", "k1")), **{COOKIE: SESSION}) as c:
        shown = await c.get("/me/notifications")
        saved = await c.post("/me/notifications", data={"csrf": csrf_token(SESSION)})
    assert shown.status_code == 403 and saved.status_code == 403
    assert notify.writes() == []


async def test_a_rep_sees_their_choices_and_saves_what_they_ticked(notify: Notify) -> None:
    notify.answers["GET", "/v1/notify/preferences/me"] = Answer(200, PREFERENCES)
    rep = Principal("acme", "rep", "k2", rep_id="ana")
    async with client(app_for(rep), **{COOKIE: SESSION}) as c:
        shown = await c.get("/me/notifications")
        assert shown.status_code == 200
        assert 'id="ch-check_in-email" checked' in shown.text
        assert 'id="ch-digest-email" checked' not in shown.text
        assert 'name="defaulted_check_in"' in shown.text and 'name="defaulted_digest"' not in shown.text
        saved = await c.post("/me/notifications", data={
            "csrf": csrf_token(SESSION), "kinds": "check_in,digest", "ch_check_in": ["email", "slack"],
            "ch_digest": "email", "quiet_start": "21:00", "quiet_end": "07:00", "daily_cap": "5"})
    assert saved.status_code == 303 and saved.headers["location"].startswith("/me/notifications?said=")
    (_, path, token, body), = notify.writes()
    assert (path, token) == ("/v1/notify/preferences/me", SESSION)
    assert body == {"channels": {"check_in": ["email", "slack"], "digest": ["email"]}, "public_celebrations": False,
                    "quiet_start": "21:00", "quiet_end": "07:00", "weekends_quiet": False, "daily_cap": 5}


async def test_a_value_notify_refuses_is_shown_at_its_field_as_typed(notify: Notify) -> None:
    notify.answers["GET", "/v1/notify/preferences/me"] = Answer(200, PREFERENCES)
    notify.answers["PUT", "/v1/notify/preferences/me"] = Answer(422, {"detail": "quiet_start: not a time of day"})
    rep = Principal("acme", "manager", "k3", manager_id="mia")
    async with client(app_for(rep), **{COOKIE: SESSION}) as c:
        refused = await c.post("/me/notifications", data={"csrf": csrf_token(SESSION), "quiet_start": "25:61",
                                                          "daily_cap": "20"})
    assert refused.status_code == 422
    assert 'id="e-quiet_start">quiet_start: not a time of day' in refused.text
    assert 'value="25:61"' in refused.text


async def test_a_save_without_this_sessions_form_token_is_refused(notify: Notify) -> None:
    rep = Principal("acme", "rep", "k2", rep_id="ana")
    async with client(app_for(rep), **{COOKIE: SESSION}) as c:
        forged = await c.post("/me/notifications", data={"csrf": "forged", "daily_cap": "1"})
    assert forged.status_code == 403 and notify.writes() == []
