"""Tenant A's token (or dashboard cookie) with tenant B's ids, on every route whose answer depends on who is
calling: B's data never comes back, and neither B's rows nor anything of A's change unless the request
writes into A's own scope.

The routes are read from each service's app: a route added later without a case here (or a route added
without a tenant dependency) fails `test_every_route_is_tenant_scoped_or_public_and_every_scoped_one_has_a_case`.
What each case expects is what the route does today when nothing of the caller's matches: 404 for one object,
an empty list for a filter, the caller's own data for an unfiltered list.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.fernet import Fernet
from markupsafe import escape

from services.kpi.dashboard.pages import csrf_token
from services.notify.settings import NotifySettings
from services.notify.worker import unsubscribe_link
from shared import topics
from shared.cloudevents import CloudEvent, encode
from shared.db import tenant_tx
from shared.secret_box import SecretBox
from tests import factories
from tests.integration.conftest import BOOTSTRAP
from tests.integration.security.outside import Org, Outside
from tests.integration.security.records import Records
from tests.integration.security.routes import SPECS, app_of, routes, tenant_scoped

Check = Callable[[httpx.Response, Org, Org], None]  # (answer, caller A, other tenant B)


def status(code: int) -> Check:
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert r.status_code == code, r.text
    return check


def json_is(code: int, expected: Callable[[Org, Org], Any]) -> Check:
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert (r.status_code, r.json()) == (code, expected(a, b))
    return check


def json_holds(code: int, holds: Callable[[Any, Org, Org], bool]) -> Check:
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert r.status_code == code, r.text
        assert holds(r.json(), a, b), r.text
    return check


def page_shows(shown: Callable[[Org], str], hidden: Callable[[Org], str]) -> Check:
    """A 200 page with the caller's `shown(a)` on it and neither B's secret nor `hidden(b)`."""
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert r.status_code == 200, r.text
        assert shown(a) in r.text, r.text[r.text.find("<main"):]
        assert hidden(b) not in r.text
    return check


def redirect(to: str) -> Check:
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert (r.status_code, r.headers.get("location")) == (303, to), r.text
    return check


def refused_back() -> Check:
    """Back to the control-room page (303) saying what went wrong: the owning service found nothing of A's."""
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert r.status_code == 303 and "error=" in r.headers.get("location", ""), (r.status_code, r.headers)
    return check


def csv_rows(count: int) -> Check:
    def check(r: httpx.Response, a: Org, b: Org) -> None:
        assert r.status_code == 200, r.text
        assert len(r.text.splitlines()) == 1 + count, r.text  # the header, then the rows
    return check


def lists_no_rep(r: httpx.Response, a: Org, b: Org) -> None:
    """A leaderboard page filtered to B's team: no rep listed, A's or B's."""
    assert r.status_code == 200, r.text
    assert a.name not in r.text and b.rep not in r.text


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    route: str  # the route's path as the app declares it
    target: Callable[[Org, Org, str], str]  # (A, B, current quarter) -> the path and query sent
    expect: Check
    body: Callable[[Org, Org], Any] | None = None
    own_write: bool = False  # writes into A's own scope: only B's rows must stay as they were
    label: str = ""
    form: bool = False  # the body goes as an HTML form (the dashboard's), not as JSON

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.route}{' ' + self.label if self.label else ''}"


