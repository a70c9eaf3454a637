"""Issue 21's first acceptance item as one journey: a fresh tenant connects HubSpot and sees numbers.

1. connect: the tenant's OAuth client set and authorized through ingest's API against a stand-in of HubSpot's OAuth
   server (tests/unit/services/ingest/crm/oauth_standin.py); from then on the CRM's API (a stand-in serving
   HubSpot's documented answers, tests/unit/services/ingest/crm/reading/standin.py) is read with the access token
   that server granted, and with nothing else;
2. users proposed: the owners become reps (Alice by her e-mail) in a dry run, then the sync creates and maps them;
3. a year backfilled, paged, through a 429: each deal published once;
4. kpi's figures of Alice's quarter equal what the stand-in's data add up to;
5. a change whose webhook never came is found by reconciliation once the clock passes CRM_RECONCILE_INTERVAL_S:
   published with `source` "reconciliation", and Alice's figure moves by exactly its amount;
6. the tenant revokes the app at HubSpot: the refresh timer's next renewal is refused and `GET /v1/crm/oauth`
   shows `revoked` with HubSpot's reason, as does the control room's CRM page (kpi's dashboard, calling ingest).

ingest and kpi run in-process (tests/integration/inprocess.py) on a database of the test's own, their consumer
groups starting at the topics' end, on a fixed clock the test moves; never the suite's shared services. ingest
also answers real HTTP on a loopback port (tests/integration/security/serving.py) for the dashboard to call. HubSpot's
API lives at one documented origin (crm/oauth.py `VENDORS`), so the test points it at the stand-in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.crm import oauth
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.dashboard.web import COOKIE
from services.kpi.settings import KpiSettings
from shared import topics
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, fresh_database, open_watch
from tests.integration.crm_backfill.test_backfill import _reconciled, _source, collected, running, until_done
from tests.integration.crm_oauth.test_crm_oauth import connect, oauth_status, stored, wait_for
from tests.integration.security.serving import serve
from tests.unit.services.ingest.crm.oauth_standin import OAuthStandIn
from tests.unit.services.ingest.crm.reading.standin import (
    HUBSPOT_429,
    StandIn,
    hubspot_call,
    hubspot_deal,
    hubspot_owner,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime.now(UTC).replace(microsecond=0)
YEAR = datetime(NOW.astimezone(BERLIN).year, 1, 1, tzinfo=BERLIN)  # the fiscal year: January in Berlin
ALICE, BO = "81422101", "81422102"
RECONCILE_EVERY_S, SETTLE_S = 2, 30
REVOKED = "refresh token is invalid, expired or revoked"  # HubSpot's reason, as its OAuth stand-in answers it


@dataclass
class HubSpotOAuth(OAuthStandIn):
    """HubSpot's OAuth server, remembering the access tokens it granted (for the API stand-in to honour)."""

    granted: list[str] = field(default_factory=list)

    def _granted(self, refresh: str, scope: str, *, first: bool) -> dict[str, Any]:
        answer = super()._granted(refresh, scope, first=first)
        with self._lock:
            self.granted.append(answer["access_token"])
        return answer


@dataclass
class HubSpotApi(StandIn):
    """HubSpot's API answering only a Bearer access token its OAuth server granted, with HubSpot's documented 401
    otherwise; each credential presented is kept in `presented`."""

    oauth: HubSpotOAuth | None = None
    presented: list[str] = field(default_factory=list)

    def answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: dict[str, Any] | None) -> tuple[int, dict[str, str], object]:
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            self.presented.append(bearer or f"x-api-token:{headers.get('x-api-token')}")
            honoured = self.oauth is not None and bearer in self.oauth.granted
        if not honoured:
            return 401, {}, {"status": "error", "message": "Authentication credentials not found.",
                             "correlationId": "5b6a0b1e-0d7c-4a6e-9c1e-1d2f3a4b5c6d",
                             "category": "INVALID_AUTHENTICATION"}
        return super().answer(method, path, query, headers, body)


def _moment(i: int, n: int) -> datetime:
    """The i-th of n moments spread over the fiscal year until a day ago."""
    first, last = YEAR + timedelta(days=1), NOW - timedelta(days=1)
    return first + (last - first) * i / n


