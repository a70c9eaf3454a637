"""Oversized and deeply nested bodies on every route that reads a body: a clear 4xx, never a 5xx, the service
still ready afterwards, and nothing written or published.

"The limit" is the deployment's request limit, `MAX_BODY_BYTES` (128 KiB in this run; NDJSON has its own,
`MAX_NDJSON_BYTES`): every service answers 413 past it (ingest per route, the others for every route, by the
Content-Length or counted as a chunked body streams in). Nested 10,000 levels deep, JSON is deeper than any
parser here goes: 400 or 422, naming the problem where the route is ours.

The routes are read from each service's app: a POST or PUT route added later without a case here fails
`test_every_route_that_reads_a_body_has_a_case`.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from tests import factories
from tests.integration.security.outside import MAX_BODY_BYTES, MAX_NDJSON_BYTES, Org, Outside
from tests.integration.security.records import Records
from tests.integration.security.routes import SPECS, app_of, routes

DEPTH = 10_000
ANY_TASK = "6f1c2d3e-0000-4000-8000-000000000000"  # the body is refused before the task is looked for
NDJSON = "application/x-ndjson"
JSON = "application/json"


def deep(depth: int = DEPTH) -> str:
    """A JSON object nested `depth` levels deep."""
    return '{"a":' * depth + "1" + "}" * depth


def padded(template: str, size: int) -> bytes:
    """`template` with its "PAD" (inside a JSON string) replaced so the body is `size` bytes long."""
    return template.replace("PAD", "a" * (size - len(template) + 3)).encode()


Request = Callable[[Outside, Org], tuple[str, bytes, dict[str, str]]]  # -> path, body, headers


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    route: str
    oversized: Request
    nested: Request | None  # None: the route does not read JSON
    limit: int = MAX_BODY_BYTES
    label: str = ""

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.route}{' ' + self.label if self.label else ''}"


def _json(path: str, template: str, size: int = MAX_BODY_BYTES + 1) -> Request:
    return lambda o, a: (path, padded(template, size), {"content-type": JSON})


def _nested(path: str, wrap: str = "{}") -> Request:
    """`wrap` with its "{}" replaced by the deeply nested object."""
    return lambda o, a: (path, wrap.replace("{}", deep(), 1).encode(), {"content-type": JSON})


def _hubspot(body: bytes) -> Request:
    return lambda o, a: (f"/v1/webhooks/hubspot/{a.slug}", body, o.hubspot_headers(a.slug, a.hubspot_secret, body))


def _pipedrive(body: bytes) -> Request:
    return lambda o, a: (f"/v1/webhooks/pipedrive/{a.slug}", body, {
        "content-type": JSON,
        "authorization": "Basic " + base64.b64encode(f"attain:{a.pipedrive_secret}".encode()).decode()})


def _salesforce(body: bytes, content_type: str) -> Request:
    return lambda o, a: (f"/v1/webhooks/salesforce/{a.slug}?token={a.salesforce_secret}", body,
                         {"content-type": content_type})


def _ndjson_events(size: int) -> bytes:
    line = json.dumps(factories.rep("rep-x")).encode() + b"\n"
    return line * (size // len(line) + 1)


def _xml_nested() -> bytes:
    return (b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soapenv:Body>" + b"<a>" * DEPTH + b"</a>" * DEPTH + b"</soapenv:Body></soapenv:Envelope>")


CASES = [
    Case("ingest", "POST", "/v1/events", _json("/v1/events", '{"type": "rep.upserted", "id": "PAD"}'),
         _nested("/v1/events"), label="json"),
    Case("ingest", "POST", "/v1/events", lambda o, a: ("/v1/events", _ndjson_events(MAX_NDJSON_BYTES + 1),
                                                       {"content-type": NDJSON}),
         lambda o, a: ("/v1/events", deep().encode() + b"\n", {"content-type": NDJSON}), limit=MAX_NDJSON_BYTES,
         label="ndjson"),
    Case("ingest", "POST", "/v1/webhooks/{crm}/{tenant}",
         _hubspot(padded('[{"propertyValue": "PAD"}]', MAX_BODY_BYTES + 1)),
         _hubspot(("[" + deep() + "]").encode()), label="hubspot"),
    Case("ingest", "POST", "/v1/webhooks/{crm}/{tenant}",
         _pipedrive(padded('{"meta": {"id": "PAD"}}', MAX_BODY_BYTES + 1)),
         _pipedrive(('{"meta": ' + deep() + "}").encode()), label="pipedrive"),
    Case("ingest", "POST", "/v1/webhooks/{crm}/{tenant}",
         _salesforce(padded('[{"data": "PAD"}]', MAX_BODY_BYTES + 1), JSON),
         _salesforce(("[" + deep() + "]").encode(), JSON), label="salesforce change events"),
    Case("ingest", "POST", "/v1/webhooks/{crm}/{tenant}",
         _salesforce(padded("<x>PAD</x>", MAX_BODY_BYTES + 1), "text/xml"),
         _salesforce(_xml_nested(), "text/xml"), label="salesforce outbound message"),
    Case("ingest", "PUT", "/v1/crm/{crm}/stages", _json("/v1/crm/hubspot/stages", '{"PAD": "won"}'),
         _nested("/v1/crm/hubspot/stages", '{"x": {}}')),
    Case("ingest", "PUT", "/v1/crm/{crm}/users",
         lambda o, a: ("/v1/crm/hubspot/users", json.dumps({f"crm-user-{n}": f"rep-{n}" for n in range(6000)}).encode(),
                       {"content-type": JSON}),
         _nested("/v1/crm/hubspot/users", '{"x": {}}')),
    Case("ingest", "PUT", "/v1/crm/{crm}/properties", _json("/v1/crm/hubspot/properties", '{"properties": ["PAD"]}'),
         _nested("/v1/crm/hubspot/properties", '{"properties": [{}]}')),
    Case("kpi", "PUT", "/v1/kpis/{kpi_id}", _json("/v1/kpis/oversized", '{"name": "PAD", "source": "deals"}'),
         _nested("/v1/kpis/nested", '{"name": "k", "source": "deals", "filter": {}}')),
    Case("kpi", "PUT", "/v1/contests/{contest_id}",
         _json("/v1/contests/oversized", '{"name": "c", "metric": "won_revenue", "participants": "reps",'
               ' "participant_ids": ["PAD"], "starts": "2026-01-01", "ends": "2027-01-01"}'),
         _nested("/v1/contests/nested", '{"name": {}}')),
    Case("ingest", "POST", "/v1/tokens", _json("/v1/tokens", '{"role": "viewer", "name": "PAD"}'),
         _nested("/v1/tokens", '{"role": "viewer", "name": {}}')),
    Case("ingest", "POST", "/v1/tokens/share", _json("/v1/tokens/share", '{"name": "PAD"}'),
         _nested("/v1/tokens/share", '{"name": {}}')),
    Case("ingest", "POST", "/v1/tokens/{token_id}/rotate", _json("/v1/tokens/x/rotate", '{"grace_hours": "PAD"}'),
         _nested("/v1/tokens/x/rotate", '{"grace_hours": {}}')),
    Case("coaching", "POST", "/v1/tasks/{task_id}/complete",
         lambda o, a: (f"/v1/tasks/{ANY_TASK}/complete", padded('{"outcome": "PAD"}', MAX_BODY_BYTES + 1),
                       {"content-type": JSON}),
         lambda o, a: (f"/v1/tasks/{ANY_TASK}/complete", ('{"outcome": ' + deep() + "}").encode(),
                       {"content-type": JSON})),
    Case("coaching", "POST", "/v1/action-plans", _json("/v1/action-plans", '{"rep_id": "r", "title": "PAD"}'),
         _nested("/v1/action-plans", '{"rep_id": "r", "steps": [{}]}')),
    Case("coaching", "POST", "/v1/holidays", _json("/v1/holidays", '{"day": "2027-12-24", "name": "PAD"}'),
         _nested("/v1/holidays", '{"day": "2027-12-24", "name": {}}')),
    Case("coaching", "POST", "/v1/reps/{rep_id}/time-off",
         _json("/v1/reps/r/time-off", '{"first_day": "2027-03-01", "last_day": "2027-03-02", "reason": "PAD"}'),
         _nested("/v1/reps/r/time-off", '{"first_day": "2027-03-01", "last_day": "2027-03-02", "reason": {}}')),
    Case("coaching", "PUT", "/v1/policies", _json("/v1/policies", '{"pace_metrics": ["PAD"]}'),
         _nested("/v1/policies", '{"pace_metrics": {}}')),
    Case("coaching", "PUT", "/v1/policies/teams/{team_id}", _json("/v1/policies/teams/t", '{"pace_metrics": ["PAD"]}'),
         _nested("/v1/policies/teams/t", '{"pace_metrics": {}}')),
    Case("coaching", "PUT", "/v1/catalogue/{rule}",
         _json("/v1/catalogue/behind_pace", '{"suggested_actions": ["PAD"], "training": []}'),
         _nested("/v1/catalogue/behind_pace", '{"suggested_actions": [{}], "training": []}')),
    Case("recognition", "PUT", "/v1/recognition/settings",
         _json("/v1/recognition/settings", '{"templates": {"quota": "PAD"}}'),
         _nested("/v1/recognition/settings", '{"templates": {}}')),
    Case("kpi", "POST", "/signin",
         lambda o, a: ("/signin", padded("token=PAD", MAX_BODY_BYTES + 1), {
             "content-type": "application/x-www-form-urlencoded"}),
         None),  # a form, not JSON
    *(Case("kpi", "POST", f"/check-ins/{{task_id}}/{action}",
           lambda o, a, action=action: (f"/check-ins/{ANY_TASK}/{action}", padded("csrf=PAD", MAX_BODY_BYTES + 1),
                                        {"content-type": "application/x-www-form-urlencoded"}),
           None)  # the dashboard's check-in forms
      for action in ("ack", "complete", "plan")),
    # issue 17: the tenant's settings, calendar, CRM connection and single sign-on through ingest's API
    Case("ingest", "POST", "/v1/calendar/days", _json("/v1/calendar/days", '{"day": "2027-12-24", "name": "PAD"}'),
         _nested("/v1/calendar/days", '{"day": "2027-12-24", "name": {}}')),
    Case("ingest", "PUT", "/v1/crm/{crm}/secret", _json("/v1/crm/hubspot/secret", '{"secret": "PAD"}'),
         _nested("/v1/crm/hubspot/secret", '{"secret": {}}')),
    Case("ingest", "PUT", "/v1/settings", _json("/v1/settings", '{"locale": "PAD"}'),
         _nested("/v1/settings", '{"locale": {}}')),
    Case("ingest", "PUT", "/v1/sso", _json("/v1/sso", '{"issuer": "https://idp.example", "client_id": "PAD"}'),
         _nested("/v1/sso", '{"issuer": "https://idp.example", "client_id": {}}')),
    # issue 21: the CRM's users, its OAuth connection and its backfill (every route of ingest's CRM routers counts
    # its body, those that read none too)
    Case("ingest", "PUT", "/v1/crm/{crm}/user-mapping-mode",
         _json("/v1/crm/hubspot/user-mapping-mode", '{"mode": "manual", "team_id": "PAD"}'),
         _nested("/v1/crm/hubspot/user-mapping-mode", '{"mode": "manual", "team_id": {}}')),
    Case("ingest", "POST", "/v1/crm/{crm}/users/sync", _json("/v1/crm/hubspot/users/sync", '{"x": "PAD"}'),
         _nested("/v1/crm/hubspot/users/sync")),
    Case("ingest", "PUT", "/v1/crm/{crm}/oauth/client",
         _json("/v1/crm/hubspot/oauth/client", '{"client_id": "c", "scopes": ["PAD"]}'),
         _nested("/v1/crm/hubspot/oauth/client", '{"client_id": "c", "scopes": [{}]}')),
    Case("ingest", "POST", "/v1/crm/{crm}/oauth/authorize", _json("/v1/crm/hubspot/oauth/authorize", '{"x": "PAD"}'),
         _nested("/v1/crm/hubspot/oauth/authorize")),
    Case("ingest", "POST", "/v1/crm/{crm}/backfill", _json("/v1/crm/hubspot/backfill", '{"since": "PAD"}'),
         _nested("/v1/crm/hubspot/backfill", '{"since": {}}')),
    Case("ingest", "POST", "/v1/sessions",  # public: refused before the tenant or the code is looked at
         _json("/v1/sessions", '{"tenant": "t", "code": "PAD"}'), _nested("/v1/sessions", '{"tenant": {}}')),
    # the control room's forms (kpi: its body limit covers every route, ServiceSpec.limit_bodies)
    *(Case("kpi", "POST", route,
           lambda o, a, path=path: (path, padded("csrf=PAD", MAX_BODY_BYTES + 1),
                                    {"content-type": "application/x-www-form-urlencoded"}),
           None)
      for route, path in (
          ("/admin/targets", "/admin/targets"), ("/admin/targets/upload", "/admin/targets/upload"),
          ("/admin/targets/copy", "/admin/targets/copy"), ("/admin/roster/rep", "/admin/roster/rep"),
          ("/admin/roster/team", "/admin/roster/team"), ("/admin/settings", "/admin/settings"),
          ("/admin/people/tokens", "/admin/people/tokens"), ("/admin/people/share", "/admin/people/share"),
          ("/admin/people/tokens/{token_id}/revoke", "/admin/people/tokens/initial/revoke"),
          ("/admin/people/tokens/{token_id}/rotate", "/admin/people/tokens/initial/rotate"),
          ("/admin/calendar/holidays", "/admin/calendar/holidays"),
          ("/admin/calendar/holidays/remove", "/admin/calendar/holidays/remove"),
          ("/admin/calendar/time-off", "/admin/calendar/time-off"),
          ("/admin/coaching/policy", "/admin/coaching/policy"),
          ("/admin/coaching/playbooks/{rule}", "/admin/coaching/playbooks/behind_pace"),
          ("/admin/recognition", "/admin/recognition"),
          ("/admin/crm/{crm}/secret", "/admin/crm/hubspot/secret"),
          ("/admin/crm/{crm}/stages", "/admin/crm/hubspot/stages"),
          ("/admin/crm/{crm}/users", "/admin/crm/hubspot/users"),
          ("/admin/crm/{crm}/map", "/admin/crm/hubspot/map"),
          # issue 21: the OAuth client and connection, the users sync and mode, the backfill
          *((f"/admin/crm/{{crm}}/{action}", f"/admin/crm/hubspot/{action}")
            for action in ("oauth/client", "oauth/connect", "oauth/disconnect", "users/sync", "users/mode",
                           "backfill", "backfill/resume")))),
    # notify (issue 19): its API, then kpi's notification pages (forms)
    Case("notify", "POST", "/v1/notify/deliveries/retry",
         _json("/v1/notify/deliveries/retry", '{"keys": ["PAD"]}'), _nested("/v1/notify/deliveries/retry",
                                                                           '{"keys": [{}]}')),
    Case("notify", "PUT", "/v1/notify/teams/{team_id}",
         _json("/v1/notify/teams/t", '{"slack_webhook": "https://hooks.example/PAD"}'),
         _nested("/v1/notify/teams/t", '{"slack_webhook": {}}')),
    Case("notify", "PUT", "/v1/notify/connection", _json("/v1/notify/connection", '{"webhook_url": "https://x/PAD"}'),
         _nested("/v1/notify/connection", '{"webhook_url": {}}')),
    Case("notify", "PUT", "/v1/notify/preferences/me", _json("/v1/notify/preferences/me", '{"channels": {"PAD": []}}'),
         _nested("/v1/notify/preferences/me", '{"channels": {"review": [{}]}}')),
    Case("notify", "PUT", "/v1/notify/preferences/{person_id}",
         _json("/v1/notify/preferences/p", '{"channels": {"PAD": []}}'),
         _nested("/v1/notify/preferences/p", '{"channels": {"review": [{}]}}')),
    Case("notify", "POST", "/v1/notify/unsubscribe",  # public: refused before the token is opened
         _json("/v1/notify/unsubscribe", '{"token": "PAD"}'), _nested("/v1/notify/unsubscribe", '{"token": {}}')),
    *(Case("kpi", "POST", route,
           lambda o, a, path=path: (path, padded("csrf=PAD", MAX_BODY_BYTES + 1),
                                    {"content-type": "application/x-www-form-urlencoded"}),
           None)
      for route, path in (
          ("/admin/notifications/teams/{team_id}", "/admin/notifications/teams/t"),
          ("/admin/notifications/connection", "/admin/notifications/connection"),
          ("/admin/notifications/retry", "/admin/notifications/retry"),
          ("/me/notifications", "/me/notifications"),
          ("/unsubscribe", "/unsubscribe"))),
    Case("kpi", "POST", "/admin/targets/upload",
         lambda o, a: ("/admin/targets/upload",
                       b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.csv\"\r\n\r\n"
                       + b"a" * (MAX_BODY_BYTES + 1) + b"\r\n--b--\r\n",
                       {"content-type": "multipart/form-data; boundary=b"}),
         None, label="multipart"),
]
# Routes that read no body: nothing to oversize or nest.
NO_BODY = {("coaching", "POST", "/v1/tasks/{task_id}/ack"), ("kpi", "POST", "/signout"),
           ("ingest", "POST", "/v1/sessions/refresh")}  # the session token (its header) is all it reads
def test_every_route_that_reads_a_body_has_a_case() -> None:
    """Every POST and PUT route of the five services is a case here or on the no-body list."""
    for name in SPECS:
        writes = {(name, r.method, r.path) for r in routes(app_of(name))
                  if r.method in ("POST", "PUT")}
        assert writes == {(c.service, c.method, c.route) for c in CASES if c.service == name} | {
            n for n in NO_BODY if n[0] == name}, name


@pytest.fixture(scope="module")
async def tenant_c(outside: Outside) -> Org:
    """A tenant of these tests alone: a body that gets through (a known failure) changes nobody else's data."""
    return await outside.org()


