"""ingest's `GET|PUT /v1/settings` (the control room's tenant settings) against the real stack: a change is
stored and announced on the registry, so every reader's copy of the tenant changes; a bad value is a 422 naming
its field and changes nothing; only an admin token may read or change them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx

from tests.integration.conftest import DATABASE_URL, Tenant, create_tenant, token_cli

READERS = ("kpi", "coaching", "recognition")


async def _registry_copies(slug: str) -> dict[str, tuple[Any, ...]]:
    """Each reader's copy of the tenant's registry entry (zone, fiscal start, currency)."""
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        out = {}
        for schema in READERS:
            async with conn.transaction():
                await conn.execute("SELECT set_config('attain.tenant', $1, true)", slug)
                row = await conn.fetchrow(f"SELECT timezone, fiscal_start_month, currency FROM {schema}.tenants"
                                          " WHERE tenant = $1", slug)
            out[schema] = None if row is None else (row[0], row[1], row[2].strip())
        return out
    finally:
        await conn.close()


async def _until_copies(slug: str, wanted: tuple[Any, ...], timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while (copies := await _registry_copies(slug)) != dict.fromkeys(READERS, wanted):
        assert time.monotonic() < deadline, copies
        await asyncio.sleep(0.3)


async def test_an_admin_changes_the_time_zone_and_every_service_takes_it(services: dict[str, str]) -> None:
    tenant: Tenant = await asyncio.to_thread(create_tenant)
    url = f"{services['ingest']}/v1/settings"
    async with httpx.AsyncClient(timeout=15, headers=tenant.auth) as client:
        before = await client.get(url)
        assert before.status_code == 200, before.text
        assert before.json() == {"tenant": tenant.slug, "timezone": "Europe/Berlin", "currency": "EUR",
                                 "fiscal_start_month": 1, "locale": "en", "changed": []}
        await _until_copies(tenant.slug, ("Europe/Berlin", 1, "EUR"))

        changed = await client.put(url, json={"timezone": "America/New_York", "fiscal_start_month": 4,
                                              "locale": "de-DE", "currency": "EUR"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["changed"] == ["timezone", "fiscal_start_month", "locale"]  # EUR was already so
        assert changed.json()["locale"] == "de_DE"  # as Babel spells it, as `tenants locale` stores it
        await _until_copies(tenant.slug, ("America/New_York", 4, "EUR"))
        assert (await client.get(url)).json()["timezone"] == "America/New_York"

        again = await client.put(url, json={"timezone": "America/New_York"})
        assert again.status_code == 200 and again.json()["changed"] == []


async def test_a_bad_value_is_refused_by_its_field_and_changes_nothing(services: dict[str, str]) -> None:
    tenant: Tenant = await asyncio.to_thread(create_tenant)
    url = f"{services['ingest']}/v1/settings"
    async with httpx.AsyncClient(timeout=15, headers=tenant.auth) as client:
        for body, named in (({"timezone": "Mars/Olympus_Mons", "locale": "fr"}, "timezone: unknown time zone"),
                            ({"currency": "euro"}, "currency: 'euro' is not an ISO 4217 code"),
                            ({"fiscal_start_month": 13}, "fiscal_start_month: must be 1-12"),
                            ({"locale": "xx_YY_zz"}, "locale: unknown locale")):
            refused = await client.put(url, json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["detail"].startswith(named), refused.text
        now = (await client.get(url)).json()
        assert (now["timezone"], now["currency"], now["fiscal_start_month"], now["locale"]) == \
            ("Europe/Berlin", "EUR", 1, "en")


async def test_only_an_admin_token_reads_or_changes_the_settings(services: dict[str, str]) -> None:
    tenant: Tenant = await asyncio.to_thread(create_tenant)
    url = f"{services['ingest']}/v1/settings"
    for role in ("integration", "viewer"):
        token = (await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", role))["token"]
        async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {token}"}) as client:
            assert (await client.get(url)).status_code == 403
            refused = await client.put(url, json={"timezone": "UTC"})
            assert refused.status_code == 403, refused.text
    async with httpx.AsyncClient(timeout=15) as client:
        assert (await client.get(url)).status_code == 401
    async with httpx.AsyncClient(timeout=15, headers=tenant.auth) as client:
        assert (await client.get(url)).json()["timezone"] == "Europe/Berlin"
