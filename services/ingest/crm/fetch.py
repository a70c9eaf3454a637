"""Fetching a record from the CRM's own API when a webhook left it incomplete.

Only for tenants that gave ingest an API token (`tenants set-api-token`). Each vendor's documented
read endpoint is called with a short timeout; any failure means "not fetched" and the record
waits for later deliveries, as without a token.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import asyncpg
import httpx

from services.ingest.crm.model import ActivityChange, DealChange, DealFields

log = logging.getLogger(__name__)
HUBSPOT_DEAL_PROPERTIES = "amount,deal_currency_code,dealstage,hubspot_owner_id,closedate,createdate,dealname"
HUBSPOT_ENGAGEMENT_PROPERTIES = "hubspot_owner_id,hs_timestamp,hs_call_duration"
HUBSPOT_ENGAGEMENTS = {"call": "calls", "meeting": "meetings", "email": "emails", "task": "tasks", "other": "notes"}
SALESFORCE_API = "v61.0"
_STATUS: dict[str, Literal["open", "won", "lost"]] = {"open": "open", "won": "won", "lost": "lost"}


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def hubspot_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    props = body.get("properties") or {}
    close = props.get("closedate")
    return DealChange(
        crm="hubspot", event_id=f"fetch:{deal_id}:{body.get('updatedAt')}", deal_id=deal_id,
        changed_at=_instant(body.get("updatedAt")) or datetime.now(UTC),
        fields=DealFields(amount=_money(props.get("amount")), currency=props.get("deal_currency_code") or None,
                          stage=props.get("dealstage") or None, owner=props.get("hubspot_owner_id") or None,
                          close_date=_instant(close) if close else None, created_at=_instant(props.get("createdate")),
                          name=props.get("dealname")),
        deleted=bool(body.get("archived")),
    )


def pipedrive_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    data = body.get("data") or {}
    status = data.get("status")
    close = data.get("won_time") or data.get("lost_time") or data.get("close_time")
    return DealChange(
        crm="pipedrive", event_id=f"fetch:{deal_id}:{data.get('update_time')}", deal_id=deal_id,
        changed_at=_instant(data.get("update_time")) or datetime.now(UTC),
        fields=DealFields(amount=_money(data.get("value")), currency=data.get("currency"),
                          stage=str(data["stage_id"]) if data.get("stage_id") is not None else None,
                          status=_STATUS.get(status or ""),
                          owner=str(data["owner_id"]) if data.get("owner_id") is not None else None,
                          close_date=_instant(close), created_at=_instant(data.get("add_time")),
                          name=data.get("title")),
        deleted=status == "deleted" or bool(data.get("is_deleted")),
    )


def salesforce_deal(deal_id: str, body: dict[str, Any]) -> DealChange:
    closed, won = body.get("IsClosed"), body.get("IsWon")
    status: Literal["open", "won", "lost"] = ("won" if won else "lost") if closed else "open"
    close = body.get("CloseDate")
    return DealChange(
        crm="salesforce", event_id=f"fetch:{deal_id}:{body.get('LastModifiedDate')}", deal_id=deal_id,
        changed_at=_instant(body.get("LastModifiedDate")) or datetime.now(UTC),
        fields=DealFields(amount=_money(body.get("Amount")), currency=body.get("CurrencyIsoCode"),
                          stage=body.get("StageName"), stage_label=body.get("StageName"),
                          status=status if "IsClosed" in body else None, owner=body.get("OwnerId"),
                          close_date=date.fromisoformat(close) if close else None,
                          created_at=_instant(body.get("CreatedDate")), name=body.get("Name")),
        deleted=bool(body.get("IsDeleted")),
    )


class Fetcher:
    """Reads records from a tenant's CRM API, when the tenant gave a token."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout_s

    async def _token(self, tenant: str, crm: str) -> tuple[str, str] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT token, base_url FROM crm_api_tokens WHERE tenant = $1 AND crm = $2",
                                      tenant, crm)
        return (row["token"], row["base_url"]) if row else None

    async def _get(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(url, headers=headers, params=params)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as err:
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
            return hubspot_deal(deal_id, body) if isinstance(body, dict) else None
        if crm == "pipedrive":
            body = await self._get(f"{base}/api/v2/deals/{deal_id}", {"x-api-token": token})
            return pipedrive_deal(deal_id, body) if isinstance(body, dict) and body.get("success") else None
        body = await self._get(f"{base}/services/data/{SALESFORCE_API}/sobjects/Opportunity/{deal_id}",
                               {"Authorization": f"Bearer {token}"})
        return salesforce_deal(deal_id, body) if isinstance(body, dict) else None

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
        props = body.get("properties") or {}
        deals = ((body.get("associations") or {}).get("deals") or {}).get("results") or []
        duration_ms = props.get("hs_call_duration")
        return replace(change, owner=props.get("hubspot_owner_id") or None,
                       occurred_at=_instant(props.get("hs_timestamp")) or change.occurred_at,
                       deal_id=str(deals[0]["id"]) if deals else change.deal_id,
                       duration_s=int(Decimal(duration_ms) / 1000) if duration_ms else change.duration_s)
