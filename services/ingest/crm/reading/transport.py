"""The HTTP under the readers: `fetch.py`'s guard, for GET and POST, answering status and headers too; and `Calls`,
which sends through it within a vendor's rate limits.

`GuardedTransport` makes the calls `fetch.Fetcher` makes, with the same guard (fetch.py's docstring): the host is
resolved and refused when any address is not public (`fetch.is_public`), the connection goes to the address checked
with the name kept for Host and TLS, https only, no redirects, no proxies from the environment, a body read
streamed up to `max_bytes` (a page of 500 deals is larger than one record: the default is 16 MiB), everything
within `timeout_s`; `allowed_hosts` exempts local stand-ins. Unlike `Fetcher._get` it returns every status with its
headers (a 429 must be read, not just failed) and it can POST JSON (HubSpot's search is a POST).

`Calls` sends one request until it is answered: a throttled answer (429; Salesforce's 403 REQUEST_LIMIT_EXCEEDED)
is waited out as the vendor's policy says (`limits.py`) and sent again; 502, 503 and 504 are retried with doubling
pauses; after `max_attempts`, or when a wait is longer than `max_wait_s`, it gives up (`ReadingFailed`,
`RateLimited`). A wait the policy asks after a success, and a minimum interval (HubSpot's search), are kept before
the next call to the same account. `sleep` and `clock` are injected: tests never wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

from services.ingest.crm import values
from services.ingest.crm.fetch import CrmAccess, FetchRefused, Resolver, is_public, resolve
from services.ingest.crm.reading import limits
from services.ingest.crm.reading.model import RateLimited, ReadingError, ReadingFailed

log = logging.getLogger(__name__)
READ_MAX_BYTES = 16 * 1024 * 1024
_RETRIED = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: its status, headers (lower-case names) and JSON body (None when empty or not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: object


class Transport(Protocol):
    """Sends one request and returns the answer, whatever its status; raises ReadingError when there is none."""

    async def send(self, method: str, url: str, headers: Mapping[str, str],
                   params: Mapping[str, str] | None = None, json_body: object = None) -> Response: ...


class GuardedTransport:
    """`fetch.Fetcher`'s guarded HTTP, for the readers (module docstring)."""

    def __init__(self, timeout_s: float = 30.0, max_bytes: int = READ_MAX_BYTES,
                 allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self._timeout, self._max_bytes = timeout_s, max_bytes
        self._allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._resolve = resolver

    async def send(self, method: str, url: str, headers: Mapping[str, str],
                   params: Mapping[str, str] | None = None, json_body: object = None) -> Response:
        content = None if json_body is None else json.dumps(json_body).encode()
        sent = dict(headers) | ({"Content-Type": "application/json"} if content is not None else {})
        try:
            async with asyncio.timeout(self._timeout):  # the whole call: lookup, connect, every byte
                return await self._send(method, httpx.URL(url, params=params), sent, content)
        except (httpx.HTTPError, FetchRefused, TimeoutError, OSError) as err:
            raise ReadingError(f"{method} {url}: {err!r}") from err

    async def _send(self, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None) -> Response:
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
        for address in addresses:  # in the resolver's order; each was checked above
            try:
                return await self._send_to(address, method, url, headers, content)
            except httpx.ConnectError as err:
                failure = err
        assert failure is not None
        raise failure

    async def _send_to(self, address: str, method: str, url: httpx.URL, headers: dict[str, str],
                       content: bytes | None) -> Response:
        pinned = url.copy_with(host=address.split("%", 1)[0])  # the address checked: no second lookup
        sent = {**headers, "Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        async with httpx.AsyncClient(timeout=self._timeout, trust_env=False, follow_redirects=False) as client, \
                client.stream(method, pinned, headers=sent, content=content, extensions=extensions) as response:
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise FetchRefused("the answer is compressed although identity was asked for")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise FetchRefused(f"the answer declares {declared} bytes, more than {self._max_bytes}")
            raw = bytearray()
            async for chunk in response.aiter_raw():
                raw += chunk
                if len(raw) > self._max_bytes:
                    raise FetchRefused(f"the answer exceeds {self._max_bytes} bytes")
            found = {name.lower(): value for name, value in response.headers.items()}
            return Response(response.status_code, found, _json(bytes(raw)))


def _json(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return values.load_json(raw)
    except (ValueError, RecursionError):
        return None


Sleep = Callable[[float], Awaitable[None]]


class Calls:
    """Sends requests to one CRM within its rate limits (module docstring)."""

    def __init__(self, transport: Transport, policy: limits.Policy, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, max_wait_s: float = 60.0, max_attempts: int = 6,
                 min_interval_s: float = 0.0) -> None:
        self._transport, self._policy, self._sleep, self._clock = transport, policy, sleep, clock
        self.max_wait_s, self._attempts, self._interval = max_wait_s, max_attempts, min_interval_s
        self._next_at: dict[tuple[str, str], float] = {}  # per account: when the next call may go

    async def call(self, access: CrmAccess, method: str, url: str, headers: Mapping[str, str],
                   params: Mapping[str, str] | None = None, json_body: object = None,
                   paced: bool = False) -> Response:
        """The successful (2xx) answer to one request; ReadingFailed for any other, RateLimited past `max_wait_s`.
        `paced`: keep `min_interval_s` between such calls (HubSpot's search)."""
        account = (access.base_url, access.token)
        backoff = 1.0
        for attempt in range(1, self._attempts + 1):
            await self._wait_turn(account)
            response = await self._transport.send(method, url, headers, params, json_body)
            wait = self._policy(response.status, response.headers, response.body)
            throttled = response.status == 429 or limits.salesforce_limit_exceeded(response.status, response.body)
            if response.status in _RETRIED and not throttled:
                wait, throttled = max(wait or 0.0, backoff), True
                backoff *= 2
            gap = max(wait or 0.0, self._interval if paced else 0.0)
            self._next_at[account] = self._clock() + gap
            if not throttled:
                if 200 <= response.status < 300:
                    return response
                raise ReadingFailed(response.status, response.body, url)
            log.info("crm api throttled", extra={"url": url, "status": response.status, "wait_s": wait,
                                                 "attempt": attempt})
            if attempt == self._attempts:
                raise ReadingFailed(response.status, response.body, url)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_turn(self, account: tuple[str, str]) -> None:
        pause = self._next_at.get(account, 0.0) - self._clock()
        if pause > self.max_wait_s:
            raise RateLimited(pause)
        if pause > 0:
            await self._sleep(pause)
