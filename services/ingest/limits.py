"""Per-tenant rate limits: token buckets that may go into debt, pure and clock-driven.

A request is admitted while its tenant's buckets are not in debt; its events are charged after
it was read (a 100,000-event import is one request), so a large request is never cut in half,
and the tenant then waits until the debt is paid. Limits are per replica: with N replicas a
tenant gets up to N times the configured rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float  # the most a bucket holds
    tokens: float
    at: float  # monotonic seconds of the last refill

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait_s(self) -> float:
        """Seconds until the bucket is out of debt again (0 when it is not in debt)."""
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimiter:
    """Requests per second and events per second, per tenant."""

    def __init__(self, requests_per_s: float, request_burst: float, events_per_s: float, event_burst: float) -> None:
        self._spec = ((requests_per_s, request_burst), (events_per_s, event_burst))
        self._buckets: dict[str, tuple[Bucket, Bucket]] = {}

    def _of(self, tenant: str, now: float) -> tuple[Bucket, Bucket]:
        if tenant not in self._buckets:
            (rr, rb), (er, eb) = self._spec
            self._buckets[tenant] = (Bucket(rr, rb, rb, now), Bucket(er, eb, eb, now))
        requests, events = self._buckets[tenant]
        requests.refill(now)
        events.refill(now)
        return requests, events

    def admit(self, tenant: str, now: float) -> int:
        """0 when the request may go ahead (and is charged); else seconds to wait (Retry-After)."""
        requests, events = self._of(tenant, now)
        if requests.tokens < 1:
            return max(1, math.ceil((1 - requests.tokens) / requests.rate))
        if events.tokens < 0:
            return max(1, math.ceil(events.wait_s()))
        requests.tokens -= 1
        return 0

    def charge_events(self, tenant: str, count: int, now: float) -> None:
        """Charge `count` events to the tenant (may leave the bucket in debt)."""
        _, events = self._of(tenant, now)
        events.tokens -= count
