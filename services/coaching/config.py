"""Each tenant's configuration, cached in the process: calendar, base currency, policy overrides,
catalogue and holidays (what every evaluation reads, and what almost never changes).

The rule (for any number of replicas): every write to what a `TenantConfig` holds (the registry's
`tenants` row from `tenant.upserted` or a sales event's calendar, `PUT /v1/policies...`,
`PUT /v1/catalogue/{rule}`, `POST|DELETE /v1/holidays`, or anything else) gives the tenant a new random
version in the writer's own transaction (triggers of migration 004). Each evaluation transaction
first reads that version (one primary-key read per tenant) and reloads the configuration only when it
differs from the cached one. So a change committed through any replica is used by every evaluation
that starts after the commit, on every replica: the staleness bound is zero evaluations, at the cost
of one indexed read per tenant per evaluation chunk instead of four to six queries.

A cached entry only ever comes from committed data read by a transaction that wrote no configuration
(evaluations never do), and a version is never produced twice, so a rolled-back write cannot leave a
cache entry that a later version check would wrongly accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from services.coaching.checkins import Playbook
from services.coaching.model import Policy
from shared.workdays import NO_CALENDAR, HolidayCalendar

_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """What coaching knows of a tenant's settings at one version."""

    tenant: str
    version: UUID | None  # None: nothing written yet for the tenant (such a config is not cached)
    timezone: ZoneInfo = _UTC
    fiscal_start_month: int = 1
    currency: str | None = None
    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # overrides by team id ('' tenant)
    catalogue: Mapping[str, Playbook] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()  # entered through coaching's API before the tenant calendar
    calendar: HolidayCalendar = NO_CALENDAR  # the registry's: public holidays, added and removed days
    _policies: dict[tuple[Policy, str | None], Policy] = field(default_factory=dict, compare=False, repr=False)

    def layers_for(self, team_id: str | None) -> list[Mapping[str, Any]]:
        """The tenant's own overrides, then the team's."""
        return [self.layers[k] for k in ["", *([team_id] if team_id else [])] if k in self.layers]

    def policy(self, defaults: Policy, team_id: str | None) -> Policy:
        """`defaults` with the tenant's, then the team's overrides on top (validated once per version)."""
        key = (defaults, team_id)
        found = self._policies.get(key)
        if found is None:
            mine = self.layers_for(team_id)
            found = self._policies[key] = defaults.with_overrides(*mine) if mine else defaults
        return found

    def activity_days(self, defaults: Policy) -> int:
        """The longest activity window any rep of the tenant is judged over: the defaults' or an override's."""
        return max([defaults.activity_window_days]
                   + [defaults.with_overrides(layer).activity_window_days for layer in self.layers.values()
                      if "activity_window_days" in layer])


class ConfigSource(Protocol):
    """What the cache needs of the repository."""

    async def config_version(self, tenant: str) -> UUID | None: ...

    async def load_config(self, tenant: str, version: UUID | None) -> TenantConfig: ...


class ConfigCache:
    """Tenant configurations by tenant, each checked against the stored version on every `get`."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, TenantConfig] = {}
        self.loads = 0  # how many times a configuration was read in full (tests, metrics)

    async def get(self, source: ConfigSource, tenant: str) -> TenantConfig:
        version = await source.config_version(tenant)
        cached = self._by_tenant.get(tenant)
        if cached is not None and version is not None and cached.version == version:
            return cached
        self.loads += 1
        fresh = await source.load_config(tenant, version)
        if version is not None:
            self._by_tenant[tenant] = fresh
        return fresh


CONFIGS = ConfigCache()  # the process's: versions are random, so tenants of different databases never mix
