"""Slack's Web API through `slack_sdk` (Slack's own client): a direct message to a person found by their
e-mail (``users.lookupByEmail``, then ``chat.postMessage`` to their user id), or a post to a channel by id,
with a tenant's Slack app bot token (scopes ``chat:write``, ``users:read``, ``users:read.email``).

`slack_sdk`'s synchronous `WebClient` (standard library HTTP, no extra dependency) runs in a worker thread.
What Slack's answer means (https://api.slack.com/methods/chat.postMessage#errors):

- ``ok: true``: taken;
- HTTP 429 ``ratelimited`` or a 5xx, a timeout, a connection error: `TransientFailure` (with ``Retry-After``);
- ``users_not_found``, ``channel_not_found``, ``not_in_channel``, ``is_archived``, ``invalid_auth``,
  ``token_revoked``, ``account_inactive``, ``missing_scope``, ``invalid_blocks``...: `PermanentFailure` with
  Slack's error code (fix the token, the scopes or the address, then retry from the control room).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from services.notify.channels import PermanentFailure, TransientFailure
from shared.webhooks import retry_after_seconds

__all__ = ["SlackApi"]

TIMEOUT_S = 10


def _failure(err: SlackApiError, now: float) -> PermanentFailure | TransientFailure:
    status = err.response.status_code
    code = err.response.get("error") if isinstance(err.response.data, dict) else None
    reason = f"Slack {status}: {code or err.response.data!r}"[:200]
    if status == 429 or status >= 500:
        retry = retry_after_seconds(err.response.headers.get("Retry-After") or err.response.headers.get(
            "retry-after"), now)
        return TransientFailure(reason, status=status, retry_after=retry)
    return PermanentFailure(reason, status=status)


class SlackApi:
    """One bot token's client; each call is one attempt (slack_sdk's own retries are off: the worker retries)."""

    def __init__(self, token: str, base_url: str) -> None:
        self._client = WebClient(token=token, base_url=base_url, timeout=TIMEOUT_S, retry_handlers=[])

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.api_call(method, json=kwargs) if method != "users.lookupByEmail" \
                else self._client.api_call(method, http_verb="GET", params=kwargs)
        except SlackApiError as err:
            raise _failure(err, time.time()) from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise TransientFailure(f"Slack unreachable: {type(err).__name__}: {err}") from err
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def user_id(self, email: str) -> str:
        """The Slack user with `email`; `PermanentFailure` ``users_not_found`` when the workspace has none."""
        data = await asyncio.to_thread(self._call, "users.lookupByEmail", email=email)
        return str(data["user"]["id"])

    async def post(self, channel: str, message: Mapping[str, Any]) -> None:
        """`message` (Block Kit: text and blocks) to a channel id or a user id (a direct message)."""
        await asyncio.to_thread(self._call, "chat.postMessage", channel=channel, **dict(message))

    async def direct_message(self, email: str, message: Mapping[str, Any]) -> None:
        await self.post(await self.user_id(email), message)