def a_year_of_deals(api: StandIn, n: int = 160) -> None:
    """`n` deals modified this year, Alice's and Bo's in turn, every other one won (closed when modified), the last
    two Alice's, won halfway between the quarter's start and now (so her quarter is never empty); a few from last
    year (never read); and 40 calls of Alice's."""
    deals = []
    for i in range(1, n - 1):
        modified, owner = _moment(i, n - 2), (ALICE if i % 4 in (1, 2) else BO)
        won = {"dealstage": "closedwon", "closedate": _millis_iso(modified)} if i % 2 == 0 else {}
        deals.append(hubspot_deal(i, modified, amount=f"{1000 + i}.25", hubspot_owner_id=owner, **won))
    local = NOW.astimezone(BERLIN)
    quarter_start = datetime(local.year, (local.month - 1) // 3 * 3 + 1, 1, tzinfo=BERLIN)
    lately = quarter_start + (NOW - quarter_start) / 2
    deals += [hubspot_deal(i, lately, amount=f"{2000 + i}.75", hubspot_owner_id=ALICE, dealstage="closedwon",
                           closedate=_millis_iso(lately)) for i in (n - 1, n)]
    deals += [hubspot_deal(9000 + i, YEAR - timedelta(days=100 - i), hubspot_owner_id=ALICE) for i in range(3)]
    api.hubspot_records["deals"] = deals
    calls = [hubspot_call(20_000 + i, _moment(i, 40)) for i in range(1, 41)]
    for c in calls:
        c["properties"]["hubspot_owner_id"] = ALICE
    api.hubspot_records["calls"] = calls


def _millis_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def quarter_of(moment: datetime) -> str:
    local = moment.astimezone(BERLIN)
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def alices_quarter(api: StandIn, quarter: str) -> dict[str, Decimal]:
    """Alice's won revenue and deals won in `quarter`, added up from the stand-in's deals."""
    won = [d["properties"] for d in api.hubspot_records["deals"]
           if d["properties"]["hubspot_owner_id"] == ALICE and d["properties"]["dealstage"] == "closedwon"
           and quarter_of(datetime.fromisoformat(d["properties"]["closedate"])) == quarter]
    return {"won_revenue": sum((Decimal(p["amount"]) for p in won), Decimal(0)), "deals_won": Decimal(len(won))}


async def kpi_shows(db: str, slug: str, quarter: str, expected: dict[str, Decimal]) -> dict[str, Decimal]:
    """kpi's figures of Alice's quarter (its `attainment` view over its tallies) once they are `expected`, or what
    they are after a minute."""
    conn = await asyncpg.connect(db)
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = await conn.fetch("SELECT metric, actual FROM kpi.attainment WHERE tenant = $1 AND scope = 'rep'"
                                    " AND scope_id = 'alice' AND period = $2", slug, quarter)
            found = {r["metric"]: r["actual"] for r in rows if r["metric"] in expected}
            if found == expected or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


async def test_a_tenant_connects_hubspot_with_oauth_and_sees_its_year_exact_until_the_app_is_revoked(
        stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await fresh_database(f"crmjourney_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-crmjourney-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    common: dict[str, Any] = {"database_url": db, "kafka_bootstrap_servers": BOOTSTRAP,
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "log_format": "text"}
    await inprocess.start_group_at_end(f"{prefix}-kpi", inprocess.KPI_CONSUMES)
    hubspot = HubSpotOAuth("hubspot")
    api = HubSpotApi(oauth=hubspot)
    with hubspot, api:
        api.hubspot_owners += [hubspot_owner(int(ALICE), "Alice@Example.com", "Alice", "Example"),
                               hubspot_owner(int(BO), "bo@example.com", "Bo", "Berg")]
        a_year_of_deals(api)
        # HubSpot's API has one origin, which no tenant connection names: here, the stand-in's
        monkeypatch.setitem(oauth.VENDORS, "hubspot",
                            dataclasses.replace(oauth.VENDORS["hubspot"], api_base_url=api.base_url))
        # ingest answers real HTTP too: the control room (kpi's dashboard) calls it there
        served = await serve("ingest", INGEST, IngestSettings(
            **common, crm_secret_keys=crm_keys.crm_secret_keys(), registry_signing_key=registry_keys.signing_key(),
            crm_api_allowed_hosts="127.0.0.1", crm_oauth_refresh_interval_s=0.2, crm_users_sync_check_s=3600,
            crm_backfill_poll_s=0.2, crm_backfill_lease_s=30, crm_reconcile_interval_s=RECONCILE_EVERY_S,
            crm_reconcile_overlap_s=60, crm_reconcile_settle_s=SETTLE_S), clock)
        ingest = served.replica
        kpi = inprocess.Replica(KPI, KpiSettings(**common, dashboard_ingest_url=served.url), clock)
        try:
            async with running(kpi):
                await journey(db, prefix, clock, hubspot, api, ingest, kpi)
        finally:
            served.server.should_exit = True
            await served.task
            await ingest.stop()
            await ingest.http.aclose()


async def journey(db: str, prefix: str, clock: FixedClock, hubspot: HubSpotOAuth, api: HubSpotApi,
                  ingest: inprocess.Replica, kpi: inprocess.Replica) -> None:
    """The six steps of the module docstring, for one fresh tenant."""
    slug, token = await inprocess.create_tenant(db, prefix, "Europe/Berlin")
    auth = {"Authorization": f"Bearer {token}"}

    # 1. connect
    page = await connect(ingest, "hubspot", token, hubspot)
    assert page.status_code == 200, page.text
    assert "Connected to HubSpot" in page.text
    status = await oauth_status(ingest, token, "hubspot")
    assert (status["status"], status["last_error"]) == ("connected", None)
    connection = await stored(db, slug, "hubspot")
    assert connection["api_base_url"] == api.base_url
    (access_token,) = hubspot.granted

    # 2. users proposed, then created and mapped
    proposal = await ingest.http.get("/v1/crm/hubspot/users/proposal", headers=auth)
    assert proposal.status_code == 200, proposal.text
    proposed = proposal.json()
    assert (proposed["applied"], proposed["created"]) == (False, {ALICE: "alice", BO: "bo"})
    alice = next(d for d in proposed["decisions"] if d["crm_user_id"] == ALICE)
    assert (alice["action"], alice["reason"], alice["new_rep"]["name"], alice["new_rep"]["email"]) == (
        "create", "new in hubspot: no rep has its e-mail", "Alice Example", "alice@example.com")
    assert (await ingest.http.get("/v1/crm/hubspot/users", headers=auth)).json()["users"] == {}
    synced = await ingest.http.post("/v1/crm/hubspot/users/sync", headers=auth)
    assert synced.status_code == 200, synced.text
    assert (synced.json()["applied"], synced.json()["created"]) == (True, {ALICE: "alice", BO: "bo"})
    assert (await ingest.http.get("/v1/crm/hubspot/users", headers=auth)).json()["users"] == {
        ALICE: "alice", BO: "bo"}

    # 3. a year backfilled: two pages of deals, the first search throttled once (HubSpot's secondly limit)
    api.throttle("/crm/v3/objects/deals/search", HUBSPOT_429)
    w = await open_watch(slug, topics.DEALS.name, topics.ACTIVITIES.name)
    try:
        asked = await ingest.http.post("/v1/crm/hubspot/backfill", headers=auth)
        assert asked.status_code == 202, asked.text
        assert {j["since"] for j in asked.json()["jobs"]} == {
            YEAR.astimezone(UTC).isoformat().replace("+00:00", "Z")}
        progress = await until_done(ingest, auth)
        seen = await collected(w, 160, 40)
    finally:
        await w.consumer.stop()
    jobs = {j["kind"]: j for j in progress["jobs"]}
    assert (jobs["deals"]["status"], jobs["deals"]["read"], jobs["deals"]["published"],
            jobs["deals"]["pages"]) == ("done", 160, 160, 2)
    assert (jobs["activities"]["status"], jobs["activities"]["published"]) == ("done", 40)
    deals = [s for s in seen if s["topic"] == topics.DEALS.name]
    assert sorted(Counter(s["data"]["deal_id"] for s in deals).values()) == [1] * 160
    assert {_source(s) for s in seen} == {"backfill"}
    searches = [p for m, p, _ in api.requests if p == "/crm/v3/objects/deals/search"]
    assert len(searches) == 3  # the throttled one asked again, then the second page

    # 4. Alice's quarter, exact
    quarter = quarter_of(NOW)
    expected = alices_quarter(api, quarter)
    assert await kpi_shows(db, slug, quarter, expected) == expected

    # 5. a deal won since, whose webhook never comes; the clock passes the interval and the settle time
    before = _reconciled("deals")
    moment = NOW + timedelta(seconds=10)
    api.hubspot_records["deals"].append(hubspot_deal(
        777, moment, amount="4321.09", hubspot_owner_id=ALICE, dealstage="closedwon",
        closedate=_millis_iso(moment)))
    w = await open_watch(slug, topics.DEALS.name, topics.ACTIVITIES.name)
    try:
        clock.advance(timedelta(seconds=10 + SETTLE_S + RECONCILE_EVERY_S + 5))
        seen = await collected(w, 1, 0)
    finally:
        await w.consumer.stop()
    assert [(s["data"]["deal_id"], _source(s)) for s in seen] == [("777", "reconciliation")]
    assert _reconciled("deals") == before + 1
    moved = {"won_revenue": expected["won_revenue"] + Decimal("4321.09"),
             "deals_won": expected["deals_won"] + 1}
    assert await kpi_shows(db, slug, quarter, moved) == moved
    marks = {m["kind"]: m for m in (await ingest.http.get("/v1/crm/hubspot/backfill", headers=auth)
                                    ).json()["reconciliation"]}
    assert marks["deals"]["missed_total"] == 1

    # every read so far was made with the access token HubSpot granted at the connect, and only with it
    assert set(api.presented) == {access_token}

    # 6. the tenant uninstalls the app at HubSpot; the refresh timer renews before expiry and is refused
    (refresh_token,) = hubspot.live_refresh_tokens()
    hubspot.revoke_refresh(refresh_token)
    clock.set(connection["expires_at"] - timedelta(minutes=4))  # within the refresh margin (5 minutes)

    async def revoked() -> bool:
        return bool((await oauth_status(ingest, token, "hubspot"))["status"] == "revoked")

    await wait_for(revoked, "the connection shown revoked")
    status = await oauth_status(ingest, token, "hubspot")
    assert (status["status"], status["last_error"]) == ("revoked", REVOKED)
    grants = [r.form.get("grant_type") for r in hubspot.requests if r.path.endswith("/token")]
    assert grants == ["authorization_code", "refresh_token"]
    # and so does the control room's CRM page, to the admin signed in
    room = await kpi.http.get("/admin/crm", headers={"Cookie": f"{COOKIE}={token}"})
    assert room.status_code == 200, room.text
    assert f'data-status="revoked">revoked: {REVOKED}</td>' in room.text
