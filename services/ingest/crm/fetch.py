"""Fetching a record from the CRM's own API when a webhook left it incomplete.

Only for tenants that gave ingest an API token (`tenants set-api-token`). Each vendor's documented
read endpoint is called with a short timeout; any failure means "not fetched" and the record
waits for later deliveries, as without a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg
import httpx

from services.ingest.crm import values
from services.ingest.crm.model import ActivityChange, DealChange, DealFields, PayloadError
from services.ingest.crm.pipedrive import close_time_key
from services.ingest.crm.salesforce_record import status as salesforce_status
from shared.db import tenant_tx

log = logging.getLogger(__name__)
HUBSPOT_DEAL_PROPERTIES = "amount,deal_currency_code,dealstage,hubspot_owner_id,closedate,createdate,dealname"
HUBSPOT_ENGAGEMENT_PROPERTIES = "hubspot_owner_id,hs_timestamp,hs_call_duration"
HUBSPOT_ENGAGEMENTS = {"call": "calls", "meeting": "meetings", "email": "emails", "task": "tasks", "other": "notes"}
SALESFORCE_API = "v61.0"
_STATUS: dict[str, Literal["open", "won", "lost"]] = {"open": "open", "won": "won", "lost": "lost"}

# The converters below are pure: a body as `Fetcher` reads it (`values.load_json`: numbers are exact Decimals) in,
# a change out. A value they cannot read raises PayloadError, and the record counts as not fetched.


def _instant(value: object, where: str) -> datetime | None:
    return None if value is None or value == "" else values.instant(values.text(value, where), where)


def _flag(value: object, where: str) -> bool | None:
    return None if value is None else values.boolean(value, where)


def _id(value: object, where: str) -> str | None:
    return None if value is None else values.identifier(value, where)


def _money(value: object, where: str) -> Decimal | None:
    """An amount that cannot be read is left out (logged): the record's other fields still fill gaps."""
    if value is None or value == "":
        return None
    try:
        return values.decimal(value, where)
    except PayloadError as err:
        log.warning("crm api amount unreadable", extra={"error": str(err)})
        return None


def hubspot_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    """A deal from HubSpot's `GET /crm/v3/objects/deals/{id}`: `properties` hold text values, `updatedAt` is ISO."""
    props = body.get("properties") or {}
    return DealChange(
        crm="hubspot", event_id=f"fetch:{deal_id}:{body.get('updatedAt')}", deal_id=deal_id,
        changed_at=_instant(body.get("updatedAt"), "updatedAt") or datetime.now(UTC),
        fields=DealFields(amount=_money(props.get("amount"), "properties.amount"),
                          currency=props.get("deal_currency_code") or None,
                          stage=props.get("dealstage") or None, owner=props.get("hubspot_owner_id") or None,
                          close_date=_instant(props.get("closedate"), "properties.closedate"),
                          created_at=_instant(props.get("createdate"), "properties.createdate"),
                          name=props.get("dealname")),
        deleted=bool(body.get("archived")),
    )  # fmt: skip


def pipedrive_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    """A deal from Pipedrive's `GET /api/v2/deals/{id}` (`{"success": true, "data": {...}}`).

    The close date follows the status, as in webhooks (`pipedrive.close_time_key`).
    """
    data = body.get("data") or {}
    status = data.get("status")
    close_key = close_time_key(data, status if isinstance(status, str) else None)
    return DealChange(
        crm="pipedrive", event_id=f"fetch:{deal_id}:{data.get('update_time')}", deal_id=deal_id,
        changed_at=_instant(data.get("update_time"), "data.update_time") or datetime.now(UTC),
        fields=DealFields(amount=_money(data.get("value"), "data.value"), currency=data.get("currency"),
                          stage=_id(data.get("stage_id"), "data.stage_id"), status=_STATUS.get(status or ""),
                          owner=_id(data.get("owner_id"), "data.owner_id"),
                          close_date=_instant(data.get(close_key), f"data.{close_key}"),
                          created_at=_instant(data.get("add_time"), "data.add_time"), name=data.get("title")),
        deleted=status == "deleted" or bool(data.get("is_deleted")),
    )  # fmt: skip


