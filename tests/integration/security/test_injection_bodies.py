"""SQL in every body field that reaches a database: kept and returned byte for byte where the field is free text
(ids, names, labels, reasons, titles, mappings), refused with a 4xx naming the field where its format forbids
the value (a pattern, an enum, a number, a moment, a NUL that PostgreSQL cannot store), and never more than
data: other tenants' rows unchanged, every table still there. SQL in parameters: `test_injection.py`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.ingest import tenants
from shared.db import tenant_tx
from tests import factories
from tests.integration.security.injections import INJECTIONS, NUL
from tests.integration.security.outside import Org, Outside
from tests.integration.security.records import Records

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "crm"


@pytest.fixture(scope="module")
async def tenant_d(outside: Outside) -> Org:
    """A tenant of these tests alone, whose ids and names are SQL."""
    return await outside.org()


async def test_sql_in_free_text_and_ids_is_stored_and_returned_byte_for_byte(
        outside: Outside, tenant_a: Org, tenant_b: Org, tenant_d: Org, records: Records) -> None:
    """Reps, teams, managers, deals and stage labels whose ids and names are SQL go through ingest to Kafka and
    come back from kpi, recognition and coaching exactly as sent; coaching's and recognition's own free texts,
    ingest's CRM mappings too. A team named `%` filters to its own rep only. A's and B's rows do not change."""
    d, now = tenant_d, outside.clock.now()
    others = await outside.snapshot(tenant_a.slug, tenant_b.slug)
    reps = {s: (f"rep-{d.tag}-{s}", f"{s} {d.secret}", f"team-{d.tag}-{s}") for s in INJECTIONS}
    events = []
    for n, (s, (rep, name, team)) in enumerate(reps.items()):
        deal = factories.deal(f"deal-{s}", rep, str(100 + n), updated_at=now - timedelta(hours=1))
        events += [factories.rep(rep, team=team, manager=f"mgr-{s}", name=name),
                   deal | {"data": deal["data"] | {"stage_label": s}}]
    async with outside.client("ingest", d) as ingest:
        sent = await ingest.post("/v1/events", json=events)
        assert (sent.status_code, sent.json()["accepted"]) == (200, len(events)), sent.text
        published = {(r.type, json.loads(r.value).get("rep_id")): json.loads(r.value) for r in await records.new()
                     if r.tenant == d.slug and r.type in ("rep.upserted", "deal.upserted")}
        for s, (rep, name, team) in reps.items():
            assert (published["rep.upserted", rep]["name"], published["rep.upserted", rep]["team_id"]) == (name, team)
            assert published["deal.upserted", rep]["stage_label"] == s
        mapping = {s: f"rep {s}" for s in INJECTIONS}
        assert (await ingest.put("/v1/crm/hubspot/users", json=mapping)).json()["users"] == mapping
        assert (await ingest.get("/v1/crm/hubspot/users")).json()["users"] == mapping
        # issue 21: the team new reps from the CRM join, the OAuth client's id and its scopes, as sent (an id with
        # a space in it is no id: refused naming the field)
        for s in INJECTIONS:
            mode = await ingest.put("/v1/crm/hubspot/user-mapping-mode", json={"mode": "manual", "team_id": s})
            assert mode.json() == {"mode": "manual", "team_id": s}, mode.text
            assert (await ingest.get("/v1/crm/hubspot/user-mapping-mode")).json() == {"mode": "manual", "team_id": s}
            client = await ingest.put("/v1/crm/hubspot/oauth/client",
                                      json={"client_id": s, "client_secret": s, "scopes": [s]})
            if any(c.isspace() for c in s):
                assert client.status_code == 422 and "client_id" in client.text, client.text
                continue
            assert (client.status_code, client.json()["client_id"]) == (200, s), client.text
            shown = {c["crm"]: c for c in (await ingest.get("/v1/crm/oauth")).json()["connections"]}["hubspot"]
            assert (shown["client_id"], shown["scopes"]) == (s, [s]), shown

    await outside.until(lambda c: c.fetchval("SELECT count(*) = $2 FROM kpi.attainment WHERE tenant = $1 AND"
                                             " scope = 'rep' AND metric = 'won_revenue' AND period = $3",
                                             d.slug, len(reps), outside.quarter))
    await outside.until(lambda c: c.fetchval("SELECT count(*) = $2 FROM recognition.reps WHERE tenant = $1",
                                             d.slug, len(reps)))
    async with outside.client("kpi", d) as kpi:
        board = (await kpi.get("/v1/leaderboard", params={"period": outside.quarter, "limit": 200})).json()
        assert {s["rep_id"]: s["name"] for s in board["standings"]} == {rep: name for rep, name, _ in reps.values()}
        rep, _, team = reps["%"]
        only = (await kpi.get("/v1/leaderboard", params={"period": outside.quarter, "team_id": team})).json()
        assert [s["rep_id"] for s in only["standings"]] == [rep]
        for rep, _, _ in reps.values():
            card = await kpi.get(f"/v1/scorecards/{quote(rep, safe='')}", params={"period": outside.quarter})
            assert (card.status_code, card.json()["scope_id"]) == (200, rep)
    async with outside.client("recognition", d) as recognition:
        for rep, name, _ in reps.values():
            assert (await recognition.get(f"/v1/reps/{quote(rep, safe='')}/trophies")).json()["name"] == name
        templates = {"quota": " ".join(INJECTIONS)}
        assert (await recognition.put("/v1/recognition/settings", json={"templates": templates})).status_code == 200
        assert (await recognition.get("/v1/recognition/settings")).json()["overrides"] == {"templates": templates}
    # holidays named in SQL (the tenant calendar, as `tenants holidays --add` sets it) and time off whose ids and
    # reasons are SQL (`time_off.set` through ingest): coaching lists them back as sent
    ingest_service = outside.services["ingest"]
    async with tenant_tx(ingest_service.pool, d.slug) as conn:
        await tenants.set_holidays(conn, d.slug, signer=ingest_service.app.state.context.signer, add={
            d.holiday + timedelta(days=n + 1): s for n, s in enumerate(INJECTIONS)})
    ingest_service.replica.wake()
    leaves = [{"type": "time_off.set", "id": f"leave-{n}", "source": "api", "time": now.isoformat(),
               "data": {"time_off_id": s, "rep_id": reps[s][0], "first_day": "2027-04-01", "last_day": "2027-04-02",
                        "reason": s}} for n, s in enumerate(INJECTIONS)]
    async with outside.client("ingest", d) as ingest:
        sent = await ingest.post("/v1/events", json=leaves)
        assert (sent.status_code, sent.json()["accepted"]) == (200, len(leaves)), sent.text
    await outside.until(lambda c: c.fetchval("SELECT count(*) = $2 FROM coaching.leaves WHERE tenant = $1",
                                             d.slug, len(INJECTIONS)))
    await outside.until(lambda c: c.fetchval("SELECT jsonb_array_length(holidays->'added') = $2 FROM coaching.tenants"
                                             " WHERE tenant = $1", d.slug, len(INJECTIONS) + 1))  # and its own
    async with outside.client("coaching", d) as coaching:
        for s in INJECTIONS:
            rep, _, team = reps[s]
            assert (await coaching.get(f"/v1/reps/{quote(rep, safe='')}/time-off")).json() == {
                "rep_id": rep, "time_off": [{"time_off_id": s, "first_day": "2027-04-01", "last_day": "2027-04-02",
                                             "reason": s}]}
        for s in INJECTIONS:
            rep, _, team = reps[s]
            policy = await coaching.put(f"/v1/policies/teams/{quote(team, safe='')}", json={"cooldown_days": 9})
            assert (policy.json()["team_id"], policy.json()["overrides"]) == (team, {"cooldown_days": 9})
            plan = await coaching.post("/v1/action-plans", json={"rep_id": rep, "title": s, "steps": [
                {"metric": "calls", "target": "2", "due_at": (now + timedelta(days=3)).isoformat()}]})
            assert (plan.status_code, plan.json()["rep_id"], plan.json()["title"]) == (201, rep, s)
        years = sorted({(d.holiday + timedelta(days=n)).year for n in range(len(INJECTIONS) + 1)})
        listed = [h["name"] for year in years
                  for h in (await coaching.get("/v1/holidays", params={"year": year})).json()["holidays"]]
        assert sorted(listed) == sorted([*INJECTIONS, f"Holiday {d.secret}"])
        playbook = {"suggested_actions": INJECTIONS, "training": INJECTIONS[:2]}
        assert (await coaching.put("/v1/catalogue/behind_pace", json=playbook)).status_code == 200
        stored = (await coaching.get("/v1/catalogue")).json()["behind_pace"]
        assert {k: stored[k] for k in playbook} == playbook
    async with outside.client("notify", d) as notify:  # notify: a team's channels under an id that is SQL
        for n, s in enumerate(INJECTIONS):
            _, _, team = reps[s]
            put = await notify.put(f"/v1/notify/teams/{quote(team, safe='')}", json={"slack_channel": f"C{n}"})
            assert put.status_code == 200, put.text
            assert (put.json()["team_id"], put.json()["slack_channel"]) == (team, f"C{n}")
        listed = {t["team_id"]: t["slack_channel"] for t in (await notify.get("/v1/notify/teams")).json()["teams"]}
        assert {reps[s][2]: f"C{n}" for n, s in enumerate(INJECTIONS)}.items() <= listed.items()
    await outside.settle()
    assert await outside.snapshot(tenant_a.slug, tenant_b.slug) == others
    assert await outside.table_names() == outside.initial_tables


