"""Fixtures of the privacy tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.kpi.app import SPEC as KPI
from shared import db
from tests.integration.conftest import fresh_database


@pytest.fixture
async def kpi_pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    """kpi's schema, migrated, in a database of the test's own."""
    url = await fresh_database(f"privacy_{uuid.uuid4().hex[:8]}")
    pool = await db.create_pool(url, KPI.schema, max_size=2)
    await db.migrate(pool, KPI.schema, KPI.migrations)
    try:
        yield pool
    finally:
        await pool.close()