@contextlib.asynccontextmanager
async def nothing_written(outside: Outside, records: Records) -> AsyncIterator[None]:
    """Nothing of any tenant of the run is written or published inside the block (checked when it succeeds)."""
    before = await outside.snapshot()
    yield
    assert await outside.snapshot() == before
    assert await records.new() == []


async def _send(outside: Outside, case: Case, request: Request, org: Org) -> httpx.Response:
    path, body, headers = request(outside, org)
    async with outside.client(case.service, org) as client:
        answer = await client.request(case.method, path, content=body, headers=headers)
        ready = await client.get("/readyz")
    assert ready.status_code == 200, f"{case} left the service unready: {ready.text}"
    return answer


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_body_past_the_limit_is_refused(outside: Outside, tenant_c: Org, records: Records,
                                                case: Case) -> None:
    """Past the limit: 413 naming it."""
    async with nothing_written(outside, records):
        answer = await _send(outside, case, case.oversized, tenant_c)
        assert answer.status_code == 413 and f"limit of {case.limit}" in answer.text, answer.text[:300]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_streamed_body_past_the_limit_is_refused(outside: Outside, tenant_c: Org, records: Records,
                                                         case: Case) -> None:
    """The same body sent chunked, without a Content-Length to refuse it by: counted as it arrives, 413."""
    path, body, headers = case.oversized(outside, tenant_c)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    async with nothing_written(outside, records), outside.client(case.service, tenant_c) as client:
        answer = await client.request(case.method, path, content=chunks(), headers=headers)
        assert answer.status_code == 413 and f"limit of {case.limit}" in answer.text, answer.text[:300]


@pytest.mark.parametrize("case", [c for c in CASES if c.nested is not None], ids=str)
async def test_json_nested_ten_thousand_levels_deep_is_refused(outside: Outside, tenant_c: Org, records: Records,
                                                              case: Case) -> None:
    """Nested 10,000 levels: 400 or 422 with a reason (ingest's own routes say it is nested too deeply)."""
    assert case.nested is not None
    async with nothing_written(outside, records):
        answer = await _send(outside, case, case.nested, tenant_c)
        assert answer.status_code in (400, 422), answer.text[:300]
        assert answer.text
        if case.service == "ingest" and "webhooks" not in case.route:
            assert "nested" in answer.text, answer.text[:300]
