"""The role matrix, from outside: every route of every service x every role x the caller's own object and
another's, each with the status the contract's roles give it (docs/contract.md, "Tokens and roles").

The routes come from the services' apps themselves (tests/integration/security/routes.py): a route added
without a row here, or without an access decision (`shared.authz`: the roles it admits, or `public`), fails
`test_every_route_has_a_decision_and_a_row`. Each row is written by hand from the contract's table, not
derived from the code under test, and the roles a route declares must be exactly those the row admits.

The tenant: ana and bo report to mia, cy to zed; a `rep` token is ana's, a `manager` token mia's. "Own" is
ana for the rep, bo for the manager; "other" is cy. Expected answers: `OK` (anything but 401/403, and 404
only where an admin also gets 404), `403`, or `404` (an object the caller may not learn exists). A route about
the caller's own person (`/me`) admits roles whose tokens here speak for no person (the tenant's admin token,
an integration's): those are the row's `nobody`, and they get `nobody_status`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.kpi.dashboard.pages import csrf_token
from shared.events import ROLES
from tests.factories import deal, rep, target, this_quarter
from tests.integration.conftest import Tenant, check_ins_from_day_one, create_tenant, post, token_cli
from tests.integration.security.routes import SPECS, access, app_of, routes

OK, FORBIDDEN, HIDDEN, PUBLIC = "ok", 403, 404, "public"
ALL = dict.fromkeys(ROLES, (OK, OK))
PEOPLE = {"admin": (OK, OK), "integration": (OK, OK), "manager": (OK, HIDDEN), "rep": (OK, HIDDEN),
          "viewer": (FORBIDDEN, FORBIDDEN)}


def only(*roles: str) -> dict[str, tuple[Any, Any]]:
    return {r: (OK, OK) if r in roles else (FORBIDDEN, FORBIDDEN) for r in ROLES}


ACT = {"admin": (OK, OK), "integration": (FORBIDDEN, FORBIDDEN), "manager": (OK, HIDDEN), "rep": (OK, HIDDEN),
       "viewer": (FORBIDDEN, FORBIDDEN)}
PLAN = {"admin": (OK, OK), "integration": (FORBIDDEN, FORBIDDEN), "manager": (OK, HIDDEN),
        "rep": (FORBIDDEN, FORBIDDEN), "viewer": (FORBIDDEN, FORBIDDEN)}
COACH = only("admin", "integration", "manager")
MANAGER_CARD = {"admin": (OK, OK), "integration": (OK, OK), "manager": (OK, HIDDEN),
                "rep": (FORBIDDEN, FORBIDDEN), "viewer": (FORBIDDEN, FORBIDDEN)}
# a person's own: a rep's or a manager's token (no own or other: the token names the person)
OWN_PERSON = {"admin": (HIDDEN, HIDDEN), "integration": (HIDDEN, HIDDEN), "manager": (OK, OK), "rep": (OK, OK),
              "viewer": (FORBIDDEN, FORBIDDEN)}
OWN_PAGE = {"admin": (FORBIDDEN, FORBIDDEN), "integration": (FORBIDDEN, FORBIDDEN), "manager": (OK, OK),
            "rep": (OK, OK), "viewer": (FORBIDDEN, FORBIDDEN)}


@dataclass
class World:
    """The tenant, a token per role, and the objects each role's requests name."""

    tenant: Tenant
    quarter: str
    tokens: dict[str, str]
    tasks: dict[str, str]  # rep -> one of their check-ins
    plans: dict[str, str]  # rep -> one of their action plans
    spare_tokens: list[str] = field(default_factory=list)  # ids an admin may revoke or rotate

    def own_rep(self, role: str) -> str:
        return "bo" if role == "manager" else "ana"


Target = Callable[[World, str, bool], str]  # (world, role, own?) -> the path with its query


def rep_path(template: str) -> Target:
    return lambda w, role, own: template.format(rep=w.own_rep(role) if own else "cy", q=w.quarter)


def task_path(template: str) -> Target:
    return lambda w, role, own: template.format(task=w.tasks[w.own_rep(role) if own else "cy"])


def plan_path(template: str) -> Target:
    return lambda w, role, own: template.format(plan=w.plans[w.own_rep(role) if own else "cy"])


def fixed(path: str) -> Target:
    return lambda w, role, own: path.format(q=w.quarter)


def spare_token(template: str) -> Target:
    return lambda w, role, own: template.format(token=w.spare_tokens.pop() if role == "admin" else "nope")


