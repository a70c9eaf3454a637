"""From a CRM deal's known state to a canonical `deal.upserted`: pure, per-tenant mappings.

A deal becomes canonical when its amount, its stage (as open/won/lost) and its owner (as a rep)
are known; otherwise the reasons say what is missing, and the pipeline keeps a dead-letter
record until later deliveries (or the CRM's API) fill the gaps.

An open deal also carries its forecast, as far as the CRM told it: `expected_close_at`, `probability` and
`forecast_category`. They describe an open deal only (the contract's category has no "closed"), so a won or lost
deal carries none of them. They are optional in the contract and never hold a deal back: one the contract refuses
(an expected close in year 281) is left out and reported, and the deal is published without it.

Deals and activities carry the CRM properties the tenant chose (`TenantMaps.properties`, `properties.py`) as far as
they are known, open or closed: one the tenant no longer chooses is not carried, even while the deal's state holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from services.ingest.crm.state import DealView
from shared.events import ActivityLogged, DealStage, DealUpserted

IDENTITY = ("*", "=")  # a user mapping entry: every CRM user not listed is a rep of the same id

# Stages every tenant gets without configuring them: the CRMs' default pipelines.
DEFAULT_STAGES: dict[str, dict[str, str]] = {
    "hubspot": {"appointmentscheduled": "open", "qualifiedtobuy": "open", "presentationscheduled": "open",
                "decisionmakerboughtin": "open", "contractsent": "open", "closedwon": "won", "closedlost": "lost"},
    "salesforce": {"Prospecting": "open", "Qualification": "open", "Needs Analysis": "open",
                   "Value Proposition": "open", "Id. Decision Makers": "open", "Perception Analysis": "open",
                   "Proposal/Price Quote": "open", "Negotiation/Review": "open",
                   "Closed Won": "won", "Closed Lost": "lost"},
    "pipedrive": {},  # Pipedrive states open/won/lost itself (`status`)
}
# CRMs whose one close date is when an open deal is expected to close and when a closed one closed (HubSpot's
# `closedate`, Salesforce's `CloseDate`). Pipedrive keeps them apart: `expected_close_date` is `expected_close`.
CLOSE_DATE_IS_EXPECTED = frozenset({"hubspot", "salesforce"})


@dataclass(frozen=True)
class TenantMaps:
    """A tenant's mappings for one CRM."""

    crm: str
    timezone: str
    currency: str
    stages: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    properties: tuple[str, ...] = ()  # the CRM properties the tenant chose to carry, by name

    def rep_of(self, crm_user: str | None) -> str | None:
        if crm_user is None:
            return None
        if crm_user in self.users:
            return self.users[crm_user]
        return crm_user if self.users.get(IDENTITY[0]) == IDENTITY[1] else None

    def status_of(self, view: DealView) -> str | None:
        """What the CRM states (Pipedrive's `status`, Salesforce's IsWon/IsClosed) wins: a Pipedrive stage is a
        pipeline step, not an outcome. Else the tenant's stage map, else the CRM's default pipeline."""
        if view.status is not None:
            return view.status
        if view.stage is not None and view.stage in self.stages:
            return self.stages[view.stage]
        if view.stage is not None:
            return DEFAULT_STAGES.get(self.crm, {}).get(view.stage)
        return None

    def carried(self, known: Mapping[str, str]) -> dict[str, str] | None:
        """The chosen properties among `known`, by name; None when there are none (the contract's "no properties")."""
        chosen = {name: known[name] for name in self.properties if name in known}
        return chosen or None


def _instant(moment: datetime | date, tz: str) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    return datetime.combine(moment, time.min, tzinfo=ZoneInfo(tz)).astimezone(UTC)  # a date: local midnight


def deal_data(deal_id: str, view: DealView, maps: TenantMaps, version: datetime,
              ignored: list[str] | None = None) -> DealUpserted | list[str]:
    """The canonical deal, or the reasons it cannot be made yet (each names the field or mapping).

    A forecast field the contract refuses is left out and its problem appended to `ignored` (when given).
    """
    missing: list[str] = []
    if view.amount is None:
        missing.append("amount: not received yet")
    status = maps.status_of(view)
    if status is None:
        missing.append(f"stage: {view.stage!r} of {maps.crm} is not mapped to open/won/lost"
                       if view.stage is not None else "stage: not received yet")
    rep = maps.rep_of(view.owner)
    if rep is None:
        missing.append(f"owner: {maps.crm} user {view.owner!r} is not mapped to a rep"
                       if view.owner is not None else "owner: not received yet")
    if missing:
        return missing
    assert view.amount is not None and status is not None and rep is not None
    closed_at = None
    if status != "open":
        closed_at = _instant(view.close_date, maps.timezone) if view.close_date else view.status_at
    known: dict[str, Any] = {
        "deal_id": deal_id, "rep_id": rep, "amount": view.amount, "currency": view.currency or maps.currency,
        "stage": DealStage(status), "stage_label": view.stage_label or view.stage, "created_at": view.created_at,
        "closed_at": closed_at, "updated_at": version}
    optional = _forecast(view, maps, ignored) if status == "open" else {}
    return _deal(known, optional | {"properties": maps.carried(view.properties)}, ignored)


def _forecast(view: DealView, maps: TenantMaps, ignored: list[str] | None) -> dict[str, Any]:
    """An open deal's forecast fields, as far as known. A date alone (Salesforce's `CloseDate`, Pipedrive's
    `expected_close_date`) is the start of that day in the tenant's zone, as a close date is: the deal falls into
    the period of that local day, whatever the zone."""
    expected = view.close_date if maps.crm in CLOSE_DATE_IS_EXPECTED else view.expected_close
    try:
        expected_at = _instant(expected, maps.timezone) if expected is not None else None
    except OverflowError:  # 0001-01-01 at midnight in Tokyo is before the first datetime Python has
        expected_at = None
        if ignored is not None:
            ignored.append(f"expected_close_at: {expected} is out of range")
    return {"expected_close_at": expected_at, "probability": view.probability,
            "forecast_category": view.forecast_category}


def _deal(known: dict[str, Any], optional: dict[str, Any], ignored: list[str] | None) -> DealUpserted | list[str]:
    try:
        return DealUpserted(**known, **optional)
    except ValidationError as err:  # e.g. a negative amount or a malformed currency from the CRM
        refused = {str(e["loc"][0]) for e in err.errors() if e["loc"]} & optional.keys()
        if not refused:
            return _problems(err)
        if ignored is not None:
            ignored.extend(p for p in _problems(err) if p.split(":", 1)[0].split(".", 1)[0] in refused)
        return _deal(known, {k: v for k, v in optional.items() if k not in refused}, ignored)


def activity_data(activity_id: str, kind: str, owner: str | None, occurred_at: datetime, deal_id: str | None,
                  duration_s: int | None, maps: TenantMaps,
                  properties: Mapping[str, str] | None = None) -> ActivityLogged | list[str]:
    rep = maps.rep_of(owner)
    if rep is None:
        return [f"owner: {maps.crm} user {owner!r} is not mapped to a rep" if owner else "owner: not received"]
    try:
        return ActivityLogged.model_validate({"activity_id": activity_id, "rep_id": rep, "kind": kind,
                                              "occurred_at": occurred_at, "deal_id": deal_id,
                                              "duration_s": duration_s,
                                              "properties": maps.carried(properties or {})})
    except ValidationError as err:
        return _problems(err)


def _problems(err: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
