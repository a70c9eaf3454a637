"""Tokens of their own, from outside (docs/contract.md, "Tokens and roles"): the all-powerful token is gone (a
viewer cannot post events or change a policy), one token is revoked in every service within seconds while the
others keep working, rotation keeps the old token for its grace period only, and an expired token is refused.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.factories import rep
from tests.integration.conftest import create_tenant, tokens_cli

READS = {"kpi": "/v1/leaderboard", "coaching": "/v1/reviews", "recognition": "/v1/celebrations",
         "ingest": "/v1/crm/dead-letters"}


async def _statuses(services: dict[str, str], token: str) -> dict[str, int]:
    """What each service answers the token on a read every role but the viewer may make (ingest: an
    integration's read)."""
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        return {name: (await client.get(services[name] + path)).status_code for name, path in READS.items()}


async def _until_all(services: dict[str, str], token: str, wanted: int, timeout: float = 60) -> float:  # noqa: ASYNC109
    """Seconds until every service answers `token` with `wanted`."""
    started = time.monotonic()
    while True:
        got = await _statuses(services, token)
        if set(got.values()) == {wanted}:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, got
        await asyncio.sleep(0.1)


async def test_a_viewer_token_reads_the_floor_and_can_neither_post_events_nor_change_a_policy(
        services: dict[str, str]) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    viewer = (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", "viewer", "--name", "TV"))[0]
    assert viewer["role"] == "viewer" and viewer["token"].startswith("atn_")
    auth = {"Authorization": f"Bearer {viewer['token']}"}
    async with httpx.AsyncClient(timeout=10, headers=auth) as client:
        deadline = time.monotonic() + 60
        while (board := await client.get(f"{services['kpi']}/v1/leaderboard")).status_code == 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert board.status_code == 200, board.text
        posted = await client.post(f"{services['ingest']}/v1/events", json=[rep("eve")])
        policy = await client.put(f"{services['coaching']}/v1/policies", json={"behind_pace_ratio": "0.5"})
        settings = await client.put(f"{services['recognition']}/v1/recognition/settings", json={})
        tokens = await client.post(f"{services['ingest']}/v1/tokens", json={"role": "admin"})
    assert (posted.status_code, policy.status_code, settings.status_code, tokens.status_code) == (403, 403, 403, 403)
    assert "a viewer token may not" in posted.json()["detail"]
    listed = await asyncio.to_thread(tokens_cli, "list", tenant.slug)
    assert {t["role"] for t in listed} == {"admin", "viewer"}
    assert viewer["token"] not in json.dumps(listed) and "sha256" not in json.dumps(listed)


async def test_one_revoked_token_is_refused_by_every_service_within_seconds_and_the_others_keep_working(
        services: dict[str, str]) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    bridge = (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", "integration"))[0]
    data_team = (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", "integration"))[0]
    await _until_all(services, bridge["token"], 200)
    await _until_all(services, data_team["token"], 200)
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as admin:
        revoked = await admin.delete(f"{services['ingest']}/v1/tokens/{bridge['token_id']}")
    assert revoked.status_code == 204, revoked.text
    took = await _until_all(services, bridge["token"], 401, timeout=30)
    print(f"revocation reached ingest, kpi, coaching and recognition in {took:.2f} s")
    assert await _statuses(services, data_team["token"]) == dict.fromkeys(READS, 200)
    assert await _statuses(services, tenant.token) == dict.fromkeys(READS, 200)


async def test_a_rotated_token_works_for_its_grace_period_only_and_an_expired_token_is_refused(
        services: dict[str, str]) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    old = (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", "integration", "--name", "bridge"))[0]
    await _until_all(services, old["token"], 200)
    kept = (await asyncio.to_thread(tokens_cli, "rotate", tenant.slug, old["token_id"], "--grace-hours", "1"))[0]
    assert kept["replaces"] == old["token_id"] and kept["role"] == "integration"
    await _until_all(services, kept["token"], 200)
    assert await _statuses(services, old["token"]) == dict.fromkeys(READS, 200)  # both, during the grace
    cut = (await asyncio.to_thread(tokens_cli, "rotate", tenant.slug, kept["token_id"], "--grace-hours", "0"))[0]
    await _until_all(services, cut["token"], 200)
    await _until_all(services, kept["token"], 401, timeout=30)  # no grace: gone
    brief = (await asyncio.to_thread(tokens_cli, "create", tenant.slug, "--role", "integration",
                                     "--expires-days", "0.0001"))[0]  # 8.64 s
    assert brief["expires_at"] is not None
    await _until_all(services, brief["token"], 200)  # known everywhere, then
    await _until_all(services, brief["token"], 401, timeout=40)  # refused everywhere once it expired