CASES = [
    # kpi's read API
    Case("kpi", "GET", "/v1/scorecards/{rep_id}", lambda a, b, q: f"/v1/scorecards/{b.rep}?period={q}", status(404)),
    Case("kpi", "GET", "/v1/teams/{team_id}/scorecard", lambda a, b, q: f"/v1/teams/{b.team}/scorecard?period={q}",
         status(404)),
    Case("kpi", "GET", "/v1/leaderboard", lambda a, b, q: f"/v1/leaderboard?period={q}&team_id={b.team}",
         json_holds(200, lambda j, a, b: j["standings"] == []), label="B's team"),
    Case("kpi", "GET", "/v1/leaderboard", lambda a, b, q: f"/v1/leaderboard?period={q}",
         json_holds(200, lambda j, a, b: [s["rep_id"] for s in j["standings"]] == [a.rep, a.laggard]),
         label="unfiltered"),
    Case("kpi", "GET", "/v1/leaderboard/teams", lambda a, b, q: f"/v1/leaderboard/teams?period={q}",
         json_holds(200, lambda j, a, b: [t["team_id"] for t in j["standings"]] == [a.team])),
    Case("kpi", "GET", "/v1/scorecards/{rep_id}/contributions",
         lambda a, b, q: f"/v1/scorecards/{b.rep}/contributions?metric=won_revenue&period={q}",
         json_is(200, lambda a, b: [])),
    # issue 22: forecasts, contests and the tenant's own KPIs
    Case("kpi", "GET", "/v1/scorecards/{rep_id}/forecast",
         lambda a, b, q: f"/v1/scorecards/{b.rep}/forecast?period={q}",
         json_holds(200, lambda j, a, b: j["deals"] == [] and j["target"] is None and b.rep not in str(j["forecast"]))),
    Case("kpi", "GET", "/v1/teams/{team_id}/forecast", lambda a, b, q: f"/v1/teams/{b.team}/forecast?period={q}",
         json_holds(200, lambda j, a, b: j["deals"] == [] and j["target"] is None)),
    Case("kpi", "GET", "/v1/contests", lambda a, b, q: "/v1/contests",
         json_holds(200, lambda j, a, b: f"c-{a.tag}" in [c["contest_id"] for c in j] and b.secret not in str(j))),
    Case("kpi", "GET", "/v1/contests/{contest_id}", lambda a, b, q: f"/v1/contests/c-{b.tag}", status(404)),
    Case("kpi", "PUT", "/v1/contests/{contest_id}", lambda a, b, q: f"/v1/contests/put-{a.tag}", status(200),
         body=lambda a, b: {"name": f"Put {a.secret}", "metric": "won_revenue", "participants": "reps",
                            "participant_ids": [b.rep], "starts": "2026-01-01", "ends": "2027-01-01"},
         own_write=True),
    Case("kpi", "DELETE", "/v1/contests/{contest_id}", lambda a, b, q: f"/v1/contests/c-{b.tag}", status(404)),
    Case("kpi", "GET", "/v1/kpis", lambda a, b, q: "/v1/kpis",
         json_holds(200, lambda j, a, b: f"k_{a.tag}" in [k["kpi_id"] for k in j] and b.secret not in str(j))),
    Case("kpi", "PUT", "/v1/kpis/{kpi_id}", lambda a, b, q: f"/v1/kpis/put_{a.tag}", status(200),
         body=lambda a, b: {"name": f"Put {a.secret}", "source": "activities"}, own_write=True),
    Case("kpi", "DELETE", "/v1/kpis/{kpi_id}", lambda a, b, q: f"/v1/kpis/k_{b.tag}", status(404)),
    Case("kpi", "GET", "/contests", lambda a, b, q: "/contests",
         page_shows(lambda a: f"Contest {a.secret}", lambda b: f"Contest {b.secret}")),
    Case("kpi", "GET", "/contests/{contest_id}", lambda a, b, q: f"/contests/c-{b.tag}", status(404)),
    # kpi's dashboard (signed in by cookie)
    Case("kpi", "GET", "/", lambda a, b, q: "/", redirect("/leaderboard")),
    Case("kpi", "GET", "/leaderboard", lambda a, b, q: f"/leaderboard?period={q}&team={b.team}",
         lists_no_rep, label="B's team"),
    Case("kpi", "GET", "/leaderboard", lambda a, b, q: f"/leaderboard?period={q}",
         page_shows(lambda a: a.name, lambda b: b.rep), label="unfiltered"),
    Case("kpi", "GET", "/leaderboard.csv", lambda a, b, q: f"/leaderboard.csv?period={q}&team={b.team}",
         csv_rows(0)),
    Case("kpi", "GET", "/reps/{rep_id}", lambda a, b, q: f"/reps/{b.rep}?period={q}", status(404)),
    Case("kpi", "GET", "/reps/{rep_id}", lambda a, b, q: f"/reps/{a.laggard}?period={q}",
         page_shows(lambda a: str(escape(a.task_summary)), lambda b: b.laggard),
         label="A's own, with coaching's check-ins"),
    Case("kpi", "GET", "/teams", lambda a, b, q: f"/teams?period={q}", page_shows(lambda a: a.team, lambda b: b.team)),
    # the dashboard's check-ins: A's list shows A's laggard's, A's forms cannot reach B's (coaching: 404)
    Case("kpi", "GET", "/check-ins", lambda a, b, q: "/check-ins",
         page_shows(lambda a: str(escape(a.task_summary)), lambda b: b.laggard)),
    *(Case("kpi", "POST", f"/check-ins/{{task_id}}/{action}", lambda a, b, q, action=action:
           f"/check-ins/{b.task_id}/{action}", status(404), form=True,
           body=lambda a, b: {"csrf": csrf_token(a.token), "next": "/check-ins", "outcome": "held"})
      for action in ("ack", "complete", "plan")),
    Case("kpi", "GET", "/teams/{team_id}", lambda a, b, q: f"/teams/{b.team}?period={q}", status(404)),
    Case("kpi", "GET", "/coaching-effect", lambda a, b, q: "/coaching-effect?by=manager",
         page_shows(lambda a: a.manager, lambda b: b.manager)),
    Case("kpi", "GET", "/tv", lambda a, b, q: "/tv", page_shows(lambda a: a.team, lambda b: b.team)),
    # coaching: reads
    Case("coaching", "GET", "/v1/tasks", lambda a, b, q: f"/v1/tasks?rep_id={b.laggard}",
         json_is(200, lambda a, b: {"tasks": [], "next_cursor": None}), label="B's rep"),
    Case("coaching", "GET", "/v1/tasks", lambda a, b, q: f"/v1/tasks?manager_id={b.manager}",
         json_is(200, lambda a, b: {"tasks": [], "next_cursor": None}), label="B's manager"),
    Case("coaching", "GET", "/v1/tasks", lambda a, b, q: "/v1/tasks",
         json_holds(200, lambda j, a, b: {t["rep_id"] for t in j["tasks"]} <= {a.rep, a.laggard}
                    and a.task_id in {t["task_id"] for t in j["tasks"]}), label="unfiltered"),
    Case("coaching", "GET", "/v1/tasks/{task_id}", lambda a, b, q: f"/v1/tasks/{b.task_id}", status(404)),
    Case("coaching", "GET", "/v1/effectiveness", lambda a, b, q: "/v1/effectiveness?by=manager",
         json_holds(200, lambda j, a, b: [g["key"] for g in j["groups"]] == [a.manager])),
    Case("coaching", "GET", "/v1/action-plans", lambda a, b, q: f"/v1/action-plans?rep_id={b.rep}",
         json_is(200, lambda a, b: {"action_plans": []}), label="B's rep"),
    Case("coaching", "GET", "/v1/action-plans", lambda a, b, q: "/v1/action-plans",
         json_holds(200, lambda j, a, b: [p["plan_id"] for p in j["action_plans"]] == [a.plan_id]), label="unfiltered"),
    Case("coaching", "GET", "/v1/action-plans/{plan_id}", lambda a, b, q: f"/v1/action-plans/{b.plan_id}",
         status(404)),
    Case("coaching", "GET", "/v1/holidays", lambda a, b, q: f"/v1/holidays?year={b.holiday.year}",
         json_holds(200, lambda j, a, b: [h["name"] for h in j["holidays"]] == ([f"Holiday {a.secret}"]
                                                                               if a.holiday.year == b.holiday.year
                                                                               else []))),
    Case("coaching", "GET", "/v1/reps/{rep_id}/time-off", lambda a, b, q: f"/v1/reps/{b.rep}/time-off",
         json_is(200, lambda a, b: {"rep_id": b.rep, "time_off": []})),
    Case("coaching", "GET", "/v1/policies", lambda a, b, q: "/v1/policies",
         json_holds(200, lambda j, a, b: j["overrides"] == {"pace_threshold": a.pace_threshold})),
    Case("coaching", "GET", "/v1/policies/teams/{team_id}", lambda a, b, q: f"/v1/policies/teams/{b.team}",
         json_holds(200, lambda j, a, b: j["overrides"] == {} and j["effective"]["cooldown_days"] != b.cooldown_days)),
    Case("coaching", "GET", "/v1/catalogue", lambda a, b, q: "/v1/catalogue",
         json_holds(200, lambda j, a, b: j["behind_pace"]["suggested_actions"] == [f"Call {a.secret}"])),
    Case("coaching", "GET", "/v1/managers/{manager_id}/scorecard",
         lambda a, b, q: f"/v1/managers/{b.manager}/scorecard?period={q}",
         json_holds(200, lambda j, a, b: (j["tasks"], j["team_won_revenue"]) == (0, None))),
    Case("coaching", "GET", "/v1/reviews", lambda a, b, q: f"/v1/reviews?scope_id={b.team}",
         json_is(200, lambda a, b: {"reviews": []}), label="B's team"),
    Case("coaching", "GET", "/v1/reviews", lambda a, b, q: "/v1/reviews",
         json_holds(200, lambda j, a, b: [r["scope_id"] for r in j["reviews"]] == [a.team]), label="unfiltered"),
    # coaching: actions on B's objects, refused
    Case("coaching", "POST", "/v1/tasks/{task_id}/ack", lambda a, b, q: f"/v1/tasks/{b.task_id}/ack", status(404)),
    Case("coaching", "POST", "/v1/tasks/{task_id}/complete", lambda a, b, q: f"/v1/tasks/{b.task_id}/complete",
         status(404), body=lambda a, b: {"outcome": "closed by another tenant"}),
    Case("coaching", "POST", "/v1/action-plans", lambda a, b, q: "/v1/action-plans", status(404),
         body=lambda a, b: {"task_id": b.task_id}, label="for B's task"),
    Case("coaching", "DELETE", "/v1/holidays/{day}", lambda a, b, q: f"/v1/holidays/{b.holiday.isoformat()}",
         status(204)),
    # coaching: writes that name B's ids land in A's own scope
    Case("coaching", "POST", "/v1/holidays", lambda a, b, q: "/v1/holidays", status(410),
         body=lambda a, b: {"day": b.holiday.isoformat(), "name": "A's day off"}, own_write=True),
    Case("coaching", "POST", "/v1/reps/{rep_id}/time-off", lambda a, b, q: f"/v1/reps/{b.rep}/time-off",
         status(410), body=lambda a, b: {"first_day": "2027-02-01", "last_day": "2027-02-02"}, own_write=True),
    Case("coaching", "PUT", "/v1/policies", lambda a, b, q: "/v1/policies", status(200),
         body=lambda a, b: {"pace_threshold": a.pace_threshold}, own_write=True),
    Case("coaching", "PUT", "/v1/policies/teams/{team_id}", lambda a, b, q: f"/v1/policies/teams/{b.team}",
         json_holds(200, lambda j, a, b: j["overrides"] == {"cooldown_days": 30}),
         body=lambda a, b: {"cooldown_days": 30}, own_write=True),
    Case("coaching", "PUT", "/v1/catalogue/{rule}", lambda a, b, q: "/v1/catalogue/behind_pace", status(200),
         body=lambda a, b: {"suggested_actions": [f"Call {a.secret}"], "training": [f"Course {a.secret}"]},
         own_write=True),
    # recognition
    Case("recognition", "GET", "/v1/celebrations", lambda a, b, q: f"/v1/celebrations?scope_id={b.rep}",
         json_is(200, lambda a, b: {"celebrations": [], "next_before": None}), label="B's rep"),
    Case("recognition", "GET", "/v1/celebrations", lambda a, b, q: f"/v1/celebrations?period={q}",
         json_holds(200, lambda j, a, b: {c["scope_id"] for c in j["celebrations"]} <= {a.rep, a.team}
                    and a.rep in {c["scope_id"] for c in j["celebrations"]}), label="this quarter"),
    Case("recognition", "GET", "/v1/reps/{rep_id}/trophies", lambda a, b, q: f"/v1/reps/{b.rep}/trophies",
         json_is(200, lambda a, b: {"rep_id": b.rep, "name": None, "count": 0, "trophies": []})),
    Case("recognition", "GET", "/v1/recognition/settings", lambda a, b, q: "/v1/recognition/settings",
         json_holds(200, lambda j, a, b: j["overrides"] == {"leaderboard_places": a.leaderboard_places})),
    Case("recognition", "PUT", "/v1/recognition/settings", lambda a, b, q: "/v1/recognition/settings", status(200),
         body=lambda a, b: {"leaderboard_places": a.leaderboard_places}, own_write=True),
    # ingest's tenant-scoped routes (its webhooks prove the tenant with its CRM secret: test_webhook_replay.py)
    Case("ingest", "GET", "/v1/crm/{crm}/stages", lambda a, b, q: "/v1/crm/hubspot/stages",
         json_is(200, lambda a, b: {"stages": {f"s-{a.secret}": "won"}, "reprocessed": None})),
    Case("ingest", "GET", "/v1/crm/{crm}/users", lambda a, b, q: "/v1/crm/hubspot/users",
         json_is(200, lambda a, b: {"users": {f"u-{a.secret}": a.rep}, "reprocessed": None})),
    Case("ingest", "GET", "/v1/crm/{crm}/properties", lambda a, b, q: "/v1/crm/hubspot/properties",
         json_holds(200, lambda j, a, b: j["properties"] == [f"p_{a.tag}"])),
    Case("ingest", "PUT", "/v1/crm/{crm}/properties", lambda a, b, q: "/v1/crm/hubspot/properties", status(200),
         body=lambda a, b: {"properties": [f"p_{a.tag}"]}, own_write=True),
    Case("ingest", "GET", "/v1/crm/dead-letters", lambda a, b, q: "/v1/crm/dead-letters?status=all",
         json_holds(200, lambda j, a, b: [d["object_id"] for d in j] == [a.dead_letter])),
    Case("ingest", "PUT", "/v1/crm/{crm}/stages", lambda a, b, q: "/v1/crm/hubspot/stages", status(200),
         body=lambda a, b: {f"s-{a.secret}": "won"}, own_write=True),
    Case("ingest", "PUT", "/v1/crm/{crm}/users", lambda a, b, q: "/v1/crm/hubspot/users", status(200),
         body=lambda a, b: {f"u-{a.secret}": a.rep}, own_write=True),
    # issue 21: the CRM's users, the OAuth connection and the backfill through ingest's API. B has one of each
    # (`crm_of_b`): a manual user mapping into B's team, a HubSpot OAuth client whose id carries B's secret with an
    # authorization under way, a finished backfill and a reconciliation whose error names B's secret. A has no API
    # access to any CRM: what would read one says so (409) and writes nothing.
    Case("ingest", "GET", "/v1/crm/{crm}/users/proposal", lambda a, b, q: "/v1/crm/hubspot/users/proposal",
         status(409)),
    Case("ingest", "POST", "/v1/crm/{crm}/users/sync", lambda a, b, q: "/v1/crm/hubspot/users/sync", status(409)),
    Case("ingest", "GET", "/v1/crm/{crm}/user-mapping-mode", lambda a, b, q: "/v1/crm/hubspot/user-mapping-mode",
         json_holds(200, lambda j, a, b: j["mode"] == "automatic")),  # B's is manual
    Case("ingest", "PUT", "/v1/crm/{crm}/user-mapping-mode", lambda a, b, q: "/v1/crm/hubspot/user-mapping-mode",
         json_is(200, lambda a, b: {"mode": "automatic", "team_id": b.team}),
         body=lambda a, b: {"mode": "automatic", "team_id": b.team}, own_write=True),  # B's team id, in A's scope
    # A's own client, then A's own authorization (A's client, A's callback), A's list, A's disconnection: B's
    # client, pending authorization and connection stay as they were
    Case("ingest", "PUT", "/v1/crm/{crm}/oauth/client", lambda a, b, q: "/v1/crm/hubspot/oauth/client",
         json_holds(200, lambda j, a, b: (j["client_id"], j["client_secret_set"]) == (f"client-{a.tag}", True)
                    and j["redirect_uri"].endswith(f"/v1/crm/oauth/callback/{a.slug}/hubspot")),
         body=lambda a, b: {"client_id": f"client-{a.tag}", "client_secret": f"oauth-{a.tag}"}, own_write=True),
    Case("ingest", "POST", "/v1/crm/{crm}/oauth/authorize", lambda a, b, q: "/v1/crm/hubspot/oauth/authorize",
         json_holds(200, lambda j, a, b: f"client_id=client-{a.tag}" in j["authorization_url"]
                    and b.slug not in j["authorization_url"]
                    and j["redirect_uri"].endswith(f"/v1/crm/oauth/callback/{a.slug}/hubspot")), own_write=True),
    Case("ingest", "GET", "/v1/crm/oauth", lambda a, b, q: "/v1/crm/oauth",
         json_holds(200, lambda j, a, b: {c["crm"]: c["client_id"] for c in j["connections"]}["hubspot"]
                    in (None, f"client-{a.tag}") and b.slug not in str(j)
                    and all(c["redirect_uri"].endswith(f"/{a.slug}/{c['crm']}") for c in j["connections"]))),
    Case("ingest", "DELETE", "/v1/crm/{crm}/oauth", lambda a, b, q: "/v1/crm/hubspot/oauth?forget_client=true",
         json_is(200, lambda a, b: {"crm": "hubspot", "revoked_at_crm": False}), own_write=True, label="A's own"),
    Case("ingest", "DELETE", "/v1/crm/{crm}/oauth", lambda a, b, q: "/v1/crm/hubspot/oauth", status(404),
         label="none of A's left, B's there"),
    Case("ingest", "POST", "/v1/crm/{crm}/backfill", lambda a, b, q: "/v1/crm/hubspot/backfill", status(409),
         body=lambda a, b: {"since": "2026-01-01T00:00:00Z"}),
    Case("ingest", "GET", "/v1/crm/{crm}/backfill", lambda a, b, q: "/v1/crm/hubspot/backfill",
         json_is(200, lambda a, b: {"crm": "hubspot", "jobs": [], "reconciliation": []})),
    # tokens: A's admin lists, makes, revokes and rotates A's own only (each tenant's ids are its own)
    Case("ingest", "GET", "/v1/tokens", lambda a, b, q: "/v1/tokens",
         json_holds(200, lambda j, a, b: {t["tenant"] for t in j["tokens"]} == {a.slug}
                    and "token_sha256" not in str(j))),
    Case("ingest", "POST", "/v1/tokens", lambda a, b, q: "/v1/tokens", status(201),
         body=lambda a, b: {"role": "viewer", "name": f"tv-{a.tag}"}, own_write=True),
    Case("ingest", "POST", "/v1/tokens/share", lambda a, b, q: "/v1/tokens/share",
         json_holds(201, lambda j, a, b: j["tenant"] == a.slug and j["path"].startswith(f"/tv/share/{a.slug}.")),
         body=lambda a, b: {"name": f"tv-{a.tag}"}, own_write=True),
    Case("ingest", "DELETE", "/v1/tokens/{token_id}", lambda a, b, q: f"/v1/tokens/{b.tag}", status(404)),
    Case("ingest", "POST", "/v1/tokens/{token_id}/rotate", lambda a, b, q: f"/v1/tokens/{b.tag}/rotate",
         status(404), body=lambda a, b: {"grace_hours": 1}),
    Case("ingest", "POST", "/v1/events", lambda a, b, q: "/v1/events",
         json_holds(200, lambda j, a, b: j["accepted"] == 1), own_write=True, label="claiming B in the body",
         body=lambda a, b: factories.rep(f"spy-{a.tag}", team=a.team) | {"tenant": b.slug}),
    # issue 17: ingest's tenant settings, calendar, CRM connection and single sign-on: A's own, never B's
    Case("ingest", "GET", "/v1/settings", lambda a, b, q: "/v1/settings",
         json_holds(200, lambda j, a, b: (j["tenant"], j["timezone"]) == (a.slug, "Europe/Berlin"))),
    Case("ingest", "PUT", "/v1/settings", lambda a, b, q: "/v1/settings",
         json_holds(200, lambda j, a, b: (j["tenant"], j["changed"]) == (a.slug, [])),
         body=lambda a, b: {"timezone": "Europe/Berlin"}, own_write=True),
    Case("ingest", "GET", "/v1/calendar", lambda a, b, q: f"/v1/calendar?year={b.holiday.year}",
         json_holds(200, lambda j, a, b: [h["name"] for h in j["holidays"] if h["source"] == "added"]
                    == ([f"Holiday {a.secret}"] if a.holiday.year == b.holiday.year else []))),
    Case("ingest", "POST", "/v1/calendar/days", lambda a, b, q: "/v1/calendar/days",  # B's day, in A's calendar
         json_holds(200, lambda j, a, b: {h["day"]: h["name"] for h in j["holidays"]}.get(b.holiday.isoformat())
                    == f"Spy {a.tag}"),
         body=lambda a, b: {"day": b.holiday.isoformat(), "name": f"Spy {a.tag}"}, own_write=True),
    Case("ingest", "DELETE", "/v1/calendar/days/{day}", lambda a, b, q: f"/v1/calendar/days/{b.holiday.isoformat()}",
         json_holds(200, lambda j, a, b: b.holiday.isoformat() not in [h["day"] for h in j["holidays"]]),
         own_write=True),  # takes out of A's calendar the day the case above put in; B's keeps it
    Case("ingest", "PUT", "/v1/crm/{crm}/secret", lambda a, b, q: "/v1/crm/pipedrive/secret",
         json_is(200, lambda a, b: {"crm": "pipedrive", "set": True}),
         body=lambda a, b: {"secret": a.pipedrive_secret}, own_write=True),
    Case("ingest", "GET", "/v1/crm/{crm}/connection", lambda a, b, q: "/v1/crm/hubspot/connection",
         json_holds(200, lambda j, a, b: j["secret_set"] and j["webhook_url"].endswith(f"/hubspot/{a.slug}")
                    and a.hubspot_secret not in str(j))),
    Case("ingest", "PUT", "/v1/sso", lambda a, b, q: "/v1/sso",
         json_holds(200, lambda j, a, b: (j["tenant"], j["client_id"]) == (a.slug, f"client-{a.tag}")),
         body=lambda a, b: {"issuer": "https://login.example.com", "client_id": f"client-{a.tag}",
                            "client_secret": f"sso-{a.tag}"}, own_write=True),
    Case("ingest", "GET", "/v1/sso", lambda a, b, q: "/v1/sso",
         json_holds(200, lambda j, a, b: (j["tenant"], j["client_id"]) == (a.slug, f"client-{a.tag}")
                    and f"sso-{a.tag}" not in str(j))),
    Case("ingest", "DELETE", "/v1/sso", lambda a, b, q: "/v1/sso", status(204), own_write=True),
    # a token not made at sign-in: nothing to renew or end (B's sessions are out of reach by construction)
    Case("ingest", "POST", "/v1/sessions/refresh", lambda a, b, q: "/v1/sessions/refresh", status(404)),
    Case("ingest", "DELETE", "/v1/sessions/current", lambda a, b, q: "/v1/sessions/current", status(404)),
    # kpi's audit log, and the control room (signed in by cookie; each change goes to the owning service with
    # A's own token, so B's ids land in A's scope or are not found)
    Case("kpi", "GET", "/v1/audit", lambda a, b, q: "/v1/audit",
         json_holds(200, lambda j, a, b: f"Holiday {a.secret}" in str(j) and b.slug not in str(j)
                    and f"rep:{b.rep}" not in [e["subject"] for e in j["entries"]])),  # A's own log
    Case("kpi", "GET", "/admin/audit", lambda a, b, q: f"/admin/audit?subject={b.rep}",
         page_shows(lambda a: "Audit log", lambda b: b.slug)),
    Case("kpi", "GET", "/admin", lambda a, b, q: "/admin", page_shows(lambda a: "Control room", lambda b: b.slug)),
    Case("kpi", "GET", "/admin/targets", lambda a, b, q: f"/admin/targets?period={q}",
         page_shows(lambda a: a.rep, lambda b: b.rep)),
    Case("kpi", "POST", "/admin/targets", lambda a, b, q: "/admin/targets", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), f"v:rep:won_revenue:{b.rep}": "5",
                            f"was:rep:won_revenue:{b.rep}": ""}, own_write=True),
    Case("kpi", "POST", "/admin/targets/upload", lambda a, b, q: "/admin/targets/upload", status(422), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token),
                            "text": f"scope,scope_id,metric,period,value\nrep,{b.rep},won_revenue,2026-Q4,5\n"}),
    Case("kpi", "POST", "/admin/targets/copy", lambda a, b, q: "/admin/targets/copy", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token)}),
    Case("kpi", "GET", "/admin/roster", lambda a, b, q: f"/admin/roster?rep={b.rep}&team={b.team}",
         page_shows(lambda a: a.rep, lambda b: b.name)),
    Case("kpi", "POST", "/admin/roster/rep", lambda a, b, q: "/admin/roster/rep", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "rep_id": b.rep, "name": f"Spy {a.tag}", "team_id": a.team,
                            "active": "on"}, own_write=True),
    Case("kpi", "POST", "/admin/roster/team", lambda a, b, q: "/admin/roster/team", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "team_id": b.team, "name": f"Spy {a.tag}"}, own_write=True),
    Case("kpi", "GET", "/admin/settings", lambda a, b, q: "/admin/settings",
         page_shows(lambda a: "Europe/Berlin", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/settings", lambda a, b, q: "/admin/settings", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "timezone": "Europe/Berlin"}, own_write=True),
    Case("kpi", "GET", "/admin/people", lambda a, b, q: "/admin/people",
         page_shows(lambda a: "People and tokens", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/people/tokens", lambda a, b, q: "/admin/people/tokens", status(201), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "role": "viewer", "name": f"tv-{a.tag}"}, own_write=True),
    Case("kpi", "POST", "/admin/people/share", lambda a, b, q: "/admin/people/share", status(201), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "name": f"tv-{a.tag}"}, own_write=True),
    Case("kpi", "POST", "/admin/people/tokens/{token_id}/revoke",
         lambda a, b, q: f"/admin/people/tokens/{b.tag}/revoke", refused_back(), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token)}),
    Case("kpi", "POST", "/admin/people/tokens/{token_id}/rotate",
         lambda a, b, q: f"/admin/people/tokens/{b.tag}/rotate", refused_back(), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "grace_hours": "1"}),
    Case("kpi", "GET", "/admin/calendar", lambda a, b, q: f"/admin/calendar?rep={b.rep}&year={a.holiday.year}",
         page_shows(lambda a: f"Holiday {a.secret}", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/calendar/holidays", lambda a, b, q: "/admin/calendar/holidays", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "day": b.holiday.isoformat(),
                                       "name": f"Spy {a.tag}"}, own_write=True),
    Case("kpi", "POST", "/admin/calendar/holidays/remove", lambda a, b, q: "/admin/calendar/holidays/remove",
         status(303), form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "day": b.holiday.isoformat()},
         own_write=True),
    Case("kpi", "POST", "/admin/calendar/time-off", lambda a, b, q: "/admin/calendar/time-off", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "rep_id": b.rep, "time_off_id": f"leave-{b.tag}",
                                       "first_day": "2027-02-01", "last_day": "2027-02-05", "cancel": "1"},
         own_write=True, label="cancelling B's leave"),
    Case("kpi", "GET", "/admin/coaching", lambda a, b, q: f"/admin/coaching?team={b.team}",
         page_shows(lambda a: f"Call {a.secret}", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/coaching/policy", lambda a, b, q: "/admin/coaching/policy", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "team": b.team, "cooldown_days": "30"}, own_write=True),
    Case("kpi", "POST", "/admin/coaching/playbooks/{rule}", lambda a, b, q: "/admin/coaching/playbooks/behind_pace",
         status(303), form=True, body=lambda a, b: {"csrf": csrf_token(a.token),
                                                    "suggested_actions": f"Call {a.secret}",
                                                    "training": f"Course {a.secret}"}, own_write=True),
    Case("kpi", "GET", "/admin/recognition", lambda a, b, q: "/admin/recognition",
         page_shows(lambda a: "Recognition", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/recognition", lambda a, b, q: "/admin/recognition", status(303), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "leaderboard_places": str(a.leaderboard_places)},
         own_write=True),
    Case("kpi", "GET", "/admin/crm", lambda a, b, q: "/admin/crm?crm=hubspot",
         page_shows(lambda a: f"u-{a.secret}", lambda b: b.slug)),
    Case("kpi", "POST", "/admin/crm/{crm}/secret", lambda a, b, q: "/admin/crm/pipedrive/secret", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "secret": a.pipedrive_secret}, own_write=True),
    Case("kpi", "POST", "/admin/crm/{crm}/stages", lambda a, b, q: "/admin/crm/pipedrive/stages", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "stage": f"s-{b.tag}", "status": "won"},
         own_write=True),
    Case("kpi", "POST", "/admin/crm/{crm}/users", lambda a, b, q: "/admin/crm/pipedrive/users", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "crm_user": f"u-{b.tag}", "rep_id": b.rep},
         own_write=True),
    Case("kpi", "POST", "/admin/crm/{crm}/map", lambda a, b, q: "/admin/crm/pipedrive/map", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "crm_user": f"m-{b.tag}", "rep_id": b.rep},
         own_write=True),
    # issue 21: the control room's OAuth forms, A's own client and connection through ingest with A's token
    Case("kpi", "POST", "/admin/crm/{crm}/oauth/client", lambda a, b, q: "/admin/crm/hubspot/oauth/client",
         status(303), form=True, own_write=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "client_id": f"client-{a.tag}",
                            "client_secret": f"oauth-{a.tag}"}),
    Case("kpi", "POST", "/admin/crm/{crm}/oauth/connect", lambda a, b, q: "/admin/crm/hubspot/oauth/connect",
         page_shows(lambda a: f"client_id=client-{a.tag}", lambda b: b.slug), form=True, own_write=True,
         body=lambda a, b: {"csrf": csrf_token(a.token)}),
    Case("kpi", "POST", "/admin/crm/{crm}/oauth/disconnect", lambda a, b, q: "/admin/crm/hubspot/oauth/disconnect",
         status(303), form=True, own_write=True, body=lambda a, b: {"csrf": csrf_token(a.token)}),
    # the control room's users and backfill forms: A has no API access, so ingest refuses (back with the error);
    # the mode lands in A's own scope, B's team id and all
    Case("kpi", "POST", "/admin/crm/{crm}/users/sync", lambda a, b, q: "/admin/crm/hubspot/users/sync",
         refused_back(), form=True, body=lambda a, b: {"csrf": csrf_token(a.token)}),
    Case("kpi", "POST", "/admin/crm/{crm}/users/mode", lambda a, b, q: "/admin/crm/hubspot/users/mode", status(303),
         form=True, own_write=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "mode": "automatic", "team_id": b.team}),
    Case("kpi", "POST", "/admin/crm/{crm}/backfill", lambda a, b, q: "/admin/crm/hubspot/backfill", refused_back(),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "since": "2026-01-01"}),
    Case("kpi", "POST", "/admin/crm/{crm}/backfill/resume", lambda a, b, q: "/admin/crm/hubspot/backfill/resume",
         refused_back(), form=True, body=lambda a, b: {"csrf": csrf_token(a.token)}),
    # notify (issue 19): A's admin reads and changes A's team channels, connection, people's preferences and
    # deliveries only; B's ids find nothing of B's (404, an empty answer) or land in A's own scope
    Case("notify", "GET", "/v1/notify/deliveries", lambda a, b, q: "/v1/notify/deliveries?status=dead",
         json_holds(200, lambda j, a, b: [d["idempotency_key"] for d in j["deliveries"]] == [a.dead_key]
                    and b.tag not in str(j))),
    Case("notify", "POST", "/v1/notify/deliveries/retry", lambda a, b, q: "/v1/notify/deliveries/retry",
         json_is(200, lambda a, b: {"requeued": 0}), body=lambda a, b: {"keys": [b.dead_key]}, label="B's dead one"),
    Case("notify", "GET", "/v1/notify/teams", lambda a, b, q: "/v1/notify/teams",
         json_holds(200, lambda j, a, b: {t["team_id"]: t["slack_channel"] for t in j["teams"]}
                    == {a.team: a.slack_channel})),
    # first the delete (A has no channels for B's team: 404), then the write that gives A's scope some
    Case("notify", "DELETE", "/v1/notify/teams/{team_id}", lambda a, b, q: f"/v1/notify/teams/{b.team}", status(404)),
    Case("notify", "PUT", "/v1/notify/teams/{team_id}", lambda a, b, q: f"/v1/notify/teams/{b.team}",
         json_holds(200, lambda j, a, b: (j["team_id"], j["slack_channel"]) == (b.team, f"Cspy{a.tag}")),
         body=lambda a, b: {"slack_channel": f"Cspy{a.tag}"}, own_write=True),
    Case("notify", "GET", "/v1/notify/connection", lambda a, b, q: "/v1/notify/connection",
         json_is(200, lambda a, b: {"slack_bot_token": None, "webhook_url": a.webhook_url, "webhook_secret": "(set)"})),
    Case("notify", "PUT", "/v1/notify/connection", lambda a, b, q: "/v1/notify/connection",
         json_holds(200, lambda j, a, b: j["webhook_url"] == a.webhook_url),
         body=lambda a, b: {"webhook_url": a.webhook_url}, own_write=True),
    # B's laggard: B's rep and team ids are A's own too by now (the control room's roster cases above made them)
    Case("notify", "GET", "/v1/notify/preferences/{person_id}", lambda a, b, q: f"/v1/notify/preferences/{b.laggard}",
         status(404)),
    Case("notify", "GET", "/v1/notify/preferences/{person_id}", lambda a, b, q: f"/v1/notify/preferences/{a.rep}",
         json_holds(200, lambda j, a, b: j["daily_cap"] == a.daily_cap), label="A's own"),
    Case("notify", "PUT", "/v1/notify/preferences/{person_id}", lambda a, b, q: f"/v1/notify/preferences/{b.laggard}",
         status(404), body=lambda a, b: {"daily_cap": 1, "channels": {"celebration": []}}),
    # an admin's token speaks for no person: no preferences of its own, and none of B's people's
    Case("notify", "GET", "/v1/notify/preferences/me", lambda a, b, q: "/v1/notify/preferences/me", status(404)),
    Case("notify", "PUT", "/v1/notify/preferences/me", lambda a, b, q: "/v1/notify/preferences/me", status(404),
         body=lambda a, b: {"daily_cap": 1}),
    # kpi's notification pages (signed in by cookie; each change goes to notify with A's own token)
    Case("kpi", "GET", "/admin/notifications", lambda a, b, q: "/admin/notifications",
         page_shows(lambda a: a.team, lambda b: b.slug)),
    Case("kpi", "POST", "/admin/notifications/teams/{team_id}", lambda a, b, q: f"/admin/notifications/teams/{b.team}",
         status(303), form=True, own_write=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "teams_webhook": f"http://127.0.0.1:9/spy-{a.tag}"}),
    Case("kpi", "POST", "/admin/notifications/connection", lambda a, b, q: "/admin/notifications/connection",
         status(303), form=True, own_write=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "webhook_url": a.webhook_url}),
    Case("kpi", "POST", "/admin/notifications/retry", lambda a, b, q: "/admin/notifications/retry", status(303),
         form=True, body=lambda a, b: {"csrf": csrf_token(a.token), "key": b.dead_key}, label="B's dead one"),
    Case("kpi", "GET", "/me/notifications", lambda a, b, q: "/me/notifications", status(403)),
    Case("kpi", "POST", "/me/notifications", lambda a, b, q: "/me/notifications", status(403), form=True,
         body=lambda a, b: {"csrf": csrf_token(a.token), "daily_cap": "1"}),
]
# Proven by a test of its own below: a server-sent event stream has no end to compare.
ELSEWHERE = {"kpi": {("GET", "/dashboard/stream")}}
# Routes anyone may call: nothing in their answer depends on a tenant.
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}  # operations, every service
PUBLIC_OF = {
    "ingest": {("POST", "/v1/webhooks/{crm}/{tenant}"),  # the CRM proves the path's tenant with its secret
               ("GET", "/v1/sso/{tenant}/client"),  # single sign-on's first step: the provider and client id only
               ("POST", "/v1/sessions"),  # single sign-on: the provider proves the code (test_injection.py)
               # an OAuth authorization's return: its one-time state is the credential (test below)
               ("GET", "/v1/crm/oauth/callback/{tenant}/{crm}")},
    "kpi": {("GET", "/signin"), ("POST", "/signin"),  # the sign-in form, and the token it checks
            ("POST", "/signout"),  # deletes the caller's own cookie
            ("GET", "/static/{name}"),  # the dashboard's CSS and JavaScript
            ("GET", "/tv/share/{link}"),  # a TV's share link: signed by ingest's key (authz/test_share_link.py)
            ("GET", "/signin/sso"),  # single sign-on's first step: to the organisation's identity provider
            ("GET", "/signin/sso/callback"),  # its return: the browser's own flow cookie, the code checked by ingest
            ("GET", "/unsubscribe"),  # an e-mail's unsubscribe link: a page with a button, nothing changes
            ("POST", "/unsubscribe")},  # RFC 8058 one-click: the sealed token notify opens is the credential
    "coaching": set(),
    "recognition": set(),
    "notify": {("POST", "/v1/notify/unsubscribe")},  # the sealed token names tenant, person and kind (test below)
}


