"""Tenant isolation enforced by PostgreSQL itself: row-level security, forced, on every table of every
service's schema that holds tenant rows; the services work as a role that owns nothing, is no superuser
and has no BYPASSRLS; a transaction sees and writes only the tenant it names.

These tests talk to the database directly, as the services' own role, so what they show does not depend
on any query remembering its `WHERE tenant = $1`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from services.ingest.app import SPEC as INGEST
from services.kpi.app import SPEC as KPI
from services.notify.app import SPEC as NOTIFY
from services.recognition.app import SPEC as RECOGNITION
from shared import db
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import fresh_database, owned_by_a_plain_role

SPECS = (INGEST, KPI, COACHING, RECOGNITION, NOTIFY)
ROLE = "attain_rls_test"  # a working role of this test's own, made the way a service makes its own
AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(stack: None) -> AsyncIterator[str]:
    """A database with all five schemas migrated and secured, as the services do at start-up."""
    url = await fresh_database(f"rls_{uuid.uuid4().hex[:8]}")
    for spec in SPECS:
        owner = await db.create_pool(url, spec.schema, max_size=1)
        try:
            await db.migrate(owner, spec.schema, spec.migrations, grant_to=ROLE)
        finally:
            await owner.close()
    yield url


@pytest.fixture
async def owner(database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def app(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool as a service opens it: its working role, no tenant scope by default."""
    pool = await db.create_pool(db.app_dsn(database, ROLE), "coaching", scope=None, create_schema=False)
    try:
        yield pool
    finally:
        await pool.close()


