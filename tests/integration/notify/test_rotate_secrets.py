"""`attain-notify rotate-secrets` against a real database: every sealed value re-encrypted under the new first
key, so the old key can be dropped; a value no key opens is named and nothing is written."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet

from services.notify.app import SPEC
from services.notify.secrets_cli import Unreadable, reseal
from shared import db
from shared.secret_box import SecretBox, Undecryptable
from tests.integration.conftest import fresh_database

OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))


def box(*keys: str) -> SecretBox:
    return SecretBox(list(keys), "NOTIFY_SECRET_KEYS")


async def test_rotation_reseals_everything_under_the_new_key_or_nothing_when_a_value_cannot_be_opened() -> None:
    pool = await db.create_pool(await fresh_database(f"notify_{uuid.uuid4().hex[:8]}"), SPEC.schema, min_size=1,
                                max_size=1)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        old = box(OLD)
        async with db.all_tenants_tx(pool) as conn:
            await conn.execute("INSERT INTO team_channels (tenant, team_id, slack_webhook, teams_webhook) VALUES"
                               " ('a', 'north', $1, NULL), ('b', 'south', $2, $3)", old.seal("https://s/a"),
                               old.seal("https://s/b"), old.seal("https://t/b"))
            await conn.execute("INSERT INTO tenant_channels (tenant, slack_bot_token, webhook_url, webhook_secret)"
                               " VALUES ('a', $1, 'https://r/a', $2)", old.seal("xoxb-1"), old.seal("whsec_MQ=="))
        async with db.all_tenants_tx(pool) as conn:
            await conn.execute("INSERT INTO tenant_channels (tenant, slack_bot_token) VALUES ('c', $1)",
                               box(LOST).seal("xoxb-lost"))
        with pytest.raises(Unreadable, match="tenant_channels c slack_bot_token") as caught:
            async with db.all_tenants_tx(pool) as conn:
                await reseal(conn, box(NEW, OLD))
        assert "xoxb" not in str(caught.value)
        async with db.all_tenants_tx(pool) as conn:
            row = await conn.fetchrow("SELECT slack_webhook FROM team_channels WHERE tenant = 'a'")
            assert old.unseal(row["slack_webhook"]) == "https://s/a"  # nothing was written
            await conn.execute("DELETE FROM tenant_channels WHERE tenant = 'c'")
        async with db.all_tenants_tx(pool) as conn:
            assert await reseal(conn, box(NEW, OLD)) == 5
        new = box(NEW)  # the old key dropped: everything still opens
        async with db.all_tenants_tx(pool) as conn:
            teams = await conn.fetch("SELECT slack_webhook, teams_webhook FROM team_channels ORDER BY tenant")
            tenant = await conn.fetchrow("SELECT * FROM tenant_channels WHERE tenant = 'a'")
        assert [new.unseal(t["slack_webhook"]) for t in teams] == ["https://s/a", "https://s/b"]
        assert new.unseal(teams[1]["teams_webhook"]) == "https://t/b" and teams[0]["teams_webhook"] is None
        assert (new.unseal(tenant["slack_bot_token"]), new.unseal(tenant["webhook_secret"])) == ("xoxb-1", "whsec_MQ==")
        with pytest.raises(Undecryptable):
            old.unseal(tenant["slack_bot_token"])
    finally:
        await pool.close()