@dataclass(frozen=True)
class Row:
    expect: dict[str, tuple[Any, Any]] | str
    target: Target | None = None
    body: Callable[[World, str, bool], Any] | None = None
    cookie: bool = False  # the dashboard: the token in its session cookie
    stream: bool = False
    nobody: tuple[str, ...] = ()  # roles the route admits whose tokens here speak for no person (`expect` says what)


def _later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


MATRIX: dict[tuple[str, str, str], Row] = {
    # ingest
    ("ingest", "POST", "/v1/events"): Row(only("admin", "integration"), fixed("/v1/events"),
                                          lambda w, role, own: [rep("dan", manager="zed", team="t2")]),
    ("ingest", "POST", "/v1/webhooks/{crm}/{tenant}"): Row(PUBLIC),
    ("ingest", "GET", "/v1/crm/{crm}/stages"): Row(only("admin", "integration"), fixed("/v1/crm/hubspot/stages")),
    ("ingest", "PUT", "/v1/crm/{crm}/stages"): Row(only("admin"), fixed("/v1/crm/hubspot/stages"),
                                                   lambda w, role, own: {}),
    ("ingest", "GET", "/v1/crm/{crm}/users"): Row(only("admin", "integration"), fixed("/v1/crm/hubspot/users")),
    ("ingest", "PUT", "/v1/crm/{crm}/users"): Row(only("admin"), fixed("/v1/crm/hubspot/users"),
                                                  lambda w, role, own: {}),
    ("ingest", "GET", "/v1/crm/{crm}/properties"): Row(only("admin", "integration"),
                                                       fixed("/v1/crm/hubspot/properties")),
    ("ingest", "PUT", "/v1/crm/{crm}/properties"): Row(only("admin"), fixed("/v1/crm/hubspot/properties"),
                                                       lambda w, role, own: {"properties": []}),
    ("ingest", "GET", "/v1/crm/dead-letters"): Row(only("admin", "integration"), fixed("/v1/crm/dead-letters")),
    ("ingest", "GET", "/v1/tokens"): Row(only("admin"), fixed("/v1/tokens")),
    ("ingest", "POST", "/v1/tokens"): Row(only("admin"), fixed("/v1/tokens"),
                                          lambda w, role, own: {"role": "viewer", "name": "matrix"}),
    ("ingest", "POST", "/v1/tokens/share"): Row(only("admin"), fixed("/v1/tokens/share"),
                                                lambda w, role, own: {"name": "matrix TV"}),
    ("ingest", "DELETE", "/v1/tokens/{token_id}"): Row(only("admin"), spare_token("/v1/tokens/{token}")),
    ("ingest", "POST", "/v1/tokens/{token_id}/rotate"): Row(only("admin"), spare_token("/v1/tokens/{token}/rotate"),
                                                            lambda w, role, own: {"grace_hours": 0}),
    # kpi: the read API
    ("kpi", "GET", "/v1/scorecards/{rep_id}"): Row(PEOPLE, rep_path("/v1/scorecards/{rep}?period={q}")),
    ("kpi", "GET", "/v1/scorecards/{rep_id}/contributions"): Row(
        PEOPLE, rep_path("/v1/scorecards/{rep}/contributions?metric=won_revenue&period={q}")),
    ("kpi", "GET", "/v1/scorecards/{rep_id}/forecast"): Row(
        PEOPLE, rep_path("/v1/scorecards/{rep}/forecast?period={q}")),
    ("kpi", "GET", "/v1/teams/{team_id}/scorecard"): Row(ALL, fixed("/v1/teams/t2/scorecard?period={q}")),
    ("kpi", "GET", "/v1/teams/{team_id}/forecast"): Row(ALL, fixed("/v1/teams/t2/forecast?period={q}")),
    ("kpi", "GET", "/v1/leaderboard"): Row(ALL, fixed("/v1/leaderboard?period={q}")),
    ("kpi", "GET", "/v1/leaderboard/teams"): Row(ALL, fixed("/v1/leaderboard/teams?period={q}")),
    # contests: an admin defines (first row: the contest the next rows read) and cancels (last); every role reads
    ("kpi", "PUT", "/v1/contests/{contest_id}"): Row(only("admin"), fixed("/v1/contests/matrix"), lambda w, role, own: {
        "name": "Matrix", "metric": "won_revenue", "participants": "reps", "participant_ids": ["ana", "bo"],
        "starts": "2026-12-01", "ends": "2027-01-01", "prizes": ["a mug"]}),
    ("kpi", "GET", "/v1/contests"): Row(ALL, fixed("/v1/contests")),
    ("kpi", "GET", "/v1/contests/{contest_id}"): Row(ALL, fixed("/v1/contests/matrix")),
    ("kpi", "DELETE", "/v1/contests/{contest_id}"): Row(only("admin"), fixed("/v1/contests/matrix")),
    ("kpi", "PUT", "/v1/kpis/{kpi_id}"): Row(only("admin"), fixed("/v1/kpis/matrix_kpi"),
                                           lambda w, role, own: {"name": "Matrix KPI", "source": "deals"}),
    ("kpi", "GET", "/v1/kpis"): Row(ALL, fixed("/v1/kpis")),
    ("kpi", "DELETE", "/v1/kpis/{kpi_id}"): Row(only("admin"), fixed("/v1/kpis/matrix_kpi")),
    # kpi: the dashboard (its session cookie)
    ("kpi", "GET", "/signin"): Row(PUBLIC),
    ("kpi", "POST", "/signin"): Row(PUBLIC),
    ("kpi", "POST", "/signout"): Row(PUBLIC),
    ("kpi", "GET", "/static/{name}"): Row(PUBLIC),
    ("kpi", "GET", "/tv/share/{link}"): Row(PUBLIC),  # its own test: test_share_link.py
    ("kpi", "GET", "/"): Row(ALL, fixed("/"), cookie=True),
    ("kpi", "GET", "/leaderboard"): Row(ALL, fixed("/leaderboard"), cookie=True),
    ("kpi", "GET", "/contests"): Row(ALL, fixed("/contests"), cookie=True),
    ("kpi", "GET", "/contests/{contest_id}"): Row(ALL, fixed("/contests/matrix"), cookie=True),
    ("kpi", "GET", "/leaderboard.csv"): Row(ALL, fixed("/leaderboard.csv"), cookie=True),
    ("kpi", "GET", "/teams"): Row(ALL, fixed("/teams"), cookie=True),
    ("kpi", "GET", "/coaching-effect"): Row(COACH, fixed("/coaching-effect"), cookie=True),
    ("kpi", "GET", "/teams/{team_id}"): Row(ALL, fixed("/teams/t2"), cookie=True),
    ("kpi", "GET", "/tv"): Row(ALL, fixed("/tv"), cookie=True),
    ("kpi", "GET", "/dashboard/stream"): Row(ALL, fixed("/dashboard/stream"), cookie=True, stream=True),
    ("kpi", "GET", "/reps/{rep_id}"): Row(PEOPLE, rep_path("/reps/{rep}"), cookie=True),
    # the control room (issue 17, item 5): admins only
    ("kpi", "GET", "/admin"): Row(only("admin"), fixed("/admin"), cookie=True),
    # control: core rows
    ("kpi", "GET", "/admin/targets"): Row(only("admin"), fixed("/admin/targets?period={q}"), cookie=True),
    ("kpi", "POST", "/admin/targets"): Row(only("admin"), fixed("/admin/targets"), cookie=True,
                                           body=lambda w, role, own: {"period": w.quarter}),
    ("kpi", "POST", "/admin/targets/upload"): Row(only("admin"), fixed("/admin/targets/upload"), cookie=True,
                                                  body=lambda w, role, own: {"text": "not,a,targets,file"}),
    ("kpi", "POST", "/admin/targets/copy"): Row(only("admin"), fixed("/admin/targets/copy"), cookie=True,
                                                body=lambda w, role, own: {"period": "2030-Q1"}),
    ("kpi", "GET", "/admin/roster"): Row(only("admin"), fixed("/admin/roster"), cookie=True),
    ("kpi", "POST", "/admin/roster/rep"): Row(only("admin"), fixed("/admin/roster/rep"), cookie=True,
                                              body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/roster/team"): Row(only("admin"), fixed("/admin/roster/team"), cookie=True,
                                               body=lambda w, role, own: {}),
    ("kpi", "GET", "/admin/settings"): Row(only("admin"), fixed("/admin/settings"), cookie=True),
    ("kpi", "POST", "/admin/settings"): Row(only("admin"), fixed("/admin/settings"), cookie=True,
                                            body=lambda w, role, own: {}),
    ("kpi", "GET", "/admin/people"): Row(only("admin"), fixed("/admin/people"), cookie=True),
    ("kpi", "POST", "/admin/people/tokens"): Row(only("admin"), fixed("/admin/people/tokens"), cookie=True,
                                                 body=lambda w, role, own: {"role": "viewer", "name": "matrix"}),
    ("kpi", "POST", "/admin/people/share"): Row(only("admin"), fixed("/admin/people/share"), cookie=True,
                                                body=lambda w, role, own: {"name": "matrix TV"}),
    ("kpi", "POST", "/admin/people/tokens/{token_id}/revoke"): Row(
        only("admin"), fixed("/admin/people/tokens/nope/revoke"), cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/people/tokens/{token_id}/rotate"): Row(
        only("admin"), fixed("/admin/people/tokens/nope/rotate"), cookie=True,
        body=lambda w, role, own: {"grace_hours": "0"}),
    ("ingest", "GET", "/v1/settings"): Row(only("admin"), fixed("/v1/settings")),
    ("ingest", "PUT", "/v1/settings"): Row(only("admin"), fixed("/v1/settings"), lambda w, role, own: {}),
    # control: settings rows
    ("kpi", "GET", "/admin/calendar"): Row(only("admin"), fixed("/admin/calendar"), cookie=True),
    ("kpi", "POST", "/admin/calendar/holidays"): Row(only("admin"), fixed("/admin/calendar/holidays"), cookie=True,
                                                     body=lambda w, role, own: {"day": "2030-12-26",
                                                                                "name": "Matrix day"}),
    ("kpi", "POST", "/admin/calendar/holidays/remove"): Row(
        only("admin"), fixed("/admin/calendar/holidays/remove"), cookie=True,
        body=lambda w, role, own: {"day": "2030-12-26"}),
    ("kpi", "POST", "/admin/calendar/time-off"): Row(
        only("admin"), fixed("/admin/calendar/time-off"), cookie=True,
        body=lambda w, role, own: {"rep_id": "ana", "first_day": "2030-07-01", "last_day": "2030-07-02"}),
    ("kpi", "GET", "/admin/coaching"): Row(only("admin"), fixed("/admin/coaching"), cookie=True),
    ("kpi", "POST", "/admin/coaching/policy"): Row(only("admin"), fixed("/admin/coaching/policy"), cookie=True,
                                                   body=lambda w, role, own: {"pace_grace_share": "0"}),
    ("kpi", "POST", "/admin/coaching/playbooks/{rule}"): Row(
        only("admin"), fixed("/admin/coaching/playbooks/behind_pace"), cookie=True,
        body=lambda w, role, own: {"suggested_actions": "Plan the week", "training": ""}),
    ("kpi", "GET", "/admin/recognition"): Row(only("admin"), fixed("/admin/recognition"), cookie=True),
    ("kpi", "POST", "/admin/recognition"): Row(only("admin"), fixed("/admin/recognition"), cookie=True,
                                               body=lambda w, role, own: {}),
    ("kpi", "GET", "/admin/crm"): Row(only("admin"), fixed("/admin/crm"), cookie=True),
    ("kpi", "POST", "/admin/crm/{crm}/secret"): Row(only("admin"), fixed("/admin/crm/hubspot/secret"), cookie=True,
                                                    body=lambda w, role, own: {"secret": "matrix-secret"}),
    ("kpi", "POST", "/admin/crm/{crm}/stages"): Row(only("admin"), fixed("/admin/crm/hubspot/stages"), cookie=True,
                                                    body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/users"): Row(only("admin"), fixed("/admin/crm/hubspot/users"), cookie=True,
                                                   body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/map"): Row(only("admin"), fixed("/admin/crm/hubspot/map"), cookie=True,
                                                 body=lambda w, role, own: {"crm_user": "m1", "rep_id": "ana"}),
    ("ingest", "GET", "/v1/calendar"): Row(only("admin", "integration"), fixed("/v1/calendar")),
    ("ingest", "POST", "/v1/calendar/days"): Row(only("admin"), fixed("/v1/calendar/days"),
                                                 lambda w, role, own: {"day": "2030-12-24", "name": "Matrix day"}),
    ("ingest", "DELETE", "/v1/calendar/days/{day}"): Row(only("admin"), fixed("/v1/calendar/days/2030-12-24")),
    ("ingest", "GET", "/v1/crm/{crm}/connection"): Row(only("admin", "integration"),
                                                       fixed("/v1/crm/hubspot/connection")),
    ("ingest", "PUT", "/v1/crm/{crm}/secret"): Row(only("admin"), fixed("/v1/crm/hubspot/secret"),
                                                   lambda w, role, own: {"secret": "matrix-secret"}),
    # CRM connect (issue 21): users from the CRM, OAuth, backfill and reconciliation
    ("ingest", "GET", "/v1/crm/{crm}/users/proposal"): Row(only("admin"), fixed("/v1/crm/hubspot/users/proposal")),
    ("ingest", "POST", "/v1/crm/{crm}/users/sync"): Row(only("admin"), fixed("/v1/crm/hubspot/users/sync")),
    ("ingest", "GET", "/v1/crm/{crm}/user-mapping-mode"): Row(only("admin"),
                                                             fixed("/v1/crm/hubspot/user-mapping-mode")),
    ("ingest", "PUT", "/v1/crm/{crm}/user-mapping-mode"): Row(only("admin"), fixed("/v1/crm/hubspot/user-mapping-mode"),
                                                             lambda w, role, own: {"mode": "automatic"}),
    ("ingest", "PUT", "/v1/crm/{crm}/oauth/client"): Row(only("admin"), fixed("/v1/crm/pipedrive/oauth/client"),
                                                         lambda w, role, own: {"client_id": "matrix-client"}),
    ("ingest", "POST", "/v1/crm/{crm}/oauth/authorize"): Row(only("admin"), fixed("/v1/crm/pipedrive/oauth/authorize"),
                                                             lambda w, role, own: {}),
    ("ingest", "GET", "/v1/crm/oauth/callback/{tenant}/{crm}"): Row(PUBLIC),
    ("ingest", "DELETE", "/v1/crm/{crm}/oauth"): Row(only("admin"), fixed("/v1/crm/salesforce/oauth")),
    ("ingest", "GET", "/v1/crm/oauth"): Row(only("admin", "integration"), fixed("/v1/crm/oauth")),
    ("ingest", "POST", "/v1/crm/{crm}/backfill"): Row(only("admin"), fixed("/v1/crm/hubspot/backfill"),
                                                      lambda w, role, own: {}),
    ("ingest", "GET", "/v1/crm/{crm}/backfill"): Row(only("admin", "integration"), fixed("/v1/crm/hubspot/backfill")),
    ("kpi", "POST", "/admin/crm/{crm}/oauth/client"): Row(only("admin"), fixed("/admin/crm/pipedrive/oauth/client"),
                                                          cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/oauth/connect"): Row(only("admin"), fixed("/admin/crm/pipedrive/oauth/connect"),
                                                           cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/oauth/disconnect"): Row(only("admin"),
                                                              fixed("/admin/crm/salesforce/oauth/disconnect"),
                                                              cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/users/sync"): Row(only("admin"), fixed("/admin/crm/hubspot/users/sync"),
                                                       cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/users/mode"): Row(only("admin"), fixed("/admin/crm/hubspot/users/mode"),
                                                       cookie=True, body=lambda w, role, own: {"mode": "automatic"}),
    ("kpi", "POST", "/admin/crm/{crm}/backfill"): Row(only("admin"), fixed("/admin/crm/hubspot/backfill"),
                                                     cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/crm/{crm}/backfill/resume"): Row(only("admin"),
                                                            fixed("/admin/crm/hubspot/backfill/resume"),
                                                            cookie=True, body=lambda w, role, own: {}),
    # control: audit rows
    ("kpi", "GET", "/admin/audit"): Row(only("admin"), fixed("/admin/audit"), cookie=True),
    ("kpi", "GET", "/v1/audit"): Row(only("admin"), fixed("/v1/audit")),
    # sso rows
    ("ingest", "GET", "/v1/sso"): Row(only("admin"), fixed("/v1/sso")),
    ("ingest", "PUT", "/v1/sso"): Row(only("admin"), fixed("/v1/sso"), lambda w, role, own: {}),
    ("ingest", "DELETE", "/v1/sso"): Row(only("admin"), fixed("/v1/sso")),
    # public: where a browser signs in (no secret), and a code the provider itself must vouch for
    ("ingest", "GET", "/v1/sso/{tenant}/client"): Row(PUBLIC),
    ("ingest", "POST", "/v1/sessions"): Row(PUBLIC),
    # the caller's own session token, whatever its role (a token not made at sign-in: 404)
    ("ingest", "POST", "/v1/sessions/refresh"): Row(ALL, fixed("/v1/sessions/refresh")),
    ("ingest", "DELETE", "/v1/sessions/current"): Row(ALL, fixed("/v1/sessions/current")),
    # public: sign-in's first step and the provider's return (state checked against the browser's own cookie)
    ("kpi", "GET", "/signin/sso"): Row(PUBLIC),
    ("kpi", "GET", "/signin/sso/callback"): Row(PUBLIC),
    ("kpi", "GET", "/check-ins"): Row(only("admin", "integration", "manager", "rep"), fixed("/check-ins"),
                                      cookie=True),
    ("kpi", "POST", "/check-ins/{task_id}/ack"): Row(ACT, task_path("/check-ins/{task}/ack"), cookie=True,
                                                     body=lambda w, role, own: {}),
    ("kpi", "POST", "/check-ins/{task_id}/complete"): Row(ACT, task_path("/check-ins/{task}/complete"), cookie=True,
                                                          body=lambda w, role, own: {"outcome": "agreed a plan"}),
    ("kpi", "POST", "/check-ins/{task_id}/plan"): Row(PLAN, task_path("/check-ins/{task}/plan"), cookie=True,
                                                      body=lambda w, role, own: {}),
    # coaching
    ("coaching", "GET", "/v1/tasks"): Row(PEOPLE, rep_path("/v1/tasks?rep_id={rep}")),
    ("coaching", "GET", "/v1/tasks/{task_id}"): Row(PEOPLE, task_path("/v1/tasks/{task}")),
    ("coaching", "POST", "/v1/tasks/{task_id}/ack"): Row(ACT, task_path("/v1/tasks/{task}/ack")),
    ("coaching", "POST", "/v1/tasks/{task_id}/complete"): Row(ACT, task_path("/v1/tasks/{task}/complete"),
                                                              lambda w, role, own: {"outcome": "talked it over"}),
    ("coaching", "GET", "/v1/action-plans"): Row(PEOPLE, rep_path("/v1/action-plans?rep_id={rep}")),
    ("coaching", "GET", "/v1/action-plans/{plan_id}"): Row(PEOPLE, plan_path("/v1/action-plans/{plan}")),
    ("coaching", "POST", "/v1/action-plans"): Row(
        PLAN, fixed("/v1/action-plans"),
        lambda w, role, own: {"rep_id": w.own_rep(role) if own else "cy",
                              "steps": [{"metric": "calls", "target": "5", "due_at": _later(7)}]}),
    ("coaching", "GET", "/v1/holidays"): Row(COACH, fixed("/v1/holidays")),
    ("coaching", "GET", "/v1/effectiveness"): Row(COACH, fixed("/v1/effectiveness")),
    ("coaching", "POST", "/v1/holidays"): Row(only("admin"), fixed("/v1/holidays"),
                                              lambda w, role, own: {"day": "2030-12-25", "name": "Christmas"}),
    ("coaching", "DELETE", "/v1/holidays/{day}"): Row(only("admin"), fixed("/v1/holidays/2030-12-25")),
    ("coaching", "GET", "/v1/reps/{rep_id}/time-off"): Row(PEOPLE, rep_path("/v1/reps/{rep}/time-off")),
    ("coaching", "POST", "/v1/reps/{rep_id}/time-off"): Row(
        only("admin"), rep_path("/v1/reps/{rep}/time-off"),
        lambda w, role, own: {"first_day": "2030-07-01", "last_day": "2030-07-05"}),
    ("coaching", "GET", "/v1/policies"): Row(only("admin", "integration"), fixed("/v1/policies")),
    ("coaching", "PUT", "/v1/policies"): Row(only("admin"), fixed("/v1/policies"), lambda w, role, own: {}),
    ("coaching", "GET", "/v1/policies/teams/{team_id}"): Row(only("admin", "integration"),
                                                             fixed("/v1/policies/teams/t2")),
    ("coaching", "PUT", "/v1/policies/teams/{team_id}"): Row(only("admin"), fixed("/v1/policies/teams/t2"),
                                                             lambda w, role, own: {}),
    ("coaching", "GET", "/v1/catalogue"): Row(COACH, fixed("/v1/catalogue")),
    ("coaching", "PUT", "/v1/catalogue/{rule}"): Row(
        only("admin"), fixed("/v1/catalogue/behind_pace"),
        lambda w, role, own: {"suggested_actions": ["Plan the week"], "training": []}),
    ("coaching", "GET", "/v1/managers/{manager_id}/scorecard"): Row(
        MANAGER_CARD, lambda w, role, own: f"/v1/managers/{'mia' if own else 'zed'}/scorecard"),
    ("coaching", "GET", "/v1/reviews"): Row(COACH, fixed("/v1/reviews")),
    # recognition
    ("recognition", "GET", "/v1/celebrations"): Row(ALL, fixed("/v1/celebrations")),
    ("recognition", "GET", "/v1/reps/{rep_id}/trophies"): Row(ALL, rep_path("/v1/reps/{rep}/trophies")),
    ("recognition", "GET", "/v1/recognition/settings"): Row(only("admin", "integration"),
                                                            fixed("/v1/recognition/settings")),
    ("recognition", "PUT", "/v1/recognition/settings"): Row(only("admin"), fixed("/v1/recognition/settings"),
                                                            lambda w, role, own: {}),
    # notify (issue 19): admins set channels and fix deliveries; a rep or a manager chooses their own
    ("notify", "GET", "/v1/notify/deliveries"): Row(only("admin"), fixed("/v1/notify/deliveries?status=dead")),
    ("notify", "POST", "/v1/notify/deliveries/retry"): Row(only("admin"), fixed("/v1/notify/deliveries/retry"),
                                                           lambda w, role, own: {"all_dead": True}),
    ("notify", "GET", "/v1/notify/teams"): Row(only("admin"), fixed("/v1/notify/teams")),
    ("notify", "PUT", "/v1/notify/teams/{team_id}"): Row(only("admin"), fixed("/v1/notify/teams/t2"),
                                                         lambda w, role, own: {"slack_channel": "CMATRIX"}),
    ("notify", "DELETE", "/v1/notify/teams/{team_id}"): Row(only("admin"), fixed("/v1/notify/teams/t2")),
    ("notify", "GET", "/v1/notify/connection"): Row(only("admin"), fixed("/v1/notify/connection")),
    ("notify", "PUT", "/v1/notify/connection"): Row(only("admin"), fixed("/v1/notify/connection"),
                                                    lambda w, role, own: {}),
    ("notify", "GET", "/v1/notify/preferences/me"): Row(OWN_PERSON, fixed("/v1/notify/preferences/me"),
                                                        nobody=("admin", "integration")),
    ("notify", "PUT", "/v1/notify/preferences/me"): Row(OWN_PERSON, fixed("/v1/notify/preferences/me"),
                                                        lambda w, role, own: {"daily_cap": 15},
                                                        nobody=("admin", "integration")),
    ("notify", "GET", "/v1/notify/preferences/{person_id}"): Row(only("admin"),
                                                                 rep_path("/v1/notify/preferences/{rep}")),
    ("notify", "PUT", "/v1/notify/preferences/{person_id}"): Row(only("admin"),
                                                                 rep_path("/v1/notify/preferences/{rep}"),
                                                                 lambda w, role, own: {"daily_cap": 12}),
    # public: RFC 8058 one-click; the sealed token names the tenant, the person and the kind (tests/integration/
    # security/test_cross_tenant.py)
    ("notify", "POST", "/v1/notify/unsubscribe"): Row(PUBLIC),
    # kpi's notification pages: the control room's (admins), a person's own, and the e-mails' unsubscribe
    ("kpi", "GET", "/admin/notifications"): Row(only("admin"), fixed("/admin/notifications"), cookie=True),
    ("kpi", "POST", "/admin/notifications/teams/{team_id}"): Row(
        only("admin"), fixed("/admin/notifications/teams/t2"), cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/notifications/connection"): Row(only("admin"), fixed("/admin/notifications/connection"),
                                                            cookie=True, body=lambda w, role, own: {}),
    ("kpi", "POST", "/admin/notifications/retry"): Row(only("admin"), fixed("/admin/notifications/retry"),
                                                       cookie=True, body=lambda w, role, own: {"key": "nope"}),
    ("kpi", "GET", "/me/notifications"): Row(OWN_PAGE, fixed("/me/notifications"), cookie=True, nobody=("admin",)),
    ("kpi", "POST", "/me/notifications"): Row(OWN_PAGE, fixed("/me/notifications"), cookie=True, nobody=("admin",),
                                              body=lambda w, role, own: {"daily_cap": "15"}),
    # public: the page only shows a button; its POST (and RFC 8058's one-click) carries the sealed token
    ("kpi", "GET", "/unsubscribe"): Row(PUBLIC),
    ("kpi", "POST", "/unsubscribe"): Row(PUBLIC),
}
for _service in SPECS:
    for _path in ("/healthz", "/readyz", "/metrics"):
        MATRIX[(_service, "GET", _path)] = Row(PUBLIC)


