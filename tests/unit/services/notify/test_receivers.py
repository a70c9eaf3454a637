"""The integration tests' Slack and Teams stand-ins (tests/integration/notify/receivers.py), driven by notify's own
webhook channel: valid bodies taken as Slack and Teams answer, invalid ones refused with 400 and the reason and
recorded as invalid, scripted 429s with Retry-After. No Kafka, no database; the schemas must be available (no skip).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.notify.channels import PermanentFailure, TransientFailure
from services.notify.channels.webhooks import IDEMPOTENCY_HEADER, post_json, post_slack, post_teams
from services.notify.messages import render
from tests.integration.notify.receivers import Receivers
from tests.unit.services.notify.factories import notification


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receivers]:
    with Receivers() as receivers:
        yield receivers


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def test_slack_takes_a_valid_message_and_refuses_an_invalid_one_with_the_reason(
        hooks: Receivers, client: httpx.AsyncClient) -> None:
    message = render(notification("celebration", "de_DE")).slack
    assert await post_slack(client, hooks.url("/slack/T1/valid"), message, "k-valid") == 200
    broken = copy.deepcopy(message)
    broken["blocks"][0]["text"]["type"] = "mrkdwn"  # a header takes plain text only
    with pytest.raises(PermanentFailure) as refused:
        await post_slack(client, hooks.url("/slack/T1/broken"), broken, "k-broken")
    assert refused.value.status == 400
    assert refused.value.reason.startswith("HTTP 400: invalid_blocks\nblocks[0].text.type: 'plain_text' was expected")
    taken, invalid = hooks.posts("/slack/T1/")
    assert taken.valid and taken.status == 200 and taken.body == message
    assert taken.headers[IDEMPOTENCY_HEADER.lower()] == "k-valid" and taken.channel == "slack"
    assert not invalid.valid and invalid.status == 400 and invalid.body == broken
    assert invalid.errors == ("blocks[0].text.type: 'plain_text' was expected",)
    response = await client.post(hooks.url("/slack/T1/no-text"), json={"blocks": message["blocks"][:1] * 51})
    assert response.status_code == 400 and response.text.splitlines()[1:] == [
        "text: a message needs a non-empty `text` (the notification's fallback)",
        "blocks: 51 items, at most 50 allowed"]


async def test_teams_takes_a_valid_card_envelope_and_refuses_a_broken_card_or_envelope(
        hooks: Receivers, client: httpx.AsyncClient) -> None:
    envelope = render(notification("check_in", "en_US")).teams
    assert await post_teams(client, hooks.url("/teams/flow-1"), envelope, "k-card") == 202
    card = envelope["attachments"][0]["content"]
    heavy = {**envelope, "attachments": [{**envelope["attachments"][0], "content": {
        **card, "body": [{**card["body"][0], "weight": "heavy"}]}}]}
    with pytest.raises(PermanentFailure, match="HTTP 400: invalid_payload"):
        await post_teams(client, hooks.url("/teams/flow-1"), heavy, "k-heavy")
    bare_card = await client.post(hooks.url("/teams/flow-1"), json=card)  # the card without its envelope
    assert bare_card.status_code == 400 and "not a Workflows envelope" in bare_card.text
    taken, refused, bare = hooks.posts("/teams/flow-1")
    assert (taken.status, taken.valid) == (202, True)
    assert refused.status == 400 and refused.errors == (
        "attachments[0].content.body[0].weight: 'heavy' is not one of ['lighter', 'default', 'bolder']",)
    assert not bare.valid


async def test_scripted_429s_with_retry_after_then_the_message_is_taken(hooks: Receivers,
                                                                        client: httpx.AsyncClient) -> None:
    hooks.rate_limited("/slack/T2/", 2)
    message = render(notification("plan", "en_US")).slack
    url = hooks.url("/slack/T2/hook")
    for _ in range(2):
        with pytest.raises(TransientFailure) as busy:
            await post_slack(client, url, message, "k-retried")
        assert busy.value.status == 429 and busy.value.retry_after == 1.0
    assert await post_slack(client, url, message, "k-retried") == 200
    posts = await hooks.until(3, "/slack/T2/")
    assert [p.status for p in posts] == [429, 429, 200] and all(p.valid for p in posts)
    assert {p.headers[IDEMPOTENCY_HEADER.lower()] for p in posts} == {"k-retried"}
    assert await post_json(client, hooks.url("/own/hook"), b'{"any": "json"}', "k-own") == 200
    assert hooks.posts("/own/")[0].body == {"any": "json"}
