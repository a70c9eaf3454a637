"""A TV is not a person (issue 17, item 4): its share link opens the TV read-only, carries no token, and ends when
its viewer token is revoked; a forged link, or one ingest's key signed for a token that can write, opens nothing.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from deploy.local import registry_keys
from shared import share_link
from shared.registry_signing import RegistrySigner, parse_private_key
from tests.factories import rep
from tests.integration.conftest import create_tenant, token_cli


async def _open(kpi: str, path: str, timeout: float = 60) -> httpx.Response:  # noqa: ASYNC109
    """The share link's answer once kpi knows its token (a new token reaches kpi through the registry)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        while True:
            answer = await client.get(kpi + path)
            if answer.status_code != 404 or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.2)


async def test_a_share_link_opens_the_tv_read_only_and_ends_with_its_token(services: dict[str, str]) -> None:
    kpi, ingest = services["kpi"], services["ingest"]
    tenant = await asyncio.to_thread(create_tenant)
    shared = await asyncio.to_thread(token_cli, "share", tenant.slug, "--name", "Floor 2 TV")
    assert shared["role"] == "viewer" and "token" not in shared
    opened = await _open(kpi, shared["path"])
    assert (opened.status_code, opened.headers["location"]) == (303, "/tv"), opened.text
    cookie = opened.cookies["attain_dashboard"]
    assert cookie.startswith("share:") and "atn_" not in cookie  # the link, never a token
    async with httpx.AsyncClient(timeout=10, cookies={"attain_dashboard": cookie}) as screen:
        tv = await screen.get(f"{kpi}/tv")
        board = await screen.get(f"{kpi}/leaderboard")
        rep_page = await screen.get(f"{kpi}/reps/ana")
        # what the cookie holds is no bearer token anywhere
        posted = await screen.post(f"{ingest}/v1/events", json=[rep("eve")],
                                   headers={"Authorization": f"Bearer {cookie}"})
        read = await screen.get(f"{kpi}/v1/leaderboard", headers={"Authorization": f"Bearer {cookie}"})
    assert (tv.status_code, board.status_code, rep_page.status_code) == (200, 200, 403)
    assert (posted.status_code, read.status_code) == (401, 401)

    await asyncio.to_thread(token_cli, "revoke", tenant.slug, shared["token_id"])
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=10, cookies={"attain_dashboard": cookie}, follow_redirects=False) as screen:
        while (after := await screen.get(f"{kpi}/tv")).status_code == 200:
            assert time.monotonic() < deadline, "the revoked link still opened the TV"
            await asyncio.sleep(0.2)
    assert after.status_code == 303 and after.headers["location"].startswith("/signin")
    again = await _open(kpi, shared["path"], timeout=0)
    assert again.status_code == 404


async def test_a_forged_link_or_a_signed_link_to_a_token_that_can_write_opens_nothing(
        services: dict[str, str]) -> None:
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    other = await asyncio.to_thread(create_tenant)
    shared = await asyncio.to_thread(token_cli, "share", tenant.slug)
    assert (await _open(kpi, shared["path"])).status_code == 303  # the genuine one works
    link = shared["path"].removeprefix(share_link.PREFIX)
    forged = [link.replace(tenant.slug, other.slug, 1),  # another tenant, same token id and signature
              link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),  # a changed signature
              f"{tenant.slug}.{shared['token_id']}", "nonsense", "a.b.c"]
    # signed by the real key, but for a token that can write (once kpi knows it): a share link never opens one
    bridge = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "integration")
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {bridge['token']}"}) as client:
        while (await client.get(f"{kpi}/v1/leaderboard")).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    signer = RegistrySigner(parse_private_key(registry_keys.signing_key()))
    forged.append(share_link.make(signer, tenant.slug, bridge["token_id"]))
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        for path in forged:
            answer = await client.get(f"{kpi}{share_link.PREFIX}{path}")
            assert answer.status_code == 404, (path, answer.status_code)
            assert "attain_dashboard" not in answer.cookies
