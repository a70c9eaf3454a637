"""The five services as an outsider meets them, for the security checks of issue 9.

Each service is one in-process replica (its lifespan: pool, migrations, consumers, outbox relay, timers) on
the real broker and a PostgreSQL database of this run's own, served by uvicorn on a loopback port of its own,
so every request of these tests is real HTTP and kpi's dashboard reaches coaching, recognition, ingest and notify as
it does in production. Tenants are made as `ingest tenants create` makes them and reach the read services through the
registry topic; their data arrives through ingest as a CRM's would, and through the services' own APIs.

"Nothing written" is checked on two sides: `Outside.snapshot` digests every row the run's tenants own in the
five schemas, and `records.Records` reads what reached Kafka for them. Both are scoped to the run's tenants, because
the broker is shared: other tests and sessions write to the same topics, and this run's consumers store
their tenants' rows too.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local import crm_keys, registry_keys
from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from services.ingest import tenants
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from services.notify.app import SPEC as NOTIFY
from services.notify.settings import NotifySettings
from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared import topics
from shared.clock import FixedClock
from shared.db import tenant_tx
from shared.periods import PeriodKind, period_of
from tests import factories
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, end_offsets, fresh_database
from tests.integration.security.serving import Served, serve

SCHEMAS = ("ingest", "kpi", "coaching", "recognition", "notify")
MAX_BODY_BYTES = 128 * 1024
MAX_NDJSON_BYTES = 256 * 1024
CONSUMED = {"kpi": [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name,
                    topics.TENANTS.name, topics.AUDIT.name],  # issue 17: kpi keeps every service's audit log
            "coaching": [topics.ATTAINMENT.name, topics.ACTIVITIES.name, topics.DEALS.name, topics.ROSTER.name,
                         topics.TENANTS.name],
            "recognition": [topics.ATTAINMENT.name, topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name,
                            topics.TENANTS.name],
            "notify": [t for sub in NOTIFY.subscriptions for t in sub.topics]}
# Tables whose rows belong to no tenant: where a consumer group stands and which member owns each partition
# (they move with every record anyone sends to the shared broker, and every rebalance) and which migrations
# ran. Every other table is scoped to the run's tenants.
BOOKKEEPING = {"consumer_offsets", "consumer_fences", "schema_migrations"}


@dataclass
class Org:
    """A tenant of this run. Its ids carry `tag`; its names and free texts carry `secret`, which no request of
    another tenant ever contains, so finding it in such a request's answer is a leak, whatever the route."""

    slug: str
    token: str
    n: int  # the run's n-th tenant: its settings differ from every other tenant's
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    secret: str = field(default_factory=lambda: f"secret{uuid.uuid4().hex[:12]}")
    task_id: str = ""  # coaching's check-in for the laggard, once seeded
    task_summary: str = ""
    plan_id: str = ""
    hubspot_secret: str = field(default_factory=lambda: f"hubspot-{uuid.uuid4().hex}")
    pipedrive_secret: str = field(default_factory=lambda: f"pipedrive-{uuid.uuid4().hex}")
    salesforce_secret: str = field(default_factory=lambda: f"salesforce-{uuid.uuid4().hex}")
    dead_key: str = ""  # one of notify's deliveries to this tenant's laggard, left dead with a reason, once seeded

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def rep(self) -> str:
        return f"rep-{self.tag}"

    @property
    def team(self) -> str:
        return f"team-{self.tag}"

    @property
    def manager(self) -> str:
        return f"mgr-{self.tag}"

    @property
    def laggard(self) -> str:
        """A rep far behind her target: coaching checks in on her."""
        return f"lag-{self.tag}"

    @property
    def deal(self) -> str:
        return f"deal-{self.tag}"

    @property
    def name(self) -> str:
        return f"Rep {self.secret}"

    @property
    def dead_letter(self) -> str:
        """The id of the HubSpot deal whose owner is not mapped: this tenant's open dead letter."""
        return str(int(self.tag, 16))

    @property
    def slack_channel(self) -> str:
        """The Slack channel id notify posts this tenant's team's celebrations to."""
        return f"C{self.tag}"

    @property
    def webhook_url(self) -> str:
        """This tenant's own webhook receiver (loopback, a closed port: notify may hold it, never reach it)."""
        return f"http://127.0.0.1:9/hook-{self.secret}"

    @property
    def daily_cap(self) -> int:
        """Its rep's own cap on notify's messages a day (different tenants, different caps)."""
        return 10 + self.n

    @property
    def pace_threshold(self) -> str:
        return f"0.6{self.n}"

    @property
    def cooldown_days(self) -> int:
        return 8 + self.n

    @property
    def leaderboard_places(self) -> int:
        return 1 + self.n % 9

    @property
    def holiday(self) -> date:
        """A day off of this tenant's own (different tenants get different days)."""
        return date(2027, 1, 1) + timedelta(days=int(self.tag, 16) % 300)


