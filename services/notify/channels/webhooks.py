"""HTTP channels: a Slack incoming webhook, a Teams Workflows webhook, a signed generic webhook.

One POST per call, with the delivery's idempotency key in ``Idempotency-Key`` (the receiver sees the
same key on every retry of the same delivery) and, for the generic webhook, as the Standard Webhooks
``webhook-id`` with its signature (`shared.webhooks`). What the answer means:

- 2xx: taken (Slack answers 200 ``ok``; a Teams Workflows trigger 202 Accepted);
- 408, 425, 429, 5xx, a timeout or a connection error: `TransientFailure`, with the receiver's
  ``Retry-After`` (seconds or an HTTP date) as `retry_after` when it sent one;
- any other answer (400 ``invalid_payload``, 403 ``invalid_token``, 404 ``no_service``, 410
  ``channel_is_archived``): `PermanentFailure` with the status and the start of the body as reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from standardwebhooks import Webhook

from services.notify.channels import PermanentFailure, TransientFailure
from shared.webhooks import retry_after_seconds, signature_headers

__all__ = ["IDEMPOTENCY_HEADER", "RETRIED_STATUSES", "TIMEOUT", "post_json", "post_signed", "post_slack",
           "post_teams"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRIED_STATUSES = frozenset({408, 425, 429})  # and every 5xx
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "attain-notify/1.0"
_REASON_CHARS = 200


def _body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def post_json(client: httpx.AsyncClient, url: str, body: bytes, idempotency_key: str, *,
                    headers: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> int:
    """POST `body` (JSON) once; the status when the receiver took it, else `TransientFailure` or
    `PermanentFailure` (see the module's docstring)."""
    sent = {"content-type": "application/json", "user-agent": USER_AGENT, IDEMPOTENCY_HEADER: idempotency_key,
            **(headers or {})}
    try:
        response = await client.post(url, content=body, headers=sent, timeout=TIMEOUT)
    except httpx.TimeoutException as err:
        raise TransientFailure(f"timeout: {type(err).__name__}") from err
    except httpx.TransportError as err:  # refused or reset connection, DNS, protocol errors
        raise TransientFailure(f"transport error: {type(err).__name__}: {err}") from err
    status = response.status_code
    if 200 <= status < 300:
        return status
    reason = f"HTTP {status}: {response.text[:_REASON_CHARS]}".rstrip(": ")
    if status in RETRIED_STATUSES or status >= 500:
        raise TransientFailure(reason, status=status,
                               retry_after=retry_after_seconds(response.headers.get("retry-after"), clock()))
    raise PermanentFailure(reason, status=status)


async def post_slack(client: httpx.AsyncClient, url: str, message: Mapping[str, Any], idempotency_key: str) -> int:
    """A Block Kit message (`services.notify.layouts.slack`) to a Slack incoming webhook."""
    return await post_json(client, url, _body(message), idempotency_key)


async def post_teams(client: httpx.AsyncClient, url: str, envelope: Mapping[str, Any], idempotency_key: str) -> int:
    """An Adaptive Card envelope (`services.notify.layouts.teams`) to a Teams Workflows webhook."""
    return await post_json(client, url, _body(envelope), idempotency_key)


async def post_signed(client: httpx.AsyncClient, url: str, payload: Mapping[str, Any], idempotency_key: str,
                      secret: str | None, *, clock: Callable[[], float] = time.time) -> int:
    """`payload` to a tenant's own receiver, signed the Standard Webhooks way with `secret` (``whsec_...``):
    ``webhook-id`` is the idempotency key, so a receiver that dedupes by it sees a retry as the same message."""
    body = _body(payload)
    signer = Webhook(secret) if secret else None
    headers = signature_headers(signer, idempotency_key, body, int(clock()))
    return await post_json(client, url, body, idempotency_key, headers=headers, clock=clock)
