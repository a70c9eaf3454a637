"""A CRM connected by API token: a year of HubSpot deals and calls backfilled through the CRM's API (a local stand-in
serving HubSpot's documented search answers, tests/unit/services/ingest/crm/reading/standin.py), each record
published once, kpi's figures exact, a second run publishing nothing; a backfill killed midway resumes after a restart
and publishes each record once; one asked from the CLI is paused by a spent daily rate limit and goes on after it; a
change whose webhook was dropped is recovered by reconciliation, said so in `source` and counted, and an activity a
webhook brought is not published again by a backfill.

ingest (and kpi for the figure) run in-process on a database of the test's own and the real broker, on a fixed
clock the test moves (leases, the reconciliation's interval); their consumer groups start at the topics' end. The
reconciliation timer is left out of the replicas: the test runs its passes itself (`reconcile.reconciler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from prometheus_client import REGISTRY

from deploy.local import crm_keys, registry_keys
from services.ingest import tenants
from services.ingest.app import SPEC as INGEST
from services.ingest.crm import backfill, reconcile
from services.ingest.crm.backfill_store import jobs
from services.ingest.crm.model import ActivityChange, DealChange
from services.ingest.crm.reading.model import CrmReader, Page
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from shared import topics
from shared.clock import FixedClock
from shared.db import tenant_tx
from tests.factories import rep
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, Watch, fresh_database, open_watch
from tests.integration.test_webhooks_hubspot import SECRET, _sign
from tests.unit.services.ingest.crm.reading.standin import StandIn, hubspot_call, hubspot_deal

NOW = datetime.now(UTC).replace(microsecond=0)  # webhooks are verified against the wall clock
YEAR = datetime(NOW.year, 1, 1, tzinfo=UTC)
OWNER = "910901"  # the stand-in's deals' and calls' owner; every CRM user is mapped to a rep of the same id
API_TOKEN = "pat-na1-backfill-standin"
WITHOUT_RECONCILE = dataclasses.replace(INGEST, timers=[t for t in INGEST.timers
                                                         if t is not reconcile.reconcile_forever])
WITHOUT_TIMERS = dataclasses.replace(WITHOUT_RECONCILE, timers=[t for t in WITHOUT_RECONCILE.timers
                                                                 if t is not backfill.backfill_forever])


def _spread(i: int, n: int) -> datetime:
    """The i-th of n moments spread over this year until three days ago (older than recognition's horizon)."""
    span = (NOW - timedelta(days=3)) - (YEAR + timedelta(days=1))
    return YEAR + timedelta(days=1) + span * i / n


def a_year_of_deals(api: StandIn, n: int = 250) -> Decimal:
    """`n` deals modified this year, every other one won (closed when modified), and five from last year (before the
    fiscal year: never read); the won amount the year's figure must show."""
    deals, won = [], Decimal(0)
    for i in range(1, n + 1):
        modified = _spread(i, n)
        amount = Decimal(f"{1000 + i}.50")
        if i % 2 == 0:
            deals.append(hubspot_deal(i, modified, amount=str(amount), dealstage="closedwon",
                                      closedate=modified.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
            won += amount
        else:
            deals.append(hubspot_deal(i, modified, amount=str(amount)))
    deals += [hubspot_deal(9000 + i, YEAR - timedelta(days=200 - i)) for i in range(5)]
    api.hubspot_records["deals"] = deals
    api.hubspot_records["calls"] = [hubspot_call(20_000 + i, _spread(i, 30)) for i in range(1, 31)]
    return won


def _settings(db: str, prefix: str) -> dict[str, Any]:
    return {"database_url": db, "kafka_bootstrap_servers": BOOTSTRAP, "kafka_consumer_group_prefix": prefix,
            "outbox_poll_interval_s": 0.2, "log_format": "text"}


def _ingest(db: str, prefix: str, clock: FixedClock, spec: Any = WITHOUT_RECONCILE) -> inprocess.Replica:
    return inprocess.Replica(spec, IngestSettings(
        **_settings(db, prefix), crm_secret_keys=crm_keys.crm_secret_keys(),
        registry_signing_key=registry_keys.signing_key(), crm_api_allowed_hosts="127.0.0.1",
        crm_backfill_poll_s=0.2, crm_backfill_lease_s=30, crm_reconcile_interval_s=900,
        crm_reconcile_overlap_s=300, crm_reconcile_settle_s=60), clock)


@contextlib.asynccontextmanager
async def running(*replicas: inprocess.Replica) -> AsyncIterator[None]:
    started: list[inprocess.Replica] = []
    try:
        for replica in replicas:
            started.append(await replica.start())
        yield
    finally:
        for replica in reversed(started):
            await replica.stop()
            await replica.http.aclose()


async def connected_tenant(db: str, prefix: str, ingest: inprocess.Replica, api: StandIn) -> tuple[str, dict[str, str]]:
    """A tenant created as an operator does (`tenants create`) and given a HubSpot API token, its
    CRM users mapped to reps of the same ids, and the owner on the roster; slug and auth header."""
    slug, token = await inprocess.create_tenant(db, prefix)
    async with tenant_tx(ingest.pool, slug) as conn:  # what `tenants set-api-token` does
        await tenants.set_api_token(conn, slug, "hubspot", API_TOKEN, api.base_url, box=ingest.app.state.context.box)
    auth = {"Authorization": f"Bearer {token}"}
    mapped = await ingest.http.put("/v1/crm/hubspot/users", json={"*": "="}, headers=auth)
    assert mapped.status_code == 200, mapped.text
    for attempt in range(100):  # ingest's own read of the new tenant
        sent = await ingest.http.post("/v1/events", headers=auth, json=[rep(OWNER, at=NOW - timedelta(days=300))])
        if sent.status_code == 200 or attempt == 99:
            break
        await asyncio.sleep(0.2)
    assert sent.status_code == 200, sent.text
    return slug, auth


async def until_done(ingest: inprocess.Replica, auth: dict[str, str], timeout: float = 120) -> dict[str, Any]:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        progress: dict[str, Any] = (await ingest.http.get("/v1/crm/hubspot/backfill", headers=auth)).json()
        if progress["jobs"] and all(j["status"] != "running" for j in progress["jobs"]):
            return progress
        assert asyncio.get_running_loop().time() < deadline, progress
        await asyncio.sleep(0.3)


async def collected(w: Watch, deals: int, activities: int, timeout: float = 60) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """What `w` saw once it holds at least `deals` deal events and `activities` activity events, and two seconds
    more (a duplicate would show)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while sum(s["topic"] == topics.DEALS.name for s in w.seen) < deals or \
            sum(s["topic"] == topics.ACTIVITIES.name for s in w.seen) < activities:
        assert asyncio.get_running_loop().time() < deadline, Counter(s["topic"] for s in w.seen)
        await w.poll(0.5)
    await w.poll(2)
    return w.seen


def _source(seen: dict[str, Any]) -> str:
    return dict(seen["headers"])["ce_source"].decode()


async def test_a_year_of_deals_is_backfilled_once_each_and_kpi_counts_it_exactly(stack: None) -> None:
    db = await fresh_database(f"backfill_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-backfill-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    await inprocess.start_group_at_end(f"{prefix}-kpi", inprocess.KPI_CONSUMES)
    ingest = _ingest(db, prefix, clock)
    kpi = inprocess.Replica(KPI, KpiSettings(**_settings(db, prefix)), clock)
    with StandIn() as api:
        won = a_year_of_deals(api)
        async with running(ingest, kpi):
            slug, auth = await connected_tenant(db, prefix, ingest, api)
            w = await open_watch(slug, topics.DEALS.name, topics.ACTIVITIES.name)
            try:
                asked = await ingest.http.post("/v1/crm/hubspot/backfill", headers=auth)
                assert asked.status_code == 202, asked.text
                berlin_new_year = f"{NOW.year - 1}-12-31T23:00:00Z"  # the fiscal year's start: 1 January, Berlin
                assert {j["since"] for j in asked.json()["jobs"]} == {berlin_new_year}
                again = await ingest.http.post("/v1/crm/hubspot/backfill", headers=auth)
                assert again.status_code == 409  # one at a time
                progress = await until_done(ingest, auth)
                seen = await collected(w, 250, 30)
            finally:
                await w.consumer.stop()
            by_kind = {j["kind"]: j for j in progress["jobs"]}
            assert (by_kind["deals"]["read"], by_kind["deals"]["published"], by_kind["deals"]["status"]) == (
                250, 250, "done")
            assert (by_kind["activities"]["read"], by_kind["activities"]["published"]) == (30, 30)
            assert by_kind["deals"]["pages"] == 3  # 100 a page
            deals = [s for s in seen if s["topic"] == topics.DEALS.name]
            assert sorted(Counter(s["data"]["deal_id"] for s in deals).values()) == [1] * 250
            calls = [s for s in seen if s["topic"] == topics.ACTIVITIES.name]
            assert sorted(Counter(s["data"]["activity_id"] for s in calls).values()) == [1] * 30
            assert {_source(s) for s in seen} == {"backfill"}
            # History: each event carries the CRM's own times, all older than recognition's horizon (48 h), so
            # recognition records what they cross quietly instead of celebrating it now.
            horizon = NOW - timedelta(hours=48)
            assert all(datetime.fromisoformat(s["data"]["updated_at"]) < horizon for s in deals)
            assert all(datetime.fromisoformat(s["data"]["closed_at"]) < horizon for s in deals
                       if s["data"]["closed_at"])

            # kpi's figures of the year (its read side: the `attainment` view over its tallies), exact.
            expected = {"won_revenue": won, "deals_won": 125, "calls": 30}

            async def the_year(c: Any) -> dict[str, Decimal] | None:
                rows = await c.fetch("SELECT metric, actual FROM kpi.attainment WHERE tenant = $1 AND scope = 'rep'"
                                     " AND scope_id = $2 AND period = $3", slug, OWNER, str(NOW.year))
                found = {r["metric"]: r["actual"] for r in rows if r["metric"] in expected}
                return found if found == expected else None

            assert await inprocess.until(db, the_year, timeout=60) == expected

            # The same year once more: every record is read again, nothing is published again.
            w = await open_watch(slug, topics.DEALS.name, topics.ACTIVITIES.name)
            try:
                assert (await ingest.http.post("/v1/crm/hubspot/backfill", headers=auth)).status_code == 202
                progress = await until_done(ingest, auth)
                await w.poll(3)
                assert w.seen == []
            finally:
                await w.consumer.stop()
            assert [(j["read"], j["published"]) for j in progress["jobs"]] == [(250, 0), (30, 0)]


class Hanging:
    """A reader that answers `pages` pages, then hangs (the process is about to be killed)."""

    def __init__(self, inner: CrmReader, pages: int) -> None:
        self._inner, self._left, self.stuck = inner, pages, asyncio.Event()

    async def list_users(self, access: Any) -> Any:
        return await self._inner.list_users(access)

    async def changed_deals(self, access: Any, since: datetime, cursor: str | None,
                            properties: Any = ()) -> Page[DealChange]:
        if self._left == 0:
            self.stuck.set()
            await asyncio.Event().wait()
        self._left -= 1
        return await self._inner.changed_deals(access, since, cursor, properties)

    async def changed_activities(self, access: Any, since: datetime, cursor: str | None,
                                 properties: Any = ()) -> Page[ActivityChange]:
        return await self._inner.changed_activities(access, since, cursor, properties)


async def test_a_backfill_killed_midway_resumes_after_a_restart_and_publishes_each_record_once(stack: None) -> None:
    db = await fresh_database(f"backfill_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-backfill-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    with StandIn() as api:
        a_year_of_deals(api)
        first = _ingest(db, prefix, clock, WITHOUT_TIMERS)  # its backfill run is driven (and killed) by the test
        async with running(first):
            slug, auth = await connected_tenant(db, prefix, first, api)
            w = await open_watch(slug, topics.DEALS.name)
            asked = await first.http.post("/v1/crm/hubspot/backfill", headers=auth, json={"since": YEAR.isoformat()})
            assert asked.status_code == 202, asked.text
            runner = backfill.backfiller(first.app.state.runtime, first.app.state.context.crm,
                                         first.app.state.context.box)
            real = runner.reader
            hanging = Hanging(real("hubspot"), pages=2)
            runner.reader = lambda crm: hanging
            killed = asyncio.create_task(runner.run(slug, "hubspot", "deals"))
            await asyncio.wait_for(hanging.stuck.wait(), 60)
            killed.cancel()  # between pages: no lease given back, as after SIGKILL
            with contextlib.suppress(asyncio.CancelledError):
                await killed
            async with tenant_tx(first.pool, slug) as conn:
                (deals_job,) = [j for j in await jobs(conn, slug, "hubspot") if j.kind == "deals"]
            assert (deals_job.status, deals_job.pages, deals_job.published) == ("running", 2, 200)

        clock.advance(timedelta(seconds=31))  # the dead runner's lease has run out
        second = _ingest(db, prefix, clock)  # a restarted ingest: its timer takes the job over
        async with running(second):
            progress = await until_done(second, auth)
            try:
                seen = await collected(w, 250, 0)
            finally:
                await w.consumer.stop()
    by_kind = {j["kind"]: j for j in progress["jobs"]}
    assert (by_kind["deals"]["status"], by_kind["deals"]["pages"], by_kind["deals"]["published"]) == ("done", 3, 250)
    assert sorted(Counter(s["data"]["deal_id"] for s in seen).values()) == [1] * 250


DAILY_429 = (429, {}, {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                      "correlationId": "3f1d6c52-2b8e-4c1a-9a57-5d0c8e7b1a20", "policyName": "DAILY"})


async def test_a_backfill_asked_from_the_cli_is_paused_by_a_spent_daily_limit_and_goes_on_once(stack: None) -> None:
    db = await fresh_database(f"backfill_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-backfill-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    with StandIn() as api:
        a_year_of_deals(api, n=120)
        api.throttle("/crm/v3/objects/deals/search", DAILY_429)  # HubSpot's daily budget is spent
        ingest = _ingest(db, prefix, clock)
        async with running(ingest):
            slug, auth = await connected_tenant(db, prefix, ingest, api)
            w = await open_watch(slug, topics.DEALS.name)
            try:
                asked = await _cli(db, "backfill", slug, "hubspot")  # as an operator asks, from the command line
                assert asked["status"] == "backfill requested", asked
                for _ in range(200):
                    deals = next(j for j in (await ingest.http.get("/v1/crm/hubspot/backfill", headers=auth)
                                             ).json()["jobs"] if j["kind"] == "deals")
                    if deals["phase"] == "throttled":
                        break
                    await asyncio.sleep(0.1)
                assert (deals["status"], deals["phase"], deals["pages"]) == ("running", "throttled", 0), deals
                resume_at = datetime.fromisoformat(deals["resume_at"])  # an hour less the moments already waited
                assert NOW + timedelta(minutes=59) < resume_at <= NOW + timedelta(hours=1)
                await asyncio.sleep(1)  # the timer leaves it alone meanwhile
                assert len([r for r in api.requests if r[1] == "/crm/v3/objects/deals/search"]) == 1
                clock.advance(timedelta(hours=1))
                progress = await until_done(ingest, auth)
                seen = await collected(w, 120, 0)
            finally:
                await w.consumer.stop()
    deals = next(j for j in progress["jobs"] if j["kind"] == "deals")
    assert (deals["status"], deals["published"], deals["error"]) == ("done", 120, None)
    assert sorted(Counter(s["data"]["deal_id"] for s in seen).values()) == [1] * 120


async def test_a_change_whose_webhook_was_dropped_is_published_by_reconciliation_and_counted_once(
        stack: None) -> None:
    db = await fresh_database(f"backfill_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-backfill-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    with StandIn() as api:
        a_year_of_deals(api, n=20)
        ingest = _ingest(db, prefix, clock)
        async with running(ingest):
            slug, auth = await connected_tenant(db, prefix, ingest, api)
            # A call a webhook brought before the backfill (under the vendor's change id, as HubSpot's parser
            # names it): the backfill reads it under its own id and must not publish it a second time.
            context = ingest.app.state.context
            async with tenant_tx(ingest.pool, slug) as conn:
                tenant = await tenants.by_slug(conn, slug)
            assert tenant is not None
            first_call = _spread(1, 30)
            hooked_call = await context.crm.deliver(tenant, "hubspot", [ActivityChange(
                "hubspot", "33:25:20001:call.creation:1", "20001", first_call, "call", OWNER, first_call)])
            assert hooked_call.accepted == 1
            assert (await ingest.http.post("/v1/crm/hubspot/backfill", headers=auth)).status_code == 202
            filled = {j["kind"]: j for j in (await until_done(ingest, auth))["jobs"]}
            assert (filled["activities"]["read"], filled["activities"]["published"]) == (30, 29)
            assert (filled["deals"]["read"], filled["deals"]["published"]) == (20, 20)
            passes = reconcile.reconciler(ingest.app.state.runtime)
            assert await passes.run(slug, "hubspot") == {}  # the first sight: the watermark is set, no pass yet

            # Later: deal 3 is won and its webhook arrives; deal 501 is created and call 20501 logged, both of whose
            # webhooks are dropped. The CRM's API has all three.
            clock.advance(timedelta(minutes=20))
            moment = clock.now() - timedelta(minutes=5)
            millis = int(moment.timestamp() * 1000)
            api.hubspot_records["deals"] = [d for d in api.hubspot_records["deals"] if d["id"] != "3"] + [
                hubspot_deal(3, moment, amount="1003.50", dealstage="closedwon"),
                hubspot_deal(501, moment, amount="777.00")]
            api.hubspot_records["calls"].append(hubspot_call(20_501, moment))
            w = await open_watch(slug, topics.DEALS.name, topics.ACTIVITIES.name)
            try:
                hooked = await _webhook(ingest, slug, [{
                    "eventId": 1, "subscriptionId": 25, "portalId": 33, "appId": 1160452, "occurredAt": millis,
                    "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 3,
                    "changeSource": "CRM", "propertyName": "dealstage", "propertyValue": "closedwon"}])
                assert hooked.json()["accepted"] == 1, hooked.text
                before = _reconciled("deals") + _reconciled("activities")
                found = await passes.run(slug, "hubspot")
                seen = await collected(w, 2, 1)
            finally:
                await w.consumer.stop()
            assert found == {"deals": 1, "activities": 1}
            assert _reconciled("deals") + _reconciled("activities") == before + 2
            recovered = [(s["topic"], s["data"].get("deal_id") or s["data"].get("activity_id"), _source(s))
                         for s in seen]
            assert sorted(recovered) == sorted([(topics.DEALS.name, "3", "hubspot"),
                                                (topics.DEALS.name, "501", "reconciliation"),
                                                (topics.ACTIVITIES.name, "20501", "reconciliation")])
            progress = (await ingest.http.get("/v1/crm/hubspot/backfill", headers=auth)).json()
            marks = {m["kind"]: m for m in progress["reconciliation"]}
            assert (marks["deals"]["missed_total"], marks["activities"]["missed_total"]) == (1, 1)
            assert marks["deals"]["watermark"] == moment.isoformat().replace("+00:00", "Z")

            # The next pass reads the overlap again: nothing new is published, nothing counted.
            clock.advance(timedelta(minutes=16))
            assert await passes.run(slug, "hubspot") == {"deals": 0, "activities": 0}


async def _webhook(ingest: inprocess.Replica, slug: str, events: list[dict[str, Any]]) -> httpx.Response:
    """A HubSpot webhook as HubSpot sends it, signed (v3) with the tenant's client secret, set first."""
    async with tenant_tx(ingest.pool, slug) as conn:
        await tenants.set_secret(conn, slug, "hubspot", SECRET, None, timedelta(0), box=ingest.app.state.context.box)
    url = f"http://ingest/v1/webhooks/hubspot/{slug}"
    raw = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))  # verified against the wall clock
    return await ingest.http.post(url, content=raw, headers={
        "content-type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": _sign(SECRET, url, raw, stamp)})


async def _cli(db: str, *args: str) -> dict[str, Any]:
    """`python -m services.ingest tenants ...` on `db`; its JSON answer."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", "tenants", *args, cwd=ROOT,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": db},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    answer: dict[str, Any] = json.loads(out)
    return answer


def _reconciled(kind: str) -> float:
    return REGISTRY.get_sample_value("attain_ingest_crm_reconciled_total", {"crm": "hubspot", "kind": kind}) or 0.0