def test_every_route_has_a_decision_and_a_row() -> None:
    """A new route without an access decision, or without a row above, fails here; so does a route whose
    declared roles differ from those its row admits."""
    for name in SPECS:
        served = {(r.method, r.path): r for r in routes(app_of(name))}
        rows = {(m, p) for s, m, p in MATRIX if s == name}
        assert set(served) == rows, (name, sorted(set(served) ^ rows))
        for key, route in served.items():
            decided, row = access(route), MATRIX[(name, *key)]
            assert decided is not None, f"{name} {key}: no access decision (shared.authz allow/public)"
            if row.expect == PUBLIC:
                assert isinstance(decided, str) and decided.startswith("public"), (name, key, decided)
            else:
                assert isinstance(row.expect, dict)
                admitted = {role for role, (own, _) in row.expect.items() if own != FORBIDDEN} | set(row.nobody)
                assert set(decided) == admitted, (name, key, decided, admitted)


async def _until(client: httpx.AsyncClient, url: str, ok: Callable[[Any], bool], timeout: float = 90) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(url)
        if answer.status_code == 200 and ok(answer.json()):
            return answer.json()
        assert time.monotonic() < deadline, f"{url}: {answer.status_code} {answer.text[:300]}"
        await asyncio.sleep(0.5)