@dataclass
class Outside:
    db_url: str
    clock: FixedClock
    services: dict[str, Served]
    conn: asyncpg.Connection  # the owner's: sees every tenant's rows
    tracker: AIOKafkaConsumer  # reads the consumed topics from the run's start, for `settle`
    orgs: list[Org] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)  # "schema.table" -> the condition on the run's tenants
    initial_tables: set[str] = field(default_factory=set)  # every table of the five schemas, once migrated
    since: dict[TopicPartition, int] = field(default_factory=dict)  # where the consumed topics ended at the start
    last_of_run: dict[TopicPartition, int] = field(default_factory=dict)  # the run's tenants' last record in each

    @property
    def quarter(self) -> str:
        return period_of(PeriodKind.QUARTER, self.clock.now(), "Europe/Berlin").label

    def client(self, name: str, org: Org | None = None, **kw: Any) -> httpx.AsyncClient:
        """A client of service `name`, signed in as `org` (bearer token, and the dashboard's cookie)."""
        headers = org.auth if org else {}
        cookies = {"attain_dashboard": org.token} if org else {}
        return httpx.AsyncClient(base_url=self.services[name].url, headers=headers, cookies=cookies, timeout=30, **kw)

    async def org(self) -> Org:
        """A new tenant, created as `ingest tenants create` creates one, with a secret for each CRM; known to the
        read services (through the registry topic) when this returns."""
        org = Org(f"s-{uuid.uuid4().hex[:12]}", f"atn_{uuid.uuid4().hex}", len(self.orgs) + 1)
        box = self.services["ingest"].app.state.context.box  # the running ingest's: CRM_SECRET_KEYS
        async with tenant_tx(self.services["ingest"].pool, org.slug) as conn:
            await tenants.create(conn, org.slug, token=org.token, timezone="Europe/Berlin", currency="EUR",
                                 signer=self.services["ingest"].app.state.context.signer)
            for crm, secret in (("hubspot", org.hubspot_secret), ("pipedrive", org.pipedrive_secret),
                                ("salesforce", org.salesforce_secret)):
                await tenants.set_secret(conn, org.slug, crm, secret, None, box=box)
            await tenants.set_holidays(conn, org.slug, signer=self.services["ingest"].app.state.context.signer,
                                       add={org.holiday: f"Holiday {org.secret}"})
        self.services["ingest"].replica.wake()
        known = " + ".join(f"(SELECT count(*) FROM {s}.tenants WHERE tenant = $1 AND active)"
                           for s in ("kpi", "coaching", "recognition", "notify"))
        await self.until(lambda c: c.fetchval(f"SELECT {known} = 4", org.slug))
        self.orgs.append(org)
        return org

    async def until(self, probe: Callable[[asyncpg.Connection], Awaitable[Any]], timeout: float = 30) -> Any:  # noqa: ASYNC109
        """Poll the database (as its owner: every tenant's rows) until `probe` returns something truthy."""
        deadline = time.monotonic() + timeout
        while not (found := await probe(self.conn)):
            assert time.monotonic() < deadline, "the services did not get there in time"
            await asyncio.sleep(0.05)
        return found

    # --- the data each tenant has ---------------------------------------------------------------------------

    async def seed(self, org: Org) -> None:
        """The same kinds of data for every tenant, under its own ids: a team, a rep with a target and a won
        deal (kpi's figures; recognition celebrates the quota), a rep far behind her target (coaching's check-in
        for her), an action plan, a review, a holiday (the tenant calendar's, set by `org`), time off (a
        `time_off.set`), policies, a playbook, recognition settings, CRM mappings and a dead-lettered webhook, a KPI
        of its own and a contest ranked by it; notify's team channels, connection, the rep's preferences and a
        delivery (the laggard's check-in) left dead with a reason."""
        now = self.clock.now()
        events = [factories.team(org.team, None) | {"data": {"team_id": org.team, "name": f"Team {org.secret}"}},
                  factories.rep(org.rep, team=org.team, manager=org.manager, name=org.name),
                  factories.target(org.rep, self.quarter, "1000"),
                  factories.deal(org.deal, org.rep, "1500", updated_at=now - timedelta(hours=1)),
                  factories.activity(f"act-{org.tag}", org.rep, "call", now - timedelta(hours=2)),
                  factories.rep(org.laggard, team=org.team, manager=org.manager, name=f"Laggard {org.secret}"),
                  factories.target(org.laggard, self.quarter, "100000"),
                  {"type": "time_off.set", "id": f"leave-{org.tag}", "source": "api", "time": now.isoformat(),
                   "data": {"time_off_id": f"leave-{org.tag}", "rep_id": org.rep, "first_day": "2027-02-01",
                            "last_day": "2027-02-05", "reason": f"Leave {org.secret}"}}]
        async with self.client("ingest", org) as ingest:
            sent = await ingest.post("/v1/events", json=events)
            assert sent.status_code == 200, sent.text
            assert (await ingest.put("/v1/crm/hubspot/users", json={f"u-{org.secret}": org.rep})).status_code == 200
            assert (await ingest.put("/v1/crm/hubspot/stages", json={f"s-{org.secret}": "won"})).status_code == 200
            assert (await ingest.put("/v1/crm/hubspot/properties",
                                     json={"properties": [f"p_{org.tag}"]})).status_code == 200
        unmapped = [{"eventId": 1, "subscriptionId": 1, "portalId": 1, "appId": 1, "attemptNumber": 0,
                     "occurredAt": int(now.timestamp() * 1000) - 1000, "subscriptionType": "deal.propertyChange",
                     "objectId": int(org.dead_letter), "propertyName": "hubspot_owner_id", "propertyValue": "999"}]
        assert (await self.hubspot(org.slug, org.hubspot_secret, unmapped)).json()["dead_lettered"] == 1
        async with self.client("coaching", org) as coaching:
            for method, path, body in [
                    ("PUT", "/v1/policies", {"pace_threshold": org.pace_threshold}),
                    ("PUT", f"/v1/policies/teams/{org.team}", {"cooldown_days": org.cooldown_days}),
                    ("PUT", "/v1/catalogue/behind_pace", {"suggested_actions": [f"Call {org.secret}"],
                                                          "training": [f"Course {org.secret}"]}),
                    ("POST", "/v1/action-plans", {"rep_id": org.rep, "title": f"Plan {org.secret}", "steps": [
                        {"metric": "calls", "target": "5", "due_at": (now + timedelta(days=7)).isoformat()}]})]:
                answer = await coaching.request(method, path, json=body)
                assert answer.status_code in (200, 201), (path, answer.text)
            org.plan_id = answer.json()["plan_id"]
        async with self.client("kpi", org) as kpi:  # issue 22: a KPI of its own and a contest
            made = await kpi.put(f"/v1/kpis/k_{org.tag}", json={"name": f"Kpi {org.secret}", "source": "deals"})
            assert made.status_code == 200, made.text
            made = await kpi.put(f"/v1/contests/c-{org.tag}", json={
                "name": f"Contest {org.secret}", "metric": f"k_{org.tag}", "participants": "reps",
                "participant_ids": [org.rep, org.laggard], "starts": "2026-01-01", "ends": "2027-01-01"})
            assert made.status_code == 200, made.text
        async with self.client("recognition", org) as recognition:
            assert (await recognition.put("/v1/recognition/settings",
                                          json={"leaderboard_places": org.leaderboard_places})).status_code == 200
        async with tenant_tx(self.services["coaching"].pool, org.slug) as conn:
            await conn.execute("INSERT INTO reviews (tenant, scope, scope_id, week, review_id, body, published_at)"
                               " VALUES ($1, 'team', $2, '2026-W47', $3, $4::jsonb, $5)", org.slug, org.team,
                               uuid.uuid4(), json.dumps({"scope_id": org.team, "note": org.secret}), now)
        await self.until(lambda c: c.fetchval("SELECT count(*) = 2 FROM (SELECT 1 FROM coaching.leaves WHERE tenant"
                                              " = $1 UNION ALL SELECT 1 FROM coaching.tenants WHERE tenant = $1"
                                              " AND holidays IS NOT NULL) AS both_", org.slug))
        await self.until(lambda c: c.fetchval("SELECT count(DISTINCT scope) = 2 FROM kpi.attainment"
                                              " WHERE tenant = $1", org.slug))
        await self.until(lambda c: c.fetchval("SELECT 1 FROM recognition.celebrations WHERE tenant = $1"
                                              " AND scope_id = $2 AND status = 'celebrated' LIMIT 1",
                                              org.slug, org.rep))
        task = await self.until(lambda c: c.fetchrow("SELECT task_id, summary FROM coaching.tasks WHERE tenant = $1"
                                                      " AND rep_id = $2 AND status = 'open' ORDER BY created_at"
                                                      " LIMIT 1", org.slug, org.laggard))
        org.task_id, org.task_summary = str(task["task_id"]), task["summary"]
        await self.seed_notify(org)

    async def seed_notify(self, org: Org) -> None:
        """notify's side of `seed`: what an admin sets (a team's channels, the tenant's connection, a rep's
        preferences, each with the tenant's own values) and a delivery left dead with a reason, as the worker leaves
        one that cannot go out (the worker itself does not run here: its interval is an hour)."""
        await self.until(lambda c: c.fetchval("SELECT count(*) = 2 FROM notify.people WHERE tenant = $1"
                                              " AND person_id = ANY($2::text[])", org.slug, [org.rep, org.laggard]))
        async with self.client("notify", org) as notify:
            for method, path, body in [
                    ("PUT", f"/v1/notify/teams/{org.team}",
                     {"slack_channel": org.slack_channel, "teams_webhook": f"http://127.0.0.1:9/teams-{org.secret}"}),
                    ("PUT", "/v1/notify/connection",
                     {"webhook_url": org.webhook_url, "webhook_secret": f"whsec_{org.tag}{org.tag}"}),
                    ("PUT", f"/v1/notify/preferences/{org.rep}",
                     {"daily_cap": org.daily_cap, "channels": {"celebration": ["email", "webhook"]}})]:
                answer = await notify.request(method, path, json=body)
                assert answer.status_code == 200, (path, answer.text)
        key = await self.until(lambda c: c.fetchval("SELECT idempotency_key FROM notify.deliveries WHERE tenant = $1"
                                                    " AND recipient = $2 ORDER BY idempotency_key LIMIT 1",
                                                    org.slug, org.laggard))
        await self.conn.execute("UPDATE notify.deliveries SET status = 'dead', last_error = $3 WHERE tenant = $1"
                                " AND idempotency_key = $2", org.slug, key, f"no address for {org.secret}")
        org.dead_key = key

    def hubspot_headers(self, slug: str, secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The headers HubSpot sends with `body` to `slug`'s webhook, signed with `secret` (v3 signature)."""
        url = f"{self.services['ingest'].url}/v1/webhooks/hubspot/{slug}"
        timestamp = timestamp or str(int(time.time() * 1000))
        signed = b"POST" + url.encode() + body + timestamp.encode()
        signature = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
        return {"content-type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": signature}

    async def hubspot(self, slug: str, secret: str, events: list[dict[str, Any]], *, timestamp: str | None = None,
                      body: bytes | None = None) -> httpx.Response:
        """One HubSpot delivery of `events` to `slug`'s webhook, signed with `secret`; `body`, when given, is sent
        instead of what was signed."""
        raw = json.dumps(events).encode()
        async with httpx.AsyncClient(base_url=self.services["ingest"].url, timeout=30) as client:
            return await client.post(f"/v1/webhooks/hubspot/{slug}", content=raw if body is None else body,
                                     headers=self.hubspot_headers(slug, secret, raw, timestamp))

    # --- what was written -----------------------------------------------------------------------------------

    async def table_names(self) -> set[str]:
        rows = await self.conn.fetch("SELECT schemaname || '.' || tablename AS name FROM pg_tables"
                                     " WHERE schemaname = ANY($1::text[])", list(SCHEMAS))
        return {r["name"] for r in rows}

    async def map_tables(self) -> None:
        """How each table's rows are tied to a tenant (by `tenant`, by `slug`, or through their plan)."""
        rows = await self.conn.fetch("SELECT table_schema || '.' || table_name AS name, array_agg(column_name::text)"
                                     " AS columns FROM information_schema.columns WHERE table_schema = ANY($1::text[])"
                                     " GROUP BY 1", list(SCHEMAS))
        for r in rows:
            name, columns = r["name"], set(r["columns"])
            if name.split(".")[1] in BOOKKEEPING:
                continue
            if "tenant" in columns:
                self.tables[name] = "tenant = ANY($1::text[])"
            elif "slug" in columns:
                self.tables[name] = "slug = ANY($1::text[])"
            elif name == "coaching.plan_steps":
                self.tables[name] = ("plan_id IN (SELECT plan_id FROM coaching.action_plans"
                                     " WHERE tenant = ANY($1::text[]))")
            else:
                raise AssertionError(f"{name}: no way to tell its tenant; add it to BOOKKEEPING with a reason")

    async def snapshot(self, *slugs: str, schemas: tuple[str, ...] = SCHEMAS) -> dict[str, tuple[int, str]]:
        """Per table of `schemas`: how many rows `slugs` (default: every tenant of the run) own, and a digest of
        them."""
        wanted = list(slugs) or [o.slug for o in self.orgs]
        parts = [f"SELECT '{name}' AS name, count(*) AS n, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text),"
                 f" '')) AS digest FROM {name} t WHERE {condition}" for name, condition in sorted(self.tables.items())
                 if name.split(".")[0] in schemas]
        rows = await self.conn.fetch(" UNION ALL ".join(parts), wanted)
        return {r["name"]: (r["n"], r["digest"]) for r in rows}

    async def settle(self) -> None:
        """Every record of the run's tenants on the topics the services consume has been applied by each of
        them, kpi's parked figures and coaching's owed evaluations of those tenants are done and no outbox
        holds one of their events; twice over, because kpi's figures feed coaching and recognition.

        Only the run's own records are waited for: the broker is shared, and another session's traffic after
        them (a soak at hundreds of events a second) need not be applied first."""
        slugs = [o.slug for o in self.orgs]
        waiting = " + ".join(f"(SELECT count(*) FROM {table} t WHERE {self.tables[table]})" for table in (
            "coaching.owed_evaluations", "ingest.outbox", "kpi.outbox", "coaching.outbox",
            "recognition.outbox", "notify.outbox"))
        for _ in range(2):
            last = await self._last_of_run()
            for name, consumed in CONSUMED.items():
                prefix = self.services[name].replica.settings.kafka_consumer_group_prefix
                wanted = {tp: offset + 1 for tp, offset in last.items() if tp.topic in consumed}
                await self.until(functools.partial(self._applied, schema=name, group=f"{prefix}-{name}",
                                                   wanted=wanted), 60)
            await self.until(lambda c: c.fetchval(f"SELECT {waiting} = 0", slugs))

    @staticmethod
    async def _applied(conn: asyncpg.Connection, schema: str, group: str, wanted: dict[TopicPartition, int]) -> bool:
        rows = await conn.fetch(f"SELECT topic, partition, next_offset FROM {schema}.consumer_offsets"
                                " WHERE group_id = $1", group)
        done = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return all(done.get(tp, 0) >= offset for tp, offset in wanted.items())

    async def _last_of_run(self) -> dict[TopicPartition, int]:
        """Per partition of the consumed topics, the offset of the last record of a tenant of the run (read up
        to where the partitions end now)."""
        slugs = {o.slug for o in self.orgs}
        parts = list(self.since)
        ends = await self.tracker.end_offsets(parts)
        deadline = time.monotonic() + 60
        while any([await self.tracker.position(tp) < ends[tp] for tp in parts]):
            assert time.monotonic() < deadline, "the consumed topics could not be read to their ends"
            for tp, records in (await self.tracker.getmany(timeout_ms=100, max_records=10_000)).items():
                for r in records:
                    if dict(r.headers).get("ce_tenant", b"").decode(errors="replace") in slugs:
                        self.last_of_run[tp] = r.offset
        return dict(self.last_of_run)


async def start() -> Outside:
    """A database of the run's own, the five services on it, the tables mapped; no tenant yet."""
    db = await fresh_database(f"security_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-sec-{uuid.uuid4().hex[:8]}"
    for name, consumed in CONSUMED.items():
        await inprocess.start_group_at_end(f"{prefix}-{name}", consumed)
    since = await end_offsets(sorted({t for consumed in CONSUMED.values() for t in consumed}))
    clock = FixedClock(datetime.now(UTC))
    common: dict[str, Any] = {"database_url": db, "kafka_bootstrap_servers": BOOTSTRAP, "log_format": "text",
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "max_body_bytes": MAX_BODY_BYTES}
    ingest = await serve("ingest", INGEST, IngestSettings(
        **common, max_ndjson_bytes=MAX_NDJSON_BYTES, crm_secret_keys=crm_keys.crm_secret_keys(),
        registry_signing_key=registry_keys.signing_key(),
        rate_limit_requests_per_s=100_000, rate_limit_request_burst=100_000), clock)
    coaching, recognition = await asyncio.gather(
        serve("coaching", COACHING, CoachingSettings(**common, coaching_evaluation_interval_s=3600,
                                                     coaching_grace_s=0), clock),
        serve("recognition", RECOGNITION, RecognitionSettings(**common, recognition_interval_s=3600), clock))
    # notify's worker and digests do not run (an hour apart): its deliveries stay as the tests leave them
    notify = await serve("notify", NOTIFY, NotifySettings(
        **common, notify_secret_keys=crm_keys.env()[crm_keys.NOTIFY_VARIABLE], notify_interval_s=3600,
        notify_digest_interval_s=3600), clock)
    kpi = await serve("kpi", KPI, KpiSettings(**common, dashboard_coaching_url=coaching.url,
                                              dashboard_recognition_url=recognition.url,
                                              dashboard_ingest_url=ingest.url, dashboard_notify_url=notify.url), clock)
    services = {s.name: s for s in (ingest, kpi, coaching, recognition, notify)}
    tracker = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed",
                               fetch_max_wait_ms=20)
    await tracker.start()
    tracker.assign(list(since))
    for tp, offset in since.items():
        tracker.seek(tp, offset)
    outside = Outside(db, clock, services, await asyncpg.connect(db), tracker, since=since)
    try:
        await outside.map_tables()
        outside.initial_tables = await outside.table_names()
    except BaseException:
        # never leave the replicas running: they would consume the shared topics for the rest of the session
        # and publish every later test's celebrations and check-ins a second time
        await stop(outside)
        raise
    return outside


async def stop(outside: Outside) -> None:
    for served in outside.services.values():
        served.server.should_exit = True
    await asyncio.gather(*(s.task for s in outside.services.values()))
    for served in outside.services.values():
        await served.replica.stop()
        await served.replica.http.aclose()
    await outside.conn.close()
    await outside.tracker.stop()
