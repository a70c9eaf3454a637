"""Fetching a record from the CRM's own API when a webhook left it incomplete.

Only for tenants that connected the CRM with OAuth (crm/oauth_store.py: a working access token, sent as a Bearer
token by every vendor) or gave ingest an API token (`tenants set-api-token`), OAuth first. A 401 to an OAuth
access token marks the connection due for refresh (`Fetcher(on_unauthorized=...)`). Each vendor's documented
read endpoint is called with a short timeout; any failure means "not fetched" and the record
waits for later deliveries, as without a token.

The base URL is the tenant's to choose, so a call is guarded as if it came from outside: the host is
resolved first and refused when any of its addresses is not public (loopback, private, link-local,
multicast, reserved, unspecified, and the same inside IPv4-mapped, 6to4, Teredo or NAT64 forms); the
connection then goes to the address that was checked (no second lookup, no DNS rebinding), with the
name kept for the Host header and TLS. Plain http, redirects and proxies from the environment are
refused. Ids are percent-encoded as one path segment each, and a body is read streamed up to
`CRM_API_MAX_RESPONSE_BYTES`, all within `CRM_API_TIMEOUT_S` in total. `CRM_API_ALLOWED_HOSTS` names
hosts exempt from the address and https checks: local stand-ins in tests and development only.

No database connection is held while the CRM answers: the caller reads the token (`load_access`)
in a transaction of its own, ends it, fetches, and only then locks what the answer changes. The token is
stored sealed (shared/secret_box.py); one that no key decrypts counts as no token, logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

import asyncpg
import httpx

from services.ingest.crm import hubspot, pipedrive, salesforce_record, values
from services.ingest.crm import properties as chosen_properties
from services.ingest.crm.model import ActivityChange, DealChange, DealFields, Forecast, PayloadError
from services.ingest.crm.pipedrive import close_time_key
from services.ingest.crm.salesforce_record import status as salesforce_status
from shared.secret_box import SecretBox, Undecryptable

log = logging.getLogger(__name__)
HUBSPOT_DEAL_PROPERTIES = ("amount,deal_currency_code,dealstage,hubspot_owner_id,closedate,createdate,dealname,"
                           "hs_deal_stage_probability,hs_forecast_category")
HUBSPOT_ENGAGEMENT_PROPERTIES = "hubspot_owner_id,hs_timestamp,hs_call_duration"
HUBSPOT_ENGAGEMENTS = {"call": "calls", "meeting": "meetings", "email": "emails", "task": "tasks", "other": "notes"}
SALESFORCE_API = "v61.0"
_STATUS: dict[str, Literal["open", "won", "lost"]] = {"open": "open", "won": "won", "lost": "lost"}

# The converters below are pure: a body as `Fetcher` reads it (`values.load_json`: numbers are exact Decimals) in,
# a change out. A value they cannot read raises PayloadError, and the record counts as not fetched; but an amount
# (`_money`) or a forecast value (probability, category, expected close: `values.lenient`, in `ignored`) that
# cannot be read is left out, and the record's other fields still fill gaps. The forecast is read as the webhooks
# read it (the vendor modules' docstrings), and so are the CRM properties the tenant chose to carry (`properties`:
# HubSpot is asked for them by name, Pipedrive's and Salesforce's answers hold every field).


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


def asked_for(ours: str, chosen: Collection[str]) -> str:
    """HubSpot's `properties` query: the properties we read (`ours`, comma-separated), then the chosen ones.

    >>> asked_for("amount,dealstage", ["hs_lead_source", "amount"])
    'amount,dealstage,hs_lead_source'
    """
    names = ours.split(",")
    return ",".join([*names, *(name for name in chosen if name not in names)])


def _hubspot_category(value: object, where: str) -> Forecast | None:
    return None if value in (None, "") else hubspot.forecast_category(values.text(value, where), where)


def hubspot_deal(deal_id: str, body: dict[str, Any], properties: Collection[str] = ()) -> DealChange:
    """A deal from HubSpot's `GET /crm/v3/objects/deals/{id}`: `properties` hold text values, `updatedAt` is ISO;
    the chosen `properties` it holds are carried."""
    props = body.get("properties") or {}
    ignored: list[str] = []
    chance = props.get("hs_deal_stage_probability")
    return DealChange(
        crm="hubspot", event_id=f"fetch:{deal_id}:{body.get('updatedAt')}", deal_id=deal_id,
        changed_at=_instant(body.get("updatedAt"), "updatedAt") or datetime.now(UTC),
        fields=DealFields(amount=_money(props.get("amount"), "properties.amount"),
                          currency=props.get("deal_currency_code") or None,
                          stage=props.get("dealstage") or None, owner=props.get("hubspot_owner_id") or None,
                          close_date=_instant(props.get("closedate"), "properties.closedate"),
                          created_at=_instant(props.get("createdate"), "properties.createdate"),
                          name=props.get("dealname"),
                          probability=None if chance in (None, "") else values.lenient(
                              lambda: values.probability(chance, "properties.hs_deal_stage_probability"), ignored),
                          forecast_category=values.lenient(lambda: _hubspot_category(
                              props.get("hs_forecast_category"), "properties.hs_forecast_category"), ignored),
                          properties=chosen_properties.carried(props, properties, "properties.", ignored)),
        deleted=bool(body.get("archived")), ignored=tuple(ignored),
    )  # fmt: skip


def pipedrive_deal(deal_id: str, body: dict[str, Any], properties: Collection[str] = ()) -> DealChange:
    """A deal from Pipedrive's `GET /api/v2/deals/{id}` (`{"success": true, "data": {...}}`).

    The close date follows the status, and the chosen `properties` are read, as in webhooks
    (`pipedrive.close_time_key`, `pipedrive.carried`).
    """
    data = body.get("data") or {}
    status = data.get("status")
    close_key = close_time_key(data, status if isinstance(status, str) else None)
    ignored: list[str] = []
    expected_close, probability = pipedrive.forecast(data, "data", ignored)
    return DealChange(
        crm="pipedrive", event_id=f"fetch:{deal_id}:{data.get('update_time')}", deal_id=deal_id,
        changed_at=_instant(data.get("update_time"), "data.update_time") or datetime.now(UTC),
        fields=DealFields(amount=_money(data.get("value"), "data.value"), currency=data.get("currency"),
                          stage=_id(data.get("stage_id"), "data.stage_id"), status=_STATUS.get(status or ""),
                          owner=_id(data.get("owner_id"), "data.owner_id"),
                          close_date=_instant(data.get(close_key), f"data.{close_key}"),
                          created_at=_instant(data.get("add_time"), "data.add_time"), name=data.get("title"),
                          expected_close=expected_close, probability=probability,
                          properties=pipedrive.carried(data, properties, "data", ignored)),
        deleted=status == "deleted" or bool(data.get("is_deleted")), ignored=tuple(ignored),
    )  # fmt: skip


def salesforce_deal(deal_id: str, body: dict[str, Any], properties: Collection[str] = ()) -> DealChange:
    """An Opportunity from Salesforce's `GET /services/data/vXX.X/sobjects/Opportunity/{id}` (every field, by API
    name: the chosen `properties` are among them)."""
    close = body.get("CloseDate")
    ignored: list[str] = []
    chance = body.get("Probability")
    return DealChange(
        crm="salesforce", event_id=f"fetch:{deal_id}:{body.get('LastModifiedDate')}", deal_id=deal_id,
        changed_at=_instant(body.get("LastModifiedDate"), "LastModifiedDate") or datetime.now(UTC),
        fields=DealFields(amount=_money(body.get("Amount"), "Amount"), currency=body.get("CurrencyIsoCode"),
                          stage=body.get("StageName"), stage_label=body.get("StageName"),
                          status=salesforce_status(_flag(body.get("IsWon"), "IsWon"),
                                                   _flag(body.get("IsClosed"), "IsClosed")),
                          owner=body.get("OwnerId"),
                          close_date=values.day(close, "CloseDate") if close else None,
                          created_at=_instant(body.get("CreatedDate"), "CreatedDate"), name=body.get("Name"),
                          probability=None if chance is None else values.lenient(
                              lambda: values.probability(chance, "Probability", percent=True), ignored),
                          forecast_category=values.lenient(lambda: _salesforce_category(
                              body.get("ForecastCategoryName")), ignored),
                          properties=chosen_properties.carried(body, properties, "", ignored)),
        deleted=bool(body.get("IsDeleted")), ignored=tuple(ignored),
    )  # fmt: skip


def _salesforce_category(value: object) -> Forecast | None:
    if value is None:
        return None
    return salesforce_record.forecast_category(values.text(value, "ForecastCategoryName"), "ForecastCategoryName")


def hubspot_engagement(change: ActivityChange, body: dict[str, Any],
                       properties: Collection[str] = ()) -> ActivityChange:
    """`change` completed from HubSpot's `GET /crm/v3/objects/{calls|meetings|...}/{id}?associations=deals`, with
    the chosen `properties` it holds."""
    props = body.get("properties") or {}
    deals = ((body.get("associations") or {}).get("deals") or {}).get("results") or []
    duration_ms = props.get("hs_call_duration")
    duration = values.decimal(duration_ms, "properties.hs_call_duration") if duration_ms else None
    ignored: list[str] = []
    carried = chosen_properties.carried(props, properties, "properties.", ignored)
    return replace(change, owner=props.get("hubspot_owner_id") or None,
                   occurred_at=_instant(props.get("hs_timestamp"), "properties.hs_timestamp") or change.occurred_at,
                   deal_id=str(deals[0]["id"]) if deals else change.deal_id,
                   duration_s=int(duration / 1000) if duration is not None else change.duration_s,
                   properties=carried or change.properties,
                   ignored=(*change.ignored, *ignored))  # fmt: skip


def _converted(convert: Callable[[str, dict[str, Any]], DealChange], deal_id: str, body: Any) -> DealChange | None:
    if not isinstance(body, dict):
        return None
    try:
        return convert(deal_id, body)
    except PayloadError as err:
        log.warning("crm api record unreadable", extra={"deal": deal_id, "error": str(err)})
        return None


@dataclass(frozen=True, slots=True)
class CrmAccess:
    """What a tenant gave ingest to read its CRM: a token, the API's base URL, and which kind of token it is (an
    OAuth access token, or an API token the tenant made at the CRM); `tenant` and `crm` say whose, for a 401."""

    token: str = field(repr=False)
    base_url: str
    kind: Literal["api_token", "oauth"] = "api_token"
    tenant: str = ""
    crm: str = ""


async def load_access(conn: asyncpg.Connection, tenant: str, crm: str, box: SecretBox,
                      now: datetime | None = None) -> CrmAccess | None:
    """The tenant's API access to `crm`: its OAuth connection's access token while it works (at `now`, default
    the wall clock), else its API token, else None (read in the caller's transaction). A stored token that no
    key decrypts is None too, logged by tenant and CRM: the record waits, as without one."""
    from services.ingest.crm import oauth_store  # noqa: PLC0415 - oauth.py imports this module's address checks

    try:
        oauth = await oauth_store.access(conn, tenant, crm, box, now or datetime.now(UTC))
    except Undecryptable as err:
        log.error("a stored crm oauth access token cannot be decrypted with CRM_SECRET_KEYS",
                  extra={"tenant": tenant, "crm": crm, "error": str(err)})
        oauth = None
    if oauth is not None:
        return CrmAccess(oauth.access_token, oauth.base_url, "oauth", tenant, crm)
    row = await conn.fetchrow("SELECT token, base_url FROM crm_api_tokens WHERE tenant = $1 AND crm = $2",
                              tenant, crm)
    if row is None:
        return None
    try:
        return CrmAccess(box.unseal(row["token"]), row["base_url"], "api_token", tenant, crm)
    except Undecryptable as err:
        log.error("a stored crm api token cannot be decrypted with CRM_SECRET_KEYS; records are not fetched until"
                  " it is set again or its key is listed", extra={"tenant": tenant, "crm": crm, "error": str(err)})
        return None


class _Unauthorized(Exception):
    """The CRM answered 401: the token no longer works."""


class FetchRefused(Exception):
    """A call the fetcher will not make (an internal address, plain http, an id that is no path segment)."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """Whether `address` (an IP literal) is one the fetcher may connect to: a global unicast address,
    also when an IPv4 address hides inside an IPv6 one (IPv4-mapped, 6to4, Teredo, NAT64).

    >>> [is_public(a) for a in ("93.184.216.34", "127.0.0.1", "::ffff:10.0.0.1", "169.254.169.254")]
    [True, False, False, False]
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(v4 is not None and not is_public(str(v4)) for v4 in inner):
            return False
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def segment(value: str) -> str:
    """`value` as exactly one URL path segment: every reserved character percent-encoded (`/`, `?`, `#`, `%`),
    and the dot segments refused, which a URL would resolve away.

    >>> segment("../../admin")
    '..%2F..%2Fadmin'
    """
    if value in ("", ".", ".."):
        raise FetchRefused(f"id {value!r} cannot be a path segment")
    return quote(value, safe="")


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Fetcher:
    """Reads records from a tenant's CRM API, when the tenant gave a token."""

    def __init__(self, timeout_s: float = 10.0, max_bytes: int = 1024 * 1024,
                 allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve,
                 on_unauthorized: Callable[[CrmAccess], Awaitable[None]] | None = None) -> None:
        """`on_unauthorized(access)`: the CRM answered 401 to an OAuth access token (mark it due for refresh)."""
        self._timeout, self._max_bytes = timeout_s, max_bytes
        self._allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._resolve = resolver
        self._on_unauthorized = on_unauthorized

    async def _get(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        """The JSON body at `url`, or None (refused, failed, too large, too slow: logged); _Unauthorized for a
        401."""
        try:
            async with asyncio.timeout(self._timeout):  # the whole call: lookup, connect, every byte
                raw = await self._read(httpx.URL(url, params=params), headers)
            return values.load_json(raw)
        except (httpx.HTTPError, FetchRefused, TimeoutError, OSError, ValueError, RecursionError) as err:
            log.warning("crm api fetch failed", extra={"url": url, "error": repr(err)})
            if isinstance(err, httpx.HTTPStatusError) and err.response.status_code == 401:
                raise _Unauthorized from None
            return None

    async def _call(self, access: CrmAccess, url: str, headers: dict[str, str],
                    params: dict[str, str] | None = None) -> Any:
        """`_get`, a 401 to an OAuth access token reported to `on_unauthorized` (then None, as any failure)."""
        try:
            return await self._get(url, headers, params)
        except _Unauthorized:
            if access.kind == "oauth" and self._on_unauthorized is not None:
                await self._on_unauthorized(access)
            return None

    async def _read(self, url: httpx.URL, headers: dict[str, str]) -> bytes:
        host = url.host.lower()
        allowed = host in self._allowed
        if url.scheme != "https" and not (allowed and url.scheme == "http"):
            raise FetchRefused(f"{url.scheme}:// is not allowed (https only)")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await self._resolve(host, port)
        refused = [a for a in addresses if not is_public(a)]
        if not addresses or (refused and not allowed):
            raise FetchRefused(f"{host} resolves to an address that is not public: {refused or 'none'}")
        failure: httpx.ConnectError | None = None
        for address in addresses:  # in the resolver's order, as a browser would; each was checked above
            try:
                return await self._read_from(address, url, headers)
            except httpx.ConnectError as err:
                failure = err
        assert failure is not None
        raise failure

    async def _read_from(self, address: str, url: httpx.URL, headers: dict[str, str]) -> bytes:
        pinned = url.copy_with(host=address.split("%", 1)[0])  # the address checked: no second lookup
        sent = {**headers, "Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        async with httpx.AsyncClient(timeout=self._timeout, trust_env=False, follow_redirects=False) as client, \
                client.stream("GET", pinned, headers=sent, extensions=extensions) as response:
            if response.status_code != 200:
                raise httpx.HTTPStatusError(f"status {response.status_code}", request=response.request,
                                            response=response)
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise FetchRefused("the answer is compressed although identity was asked for")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise FetchRefused(f"the answer declares {declared} bytes, more than {self._max_bytes}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise FetchRefused(f"the answer exceeds {self._max_bytes} bytes")
        return bytes(body)

    async def deal(self, access: CrmAccess, crm: str, deal_id: str,
                   properties: Collection[str] = ()) -> DealChange | None:
        """The deal's full current record from the CRM, with the chosen `properties` it holds, or None (not found,
        refused, failure)."""
        try:
            path = segment(deal_id)
        except FetchRefused as err:
            log.warning("crm api fetch refused", extra={"deal": deal_id, "error": str(err)})
            return None
        token, base = access.token, access.base_url
        if crm == "hubspot":
            body = await self._call(access, f"{base}/crm/v3/objects/deals/{path}",
                                    {"Authorization": f"Bearer {token}"},
                                    {"properties": asked_for(HUBSPOT_DEAL_PROPERTIES, properties)})
            return _converted(partial(hubspot_deal, properties=properties), deal_id, body)
        if crm == "pipedrive":
            auth = {"Authorization": f"Bearer {token}"} if access.kind == "oauth" else {"x-api-token": token}
            body = await self._call(access, f"{base}/api/v2/deals/{path}", auth)
            if not (isinstance(body, dict) and body.get("success")):
                return None
            return _converted(partial(pipedrive_deal, properties=properties), deal_id, body)
        body = await self._call(access, f"{base}/services/data/{SALESFORCE_API}/sobjects/Opportunity/{path}",
                                {"Authorization": f"Bearer {token}"})
        return _converted(partial(salesforce_deal, properties=properties), deal_id, body)

    async def activity(self, access: CrmAccess, crm: str, change: ActivityChange,
                       properties: Collection[str] = ()) -> ActivityChange | None:
        """HubSpot engagements arrive as bare ids: their owner, time, deal and chosen `properties` come from the
        API."""
        if crm != "hubspot":
            return None
        try:
            path = segment(change.activity_id)
        except FetchRefused as err:
            log.warning("crm api fetch refused", extra={"activity": change.activity_id, "error": str(err)})
            return None
        objects = HUBSPOT_ENGAGEMENTS[change.kind]
        body = await self._call(access, f"{access.base_url}/crm/v3/objects/{objects}/{path}",
                                {"Authorization": f"Bearer {access.token}"},
                                {"properties": asked_for(HUBSPOT_ENGAGEMENT_PROPERTIES, properties),
                                 "associations": "deals"})
        if not isinstance(body, dict):
            return None
        try:
            return hubspot_engagement(change, body, properties)
        except PayloadError as err:
            log.warning("crm api record unreadable", extra={"activity": change.activity_id, "error": str(err)})
            return None
