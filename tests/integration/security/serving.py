"""A service's in-process replica served by uvicorn on a loopback port: real HTTP, the app's lifespan run by
the replica (`tests.integration.inprocess`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import uvicorn
from fastapi import FastAPI

from shared.clock import FixedClock
from shared.service import ServiceSpec
from shared.settings import ServiceSettings
from tests.integration import inprocess


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: pytest keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    """One replica, answering real HTTP on a loopback port."""

    name: str
    replica: inprocess.Replica
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    @property
    def app(self) -> FastAPI:
        return self.replica.app

    @property
    def pool(self) -> asyncpg.Pool:
        return self.replica.pool


async def serve(name: str, spec: ServiceSpec, settings: ServiceSettings, clock: FixedClock) -> Served:
    replica = await inprocess.Replica(spec, settings, clock).start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(replica.app, lifespan="off", log_config=None, access_log=False,
                            timeout_graceful_shutdown=2)
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, f"{name} did not start serving"
        await asyncio.sleep(0.02)
    return Served(name, replica, server, task, f"http://127.0.0.1:{sock.getsockname()[1]}")
