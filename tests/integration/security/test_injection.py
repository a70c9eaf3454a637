"""SQL in every query and path parameter: refused with a 422 naming the parameter where its format forbids the
characters, and otherwise matching nothing: no filter widens (`%` and `_` are not wildcards, `' OR '1'='1`
matches nothing although the caller has rows every wildcard would match), no row of any tenant changes, no
table is dropped. SQL in body fields and stored text: `test_injection_bodies.py`.

The parameters are read from each service's app: a parameter added later without a case here fails
`test_every_parameter_of_every_route_has_a_case`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.ingest.webhooks import UNPROVEN
from services.kpi.dashboard.pages import csrf_token
from tests.integration.security.injections import INJECTIONS, NUL
from tests.integration.security.outside import Org, Outside
from tests.integration.security.records import Records
from tests.integration.security.routes import SPECS, app_of, routes

Check = Callable[[httpx.Response, Org], None]


def empty(key: str | None) -> Check:
    """200 and nothing at `key` (the whole answer when None): the filter matched no row of the caller's."""
    def check(r: httpx.Response, a: Org) -> None:
        assert r.status_code == 200, r.text
        found = r.json() if key is None else r.json()[key]
        assert found in ([], {}), r.text
    return check


def missing(r: httpx.Response, a: Org) -> None:
    assert r.status_code == 404, r.text


def typed(name: str) -> Check:
    """422 naming the parameter: its format forbids the value."""
    def check(r: httpx.Response, a: Org) -> None:
        assert r.status_code == 422 and name in r.text, r.text
    return check


def no_rep_listed(r: httpx.Response, a: Org) -> None:
    assert r.status_code == 200 and a.name not in r.text and a.rep not in r.text, r.text


def no_csv_rows(r: httpx.Response, a: Org) -> None:
    assert r.status_code == 200 and len(r.text.splitlines()) == 1, r.text


def no_tasks(r: httpx.Response, a: Org) -> None:
    assert r.status_code == 200 and r.json()["tasks"] == 0, r.text


def unproven(r: httpx.Response, a: Org) -> None:
    assert (r.status_code, r.json()) == (401, {"detail": UNPROVEN})


def own_page(r: httpx.Response, a: Org) -> None:
    """200: A's own page as it is without the parameter (the value picks among A's own ids, and matches none)."""
    assert r.status_code == 200 and 'id="main"' in r.text and "went wrong" not in r.text, r.text[:300]


def refused_back(r: httpx.Response, a: Org) -> None:
    """303 back to the control-room page saying the owning service refused (found no such object of A's)."""
    assert r.status_code == 303 and "error=" in r.headers.get("location", ""), (r.status_code, r.headers)


def shown(r: httpx.Response, a: Org) -> None:
    """200: a page that only shows what it was given (the unsubscribe page's button; nothing is looked up)."""
    assert r.status_code == 200 and a.secret not in r.text, r.text[:300]


def not_connected(r: httpx.Response, a: Org) -> None:
    """400: the OAuth callback's page saying the authorization is unknown (no state of that tenant matches)."""
    assert r.status_code == 400 and "Not connected" in r.text and a.secret not in r.text, r.text[:300]


def sign_in_refused(r: httpx.Response, a: Org) -> None:
    """400: the sign-in page saying why single sign-on could not go on; no cookie of a session."""
    assert r.status_code == 400 and "attain_dashboard=" not in r.headers.get("set-cookie", ""), r.text[:300]


@dataclass(frozen=True)
class Param:
    service: str
    method: str
    route: str
    name: str
    check: Check  # what A's request gets with an injection in this parameter (the others valid)
    where: str = "query"

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.route} {self.name}"


def _routes_params(service: str, method: str, route: str, *params: tuple[str, Check, str]) -> list[Param]:
    return [Param(service, method, route, name, check, where) for name, check, where in params]


Q, P = "query", "path"
# The control room's CRM forms, each under /admin/crm/{crm}/ (issue 21: the OAuth client and connection, the users
# sync and mode, the backfill)
CRM_FORMS = ("secret", "stages", "users", "map", "oauth/client", "oauth/connect", "oauth/disconnect", "users/sync",
             "users/mode", "backfill", "backfill/resume")
