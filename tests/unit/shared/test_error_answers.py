"""A database that cannot work now is the server's momentary fault, said as 503 with Retry-After: the chaos
run's disk-full fault found ingest answering 500 (DiskFullError escaped the route) while PostgreSQL had no room."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.service import BUSY_RETRY_AFTER_S, ERROR_ANSWERS, UNAVAILABLE_RETRY_AFTER_S

RAISED: dict[str, Exception] = {
    "disk-full": asyncpg.DiskFullError('could not extend file "base/1/2": No space left on device'),
    "shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    "starting": asyncpg.CannotConnectNowError("the database system is starting up"),
    "lost": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "init-file": asyncpg.InternalServerError("could not write init file"),
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "closed-under-it": asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"),  # postgres-restart chaos
    "client-state": asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    "timeout": asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    "bug": asyncpg.UndefinedColumnError('column "nope" does not exist'),
}


def _app() -> FastAPI:
    app = FastAPI()
    for error, answer in ERROR_ANSWERS:
        app.add_exception_handler(error, answer)

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        raise RAISED[name]

    return app


async def _get(name: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(f"/raise/{name}")


@pytest.mark.parametrize("name", ["disk-full", "shutdown", "starting", "lost", "init-file", "refused",
                                  "closed-under-it", "client-state"])
async def test_a_database_that_cannot_work_now_is_503_with_retry_after(name: str) -> None:
    response = await _get(name)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER_S)
    assert type(RAISED[name]).__name__ in response.json()["detail"]


async def test_a_timed_out_statement_stays_a_busy_wait() -> None:
    response = await _get("timeout")
    assert (response.status_code, response.headers["Retry-After"]) == (503, str(BUSY_RETRY_AFTER_S))


async def test_a_statement_the_schema_does_not_match_is_still_our_bug_a_500() -> None:
    assert (await _get("bug")).status_code == 500
