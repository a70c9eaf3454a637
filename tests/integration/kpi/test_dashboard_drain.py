"""A kpi replica told to stop ends its dashboard streams at once: each browser hears `bye` and reconnects to
another replica, and the stop takes a moment instead of uvicorn's whole graceful-shutdown timeout (before: an
open stream held every stop for 20 s, then was cut off without a word)."""

from __future__ import annotations

import asyncio

import httpx

from services.kpi.dashboard.pages import COOKIE
from tests.integration.conftest import LOGS, Tenant, running
from tests.ports import free_ports


async def test_a_stopping_kpi_says_bye_on_its_live_streams_and_stops_without_waiting_for_them(
        services: dict[str, str], tenant: Tenant) -> None:
    replica = running({"kpi": free_ports(1)[0]}, log_suffix="-drain")
    urls = replica.__enter__()
    heard: list[str] = []
    hello = asyncio.Event()

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=urls["kpi"], cookies={COOKIE: tenant.token}, timeout=60) as client, \
                client.stream("GET", "/dashboard/stream") as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    heard.append(line.removeprefix("event: "))
                    if line == "event: hello":
                        hello.set()

    watching = asyncio.create_task(watch())
    stopped = False
    try:
        await asyncio.wait_for(hello.wait(), 30)
        await asyncio.to_thread(replica.__exit__, None, None, None)  # SIGTERM, then wait for the exit
        stopped = True
        await asyncio.wait_for(watching, 5)  # the stream had ended by itself
    finally:
        watching.cancel()
        if not stopped:
            replica.__exit__(None, None, None)
    assert heard[0] == "hello" and heard[-1] == "bye", heard
    log = (LOGS / "kpi-drain.log").read_text()
    assert "service stopped" in log
    assert "timeout graceful shutdown exceeded" not in log
