"""Channels: one attempt to hand one message to Slack, Teams, an SMTP server or a webhook.

Each attempt either returns (the receiver took it) or raises a `DeliveryFailed`: `TransientFailure`
(may pass: retry after `retry_after` seconds at least, or after backoff) or `PermanentFailure` (the
same request would fail again: keep it with its reason until someone fixes the address or the URL).
Retrying, backoff and rate limits are the caller's; a channel never sleeps.
"""

from __future__ import annotations

__all__ = ["DeliveryFailed", "PermanentFailure", "TransientFailure"]


class DeliveryFailed(Exception):
    """One attempt failed; `status` is the receiver's code (HTTP or SMTP) when it answered."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class TransientFailure(DeliveryFailed):
    """A failure that may pass: a 4xx SMTP reply, HTTP 408/425/429/5xx, a timeout, a refused connection."""


class PermanentFailure(DeliveryFailed):
    """A failure the same attempt would repeat: a 5xx SMTP reply, an HTTP 4xx such as a revoked webhook."""
