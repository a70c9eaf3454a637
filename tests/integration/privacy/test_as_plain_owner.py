"""Production's shape: the schemas' owner is an ordinary role, bound by the forced tenant policies too.
Export and erase still reach every row of the tenant (or rep) they name, in every schema, and nothing of
another tenant's; the erasures they record are readable by the working role through `sweep_erasures`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from deploy.local import crm_keys
from shared import db
from shared.migrate import spec_of
from tests.integration.conftest import BOOTSTRAP, ROOT, owned_by_a_plain_role

AT = datetime(2026, 11, 2, tzinfo=UTC)


def _privacy(url: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, **crm_keys.env(), "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
           "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "services.privacy", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def _seed(owner: asyncpg.Connection, tenant: str) -> None:
    async with owner.transaction():
        await db.set_tenant(owner, tenant)
        await owner.execute("INSERT INTO ingest.tenants (slug, token_sha256, timezone, currency)"
                            " VALUES ($1, $2, 'Europe/Berlin', 'EUR')", tenant, uuid.uuid4().bytes)
        await owner.execute("INSERT INTO ingest.deal_owners (tenant, deal_id, rep_id) VALUES ($1, 'd1', 'ana'),"
                            " ($1, 'd2', 'bo')", tenant)
        await owner.execute("INSERT INTO coaching.reps (tenant, rep_id, name, version, known_since)"
                            " VALUES ($1, 'ana', 'Ana', $2, $2), ($1, 'bo', 'Bo', $2, $2)", tenant, AT)
        await owner.execute("INSERT INTO kpi.reps (tenant, rep_id, name, team_id, timezone, active, version)"
                            " VALUES ($1, 'ana', 'Ana', 't', 'Europe/Berlin', true, $2),"
                            " ($1, 'bo', 'Bo', 't', 'Europe/Berlin', true, $2)", tenant, AT)
        # a team's celebration of the largest deal names the rep who won it
        await owner.execute("INSERT INTO recognition.celebrations (celebration_id, tenant, scope, scope_id, milestone,"
                            " period, value, headline, occurred_at, facts) VALUES ($2, $1, 'team', 't',"
                            " 'team_largest_deal', '2026-Q4', 500, 'Ana won the largest deal', $3,"
                            " '{\"rep_id\": \"ana\", \"rep\": \"Ana\"}')", tenant, uuid.uuid4(), AT)
        await owner.execute("INSERT INTO recognition.reps (tenant, rep_id, name, team_id, timezone, version)"
                            " VALUES ($1, 'ana', 'Ana', 't', 'Europe/Berlin', $2),"
                            " ($1, 'bo', 'Bo', 't', 'Europe/Berlin', $2)", tenant, AT)


async def _count(owner: asyncpg.Connection, tenant: str, rep: str | None = None) -> int:
    total = 0
    async with owner.transaction():
        await db.set_tenant(owner, db.ALL_TENANTS)
        for table in ("ingest.deal_owners", "kpi.reps", "coaching.reps", "recognition.reps"):
            total += await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant = $1"
                                          " AND ($2::text IS NULL OR rep_id = $2)", tenant, rep)
    return total


async def test_export_and_erase_work_as_a_non_superuser_owner(stack: None) -> None:
    suffix = uuid.uuid4().hex[:8]
    owner_role, working = f"attain_powner_{suffix}", f"attain_pwork_{suffix}"
    url, owner_url = await owned_by_a_plain_role(f"priv_owner_{suffix}", owner_role)
    for name in ("ingest", "kpi", "coaching", "recognition"):
        spec = spec_of(name)
        pool = await db.create_pool(owner_url, spec.schema, max_size=1)
        try:
            await db.migrate(pool, spec.schema, spec.migrations, grant_to=working)
        finally:
            await pool.close()
    a, b = f"po-a-{suffix}", f"po-b-{suffix}"
    owner = await asyncpg.connect(owner_url)
    try:
        assert not await owner.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        await _seed(owner, a)
        await _seed(owner, b)

        ana = _privacy(owner_url, "export", "--tenant", a, "--rep", "ana")
        assert {t: len(rows) for t, rows in ana["schemas"]["kpi"].items()} == {"reps": 1}
        assert [r["facts"]["rep"] for r in ana["schemas"]["recognition"]["celebrations"]] == ["Ana"]
        assert [r["deal_id"] for r in ana["schemas"]["ingest"]["deal_owners"]] == ["d1"]
        whole = _privacy(owner_url, "export", "--tenant", a)
        assert [r["slug"] for r in whole["schemas"]["ingest"]["tenants"]] == [a] and b not in json.dumps(whole)

        report = _privacy(owner_url, "erase", "--tenant", a, "--rep", "ana", "--yes", "--settle-s", "0")
        assert report["deleted"] == {"coaching.reps": 1, "ingest.deal_owners": 1, "kpi.reps": 1,
                                     "recognition.celebrations": 1, "recognition.reps": 1}
        assert (await _count(owner, a, "ana"), await _count(owner, a, "bo"), await _count(owner, b)) == (0, 4, 8)

        report = _privacy(owner_url, "erase", "--tenant", a, "--yes", "--settle-s", "0")
        assert report["revoked_now"] is True and report["deleted"]["ingest.tenants"] == 1
        assert (await _count(owner, a), await _count(owner, b)) == (0, 8)
    finally:
        await owner.close()
    app = await db.create_pool(db.app_dsn(url, working), "kpi", scope=None, create_schema=False)
    try:
        async with db.sweep_tx(app) as conn:
            erased = await conn.fetch("SELECT tenant, rep_id FROM sweep_erasures($1::text[]) ORDER BY 2", [a, b])
            assert [(r["tenant"], r["rep_id"]) for r in erased] == [(a, ""), (a, "ana")]
    finally:
        await app.close()
