"""The end-to-end check the secured-Kafka tests share: a tenant made with ingest's CLI on the broker under test,
then one deal through ingest's API to a scorecard, a celebration and a check-in, each read from its service."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from deploy.local import crm_keys, registry_keys
from deploy.local.procs import ROOT
from tests.factories import deal, rep, target, this_quarter
from tests.integration.conftest import Tenant, post

Body = dict[str, Any]


def tenant_on(env: dict[str, str]) -> Tenant:
    """A new tenant, made by `python -m services.ingest tenants create` with `env` (the broker's settings)."""
    slug = f"t-{uuid.uuid4().hex[:12]}"
    out = subprocess.run([sys.executable, "-m", "services.ingest", "tenants", "create", slug, "--timezone",
                          "Europe/Berlin"], cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, **crm_keys.env(), **registry_keys.env(), **env})
    created = json.loads(out.stdout)
    return Tenant(created["tenant"], created["token"], "Europe/Berlin")


async def until(client: httpx.AsyncClient, url: str, ok: Callable[[Body], bool],
                timeout: float = 60) -> Body:  # noqa: ASYNC109
    """The body `url` answers once `ok` holds of it; fails after `timeout` seconds with the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(url)
        if response.status_code == 200 and ok(response.json()):
            return response.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{url}: {response.status_code} {response.text[:500]}"
        await asyncio.sleep(0.3)


async def deal_to_scorecard_cheer_and_check_in(urls: dict[str, str], tenant: Tenant) -> tuple[Body, Body, Body]:
    """Ana wins a deal worth her whole target, Bo (target 90,000) has nothing: Ana's scorecard shows it, she is
    celebrated (quota_100) and Bo's manager is asked for a check-in (behind_pace). The three bodies."""
    quarter, at = this_quarter(timedelta(minutes=5))
    events = [rep("ana", manager="mgr-1"), rep("bo", manager="mgr-1"), target("ana", quarter, "1000"),
              target("bo", quarter, "90000"), deal("crm-1", "ana", "1000", updated_at=at)]
    accepted = await post(urls["ingest"], tenant, events)
    assert accepted.status_code == 200, accepted.text
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        card = await until(client, f"{urls['kpi']}/v1/scorecards/ana?period={quarter}",
                           lambda body: any(f["metric"] == "won_revenue" and f["actual"] == "1000"
                                            for f in body["figures"]))
        assert (card["scope"], card["scope_id"], card["period"]) == ("rep", "ana", quarter)
        cheers = await until(client, f"{urls['recognition']}/v1/celebrations?scope_id=ana",
                             lambda body: any(c["milestone"] == "quota_100" for c in body["celebrations"]))
        tasks = await until(client, f"{urls['coaching']}/v1/tasks?rep_id=bo",
                            lambda body: any(t["rule"] == "behind_pace" for t in body["tasks"]))
    return card, cheers, tasks
