"""Each tenant's settings and calendar, cached in the process and checked once per batch.

Settings change through recognition's API (`PUT /v1/recognition/settings`); the calendar, base currency and
exchange rates through the registry (`tenant.upserted`) and, for a tenant not yet registered, through the
first sales event carrying its calendar. Every one of those writes, whoever makes it, gives the row a new
`version` (a trigger and a column default, migration 003). A batch reads the two versions of its tenant
(one small statement) and reloads the configuration only when they differ from the cached ones.

The rule: a batch uses the configuration committed when its version check ran. A change made through
either replica's API (or a registry event applied by either replica) is therefore used by the next batch
that either replica starts after the change committed: the bound is one batch, on every replica, with no
timer and no time-to-live. The period-close timer checks the same way once per tenant per run.

Versions come from one sequence of the database (never reissued, not even after a rollback), so a cache
serves one database: each running service has its own (`ServiceSpec.context`), shared by its consumer,
timer and API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.recognition.model import TenantConfig
from services.recognition.repository import Repository


@dataclass(slots=True)
class ConfigCache:
    """Per tenant, the configuration last loaded and the versions it was loaded at."""

    entries: dict[str, TenantConfig] = field(default_factory=dict)
    loads: int = 0  # how many times a configuration was read in full (tests and metrics look at it)

    async def get(self, repo: Repository, tenant: str) -> TenantConfig:
        """The tenant's configuration as committed now: cached when its versions have not moved."""
        cached = self.entries.get(tenant)
        if cached is not None and cached.version == await repo.config_version(tenant):
            return cached
        fresh = self.entries[tenant] = await repo.tenant_config(tenant)
        self.loads += 1
        return fresh

    def registered(self, tenant: str) -> bool:
        """Whether the tenant had a registry row when last checked (rows are never removed)."""
        cached = self.entries.get(tenant)
        return cached is not None and cached.version[1] is not None

    def forget(self, tenant: str) -> None:
        """Drop a tenant's entry (after this replica changed its settings: the next batch reloads)."""
        self.entries.pop(tenant, None)