def test_every_route_is_tenant_scoped_or_public_and_every_scoped_one_has_a_case() -> None:
    """Each service's routes are either scoped to the caller's tenant, and then have a case above, or are on
    the public list: a new route without a tenant dependency, or without a cross-tenant case, fails here."""
    for name in SPECS:
        app = app_of(name)
        scoped = tenant_scoped(app)
        everything = {(r.method, r.path) for r in routes(app)}
        assert everything - scoped == PUBLIC | PUBLIC_OF[name], name
        cased = {(c.method, c.route) for c in CASES if c.service == name} | ELSEWHERE.get(name, set())
        assert cased == scoped, name


@pytest.fixture(scope="module")
async def crm_of_b(outside: Outside, tenant_b: Org) -> str:
    """B's CRM state of issue 21, for A's requests to leave alone: HubSpot's users mapped by hand into B's team, an
    OAuth client whose id carries B's secret with an authorization under way, a finished backfill and a
    reconciliation whose last error names B's secret (B has no API access: no timer reads its CRM, so none of
    this moves while the tests compare it). The state of B's authorization."""
    b, now = tenant_b, outside.clock.now()
    async with outside.client("ingest", b) as ingest:
        mode = await ingest.put("/v1/crm/hubspot/user-mapping-mode", json={"mode": "manual", "team_id": b.team})
        assert mode.status_code == 200, mode.text
        client = await ingest.put("/v1/crm/hubspot/oauth/client", json={
            "client_id": f"client-{b.secret}", "client_secret": f"oauth-{b.secret}"})
        assert client.status_code == 200, client.text
        started = await ingest.post("/v1/crm/hubspot/oauth/authorize")
        assert started.status_code == 200, started.text
    async with tenant_tx(outside.services["ingest"].pool, b.slug) as conn:
        await conn.execute(
            "INSERT INTO crm_backfills (tenant, crm, kind, requested_at, requested_by, since, phase, high_water, pages,"
            " read_count, published, status, started_at, updated_at, finished_at) VALUES ($1, 'hubspot', 'deals',"
            " $2, 'token:initial', $3, 'finished', $2, 3, 250, 240, 'done', $2, $2, $2)",
            b.slug, now, now - timedelta(days=90))
        await conn.execute(
            "INSERT INTO crm_reconciliations (tenant, crm, kind, watermark, passes, last_pass_at, last_read,"
            " last_error, error_at) VALUES ($1, 'hubspot', 'deals', $2, 4, $2, 7, $3, $2)",
            b.slug, now, f"refused for {b.secret}")
    await outside.settle()
    return str(parse_qs(urlsplit(started.json()["authorization_url"]).query)["state"][0])


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_token_never_reaches_another_tenants_data(outside: Outside, tenant_a: Org, tenant_b: Org,
                                                          crm_of_b: str, records: Records, case: Case) -> None:
    """A's request with B's ids gets exactly what the case expects, nothing of B's in it, and changes none of
    B's rows (nor A's, unless it writes into A's own scope); nothing of B's reaches Kafka."""
    before_b, before_all = await outside.snapshot(tenant_b.slug), await outside.snapshot()
    body = case.body(tenant_a, tenant_b) if case.body else None
    async with outside.client(case.service, tenant_a) as client:
        answer = await client.request(case.method, case.target(tenant_a, tenant_b, outside.quarter),
                                      json=None if case.form else body, data=body if case.form else None)
    case.expect(answer, tenant_a, tenant_b)
    assert tenant_b.secret not in answer.text
    assert await outside.snapshot(tenant_b.slug) == before_b
    if not case.own_write:
        assert await outside.snapshot() == before_all
    published = await records.new()
    assert [r for r in published if r.tenant == tenant_b.slug] == []
    assert case.own_write or published == []
    if case.own_write:  # what A wrote is applied everywhere before the next test compares A's rows
        await outside.settle()