PARAMS = [
    *_routes_params("kpi", "GET", "/v1/scorecards/{rep_id}", ("rep_id", missing, P), ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/v1/teams/{team_id}/scorecard", ("team_id", missing, P),
                    ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/v1/leaderboard", ("period", typed("period"), Q), ("metric", typed("metric"), Q),
                    ("team_id", empty("standings"), Q), ("limit", typed("limit"), Q), ("cursor", typed("cursor"), Q),
                    ("rank_by", typed("rank_by"), Q)),
    *_routes_params("kpi", "GET", "/v1/leaderboard/teams", ("period", typed("period"), Q),
                    ("metric", typed("metric"), Q), ("rank_by", typed("rank_by"), Q)),
    *_routes_params("kpi", "GET", "/v1/scorecards/{rep_id}/contributions", ("rep_id", empty(None), P),
                    ("metric", typed("metric"), Q), ("period", typed("period"), Q), ("limit", typed("limit"), Q)),
    *_routes_params("kpi", "GET", "/leaderboard", ("period", typed("period"), Q), ("metric", typed("metric"), Q),
                    ("team", no_rep_listed, Q), ("rank_by", typed("rank_by"), Q)),
    *_routes_params("kpi", "GET", "/leaderboard.csv", ("period", typed("period"), Q), ("metric", typed("metric"), Q),
                    ("team", no_csv_rows, Q), ("rank_by", typed("rank_by"), Q)),
    *_routes_params("kpi", "GET", "/coaching-effect", ("by", typed("by"), Q), ("since", typed("since"), Q),
                    ("until", typed("until"), Q)),
    *_routes_params("kpi", "GET", "/reps/{rep_id}", ("rep_id", missing, P), ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/teams", ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/teams/{team_id}", ("team_id", missing, P), ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/tv", ("every", typed("every"), Q)),
    *_routes_params("kpi", "GET", "/v1/scorecards/{rep_id}/forecast", ("rep_id", empty("deals"), P),
                    ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/v1/teams/{team_id}/forecast", ("team_id", empty("deals"), P),
                    ("period", typed("period"), Q)),
    *_routes_params("kpi", "GET", "/v1/contests", ("status", typed("status"), Q)),
    *_routes_params("kpi", "GET", "/v1/contests/{contest_id}", ("contest_id", typed("contest_id"), P)),
    *_routes_params("kpi", "PUT", "/v1/contests/{contest_id}", ("contest_id", typed("contest_id"), P)),
    *_routes_params("kpi", "DELETE", "/v1/contests/{contest_id}", ("contest_id", typed("contest_id"), P)),
    *_routes_params("kpi", "PUT", "/v1/kpis/{kpi_id}", ("kpi_id", typed("kpi_id"), P)),
    *_routes_params("kpi", "DELETE", "/v1/kpis/{kpi_id}", ("kpi_id", typed("kpi_id"), P)),
    *_routes_params("kpi", "GET", "/contests/{contest_id}", ("contest_id", missing, P)),
    *_routes_params("kpi", "GET", "/tv/share/{link}", ("link", missing, P)),  # only a signed link reaches SQL
    *_routes_params("coaching", "GET", "/v1/tasks", ("rep_id", empty("tasks"), Q), ("status", typed("status"), Q),
                    ("manager_id", empty("tasks"), Q), ("limit", typed("limit"), Q), ("cursor", typed("cursor"), Q)),
    *_routes_params("coaching", "GET", "/v1/tasks/{task_id}", ("task_id", missing, P)),
    *_routes_params("coaching", "POST", "/v1/tasks/{task_id}/ack", ("task_id", missing, P)),
    *_routes_params("coaching", "POST", "/v1/tasks/{task_id}/complete", ("task_id", missing, P)),
    *_routes_params("coaching", "GET", "/v1/action-plans", ("rep_id", empty("action_plans"), Q),
                    ("status", typed("status"), Q)),
    *_routes_params("coaching", "GET", "/v1/action-plans/{plan_id}", ("plan_id", typed("plan_id"), P)),
    *_routes_params("coaching", "DELETE", "/v1/holidays/{day}", ("day", typed("day"), P)),
    *_routes_params("coaching", "GET", "/v1/holidays", ("year", typed("year"), Q)),
    *_routes_params("coaching", "GET", "/v1/effectiveness", ("by", typed("by"), Q), ("since", typed("since"), Q),
                    ("until", typed("until"), Q), ("min_sample", typed("min_sample"), Q)),
    *_routes_params("coaching", "GET", "/v1/reps/{rep_id}/time-off", ("rep_id", empty("time_off"), P)),
    *_routes_params("coaching", "GET", "/v1/policies/teams/{team_id}", ("team_id", empty("overrides"), P)),
    *_routes_params("coaching", "PUT", "/v1/catalogue/{rule}", ("rule", missing, P)),
    *_routes_params("coaching", "GET", "/v1/managers/{manager_id}/scorecard", ("manager_id", no_tasks, P),
                    ("period", typed("period"), Q)),
    *_routes_params("coaching", "GET", "/v1/reviews", ("scope_id", empty("reviews"), Q),
                    ("week", empty("reviews"), Q), ("limit", typed("limit"), Q)),
    *_routes_params("recognition", "GET", "/v1/celebrations", ("scope_id", empty("celebrations"), Q),
                    ("period", empty("celebrations"), Q), ("limit", typed("limit"), Q),
                    ("before", typed("before"), Q)),
    *_routes_params("recognition", "GET", "/v1/reps/{rep_id}/trophies", ("rep_id", empty("trophies"), P)),
    *_routes_params("ingest", "GET", "/v1/crm/{crm}/stages", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "PUT", "/v1/crm/{crm}/stages", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "GET", "/v1/crm/{crm}/users", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "GET", "/v1/crm/{crm}/properties", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "PUT", "/v1/crm/{crm}/properties", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "PUT", "/v1/crm/{crm}/users", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "GET", "/v1/crm/dead-letters", ("crm", typed("crm"), Q), ("status", typed("status"), Q),
                    ("limit", typed("limit"), Q)),
    *_routes_params("ingest", "POST", "/v1/webhooks/{crm}/{tenant}", ("crm", typed("crm"), P),
                    ("tenant", unproven, P)),
    *_routes_params("ingest", "DELETE", "/v1/tokens/{token_id}", ("token_id", missing, P)),
    *_routes_params("ingest", "POST", "/v1/tokens/{token_id}/rotate", ("token_id", missing, P)),
    # the dashboard's check-in forms hand the id to coaching, which answers as its own routes do
    *_routes_params("kpi", "POST", "/check-ins/{task_id}/ack", ("task_id", missing, P)),
    *_routes_params("kpi", "POST", "/check-ins/{task_id}/complete", ("task_id", missing, P)),
    *_routes_params("kpi", "POST", "/check-ins/{task_id}/plan", ("task_id", typed("task_id"), P)),
    # issue 17: ingest's calendar, CRM connection and single sign-on
    *_routes_params("ingest", "GET", "/v1/calendar", ("year", typed("year"), Q)),
    *_routes_params("ingest", "POST", "/v1/calendar/days", ("year", typed("year"), Q)),
    *_routes_params("ingest", "DELETE", "/v1/calendar/days/{day}", ("day", typed("day"), P),
                    ("year", typed("year"), Q)),
    *_routes_params("ingest", "PUT", "/v1/crm/{crm}/secret", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "GET", "/v1/crm/{crm}/connection", ("crm", typed("crm"), P)),
    *_routes_params("ingest", "GET", "/v1/sso/{tenant}/client", ("tenant", missing, P)),  # public: no such tenant
    # issue 21: the CRM's users, its OAuth connection and its backfill (the CRM is a literal)
    *(p for method, route in (("GET", "/v1/crm/{crm}/users/proposal"), ("POST", "/v1/crm/{crm}/users/sync"),
                              ("GET", "/v1/crm/{crm}/user-mapping-mode"), ("PUT", "/v1/crm/{crm}/user-mapping-mode"),
                              ("PUT", "/v1/crm/{crm}/oauth/client"), ("POST", "/v1/crm/{crm}/oauth/authorize"),
                              ("POST", "/v1/crm/{crm}/backfill"), ("GET", "/v1/crm/{crm}/backfill"))
      for p in _routes_params("ingest", method, route, ("crm", typed("crm"), P))),
    *_routes_params("ingest", "DELETE", "/v1/crm/{crm}/oauth", ("crm", typed("crm"), P),
                    ("forget_client", typed("forget_client"), Q)),
    # the OAuth callback is public: no state of the path's tenant matches, whatever the tenant, state or code
    *_routes_params("ingest", "GET", "/v1/crm/oauth/callback/{tenant}/{crm}", ("tenant", not_connected, P),
                    ("crm", typed("crm"), P), ("state", not_connected, Q), ("code", not_connected, Q),
                    ("error", not_connected, Q), ("error_description", not_connected, Q)),
    # kpi's audit log
    *_routes_params("kpi", "GET", "/v1/audit", ("subject", empty("entries"), Q), ("action", empty("entries"), Q),
                    ("actor", empty("entries"), Q), ("since", typed("since"), Q), ("until", typed("until"), Q),
                    ("limit", typed("limit"), Q), ("before_seq", typed("before_seq"), Q)),
    # the control room: its pages choose among A's own, its forms hand the value to the owning service
    *_routes_params("kpi", "GET", "/admin/calendar", ("rep", own_page, Q), ("year", typed("year"), Q)),
    *_routes_params("kpi", "GET", "/admin/roster", ("rep", own_page, Q), ("team", own_page, Q)),
    *_routes_params("kpi", "GET", "/admin/coaching", ("team", own_page, Q)),
    *_routes_params("kpi", "GET", "/admin/crm", ("crm", typed("crm"), Q), ("propose", typed("propose"), Q)),
    *_routes_params("kpi", "GET", "/admin/targets", ("period", typed("period"), Q)),
    *_routes_params("kpi", "POST", "/admin/coaching/playbooks/{rule}", ("rule", refused_back, P)),
    *(p for action in CRM_FORMS
      for p in _routes_params("kpi", "POST", f"/admin/crm/{{crm}}/{action}", ("crm", typed("crm"), P))),
    *_routes_params("kpi", "POST", "/admin/people/tokens/{token_id}/revoke", ("token_id", refused_back, P)),
    *_routes_params("kpi", "POST", "/admin/people/tokens/{token_id}/rotate", ("token_id", refused_back, P)),
    # single sign-on's public start and return: A has no single sign-on, and no flow was started
    *_routes_params("kpi", "GET", "/signin/sso", ("tenant", sign_in_refused, Q), ("next", sign_in_refused, Q)),
    *_routes_params("kpi", "GET", "/signin/sso/callback", ("code", sign_in_refused, Q),
                    ("state", sign_in_refused, Q), ("error", sign_in_refused, Q),
                    ("error_description", sign_in_refused, Q)),
    # notify (issue 19): ids of A's own people and teams, or nothing; its enum and number typed
    *_routes_params("notify", "GET", "/v1/notify/deliveries", ("status", typed("status"), Q),
                    ("limit", typed("limit"), Q)),
    *_routes_params("notify", "DELETE", "/v1/notify/teams/{team_id}", ("team_id", missing, P)),
    *_routes_params("notify", "GET", "/v1/notify/preferences/{person_id}", ("person_id", missing, P)),
    *_routes_params("notify", "PUT", "/v1/notify/preferences/{person_id}", ("person_id", missing, P)),
    # kpi's notification pages: a team's form with nothing typed changes nothing; the unsubscribe page shows its
    # button for whatever token it is given (notify opens the token when the button posts it)
    *_routes_params("kpi", "POST", "/admin/notifications/teams/{team_id}", ("team_id", refused_back, P)),
    *_routes_params("kpi", "GET", "/unsubscribe", ("t", shown, Q)),
]
# Parameters that write what they are given into the caller's own scope: test_injection_bodies.py stores
# SQL through them and reads it back.
STORED = {("coaching", "PUT", "/v1/policies/teams/{team_id}", "team_id"),
          ("notify", "PUT", "/v1/notify/teams/{team_id}", "team_id")}  # a team's channels, before the roster has it
# Parameters that reach no database (the dashboard's static files, the sign-in form's next page).
INERT = {("kpi", "GET", "/static/{name}", "name"), ("kpi", "GET", "/signin", "next"),
         ("coaching", "POST", "/v1/reps/{rep_id}/time-off", "rep_id")}  # gone (410): time off is an event


def test_every_parameter_of_every_route_has_a_case() -> None:
    """Every query and path parameter of the five services is a case here, stored, or inert."""
    for name in SPECS:
        declared = {(name, r.method, r.path, alias) for r in routes(app_of(name))
                    for alias in (*r.parameters(Q), *r.parameters(P))}
        cased = {(p.service, p.method, p.route, p.name) for p in PARAMS if p.service == name}
        assert declared == cased | {s for s in STORED | INERT if s[0] == name}, name


def _valid(a: Org, quarter: str, route: str) -> dict[str, str]:
    """A value for every parameter, one that matches A's data, so only the one under test is wrong."""
    return {"rep_id": a.laggard if route == "/v1/tasks" else a.rep, "team_id": a.team, "team": a.team,
            "manager_id": a.manager, "period": quarter,
            "metric": "won_revenue", "limit": "10", "status": "open", "task_id": a.task_id, "plan_id": a.plan_id,
            "day": a.holiday.isoformat(), "rule": "behind_pace", "crm": "hubspot", "tenant": a.slug,
            "scope_id": a.team if route == "/v1/reviews" else a.rep, "week": "2026-W47", "every": "20",
            "token_id": "initial", "contest_id": f"c-{a.tag}", "kpi_id": f"k_{a.tag}",
            "year": str(a.holiday.year), "rep": a.rep, "next": "/leaderboard", "code": "code", "state": "state",
            "error": "", "error_description": "", "since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z",
            "before_seq": "1000000", "person_id": a.rep, "t": "", "forget_client": "false", "propose": "false"}


def _request(param: Param, value: str, a: Org, quarter: str) -> tuple[str, dict[str, str]]:
    """The path and query of `param`'s route with `value` in the parameter and A's own values in the others
    (so that, but for the one under test, the filters would find A's rows)."""
    route = next(r for r in routes(app_of(param.service)) if r.method == param.method and r.path == param.route)
    valid = _valid(a, quarter, param.route)
    path = param.route
    for alias in route.parameters(P):
        path = path.replace("{" + alias + "}", quote(value if alias == param.name else valid[alias], safe=""))
    query = {alias: value if alias == param.name else valid[alias] for alias in route.parameters(Q)
             if alias == param.name or alias in valid}
    return path, query


BODIES: dict[tuple[str, str], Any] = {  # a valid body where the route needs one, so the parameter decides
    ("coaching", "/v1/tasks/{task_id}/complete"): {"outcome": "held"},
    ("coaching", "/v1/catalogue/{rule}"): {"suggested_actions": ["call"], "training": []},
    ("ingest", "/v1/crm/{crm}/stages"): {}, ("ingest", "/v1/crm/{crm}/users"): {},
    ("ingest", "/v1/crm/{crm}/properties"): {"properties": []},
    ("kpi", "/v1/kpis/{kpi_id}"): {"name": "k", "source": "deals"},
    ("kpi", "/v1/contests/{contest_id}"): {"name": "c", "metric": "won_revenue", "participants": "reps",
                                           "participant_ids": ["r"], "starts": "2026-01-01", "ends": "2027-01-01"},
    ("ingest", "/v1/tokens/{token_id}/rotate"): {"grace_hours": 1},
    ("ingest", "/v1/calendar/days"): {"day": "2027-12-24", "name": "Christmas Eve"},
    ("ingest", "/v1/crm/{crm}/secret"): {"secret": "never-stored"},
    ("ingest", "/v1/crm/{crm}/user-mapping-mode"): {"mode": "manual"},
    ("ingest", "/v1/crm/{crm}/oauth/client"): {"client_id": "never-stored"},
    ("ingest", "/v1/crm/{crm}/backfill"): {},
    ("notify", "/v1/notify/preferences/{person_id}"): {"daily_cap": 3}}
# The dashboard's forms: sent as a form, with the session's form token.
FORMS: dict[tuple[str, str], Callable[[Org], dict[str, str]]] = {
    ("kpi", route): lambda a: {"csrf": csrf_token(a.token), "next": "/check-ins", "outcome": "held"}
    for route in ("/check-ins/{task_id}/ack", "/check-ins/{task_id}/complete", "/check-ins/{task_id}/plan")} | {
    ("kpi", route): lambda a: {"csrf": csrf_token(a.token), "grace_hours": "1", "suggested_actions": "call"}
    for route in ("/admin/coaching/playbooks/{rule}", "/admin/notifications/teams/{team_id}",
                  "/admin/people/tokens/{token_id}/revoke",
                  "/admin/people/tokens/{token_id}/rotate", *(f"/admin/crm/{{crm}}/{action}"
                                                             for action in CRM_FORMS))}


async def _send(client: httpx.AsyncClient, param: Param, path: str, query: dict[str, str], a: Org) -> httpx.Response:
    form = FORMS.get((param.service, param.route))
    if form is not None:
        return await client.request(param.method, path, params=query, data=form(a))
    body = BODIES.get((param.service, param.route))
    return await client.request(param.method, path, params=query,
                                json=body if param.method in ("POST", "PUT") else None)


@pytest.mark.parametrize("param", PARAMS, ids=str)
async def test_sql_in_a_parameter_matches_nothing_and_changes_nothing(outside: Outside, tenant_a: Org, records: Records,
                                                                      param: Param) -> None:
    """Each SQL fragment and LIKE wildcard in the parameter: the answer its format or its filter gives (422
    naming it, 404, or nothing of A's although A has rows every wildcard would match), and no row of any
    tenant changes."""
    before = await outside.snapshot()
    async with outside.client(param.service, tenant_a) as client:
        for value in INJECTIONS:
            path, query = _request(param, value, tenant_a, outside.quarter)
            answer = await _send(client, param, path, query, tenant_a)
            param.check(answer, tenant_a)
    assert await outside.snapshot() == before
    assert await records.new() == []
    assert await outside.table_names() == outside.initial_tables


@pytest.mark.parametrize("service", SPECS)
async def test_a_nul_in_a_parameter_is_a_client_error(outside: Outside, tenant_a: Org, records: Records,
                                                     service: str) -> None:
    """A NUL can be in no stored id (PostgreSQL text holds none): every parameter with one gets a 4xx or
    matches nothing, never a 500."""
    before = await outside.snapshot()
    failures = []
    async with outside.client(service, tenant_a) as client:
        for param in (p for p in PARAMS if p.service == service):
            path, query = _request(param, NUL, tenant_a, outside.quarter)
            answer = await _send(client, param, path, query, tenant_a)
            if answer.status_code >= 500 or (answer.status_code == 200 and tenant_a.secret in answer.text):
                failures.append(f"{param}: {answer.status_code} {answer.text[:80]}")
    assert failures == []
    assert await outside.snapshot() == before
    assert await records.new() == []


async def test_signing_in_with_a_bogus_code_or_tenant_is_a_client_error(outside: Outside, tenant_a: Org,
                                                                        records: Records) -> None:
    """`POST /v1/sessions` is public: for a tenant without single sign-on (A's), one that does not exist, or
    SQL, a LIKE wildcard or a NUL as the tenant or the code, a 4xx, and nothing written or published."""
    before = await outside.snapshot()
    async with outside.client("ingest") as client:
        for tenant, code in [(tenant_a.slug, "bogus"), ("no-such-tenant", "bogus"), (tenant_a.slug, NUL),
                             *((v, "bogus") for v in (*INJECTIONS, NUL)), *((tenant_a.slug, v) for v in INJECTIONS)]:
            answer = await client.post("/v1/sessions", json={
                "tenant": tenant, "code": code, "code_verifier": "v" * 43, "redirect_uri": "http://127.0.0.1/cb",
                "nonce": "n" * 16})
            assert 400 <= answer.status_code < 500, (tenant, code, answer.status_code, answer.text)
            assert tenant_a.secret not in answer.text
    assert await outside.snapshot() == before
    assert await records.new() == []