async def test_every_table_with_tenant_rows_has_forced_row_level_security_and_the_tenant_policy(
        owner: asyncpg.Connection) -> None:
    """All five schemas: each table but the bookkeeping ones (outbox, offsets, migrations) is covered."""
    rows = await owner.fetch(
        "SELECT n.nspname AS schema, c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,"
        " array(SELECT polname FROM pg_policy WHERE polrelid = c.oid) AS policies"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r'", [s.schema for s in SPECS])
    covered = [r for r in rows if r["name"] not in db.UNSCOPED]
    assert len(covered) >= 40  # every service's state: a table added later is covered by `secure` or fails it
    unprotected = [f"{r['schema']}.{r['name']}" for r in covered
                   if not (r["enabled"] and r["forced"] and "attain_tenant" in r["policies"])]
    assert unprotected == []
    assert {f"{r['schema']}.{r['name']}" for r in rows if "attain_registry_read" in r["policies"]} == {
        f"{s.schema}.{table}" for s in SPECS for table in ("tenants", "tokens")}


async def test_the_working_role_owns_nothing_and_bypasses_nothing(owner: asyncpg.Connection, app: asyncpg.Pool) -> None:
    role = await owner.fetchrow("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
                                " WHERE rolname = $1", ROLE)
    assert dict(role) == {"rolsuper": False, "rolbypassrls": False, "rolcreaterole": False, "rolcreatedb": False}
    assert await owner.fetchval("SELECT count(*) FROM pg_tables WHERE tableowner = $1", ROLE) == 0
    assert await db.check_app_role(app, "coaching") == ROLE


async def test_a_superuser_or_owner_as_the_working_role_is_refused(database: str) -> None:
    """Row-level security does not bind a superuser: a service pointed at one does not start."""
    pool = await db.create_pool(database, "coaching", scope=None, create_schema=False)
    try:
        with pytest.raises(RuntimeError, match="is a superuser"):
            await db.check_app_role(pool, "coaching")
    finally:
        await pool.close()


async def test_a_transaction_sees_and_writes_only_the_tenant_it_names(owner: asyncpg.Connection,
                                                                      app: asyncpg.Pool) -> None:
    await owner.execute("INSERT INTO coaching.reps (tenant, rep_id, name, version, known_since)"
                        " VALUES ('rls-a', 'ann', 'Ann', $1, $1), ('rls-b', 'bob', 'Bob', $1, $1)"
                        " ON CONFLICT DO NOTHING", AT)
    async with app.acquire() as conn:  # no scope: nothing at all
        assert await conn.fetchval("SELECT count(*) FROM reps WHERE tenant IN ('rls-a', 'rls-b')") == 0
    async with db.tenant_tx(app, "rls-a") as conn:
        # even a query that forgets its tenant filter gets one tenant's rows
        assert [r["rep_id"] for r in await conn.fetch("SELECT rep_id FROM reps WHERE tenant LIKE 'rls-%'")] == ["ann"]
        assert await conn.execute("UPDATE reps SET name = 'pwned' WHERE rep_id = 'bob'") == "UPDATE 0"
        assert await conn.execute("DELETE FROM reps WHERE rep_id = 'bob'") == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():  # a savepoint: the refusal does not end the outer transaction
                await conn.execute("INSERT INTO reps (tenant, rep_id, version, known_since)"
                                   " VALUES ('rls-b', 'mallory', $1, $1)", AT)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():  # moving a row to another tenant is a write into it
                await conn.execute("UPDATE reps SET tenant = 'rls-b' WHERE rep_id = 'ann'")
        await conn.execute("INSERT INTO reps (tenant, rep_id, version, known_since) VALUES ('rls-a', 'amy', $1, $1)"
                           " ON CONFLICT DO NOTHING", AT)
    async with app.acquire() as conn:  # the scope ended with the transaction
        assert await conn.fetchval("SELECT count(*) FROM reps WHERE tenant IN ('rls-a', 'rls-b')") == 0
    assert await owner.fetchval("SELECT name FROM coaching.reps WHERE tenant = 'rls-b' AND rep_id = 'bob'") == "Bob"
    assert await owner.fetchval("SELECT count(*) FROM coaching.reps WHERE rep_id = 'mallory'") == 0


async def test_a_child_table_follows_its_parent(owner: asyncpg.Connection, app: asyncpg.Pool) -> None:
    """Plan steps have no tenant column: they belong to the tenant of their plan."""
    plan = uuid.uuid4()
    await owner.execute("INSERT INTO coaching.action_plans (plan_id, tenant, rep_id, title, created_at)"
                        " VALUES ($1, 'rls-b', 'bob', 'Plan', $2)", plan, AT)
    await owner.execute("INSERT INTO coaching.plan_steps (step_id, plan_id, position, title, metric, target,"
                        " starts_at, due_at) VALUES ($1, $2, 1, 'Calls', 'calls', 10, $3, $3)", uuid.uuid4(), plan, AT)
    async with db.tenant_tx(app, "rls-a") as conn:
        assert await conn.fetchval("SELECT count(*) FROM plan_steps WHERE plan_id = $1", plan) == 0
    async with db.tenant_tx(app, "rls-b") as conn:
        assert await conn.fetchval("SELECT count(*) FROM plan_steps WHERE plan_id = $1", plan) == 1


async def test_the_registry_is_readable_before_the_tenant_is_known_but_not_writable(
        owner: asyncpg.Connection, app: asyncpg.Pool) -> None:
    """A bearer token is looked up before its tenant is known: `tenants` reads in any scope, writes only
    in its own."""
    await owner.execute("INSERT INTO coaching.tenants (tenant) VALUES ('rls-reg') ON CONFLICT DO NOTHING")
    async with app.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenants WHERE tenant = 'rls-reg'") == 1
        assert await conn.execute("UPDATE tenants SET active = false WHERE tenant = 'rls-reg'") == "UPDATE 0"
    async with db.tenant_tx(app, "rls-other") as conn:
        assert await conn.execute("DELETE FROM tenants WHERE tenant = 'rls-reg'") == "DELETE 0"


async def test_a_service_works_as_its_own_role(database: str) -> None:
    """What `create_app` does: migrate as DATABASE_URL's owner, then work as `attain_coaching`."""
    settings = CoachingSettings(database_url=database, kafka_consumer_group_prefix=f"rls-{uuid.uuid4().hex[:6]}")
    replica = await inprocess.Replica(COACHING, settings, FixedClock(AT)).start()
    try:
        async with replica.pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == db.app_role(COACHING.name)
            assert await conn.fetchval("SELECT current_setting('attain.tenant', true)") in (None, "")
    finally:
        await replica.stop()


# --- the all-tenants scope is the owner's: a working role reaches across tenants only through sweeps --------


async def _two_tenants(owner: asyncpg.Connection, a: str, b: str) -> None:
    await owner.execute("INSERT INTO coaching.reps (tenant, rep_id, name, version, known_since)"
                        " VALUES ($1, 'ann', 'Ann', $3, $3), ($2, 'bob', 'Bob', $3, $3) ON CONFLICT DO NOTHING",
                        a, b, AT)


async def test_the_working_role_cannot_widen_its_scope_to_every_tenant(owner: asyncpg.Connection,
                                                                        app: asyncpg.Pool) -> None:
    """A compromised service sets `*` on itself: it sees and writes nothing (before: every tenant's rows)."""
    await _two_tenants(owner, "wide-a", "wide-b")
    async with app.acquire() as conn, conn.transaction():
        await db.set_tenant(conn, db.ALL_TENANTS)
        assert await conn.fetch("SELECT tenant, rep_id FROM reps WHERE tenant LIKE 'wide-%'") == []
        assert await conn.execute("UPDATE reps SET name = 'pwned' WHERE tenant LIKE 'wide-%'") == "UPDATE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await conn.execute("INSERT INTO reps (tenant, rep_id, version, known_since)"
                                   " VALUES ('wide-a', 'mallory', $1, $1)", AT)
    assert await owner.fetchval("SELECT count(*) FROM coaching.reps WHERE name = 'pwned'") == 0