async def test_the_live_stream_carries_only_the_signed_in_tenants_updates(outside: Outside, tenant_a: Org,
                                                                         tenant_b: Org) -> None:
    """A browser signed in as A on the dashboard's live stream gets A's celebration and never B's, although B's
    went out first on the same partition while it listened."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    seen: list[str] = []
    try:
        async with outside.client("kpi", tenant_a) as kpi, kpi.stream("GET", "/dashboard/stream") as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            async with asyncio.timeout(30):
                while (line := await anext(lines)) != "event: hello":
                    seen.append(line)
                for org in (tenant_b, tenant_a):  # one key: one partition, B's record read first
                    event = CloudEvent(str(uuid.uuid4()), "recognition.milestone.reached", "attain/recognition",
                                       datetime.now(UTC), org.slug, {
                                           "celebration_id": str(uuid.uuid4()), "scope": "rep", "scope_id": org.rep,
                                           "milestone": "quota_100", "period": outside.quarter, "value": "1",
                                           "headline": f"Well done {org.secret}"})
                    value, headers = encode(event)
                    await producer.send_and_wait(topics.CELEBRATIONS.name, value, key=b"security-live", headers=headers)
                while tenant_a.secret not in (line := await anext(lines)):
                    seen.append(line)
        data = json.loads(line.removeprefix("data: "))
        assert (data["scope_id"], data["headline"]) == (tenant_a.rep, f"Well done {tenant_a.secret}")
        assert not [s for s in seen if tenant_b.secret in s or tenant_b.rep in s]
    finally:
        await producer.stop()
    # notify reads the topic too, and dead-letters these hand-made celebrations (they are not whole): done before
    # the next test counts what reached Kafka
    await outside.settle()


async def test_an_unsubscribe_token_switches_off_one_kind_for_the_one_person_it_was_sealed_for(
        outside: Outside, tenant_a: Org, tenant_b: Org, records: Records) -> None:
    """POST /v1/notify/unsubscribe is public: the token is the credential. One sealed under another key, or
    altered, is refused (400) and changes nothing; a genuine one for A's rep switches off e-mail for that kind for
    A's rep alone: B's rows (the same kind, the same channels) stay as they were."""
    await outside.settle()  # what earlier tests left on the topics is applied (and drained below)
    await records.new()
    settings = outside.services["notify"].replica.settings
    assert isinstance(settings, NotifySettings)
    box = settings.box()
    assert box is not None
    link = unsubscribe_link("https://attain.example", box, tenant_a.slug, tenant_a.rep, "celebration")
    token = parse_qs(urlsplit(link).query)["t"][0]
    foreign = SecretBox.from_setting(Fernet.generate_key().decode(), "TEST_KEYS").seal(
        json.dumps([tenant_b.slug, tenant_b.rep, "celebration"])).removeprefix("fernet:")
    before_b, before_all = await outside.snapshot(tenant_b.slug), await outside.snapshot()
    async with outside.client("notify") as anyone:
        for forged in (foreign, token[:-4] + "AAAA", ""):
            refused = await anyone.post("/v1/notify/unsubscribe", json={"token": forged})
            assert refused.status_code in (400, 422), refused.text
        assert await outside.snapshot() == before_all
        done = await anyone.post("/v1/notify/unsubscribe", json={"token": token})
    assert done.json() == {"person_id": tenant_a.rep, "kind": "celebration", "channels": ["webhook"]}, done.text
    assert await outside.snapshot(tenant_b.slug) == before_b
    assert [r for r in await records.new() if r.tenant == tenant_b.slug] == []
    await outside.settle()


async def test_an_oauth_callback_takes_only_a_state_its_own_tenant_made(outside: Outside, tenant_a: Org,
                                                                        tenant_b: Org, crm_of_b: str,
                                                                        records: Records) -> None:
    """`GET /v1/crm/oauth/callback/{tenant}/{crm}` is public: the one-time state an admin's authorize stored is the
    credential. A state A's admin made, sent with B's tenant (or another CRM), is refused (400) and changes nothing:
    B's client, pending authorization and connection stay as they were, and A's authorization stays A's, still
    pending. B's state sent with A's tenant is refused the same way."""
    a, b = tenant_a, tenant_b
    async with outside.client("ingest", a) as ingest:
        made = await ingest.put("/v1/crm/hubspot/oauth/client", json={"client_id": f"client-{a.tag}",
                                                                      "client_secret": f"oauth-{a.tag}"})
        assert made.status_code == 200, made.text
        started = await ingest.post("/v1/crm/hubspot/oauth/authorize")
        assert started.status_code == 200, started.text
    state = parse_qs(urlsplit(started.json()["authorization_url"]).query)["state"][0]
    await outside.settle()
    await records.new()
    before_b, before_all = await outside.snapshot(b.slug), await outside.snapshot()
    async with outside.client("ingest") as anyone:
        for tenant, crm, carried in ((b.slug, "hubspot", state), (b.slug, "pipedrive", state),
                                     (a.slug, "hubspot", crm_of_b), (a.slug, "pipedrive", crm_of_b),
                                     (b.slug, "hubspot", ""), (b.slug, "hubspot", f"{crm_of_b}x")):
            answer = await anyone.get(f"/v1/crm/oauth/callback/{tenant}/{crm}",
                                      params={"state": carried, "code": f"code-{a.tag}"})
            assert answer.status_code == 400 and "Not connected" in answer.text, (tenant, crm, answer.text)
            assert b.secret not in answer.text
    assert await outside.snapshot(b.slug) == before_b
    assert await outside.snapshot() == before_all
    async with outside.client("ingest", b) as ingest:
        mine = {c["crm"]: c for c in (await ingest.get("/v1/crm/oauth")).json()["connections"]}
    assert (mine["hubspot"]["client_id"], mine["hubspot"]["status"]) == (f"client-{b.secret}", "pending")
    assert await records.new() == []