def salesforce_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    """An Opportunity from Salesforce's `GET /services/data/vXX.X/sobjects/Opportunity/{id}`."""
    close = body.get("CloseDate")
    return DealChange(
        crm="salesforce", event_id=f"fetch:{deal_id}:{body.get('LastModifiedDate')}", deal_id=deal_id,
        changed_at=_instant(body.get("LastModifiedDate"), "LastModifiedDate") or datetime.now(UTC),
        fields=DealFields(amount=_money(body.get("Amount"), "Amount"), currency=body.get("CurrencyIsoCode"),
                          stage=body.get("StageName"), stage_label=body.get("StageName"),
                          status=salesforce_status(_flag(body.get("IsWon"), "IsWon"),
                                                   _flag(body.get("IsClosed"), "IsClosed")),
                          owner=body.get("OwnerId"),
                          close_date=values.day(close, "CloseDate") if close else None,
                          created_at=_instant(body.get("CreatedDate"), "CreatedDate"), name=body.get("Name")),
        deleted=bool(body.get("IsDeleted")),
    )  # fmt: skip


def hubspot_engagement(change: ActivityChange, body: dict[str, Any]) -> ActivityChange:
    """`change` completed from HubSpot's `GET /crm/v3/objects/{calls|meetings|...}/{id}?associations=deals`."""
    props = body.get("properties") or {}
    deals = ((body.get("associations") or {}).get("deals") or {}).get("results") or []
    duration_ms = props.get("hs_call_duration")
    duration = values.decimal(duration_ms, "properties.hs_call_duration") if duration_ms else None
    return replace(change, owner=props.get("hubspot_owner_id") or None,
                   occurred_at=_instant(props.get("hs_timestamp"), "properties.hs_timestamp") or change.occurred_at,
                   deal_id=str(deals[0]["id"]) if deals else change.deal_id,
                   duration_s=int(duration / 1000) if duration is not None else change.duration_s)  # fmt: skip


def _converted(convert: Callable[[str, dict[str, Any]], DealChange], deal_id: str, body: Any) -> DealChange | None:
    if not isinstance(body, dict):
        return None
    try:
        return convert(deal_id, body)
    except PayloadError as err:
        log.warning("crm api record unreadable", extra={"deal": deal_id, "error": str(err)})
        return None


class Fetcher:
    """Reads records from a tenant's CRM API, when the tenant gave a token."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout_s

    async def _token(self, tenant: str, crm: str) -> tuple[str, str] | None:
        async with tenant_tx(self._pool, tenant) as conn:
            row = await conn.fetchrow("SELECT token, base_url FROM crm_api_tokens WHERE tenant = $1 AND crm = $2",
                                      tenant, crm)
        return (row["token"], row["base_url"]) if row else None

    async def _get(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(url, headers=headers, params=params)
            response.raise_for_status()
            return values.load_json(response.content)
        except (httpx.HTTPError, ValueError, RecursionError) as err:
            log.warning("crm api fetch failed", extra={"url": url, "error": repr(err)})
            return None

    async def deal(self, tenant: str, crm: str, deal_id: str) -> DealChange | None:
        """The deal's full current record from the CRM, or None (no token, not found, failure)."""
        access = await self._token(tenant, crm)
        if access is None:
            return None
        token, base = access
        if crm == "hubspot":
            body = await self._get(f"{base}/crm/v3/objects/deals/{deal_id}", {"Authorization": f"Bearer {token}"},
                                   {"properties": HUBSPOT_DEAL_PROPERTIES})
            return _converted(hubspot_deal, deal_id, body)
        if crm == "pipedrive":
            body = await self._get(f"{base}/api/v2/deals/{deal_id}", {"x-api-token": token})
            return _converted(pipedrive_deal, deal_id, body) if isinstance(body, dict) and body.get("success") else None
        body = await self._get(f"{base}/services/data/{SALESFORCE_API}/sobjects/Opportunity/{deal_id}",
                               {"Authorization": f"Bearer {token}"})
        return _converted(salesforce_deal, deal_id, body)

    async def activity(self, tenant: str, crm: str, change: ActivityChange) -> ActivityChange | None:
        """HubSpot engagements arrive as bare ids: their owner, time and deal come from the API."""
        access = await self._token(tenant, crm) if crm == "hubspot" else None
        if access is None:
            return None
        token, base = access
        objects = HUBSPOT_ENGAGEMENTS[change.kind]
        body = await self._get(f"{base}/crm/v3/objects/{objects}/{change.activity_id}",
                               {"Authorization": f"Bearer {token}"},
                               {"properties": HUBSPOT_ENGAGEMENT_PROPERTIES, "associations": "deals"})
        if not isinstance(body, dict):
            return None
        try:
            return hubspot_engagement(change, body)
        except PayloadError as err:
            log.warning("crm api record unreadable", extra={"activity": change.activity_id, "error": str(err)})
            return None