async def test_a_sweep_reaches_every_tenant_and_gives_the_caller_its_scope_back(owner: asyncpg.Connection,
                                                                                app: asyncpg.Pool) -> None:
    await _two_tenants(owner, "sweep-a", "sweep-b")
    async with db.sweep_tx(app) as conn:
        reps = await conn.fetch("SELECT tenant, rep_id FROM sweep_active_reps() WHERE tenant LIKE 'sweep-%'")
        assert [(r["tenant"], r["rep_id"]) for r in reps] == [("sweep-a", "ann"), ("sweep-b", "bob")]
        assert await conn.fetchval("SELECT current_setting('attain.tenant', true)") == ""
        assert await conn.fetchval("SELECT count(*) FROM reps WHERE tenant LIKE 'sweep-%'") == 0
        await db.set_tenant(conn, "sweep-a")
        assert await conn.fetchval("SELECT count(*) FROM sweep_active_reps() WHERE tenant LIKE 'sweep-%'") == 2
        assert await conn.fetchval("SELECT current_setting('attain.tenant', true)") == "sweep-a"


async def test_every_sweep_runs_and_none_is_open_to_public(database: str, owner: asyncpg.Connection) -> None:
    """Each `sweep_*` of every schema: callable by the working role (its body compiles and runs), SECURITY
    DEFINER with its search_path pinned to its schema then pg_temp, and not executable by PUBLIC."""
    calls = {
        "coaching": ["SELECT count(*) FROM sweep_active_reps()", "SELECT count(*) FROM sweep_due_plan_reps(now())",
                     "SELECT count(*) FROM sweep_live_tasks_by_rule()", "SELECT count(*) FROM sweep_overdue(now(), 5)",
                     "SELECT count(*) FROM sweep_take_owed(5)", "SELECT count(*) FROM sweep_peek_owed(5)",
                     "SELECT sweep_owed_count()"],
        "ingest": ["SELECT sweep_expired_ids('3650 days'::interval, 5)",
                   "SELECT count(*) FROM sweep_crm_oauth_due(now(), '5 minutes'::interval)",
                   "SELECT count(*) FROM sweep_crm_streaming_tenants()",
                   "SELECT count(*) FROM sweep_crm_users_due(now(), '1 day'::interval, '10 minutes'::interval)",
                   "SELECT count(*) FROM sweep_crm_backfills_due(now())",
                   "SELECT count(*) FROM sweep_crm_reconcile_due(now(), '15 minutes'::interval)"],
        "kpi": ["SELECT count(*) FROM sweep_due_contests(now())"],
        "recognition": ["SELECT count(*) FROM sweep_contest_leads(now())"],
        "notify": ["SELECT count(*) FROM sweep_due_deliveries(now())", "SELECT count(*) FROM sweep_open_check_ins()"],
    }
    for spec in SPECS:
        pool = await db.create_pool(db.app_dsn(database, ROLE), spec.schema, scope=None, create_schema=False)
        try:
            async with db.sweep_tx(pool) as conn:
                for sql in [*calls.get(spec.schema, []), "SELECT sweep_bury_outbox('', '{}', '{}')",
                            "SELECT sweep_expired_inbox('3650 days'::interval, 5)",
                            "SELECT count(*) FROM sweep_erasures('{}')"]:
                    await conn.fetchval(sql)
        finally:
            await pool.close()
    rows = await owner.fetch(
        "SELECT n.nspname AS schema, p.proname AS name, p.proconfig AS config,"
        " has_function_privilege('public', p.oid, 'EXECUTE') AS public,"
        " has_function_privilege($2, p.oid, 'EXECUTE') AS working"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = ANY($1::text[]) AND p.prosecdef", [s.schema for s in SPECS], ROLE)
    assert {(r["schema"], r["name"]) for r in rows} >= {(s.schema, "sweep_bury_outbox") for s in SPECS}
    # the shared three in every schema, coaching's seven, ingest's six (expired ids; the CRM connections' OAuth
    # refreshes, streams, user syncs, backfills, reconciliation), kpi's and recognition's contest clocks, notify's
    # due deliveries and open check-ins
    assert len(rows) == len(SPECS) * 3 + 7 + 6 + 2 + 2
    for row in rows:
        assert row["name"].startswith("sweep_")
        assert f"search_path={row['schema']}, pg_temp" in row["config"], row
        assert (row["public"], row["working"]) == (False, True), row


async def test_a_non_superuser_owner_migrates_and_alone_may_span_tenants(stack: None) -> None:
    """Production's shape: the schemas' owner is an ordinary role (row-level security binds it too, forced).
    It migrates, its `*` sees every tenant, the sweeps it owns work for the working role, and the working
    role's `*` sees nothing."""
    suffix = uuid.uuid4().hex[:8]
    owner_role, working = f"attain_owner_{suffix}", f"attain_work_{suffix}"
    url, owner_url = await owned_by_a_plain_role(f"rls_owner_{suffix}", owner_role)
    for spec in (COACHING, INGEST):
        pool = await db.create_pool(owner_url, spec.schema, max_size=1)
        try:
            await db.migrate(pool, spec.schema, spec.migrations, grant_to=working)
        finally:
            await pool.close()
    owner = await asyncpg.connect(owner_url)
    try:
        assert not await owner.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        async with owner.transaction():
            await db.set_tenant(owner, db.ALL_TENANTS)
            await _two_tenants(owner, "own-a", "own-b")
            assert await owner.fetchval("SELECT count(*) FROM coaching.reps") == 2
            await owner.execute("INSERT INTO coaching.erasures (tenant, rep_id, erased_at)"
                                " VALUES ('own-a', 'ann', now()), ('own-b', '', now())")
    finally:
        await owner.close()
    app = await db.create_pool(db.app_dsn(url, working), "coaching", scope=None, create_schema=False)
    try:
        await db.check_app_role(app, "coaching")
        async with db.sweep_tx(app) as conn:
            await db.set_tenant(conn, db.ALL_TENANTS)
            assert await conn.fetchval("SELECT count(*) FROM reps") == 0
            assert [r["tenant"] for r in await conn.fetch("SELECT tenant FROM sweep_active_reps()")] == [
                "own-a", "own-b"]
            assert await conn.fetchval("SELECT count(*) FROM reps") == 0  # the sweep gave back the scope it found
            erased = await conn.fetch("SELECT tenant, rep_id FROM sweep_erasures('{own-a,own-b}') ORDER BY 1")
            assert [(r["tenant"], r["rep_id"]) for r in erased] == [("own-a", "ann"), ("own-b", "")]
    finally:
        await app.close()
