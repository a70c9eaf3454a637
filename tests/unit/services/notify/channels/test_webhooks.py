"""The HTTP channels against a local receiver: Slack and Teams bodies checked where they arrive, Retry-After
on 429 and 503, the idempotency key on every attempt, the Standard Webhooks signature."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from standardwebhooks import Webhook

from services.notify.channels import PermanentFailure, TransientFailure
from services.notify.channels.webhooks import IDEMPOTENCY_HEADER, post_json, post_signed, post_slack, post_teams
from services.notify.messages import render
from tests.ports import HOST, free_ports
from tests.unit.services.notify import adaptive_card_schema
from tests.unit.services.notify.channels.receiver import Receiver, Request
from tests.unit.services.notify.factories import notification
from tests.unit.services.notify.test_layouts import check_block_kit, check_teams_envelope

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_765_000_000.0


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def _slack_body(request: Request) -> None:
    check_block_kit(json.loads(request.body))


async def test_slack_429_gives_retry_after_and_the_retry_carries_the_same_key(client: httpx.AsyncClient) -> None:
    message = render(notification("celebration", "de_DE")).slack
    async with Receiver(script=[(429, {"Retry-After": "3"}, b"rate_limited")], check=_slack_body) as slack:
        with pytest.raises(TransientFailure) as failed:
            await post_slack(client, slack.url, message, "celebration-c-1:max:slack")
        assert failed.value.status == 429 and failed.value.retry_after == 3.0
        assert await post_slack(client, slack.url, message, "celebration-c-1:max:slack") == 200
    first, second = slack.requests
    assert first.headers[IDEMPOTENCY_HEADER.lower()] == second.headers[IDEMPOTENCY_HEADER.lower()]
    assert json.loads(second.body) == message and second.headers["content-type"] == "application/json"


async def test_a_503_with_an_http_date_retry_after_is_transient_with_that_delay(client: httpx.AsyncClient) -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 120, UTC), usegmt=True)
    async with Receiver(script=[(503, {"Retry-After": later}, b"")]) as teams:
        with pytest.raises(TransientFailure) as failed:
            await post_json(client, teams.url, b"{}", "k", clock=lambda: NOW)
    assert failed.value.status == 503 and failed.value.retry_after == 120.0


async def test_a_teams_card_arrives_valid_against_the_adaptive_card_schema(client: httpx.AsyncClient) -> None:
    try:
        schema = adaptive_card_schema.load()
    except adaptive_card_schema.SchemaUnavailable as err:
        pytest.skip(f"the Adaptive Card schema could not be fetched: {err}")
    envelope = render(notification("review", "de_DE")).teams

    def card_body(request: Request) -> None:
        check_teams_envelope(json.loads(request.body), schema)

    async with Receiver(script=[(202, {}, b"")], check=card_body) as teams:
        assert await post_teams(client, teams.url, envelope, "review-r-1:ana:teams") == 202
    (request,) = teams.requests
    assert request.headers[IDEMPOTENCY_HEADER.lower()] == "review-r-1:ana:teams"


async def test_a_body_the_receiver_refuses_is_permanent(client: httpx.AsyncClient) -> None:
    async with Receiver(check=_slack_body) as slack:
        with pytest.raises(PermanentFailure, match="HTTP 400: invalid_payload") as failed:
            await post_slack(client, slack.url, {"text": "no blocks"}, "k")
    assert failed.value.status == 400


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_a_revoked_or_archived_webhook_is_permanent(client: httpx.AsyncClient, status: int) -> None:
    async with Receiver(script=[(status, {}, b"channel_is_archived")]) as slack:
        with pytest.raises(PermanentFailure, match=f"HTTP {status}"):
            await post_slack(client, slack.url, render(notification("plan")).slack, "k")


async def test_nobody_listening_is_transient(client: httpx.AsyncClient) -> None:
    (port,) = free_ports(1)
    with pytest.raises(TransientFailure, match="transport error"):
        await post_slack(client, f"http://{HOST}:{port}/hook", {"text": "x", "blocks": []}, "k")


async def test_a_generic_webhook_is_signed_the_standard_webhooks_way_with_the_key_as_its_id(
        client: httpx.AsyncClient) -> None:
    payload = {"type": "notify.check_in", "data": {"task_id": "t-1"}}
    async with Receiver() as receiver:
        assert await post_signed(client, receiver.url, payload, "check_in-t-1:max:webhook", SECRET) == 200
    (request,) = receiver.requests
    assert request.headers["webhook-id"] == "check_in-t-1:max:webhook"
    assert Webhook(SECRET).verify(request.body, request.headers) == payload  # raises on a bad signature


async def test_a_generic_webhook_without_a_secret_is_sent_unsigned(client: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        await post_signed(client, receiver.url, {"a": 1}, "k", None)
    (request,) = receiver.requests
    assert "webhook-signature" not in request.headers and request.headers["webhook-id"] == "k"