def _event(kind: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"deal": factories.deal("deal-f", "rep-f", "10", updated_at=now),
            "rep": factories.rep("rep-f"), "target": factories.target("rep-f", "2026-Q4", "10"),
            "activity": factories.activity("act-f", "rep-f", "call", now)}[kind]


def _with(event: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    if field.startswith("data."):
        return event | {"data": event["data"] | {field.removeprefix("data."): value}}
    return event | {field: value}


# (which event, which field): fields whose format forbids SQL (a pattern, an enum, a number, a moment).
FORMATTED = [("deal", "source"), ("deal", "time"), ("deal", "type"), ("deal", "data.currency"),
             ("deal", "data.stage"), ("deal", "data.amount"), ("deal", "data.updated_at"), ("rep", "data.timezone"),
             ("activity", "data.kind"), ("target", "data.period"), ("target", "data.metric"),
             ("target", "data.scope")]
# Free text and ids, whose format forbids only a NUL (PostgreSQL text cannot hold one).
TEXT = [("deal", "id"), ("deal", "data.deal_id"), ("deal", "data.rep_id"), ("deal", "data.stage_label"),
        ("rep", "data.name"), ("rep", "data.team_id"), ("rep", "data.manager_id"), ("rep", "data.email"),
        ("activity", "data.activity_id"), ("target", "data.scope_id")]


async def test_fields_whose_format_forbids_the_value_are_refused_naming_the_field(
        outside: Outside, tenant_a: Org, records: Records) -> None:
    """Every SQL fragment in every formatted field of every event type, and a NUL in every free-text field, in
    one request: 422, each event rejected with a reason that starts with its field; nothing stored, nothing
    published."""
    sent = [(field, _with(_event(kind), field, value)) for kind, field in FORMATTED for value in INJECTIONS]
    sent += [(field, _with(_event(kind), field, NUL)) for kind, field in TEXT]
    before = await outside.snapshot()
    async with outside.client("ingest", tenant_a) as ingest:
        answer = await ingest.post("/v1/events", json=[event for _, event in sent])
    assert (answer.status_code, answer.json()["accepted"], answer.json()["rejected"]) == (422, 0, len(sent))
    for (field, event), result in zip(sent, answer.json()["results"], strict=True):
        assert result["reason"].startswith(f"{field}:"), (field, event, result["reason"])
    assert await outside.snapshot() == before
    assert await records.new() == []


# Body fields of coaching and recognition whose format forbids SQL: (service, method, path, body, field).
TYPED_BODIES: list[tuple[str, str, str, Callable[[str], Any], str]] = [
    ("coaching", "POST", "/v1/holidays", lambda s: {"day": s, "name": "x"}, "day"),
    ("coaching", "POST", "/v1/reps/r/time-off", lambda s: {"first_day": s, "last_day": "2027-01-02"}, "first_day"),
    ("coaching", "POST", "/v1/action-plans", lambda s: {"task_id": s}, "task_id"),
    ("coaching", "POST", "/v1/action-plans", lambda s: {"rep_id": "r", "steps": [
        {"metric": s, "target": "1", "due_at": "2030-01-01T00:00:00Z"}]}, "metric"),
    ("coaching", "POST", "/v1/action-plans", lambda s: {"rep_id": "r", "steps": [
        {"metric": "calls", "target": s, "due_at": "2030-01-01T00:00:00Z"}]}, "target"),
    ("coaching", "POST", "/v1/action-plans", lambda s: {"rep_id": "r", "steps": [
        {"metric": "calls", "target": "1", "due_at": s}]}, "due_at"),
    ("coaching", "PUT", "/v1/policies", lambda s: {"pace_threshold": s}, "pace_threshold"),
    ("coaching", "PUT", "/v1/policies", lambda s: {s: 1}, ""),  # the unknown key itself is named
    ("recognition", "PUT", "/v1/recognition/settings", lambda s: {"leaderboard_places": s}, "leaderboard_places"),
    ("recognition", "PUT", "/v1/recognition/settings", lambda s: {"quota_metrics": [s]}, "quota_metrics"),
    ("ingest", "PUT", "/v1/crm/hubspot/stages", lambda s: {"stage": s}, "stage"),
    ("ingest", "PUT", "/v1/crm/hubspot/user-mapping-mode", lambda s: {"mode": s}, "mode"),
    ("ingest", "PUT", "/v1/crm/hubspot/oauth/client", lambda s: {"client_id": "c", "auth_base": s}, "auth_base"),
    ("ingest", "POST", "/v1/crm/hubspot/backfill", lambda s: {"since": s}, "since"),
    ("ingest", "POST", "/v1/crm/hubspot/backfill", lambda s: {"resume": s}, "resume"),
    ("notify", "PUT", "/v1/notify/connection", lambda s: {"webhook_url": s}, "webhook_url"),
    ("notify", "PUT", "/v1/notify/connection", lambda s: {"slack_bot_token": s}, "slack_bot_token"),
    ("notify", "PUT", "/v1/notify/connection", lambda s: {"webhook_secret": s}, "webhook_secret"),
    ("notify", "PUT", "/v1/notify/teams/t", lambda s: {"teams_webhook": s}, "teams_webhook"),
    ("notify", "PUT", "/v1/notify/preferences/p", lambda s: {"quiet_start": s}, "quiet_start"),
    ("notify", "PUT", "/v1/notify/preferences/p", lambda s: {"daily_cap": s}, "daily_cap"),
    ("notify", "PUT", "/v1/notify/preferences/p", lambda s: {"channels": {"review": [s]}}, "review"),
]


async def test_typed_body_fields_refuse_sql_naming_the_field(outside: Outside, tenant_a: Org,
                                                            records: Records) -> None:
    """Each SQL fragment in each typed body field of coaching, recognition, ingest's mappings and notify's
    channels and preferences: 422 naming the field; nothing stored, nothing published."""
    before = await outside.snapshot()
    for service, method, path, body, field in TYPED_BODIES:
        async with outside.client(service, tenant_a) as client:
            for value in INJECTIONS:
                answer = await client.request(method, path, json=body(value))
                assert answer.status_code == 422 and (field or value) in answer.text, (path, value, answer.text)
    assert await outside.snapshot() == before
    assert await records.new() == []


async def test_sql_as_an_unsubscribe_token_is_refused_and_changes_nothing(outside: Outside, records: Records) -> None:
    """`POST /v1/notify/unsubscribe` is public: SQL, a wildcard or a bind marker as the token opens nothing (400,
    not a token notify sealed); no row of any tenant changes, nothing is published."""
    before = await outside.snapshot()
    async with outside.client("notify") as anyone:
        for value in INJECTIONS:
            answer = await anyone.post("/v1/notify/unsubscribe", json={"token": value})
            assert answer.status_code == 400 and "not an unsubscribe token" in answer.text, (value, answer.text)
    assert await outside.snapshot() == before
    assert await records.new() == []


# Free text that coaching and recognition store: a NUL cannot be stored, so it must be refused (4xx).
NUL_TEXT = [
    ("coaching", "POST", "/v1/holidays", {"day": "2027-06-01", "name": NUL}),
    ("coaching", "POST", "/v1/reps/r/time-off", {"first_day": "2027-06-01", "last_day": "2027-06-02", "reason": NUL}),
    ("coaching", "POST", f"/v1/reps/{quote(NUL)}/time-off", {"first_day": "2027-06-01", "last_day": "2027-06-02"}),
    ("coaching", "POST", "/v1/action-plans", {"rep_id": NUL, "steps": [
        {"metric": "calls", "target": "1", "due_at": "2030-01-01T00:00:00Z"}]}),
    ("coaching", "PUT", "/v1/catalogue/behind_pace", {"suggested_actions": [NUL], "training": []}),
    ("coaching", "PUT", f"/v1/policies/teams/{quote(NUL)}", {"cooldown_days": 9}),
    ("recognition", "PUT", "/v1/recognition/settings", {"templates": {"quota": NUL}}),
    ("ingest", "PUT", "/v1/crm/hubspot/users", {NUL: "rep"}),
    ("ingest", "PUT", "/v1/crm/hubspot/stages", {NUL: "won"}),
    ("ingest", "PUT", "/v1/crm/hubspot/user-mapping-mode", {"mode": "manual", "team_id": NUL}),
    ("ingest", "PUT", "/v1/crm/hubspot/oauth/client", {"client_id": NUL, "client_secret": "s"}),
    ("ingest", "PUT", "/v1/crm/hubspot/oauth/client", {"client_id": "c", "client_secret": "s", "scopes": [NUL]}),
    ("ingest", "PUT", "/v1/crm/hubspot/oauth/client", {"client_id": "c", "auth_base": f"https://{NUL}.example"}),
    ("ingest", "POST", "/v1/crm/hubspot/backfill", {"since": NUL}),
    ("notify", "PUT", f"/v1/notify/teams/{quote(NUL)}", {"slack_channel": "C1"}),
    ("notify", "PUT", f"/v1/notify/preferences/{quote(NUL)}", {"daily_cap": 3}),
    ("notify", "POST", "/v1/notify/unsubscribe", {"token": NUL}),
]
@pytest.mark.parametrize(("service", "method", "path", "body"), [
    pytest.param(*case, id=f"{case[0]} {case[1]} {case[2]}".replace(quote(NUL), "NUL")) for case in NUL_TEXT])
async def test_a_nul_in_stored_free_text_is_a_client_error(outside: Outside, tenant_a: Org, records: Records,
                                                           service: str, method: str, path: str, body: Any) -> None:
    """A NUL in a free-text field or id that would be stored: a 4xx naming the problem, nothing written."""
    before = await outside.snapshot()
    async with outside.client(service, tenant_a) as client:
        answer = await client.request(method, path, json=body)
    assert 400 <= answer.status_code < 500 and answer.text, answer.text
    assert await outside.snapshot() == before
    assert await records.new() == []


async def test_sql_in_webhook_fields_is_data_and_a_nul_is_refused(outside: Outside, tenant_d: Org,
                                                                   records: Records) -> None:
    """Pipedrive deliveries whose deal id and owner are SQL publish deals with exactly those ids; a NUL in
    either is refused with 400 naming the field, and that delivery stores and publishes nothing."""
    won = json.loads((FIXTURES / "pipedrive" / "v2_deal_won.json").read_text())
    url = f"/v1/webhooks/pipedrive/{tenant_d.slug}"
    password = base64.b64encode(f"attain:{tenant_d.pipedrive_secret}".encode()).decode()
    async with httpx.AsyncClient(base_url=outside.services["ingest"].url, timeout=30,
                                 headers={"Authorization": f"Basic {password}"}) as client:
        mapped = await client.put("/v1/crm/pipedrive/users", json={"*": "="}, headers=tenant_d.auth)
        assert mapped.status_code == 200
        for s in INJECTIONS:
            delivery = won | {"meta": won["meta"] | {"entity_id": f"d-{s}", "id": str(uuid.uuid4())},
                              "data": won["data"] | {"owner_id": f"o-{s}"}}
            answer = await client.post(url, json=delivery)
            assert (answer.status_code, answer.json()["accepted"]) == (200, 1), answer.text
        published = {json.loads(r.value)["deal_id"]: json.loads(r.value)["rep_id"] for r in await records.new()
                     if r.tenant == tenant_d.slug and r.type == "deal.upserted"}
        assert published == {f"d-{s}": f"o-{s}" for s in INJECTIONS}
        await outside.settle()
        await records.new()  # kpi's figures of those deals: published before they settled
        before = await outside.snapshot()
        for meta, data, field in (({"entity_id": NUL}, {}, "deal_id"), ({}, {"owner_id": NUL}, "owner")):
            delivery = won | {"meta": won["meta"] | {"id": str(uuid.uuid4())} | meta, "data": won["data"] | data}
            refused = await client.post(url, json=delivery)
            assert refused.status_code == 400 and field in refused.text and "NUL" in refused.text, refused.text
    assert await outside.snapshot() == before
    assert await records.new() == []


async def test_no_table_was_dropped(outside: Outside) -> None:
    """After every SQL fragment above, in every field: the four schemas hold the tables they were created with."""
    assert await outside.table_names() == outside.initial_tables