async def _world(services: dict[str, str]) -> World:
    tenant = await asyncio.to_thread(create_tenant)
    await check_ins_from_day_one(services["coaching"], tenant)  # every rep gets a check-in, whatever the date
    quarter, at = this_quarter(timedelta(minutes=5))
    events = [rep("ana", manager="mia", team="t1"), rep("bo", manager="mia", team="t1"),
              rep("cy", manager="zed", team="t2"), *(target(r, quarter, "900000") for r in ("ana", "bo", "cy")),
              deal("d-ana", "ana", "1000", updated_at=at), deal("d-cy", "cy", "500", updated_at=at)]
    accepted = await post(services["ingest"], tenant, events)
    assert accepted.status_code == 200, accepted.text
    tokens = {"admin": tenant.token}
    for role, extra in (("integration", ()), ("manager", ("--manager", "mia")), ("rep", ("--rep", "ana")),
                        ("viewer", ())):
        tokens[role] = (await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", role, *extra))["token"]
    spare = [(await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "viewer"))["token_id"]
             for _ in range(4)]
    tasks, plans = {}, {}
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        for r in ("ana", "bo", "cy"):
            found = await _until(client, f"{services['coaching']}/v1/tasks?rep_id={r}", lambda b: bool(b["tasks"]))
            tasks[r] = found["tasks"][0]["task_id"]
            made = await client.post(f"{services['coaching']}/v1/action-plans", json={
                "rep_id": r, "steps": [{"metric": "calls", "target": "3", "due_at": _later(5)}]})
            assert made.status_code == 201, made.text
            plans[r] = made.json()["plan_id"]
        for r in ("ana", "cy"):  # kpi has the roster and the figures
            await _until(client, f"{services['kpi']}/v1/scorecards/{r}?period={quarter}", lambda b: True)
    for token in tokens.values():  # every role's token is known to the read services
        await _known(services, token)
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:  # notify has the roster
        for r in ("ana", "cy"):
            await _until(client, f"{services['notify']}/v1/notify/preferences/{r}", lambda b: True)
    return World(tenant, quarter, tokens, tasks, plans, spare)


