"""Rate limits at every service's HTTP edge: failed authentications per client address, reads per credential.

Two tables of token buckets, pure and clock-driven (time is a parameter), in the pattern of ingest's
per-tenant limits (`services/ingest/limits.py`):

- a request whose authentication fails (401 or 403, or a route that calls `note_failed_authentication`)
  costs its client address a token, and an address in debt gets 429 with Retry-After for every request
  with a credential until its bucket refilled: guessing tokens is slow, and so is the load it makes. A
  request without a bearer token or credential cookie (a CRM's signed webhook, HTTP Basic) is counted
  against its address and path instead: a CRM that delivers for many tenants from one address is not
  refused for all of them because one tenant's secret is wrong;
- a read (GET, HEAD) carrying a credential that authenticated before costs that credential a token, and
  past its burst it gets 429. Such a request is not held back by its address's debt, so one client behind
  a shared address (a NAT, a proxy not declared trusted) guessing tokens does not lock out the others.

The address is the TCP peer's; X-Forwarded-For is believed only from a peer in `TRUSTED_PROXIES`, and then
the client is its right-most entry that is not itself a trusted proxy. IPv6 clients are keyed by their /64
(one host usually holds the whole of one). Credentials are keyed by their SHA-256 digest, never by their
text. Each table holds at most `capacity` buckets, least recently used dropped first. Limits are per replica.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from prometheus_client import Counter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
READS = frozenset({"GET", "HEAD"})
FAILED = "attain_failed_authentication"  # the key a route sets in the request's state (scope["state"])
CAPACITY = 100_000  # buckets per table: a few tens of MB at most

THROTTLED = Counter("attain_http_throttled_total",
                    "Requests refused with 429 at the HTTP edge, by reason (failed_authentication: the client "
                    "address failed too often; reads: a credential read too often).", ["reason"])


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float  # the most it holds
    tokens: float
    at: float  # monotonic seconds of the last refill

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now

    def wait_s(self) -> int:
        """Whole seconds until the bucket holds a token again (0: it holds one now)."""
        return 0 if self.tokens >= 1 else max(1, math.ceil((1 - self.tokens) / self.rate))


class Buckets:
    """Token buckets by key, created full; a bucket may go into debt (a charge after the fact), and then its
    key waits until the debt is paid.

    >>> b = Buckets(rate=1.0, burst=2, capacity=10)
    >>> b.charge("a", 0.0); b.charge("a", 0.0); b.charge("a", 0.0)
    >>> b.wait("a", 0.0), b.wait("a", 1.5), b.wait("b", 0.0)
    (2, 1, 0)
    """

    def __init__(self, rate: float, burst: float, capacity: int = CAPACITY) -> None:
        self.rate, self.burst, self.capacity = rate, burst, capacity
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def __len__(self) -> int:
        return len(self._buckets)

    def _of(self, key: str, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self.rate, self.burst, self.burst, now)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now)
        return bucket

    def wait(self, key: str, now: float) -> int:
        """Seconds the key must wait (Retry-After); 0 when it may go ahead. Charges nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        bucket.refill(now)
        return bucket.wait_s()

    def take(self, key: str, now: float) -> int:
        """0 when the key may go ahead, and charges it one token; else the seconds to wait."""
        bucket = self._of(key, now)
        wait = bucket.wait_s()
        if not wait:
            bucket.tokens -= 1
        return wait

    def charge(self, key: str, now: float, cost: float = 1.0) -> None:
        """Charge the key `cost` tokens (it may go into debt)."""
        self._of(key, now).tokens -= cost

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.0/8, 192.168.1.7' as networks (a bare address is a network of one); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client a request counts against: the TCP peer, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not a trusted proxy (entries left of it were written by the
    client itself and prove nothing). IPv6 addresses as their /64.

    >>> proxy = parse_networks("10.0.0.0/8")
    >>> client_address("203.0.113.9", ["198.51.100.1"], proxy)  # not a proxy of ours: the header is ignored
    '203.0.113.9'
    >>> client_address("10.0.0.2", ["1.2.3.4, 198.51.100.1, 10.0.0.3"], proxy)
    '198.51.100.1'
    >>> client_address("2001:db8:1:2:3:4:5:6", [], proxy)
    '2001:db8:1:2::/64'
    """
    chosen = peer or "unknown"
    if _trusted(_ip(chosen), trusted):
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            chosen = hop
            if not _trusted(_ip(hop), trusted):
                break
    ip = _ip(chosen)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip or chosen)


def credential(headers: Sequence[tuple[bytes, bytes]], cookie: str | None) -> str | None:
    """The SHA-256 digest (hex) of the request's bearer token, else of the named cookie's value; None without."""
    found: str | None = None
    cookies: list[str] = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                found = token.strip()
        elif name == b"cookie" and cookie:
            cookies.append(value.decode("latin-1"))
    if found is None and cookies:
        jar: SimpleCookie = SimpleCookie()
        for text in cookies:
            try:
                jar.load(text)
            except CookieError:
                continue
        morsel = jar.get(cookie or "")
        found = morsel.value.strip() if morsel is not None and morsel.value.strip() else None
    return hashlib.sha256(found.encode()).hexdigest() if found else None


def note_failed_authentication(scope: Scope) -> None:
    """For a route that answers a failed authentication with something else than 401/403 (the dashboard
    redirects to its sign-in page): count it against the client address all the same."""
    scope.setdefault("state", {})[FAILED] = True


class EdgeLimits:
    """The ASGI middleware: refuses with 429 (and Retry-After) an address in debt for failed authentications
    and a credential past its read rate; counts each request's outcome once it answered."""

    def __init__(self, app: ASGIApp, *, failure_rate: float, failure_burst: float, read_rate: float,
                 read_burst: float, trusted_proxies: Sequence[Network] = (), cookie: str | None = None,
                 clock: Callable[[], float] = time.monotonic, capacity: int = CAPACITY) -> None:
        self.app, self.trusted, self.cookie, self.clock = app, tuple(trusted_proxies), cookie, clock
        self.failures = Buckets(failure_rate, failure_burst, capacity)
        self.readers = Buckets(read_rate, read_burst, capacity)  # credentials that authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or ()
        peer = scope["client"][0] if scope.get("client") else None
        address = client_address(peer, [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"],
                                 self.trusted)
        token = credential(headers, self.cookie)
        known = token is not None and token in self.readers
        # not a token guess without a token: its failures are the address's on this path (one tenant's webhook)
        key = address if token is not None else f"{address} {scope.get('path', '')}"
        if token is not None and known and scope["method"] in READS:
            if wait := self.readers.take(token, self.clock()):
                await _refuse(scope, receive, send, wait, "reads", "too many requests with this credential")
                return
        elif not known and (wait := self.failures.wait(key, self.clock())):
            await _refuse(scope, receive, send, wait, "failed_authentication",
                          "too many failed authentications from this address")
            return
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            failed = status in (401, 403) or bool(scope.get("state", {}).get(FAILED))
            if failed:
                self.failures.charge(key, self.clock())
                if token is not None:
                    self.readers.forget(token)
            elif token is not None and not known and status < 500:
                self.readers.take(token, self.clock())  # it authenticated (or needed not): its reads count now


async def _refuse(scope: Scope, receive: Receive, send: Send, wait: int, reason: str, detail: str) -> None:
    THROTTLED.labels(reason).inc()
    await JSONResponse({"detail": f"{detail}; retry in {wait} s"}, status_code=429,
                       headers={"Retry-After": str(wait)})(scope, receive, send)
