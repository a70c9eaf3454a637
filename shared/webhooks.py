"""Outbound webhooks' common parts: the Standard Webhooks signature and the receiver's `Retry-After`.

Signing is the `standardwebhooks` reference library's (https://www.standardwebhooks.com): the signed
content is ``<webhook-id>.<webhook-timestamp>.<body>``, HMAC-SHA256 with the secret's bytes (``whsec_``
then base64), sent base64-encoded after ``v1,`` in ``webhook-signature``. Sign every attempt anew with
the current time, so a receiver's 5-minute timestamp tolerance holds for late retries too.

Used by notify's generic webhook channel and by the reference subscriber in ``examples/webhook_subscriber``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from standardwebhooks import Webhook

__all__ = ["retry_after_seconds", "signature_headers"]


def signature_headers(signer: Webhook | None, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (no `webhook-signature` without a secret)."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if signer is not None:
        headers["webhook-signature"] = signer.sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return headers


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