async def _known(services: dict[str, str], token: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            answers = [await client.get(f"{services[s]}/v1/{p}") for s, p in
                       (("kpi", "leaderboard"), ("recognition", "celebrations"), ("notify", "notify/teams"))]
            if all(a.status_code != 401 for a in answers):
                return
            assert time.monotonic() < deadline, [a.text for a in answers]
            await asyncio.sleep(0.3)


async def _call(services: dict[str, str], world: World, key: tuple[str, str, str], row: Row, role: str,
                own: bool) -> int:
    service, method, _ = key
    assert row.target is not None
    url = services[service] + row.target(world, role, own)
    token = world.tokens[role]
    headers = {} if row.cookie else {"Authorization": f"Bearer {token}"}
    cookies = {"attain_dashboard": token} if row.cookie else None
    body = row.body(world, role, own) if row.body else None
    async with httpx.AsyncClient(timeout=15, cookies=cookies, follow_redirects=False) as client:
        if row.stream:
            async with client.stream(method, url, headers=headers) as answer:
                return answer.status_code
        if row.cookie and method == "POST":  # the dashboard's forms, with the session's form token
            form = {"csrf": csrf_token(token), "next": "/check-ins", **(body or {})}
            return (await client.post(url, data=form)).status_code
        answer = await client.request(method, url, headers=headers, json=body)
        return answer.status_code


async def test_every_route_answers_every_role_as_the_contract_says(services: dict[str, str]) -> None:
    world = await _world(services)
    wrong: list[str] = []
    for key, row in MATRIX.items():
        if row.expect == PUBLIC:
            continue
        assert isinstance(row.expect, dict)
        hides = any(HIDDEN in pair for pair in row.expect.values())
        for own in (True, False):
            admin = await _call(services, world, key, row, "admin", own)
            if hides and admin == 404 and "admin" not in row.nobody:  # a 404 for others would then prove nothing
                wrong.append(f"{key} {'own' if own else 'other'}: the object is missing (admin got 404)")
            for role in ROLES:
                expected = row.expect[role][0 if own else 1]
                got = admin if role == "admin" else await _call(services, world, key, row, role, own)
                if expected == OK:
                    fine = got not in (401, 403) and got < 500 and (got != 404 or admin == 404)
                else:
                    fine = got == expected
                if not fine:
                    wrong.append(f"{key} {role} {'own' if own else 'other'}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
