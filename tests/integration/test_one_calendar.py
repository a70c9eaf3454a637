"""One calendar for every service (issue 18, item 3): on a day after a public holiday, for a rep with a day of
time off, kpi's expected-by-now and coaching's are the same number, and neither is Monday-to-Friday's.

ingest, kpi and coaching run in-process on one database and the real broker, on one fixed clock, so both
services compute at the same instant. The tenant is created as an operator creates it (`tenants create
--country DE --subdivision BE`: Berlin's public holidays), the rep, the target and the time off come in
through ingest's `POST /v1/events`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from shared import topics
from shared.clock import FixedClock
from shared.periods import business_share, period_bounds
from shared.workdays import HolidayCalendar, days_off, working_share
from tests.factories import rep, target
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, fresh_database

# Wednesday 20 May 2026, noon in Berlin: after Labour Day (1 May) and Ascension Day (14 May), before Whit
# Monday (25 May); the rep was off on Monday the 18th and Tuesday the 19th
NOW = datetime(2026, 5, 20, 10, tzinfo=UTC)
ZONE = "Europe/Berlin"


async def test_kpi_and_coaching_expect_the_same_by_now_on_a_day_after_a_holiday_and_a_day_off(stack: None) -> None:
    db = await fresh_database(f"calendar_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-calendar-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(NOW)
    await inprocess.start_group_at_end(f"{prefix}-coaching", [topics.ATTAINMENT.name, topics.DEALS.name,
                                                              topics.ACTIVITIES.name, topics.ROSTER.name,
                                                              topics.TENANTS.name])
    async with inprocess.ingest_and_kpi(db, prefix, clock) as (ingest, kpi):
        coaching = await inprocess.Replica(COACHING, CoachingSettings(
            database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
            outbox_poll_interval_s=0.2, log_format="text", coaching_grace_s=0, coaching_evaluation_delay_s=0.2),
            clock).start()
        try:
            slug, token = await inprocess.create_tenant(db, prefix, ZONE, "--country", "DE", "--subdivision", "BE")
            ingest.wake()
            leave = {"type": "time_off.set", "id": f"leave-{uuid.uuid4().hex[:6]}", "source": "hr",
                     "time": NOW.isoformat(), "data": {"time_off_id": "pentecost-week", "rep_id": "ida",
                                                       "first_day": "2026-05-18", "last_day": "2026-05-19"}}
            auth = {"Authorization": f"Bearer {token}"}
            for attempt in range(100):  # ingest's own read of the new tenant
                sent = await ingest.http.post("/v1/events", headers=auth, json=[
                    rep("ida", at=NOW), target("ida", "2026-Q2", "91000", at=NOW), leave])
                if sent.status_code == 200 or attempt == 99:
                    break
                await asyncio.sleep(0.2)
            assert sent.status_code == 200, sent.text
            assert {r["status"] for r in sent.json()["results"]} == {"accepted"}

            await inprocess.until(db, lambda c: c.fetchval(
                "SELECT 1 FROM kpi.published_figures WHERE tenant = $1 AND scope_id = 'ida' AND period = '2026-Q2'"
                " AND metric = 'won_revenue' AND target IS NOT NULL", slug))
            card = (await kpi.http.get("/v1/scorecards/ida?period=2026-Q2", headers=auth)).json()
            kpi_expected = next(f["expected"] for f in card["figures"] if f["metric"] == "won_revenue")
            check_in = await inprocess.until(db, lambda c: c.fetchrow(
                "SELECT evidence, details FROM coaching.tasks WHERE tenant = $1 AND rep_id = 'ida'"
                " AND rule = 'behind_pace'", slug), timeout=60)
        finally:
            await coaching.stop()
            await coaching.http.aclose()

    start, end = period_bounds("2026-Q2", ZONE)
    off = days_off(HolidayCalendar("DE", "BE"), date(2026, 4, 1), date(2026, 6, 30),
                   [(date(2026, 5, 18), date(2026, 5, 19))])
    share = working_share(start, end, NOW, ZoneInfo(ZONE), off)
    evidence, details = json.loads(check_in["evidence"]), json.loads(check_in["details"])
    assert Decimal(details["working_share"]) == share
    assert Decimal(evidence["expected"]) == (Decimal(91000) * share).quantize(Decimal("0.01"))
    assert Decimal(kpi_expected).quantize(Decimal("0.01")) == Decimal(evidence["expected"])  # the same number
    mon_to_fri = (Decimal(91000) * business_share(start, end, NOW, ZONE)).quantize(Decimal("0.01"))
    assert Decimal(evidence["expected"]) < mon_to_fri  # 3 holidays and 2 days off fewer than Monday to Friday
