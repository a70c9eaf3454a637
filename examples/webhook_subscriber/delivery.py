"""POSTing one event to the webhook: Standard Webhooks signature, retries with backoff, the outcome.

Signing is the `standardwebhooks` reference library's, through `shared.webhooks` (Attain's notify service
signs the same way): every attempt is signed anew with the current time, so a receiver's 5-minute
timestamp tolerance holds for late retries too.

Retries are tenacity's: 408, 429, 5xx, timeouts and connection errors are retried with exponential
backoff and full jitter, capped, and never sooner than the receiver's ``Retry-After``. Any other answer
is final: 2xx delivered, anything else (a 4xx: bad URL, revoked token, a body the receiver refuses)
rejected, since sending the same request again would not change it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_never
from tenacity.wait import wait_base, wait_random_exponential

from shared.webhooks import retry_after_seconds, signature_headers

log = logging.getLogger("webhook_subscriber.delivery")

RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})  # and every other 5xx
USER_AGENT = "attain-webhook-subscriber/1.0"


class TransientFailure(Exception):
    """This attempt failed in a way that may pass: retry it (after `retry_after` seconds at least)."""

    def __init__(self, reason: str, *, http_status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.retry_after = retry_after


class GaveUp(Exception):
    """The attempts allowed (`max_attempts`) are spent and the receiver still fails."""


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool  # False: rejected for good (a 4xx other than 408/425/429, or a 1xx/3xx)
    http_status: int
    attempts: int


class _BackoffOrRetryAfter(wait_base):
    """Full-jitter exponential backoff (`initial` * 2^n, capped at `maximum`), or the receiver's
    `Retry-After` when that is longer (itself capped at `retry_after_cap`)."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self._cap = retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, TransientFailure) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._cap))
        return delay


class WebhookSender:
    """Delivers event bodies to one URL; `deliver` returns only once the outcome is final."""

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str | None, *, initial_backoff_s: float = 0.5,
                 max_backoff_s: float = 60.0, retry_after_cap_s: float = 300.0, max_attempts: int = 0,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._url = url
        self._signer = Webhook(secret) if secret else None  # raises on a secret that is not base64
        self._wait = _BackoffOrRetryAfter(initial_backoff_s, max_backoff_s, retry_after_cap_s)
        self._max_attempts = max_attempts
        self._stop = stop_after_attempt(max_attempts) if max_attempts > 0 else stop_never
        self._sleep = sleep or asyncio.sleep
        self._clock = clock

    async def deliver(self, msg_id: str, body: bytes, context: dict[str, object] | None = None) -> Outcome:
        """POST `body` until the receiver takes or refuses it; `GaveUp` once `max_attempts` are spent.

        Whatever `sleep` raises (the subscriber's, on shutdown) ends the retries and propagates.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientFailure), wait=self._wait, stop=self._stop, sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(state, msg_id, context), reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    status = await self._attempt(msg_id, body)
                    return Outcome(delivered=200 <= status < 300, http_status=status,
                                   attempts=attempt.retry_state.attempt_number)
        except TransientFailure as err:
            raise GaveUp(f"{msg_id}: {err} (after {self._max_attempts} attempts)") from err
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    async def _attempt(self, msg_id: str, body: bytes) -> int:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   **signature_headers(self._signer, msg_id, body, int(self._clock()))}
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as err:
            raise TransientFailure(f"timeout: {type(err).__name__}") from err
        except httpx.TransportError as err:  # connection refused or reset, DNS, protocol errors
            raise TransientFailure(f"transport error: {type(err).__name__}: {err}") from err
        status = response.status_code
        if status in RETRIED_STATUSES or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("retry-after"), self._clock())
            raise TransientFailure(f"HTTP {status}", http_status=status, retry_after=retry_after)
        return status

    @staticmethod
    def _log_retry(state: RetryCallState, msg_id: str, context: dict[str, object] | None) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else None
        log.warning("delivery failed, retrying", extra={
            **(context or {}), "webhook_id": msg_id, "attempt": state.attempt_number, "error": str(error),
            "http_status": getattr(error, "http_status", None),
            "retry_in_s": round(delay, 3) if delay is not None else None})
