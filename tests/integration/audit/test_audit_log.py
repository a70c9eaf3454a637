"""The audit log (issue 17, item 7), from outside: changes made through the services' APIs and CLIs appear in
kpi's `GET /v1/audit` with who, when, before and after, and on `attain.audit.v1` for a SIEM; no secret is ever
in it; only admins read it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import httpx

from shared import topics
from tests.factories import rep, target, this_quarter
from tests.integration.conftest import create_tenant, tenant_cli, tokens_cli


async def _entries(kpi: str, auth: dict[str, str], wanted: int, timeout: float = 60,  # noqa: ASYNC109
                   **query: str) -> list[dict[str, Any]]:
    """The log's entries matching `query`, once there are at least `wanted` of them (newest first)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=auth) as client:
        while True:
            answer = await client.get(f"{kpi}/v1/audit", params=query)
            assert answer.status_code in (200, 401), answer.text  # 401 until kpi learned the tenant
            if answer.status_code == 200 and len(found := answer.json()["entries"]) >= wanted:
                return found
            assert time.monotonic() < deadline, answer.text
            await asyncio.sleep(0.3)


async def test_targets_tokens_policies_and_settings_are_written_down_with_who_before_and_after(
        services: dict[str, str], watch: Any) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    seen = await watch(tenant.slug, topics.AUDIT.name)
    quarter, _ = this_quarter(timedelta(0))
    async with httpx.AsyncClient(timeout=30, headers=tenant.auth) as client:
        for value in ("100000", "150000"):
            posted = await client.post(f"{services['ingest']}/v1/events",
                                       json=[rep("ana"), target("ana", quarter, value)])
            assert posted.status_code == 200, posted.text
        made = await client.post(f"{services['ingest']}/v1/tokens", json={"role": "viewer", "name": "TV"})
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 60
        while (policy := await client.put(f"{services['coaching']}/v1/policies",
                                          json={"pace_threshold": "0.6"})).status_code == 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert policy.status_code == 200, policy.text
        while (cheers := await client.put(f"{services['recognition']}/v1/recognition/settings",
                                          json={"quota_thresholds": ["1.0", "1.5"]})).status_code == 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert cheers.status_code == 200, cheers.text
    await asyncio.to_thread(tenant_cli, "locale", tenant.slug, "de_DE")
    secret = made.json()["token"]

    subject = f"target:rep/ana/won_revenue/{quarter}"
    first, second = reversed(await _entries(services["kpi"], tenant.auth, 2, subject=subject))
    assert (first["action"], first["service"], first["before"]) == ("target.set", "ingest", None)
    assert second["before"]["value"] == first["after"]["value"] and second["after"]["value"] in ("150000", "150000.0")
    assert second["actor"] == {"kind": "token", "token_id": "initial", "role": "admin", "rep_id": None,
                               "manager_id": None, "name": ""}
    (roster,) = await _entries(services["kpi"], tenant.auth, 1, subject="rep:ana")  # the same rep twice: once
    assert roster["after"]["team_id"] == "team-a"

    (created,) = await _entries(services["kpi"], tenant.auth, 1, action="token.created",
                                subject=f"token:{made.json()['token_id']}")
    assert created["after"]["role"] == "viewer" and created["after"]["name"] == "TV"
    (changed,) = await _entries(services["kpi"], tenant.auth, 1, subject="policy:tenant")
    assert (changed["service"], changed["before"], changed["after"]) == ("coaching", {}, {"pace_threshold": "0.6"})
    (cheered,) = await _entries(services["kpi"], tenant.auth, 1, subject="recognition_settings:tenant")
    assert cheered["after"] == {"quota_thresholds": ["1.0", "1.5"]}
    locale = (await _entries(services["kpi"], tenant.auth, 2, subject="settings:tenant"))[0]
    assert (locale["action"], locale["actor"]["kind"]) == ("settings.changed", "cli")
    assert (locale["before"]["locale"], locale["after"]["locale"]) == ("en", "de_DE")

    everything = await _entries(services["kpi"], tenant.auth, 8)
    assert secret not in json.dumps(everything) and tenant.token not in json.dumps(everything)
    prefixed = await _entries(services["kpi"], tenant.auth, 1, action="token.")
    assert {e["action"] for e in prefixed} == {"token.created"}

    # the same entries on the topic, for a SIEM
    on_topic = await seen.wait_for(lambda r: r["type"] == "attain.audit.recorded" and r["data"]["subject"] == subject)
    assert on_topic["key"] == f"{tenant.slug}:{subject}".encode()
    assert on_topic["data"]["audit_id"] == on_topic["id"]


async def test_only_an_admin_reads_the_log(services: dict[str, str]) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    others = {role: (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", role,
                                             *(("--rep", "ana") if role == "rep" else ()),
                                             *(("--manager", "bo") if role == "manager" else ())))[0]["token"]
              for role in ("integration", "manager", "rep", "viewer")}
    await _entries(services["kpi"], tenant.auth, 1)  # the tokens just made are in it
    async with httpx.AsyncClient(timeout=10) as client:
        for role, token in others.items():
            deadline = time.monotonic() + 60
            while (answer := await client.get(f"{services['kpi']}/v1/audit",
                                              headers={"Authorization": f"Bearer {token}"})).status_code == 401:
                assert time.monotonic() < deadline, role
                await asyncio.sleep(0.2)
            assert answer.status_code == 403, (role, answer.text)

