"""Fair pace on the real repository and the real broker: kpi keeps the tenant's holiday calendar and the reps'
time off, and its published figures and its read API count them as days off, as coaching does (issue 18,
item 3): a rep's pace has the tenant's holidays and the rep's time off off, a team's the holidays.

December 2026 in Berlin (calendar DE, BE): Christmas Day is Friday the 25th; Ann is off on Monday the 28th.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import registry_keys
from services.ingest.tenants import signed
from services.kpi import repository as repo
from services.kpi.app import SPEC as KPI
from services.kpi.figures import figures
from services.kpi.handlers import make_handler
from services.kpi.settings import KpiSettings
from shared import db, topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from shared.consumer import Incoming
from shared.events import DealUpserted, Holidays, RepUpserted, TargetSet, TenantUpserted, TimeOffSet
from shared.periods import business_share, period_bounds
from shared.registry_signing import RegistrySigner, parse_private_key
from shared.workdays import HolidayCalendar, days_off, working_share
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL, fresh_database

TZ = "Europe/Berlin"
BERLIN = ZoneInfo(TZ)
NOW = datetime(2026, 12, 29, 12, tzinfo=UTC)  # fixed: never today's date (13:00 in Berlin, a Tuesday)
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1", "tenantcurrency": "EUR"}
DECEMBER = period_bounds("2026-12", TZ)
CALENDAR = {"country": "DE", "subdivision": "BE", "added": [], "removed": []}
MONDAY_28 = (date(2026, 12, 28), date(2026, 12, 28))


def share(*time_off: tuple[date, date]) -> Decimal:
    """coaching's share of December at NOW: Berlin's holidays and `time_off` off."""
    off = days_off(HolidayCalendar("DE", "BE"), date(2026, 12, 1), date(2026, 12, 31), time_off)
    return working_share(*DECEMBER, NOW, BERLIN, off)


def expected(actual: str, target: str, *time_off: tuple[date, date]) -> str:
    return str(figures(Decimal(actual), Decimal(target), share(*time_off)).expected)


# --- the handler on PostgreSQL: what it stores and what it publishes --------------------------------------------


def _msg(tenant: str, data: Any, type_: str, at: datetime = NOW) -> Incoming:
    return Incoming("t", 0, 0, CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, {}, EXT), data)


def _time_off(tenant: str, first: date, last: date, at: datetime, cancelled: bool = False,
              time_off_id: str = "t1") -> Incoming:
    return _msg(tenant, TimeOffSet(time_off_id=time_off_id, rep_id="ann", first_day=first, last_day=last,
                                   cancelled=cancelled), "time_off.set", at)


async def test_kpi_stores_the_calendar_and_the_newest_time_off_and_publishes_figures_with_them(stack: None) -> None:
    tenant = f"fair-{uuid.uuid4().hex[:10]}"
    pool = await db.create_pool(DATABASE_URL, KPI.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, KPI.schema, KPI.migrations)
        handler = make_handler(SimpleNamespace(clock=FixedClock(NOW), settings=SimpleNamespace()))
        entry = TenantUpserted(tenant=tenant, timezone=TZ, currency="EUR", fiscal_start_month=1,
                               token_sha256="00" * 32, active=True, holidays=Holidays.model_validate(CALENDAR))
        older, newer = NOW - timedelta(days=9), NOW - timedelta(days=8)
        batches = [
            [_msg(tenant, entry, "tenant.upserted"),
             _msg(tenant, RepUpserted(rep_id="ann", name="Ann", team_id="east", timezone=TZ), "rep.upserted"),
             *(_msg(tenant, TargetSet(scope=scope, scope_id=owner, metric="won_revenue", period="2026-12",
                                      value=Decimal(22000)), "target.set") for scope, owner in (("rep", "ann"),
                                                                                                 ("team", "east"))),
             # a newer version and an older one of one time off, in one batch: the newer wins
             _time_off(tenant, *MONDAY_28, newer), _time_off(tenant, date(2026, 12, 21), date(2026, 12, 23), older),
             _time_off(tenant, date(2026, 12, 14), date(2026, 12, 18), older, cancelled=True, time_off_id="t2")],
            # an older version arriving in a later batch changes nothing either
            [_time_off(tenant, date(2026, 12, 1), date(2026, 12, 4), older - timedelta(days=1))],
            [_msg(tenant, DealUpserted(deal_id="d1", rep_id="ann", amount=Decimal(11000), currency="EUR", stage="won",
                                       created_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
                                       closed_at=datetime(2026, 12, 10, 9, tzinfo=UTC),
                                       updated_at=datetime(2026, 12, 10, 9, tzinfo=UTC)), "deal.upserted")],
        ]
        for batch in batches:
            async with pool.acquire() as conn, conn.transaction():
                await db.set_tenant(conn, tenant)
                await conn.execute("DELETE FROM outbox WHERE tenant = $1", tenant)
                await handler(conn, batch)
        async with pool.acquire() as conn, conn.transaction():
            await db.set_tenant(conn, tenant)
            rows = await conn.fetch("SELECT value FROM outbox WHERE tenant = $1 ORDER BY seq", tenant)
            await conn.execute("DELETE FROM outbox WHERE tenant = $1", tenant)
            leave = await repo.time_off(conn, tenant, ["ann", "bob"], date(2026, 12, 1), date(2026, 12, 31))
            books, calendar = await repo.books(conn, tenant), await repo.calendar(conn, tenant)
    finally:
        await pool.close()
    assert leave == {"ann": [MONDAY_28]}  # the newest version; the cancelled one is no day off
    assert books.holidays == calendar.holidays == HolidayCalendar("DE", "BE")
    published = {(e["scope"], e["scope_id"]): e for e in (json.loads(bytes(r["value"])) for r in rows)}
    ann, east = published[("rep", "ann")], published[("team", "east")]
    assert (ann["actual"], ann["expected"]) == ("11000", expected("11000", "22000", MONDAY_28))
    assert east["expected"] == expected("11000", "22000")  # a team: the holidays alone
    plain = figures(Decimal(11000), Decimal(22000), business_share(*DECEMBER, NOW, TZ)).expected
    assert Decimal(ann["expected"]) < Decimal(east["expected"]) < plain


# --- the read API of a kpi replica fed through Kafka ------------------------------------------------------------


@pytest.fixture(scope="module")
async def fair_db(stack: None) -> str:
    return await fresh_database(f"kpi_fair_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def kpi(fair_db: str) -> AsyncIterator[inprocess.Replica]:
    """One kpi replica whose consumer group starts at the topics' ends (not other tests' history)."""
    prefix = f"attain-fair-{uuid.uuid4().hex[:8]}"
    await inprocess.start_group_at_end(f"{prefix}-kpi", inprocess.KPI_CONSUMES)
    settings = KpiSettings(database_url=fair_db, kafka_bootstrap_servers=BOOTSTRAP,
                           kafka_group_instance_id=f"{prefix}-a", kafka_consumer_group_prefix=prefix,
                           outbox_poll_interval_s=0.2, log_format="text")
    replica = await inprocess.Replica(KPI, settings, FixedClock(NOW)).start()
    try:
        yield replica
    finally:
        await replica.stop()
        await replica.http.aclose()


async def _send(producer: AIOKafkaProducer, tenant: str, token: str) -> None:
    """The registry entry (signed, as ingest announces it) with the calendar, then Ann's roster, time off,
    targets and a win, as ingest publishes them."""
    entry = {"tenant": tenant, "timezone": TZ, "currency": "EUR", "fiscal_start_month": 1,
             "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "active": True, "rates": [],
             "holidays": CALENDAR}
    registry = CloudEvent(str(uuid.uuid4()), "tenant.upserted", "attain/ingest", NOW - timedelta(days=30), tenant,
                          entry)
    key = message_key(tenant)
    value, headers = encode(signed(registry, key, RegistrySigner(parse_private_key(registry_keys.signing_key()))))
    await producer.send_and_wait(topics.TENANTS.name, value, key=key, headers=headers)
    at = NOW - timedelta(days=20)
    records = [
        (topics.ROSTER.name, "rep.upserted", {"rep_id": "ann", "name": "Ann", "team_id": "east", "timezone": TZ}),
        (topics.ROSTER.name, "time_off.set", {"time_off_id": "t1", "rep_id": "ann", "first_day": "2026-12-28",
                                              "last_day": "2026-12-28", "reason": "a long weekend"}),
        *((topics.TARGETS.name, "target.set", {"scope": scope, "scope_id": owner, "metric": "won_revenue",
                                               "period": "2026-12", "value": "22000"})
          for scope, owner in (("rep", "ann"), ("team", "east"))),
        (topics.DEALS.name, "deal.upserted", {"deal_id": "d1", "rep_id": "ann", "amount": "11000", "currency": "EUR",
                                              "stage": "won", "created_at": "2026-12-01T09:00:00Z",
                                              "closed_at": "2026-12-10T09:00:00Z",
                                              "updated_at": "2026-12-10T09:00:00Z"}),
    ]
    for topic, type_, data in records:
        value, headers = encode(CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, data, EXT))
        await producer.send_and_wait(topic, value, key=message_key(tenant, "ann"), headers=headers)


async def test_the_read_api_counts_the_reps_time_off_and_the_tenants_holidays(kpi: inprocess.Replica) -> None:
    tenant, token = f"fair-{uuid.uuid4().hex[:10]}", f"atn_{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        await _send(producer, tenant, token)
    finally:
        await producer.stop()
    await inprocess.until(kpi.settings.database_url, lambda c: c.fetchval(
        "SELECT 1 FROM kpi.attainment WHERE tenant = $1 AND scope = 'team' AND metric = 'won_revenue'"
        " AND actual = 11000 AND target = 22000", tenant))
    await inprocess.until(kpi.settings.database_url, lambda c: c.fetchval(
        "SELECT 1 FROM kpi.leaves WHERE tenant = $1 AND time_off_id = 't1'", tenant))  # not dead-lettered
    auth = {"Authorization": f"Bearer {token}"}
    cards = {}
    for path in ("/v1/scorecards/ann?period=2026-12", "/v1/teams/east/scorecard?period=2026-12"):
        response = await kpi.http.get(path, headers=auth)
        assert response.status_code == 200, response.text
        cards[path.split("?")[0]] = next(f for f in response.json()["figures"] if f["metric"] == "won_revenue")
    rep, team = cards["/v1/scorecards/ann"], cards["/v1/teams/east/scorecard"]
    assert (rep["actual"], rep["target"]) == (team["actual"], team["target"]) == ("11000", "22000")
    assert Decimal(rep["expected"]) == Decimal(expected("11000", "22000", MONDAY_28))
    assert Decimal(team["expected"]) == Decimal(expected("11000", "22000"))
