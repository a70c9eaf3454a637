"""Erased tenants and reps stay erased: which records a consumer skips (issue 16, item 7).

`python -m services.privacy erase` deletes a tenant's or a rep's rows from every schema and records the
erasure in each (`erasures`, shared/migrations/007_erasures.sql). The topics that are not compacted still
hold the records it came from (the sales topics forever), so a replay, a consumer group reset or
`kpi rebuild` would apply them again. Every consumer therefore loads the erasures of its batch's tenants
once per batch (`load`, one query) and drops the records `erased` says were produced before the erasure.
A record produced after it (Kafka's timestamp) is new data and applied.

Whose record it is: the rep its key names (`<tenant>:<rep_id>`, attainment's `<tenant>:rep:<rep_id>:…`),
and the rep its data names (`rep_id`, or `scope_id` when `scope` is `rep`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import asyncpg

WHOLE_TENANT = ""  # the rep_id of a tenant's erasure

Erasures = Mapping[tuple[str, str], datetime]  # (tenant, rep_id or WHOLE_TENANT) -> erased at


def subjects(key: bytes | None, data: object) -> set[str]:
    """The rep ids a record is about, by its key and its data.

    >>> sorted(subjects(b"acme:rep:ana:2026-Q4:won_revenue", None)), sorted(subjects(b"acme:team/east", None))
    (['ana'], ['team/east'])
    """
    found: set[str] = set()
    if key:
        parts = key.decode(errors="replace").split(":")
        if len(parts) == 5 and parts[1] in ("rep", "team"):  # a figure's: <tenant>:<scope>:<id>:<period>:<metric>
            if parts[1] == "rep":
                found.add(parts[2])
        elif len(parts) > 1:
            found.add(parts[1])
    rep = getattr(data, "rep_id", None)
    if isinstance(rep, str):
        found.add(rep)
    if getattr(data, "scope", None) == "rep" and isinstance(scope_id := getattr(data, "scope_id", None), str):
        found.add(scope_id)
    return found


def erased(tenant: str, reps: Iterable[str], produced_at: datetime, erasures: Erasures) -> bool:
    """Whether a record of `tenant` about `reps`, produced at `produced_at`, predates an erasure of its
    tenant or of one of its reps.

    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> gone = {("acme", "ana"): at}
    >>> erased("acme", {"ana"}, datetime(2026, 11, 1, tzinfo=UTC), gone), erased("acme", {"bo"}, at, gone)
    (True, False)
    >>> erased("acme", {"ana"}, datetime(2026, 12, 2, tzinfo=UTC), gone)  # produced after: new data
    False
    """
    if not erasures:
        return False
    for rep in (WHOLE_TENANT, *reps):
        when = erasures.get((tenant, rep))
        if when is not None and produced_at < when:
            return True
    return False


def produced_at(timestamp_ms: int) -> datetime:
    """A Kafka record's timestamp (milliseconds since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


async def load(conn: asyncpg.Connection, tenants: Iterable[str]) -> dict[tuple[str, str], datetime]:
    """The erasures of `tenants` in the connection's schema (through the owner's `sweep_erasures`: a batch
    spans tenants), in one query."""
    rows = await conn.fetch("SELECT tenant, rep_id, erased_at FROM sweep_erasures($1::text[])", sorted(set(tenants)))
    return {(r["tenant"], r["rep_id"]): r["erased_at"] for r in rows}
