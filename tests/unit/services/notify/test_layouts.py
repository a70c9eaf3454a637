"""The channels' layouts: Block Kit within Slack's limits, Adaptive Cards valid against the published schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from services.notify import layouts
from services.notify.messages import KINDS, Kind, content, render
from tests.unit.services.notify import adaptive_card_schema
from tests.unit.services.notify.factories import CHECK_IN, notification

BLOCK_TYPES = {"header", "section", "context", "actions", "divider"}


@pytest.fixture(scope="module")
def card_schema() -> dict[str, Any]:
    try:
        return adaptive_card_schema.load()
    except adaptive_card_schema.SchemaUnavailable as err:
        pytest.skip(f"the Adaptive Card schema could not be fetched: {err}")


def check_block_kit(message: dict[str, Any]) -> None:
    """Slack's documented limits for what notify sends (there is no published JSON schema for Block Kit)."""
    assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 3000
    blocks = message["blocks"]
    assert 0 < len(blocks) <= 50
    assert [b["type"] for b in blocks][:2] == ["header", "section"]
    for block in blocks:
        assert block["type"] in BLOCK_TYPES
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn" and 0 < len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(0 < len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
        if block["type"] == "actions":
            (button,) = block["elements"]
            assert button["type"] == "button" and button["text"]["type"] == "plain_text"
            assert 0 < len(button["text"]["text"]) <= 75 and len(button["url"]) <= 3000
            assert button["url"].startswith("https://") and len(button["action_id"]) <= 255


def check_teams_envelope(envelope: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    assert envelope["type"] == "message"
    (attachment,) = envelope["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachment["content"]
    jsonschema.Draft6Validator(schema).validate(card)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    return card


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["en_US", "de_DE"])
def test_every_slack_message_keeps_to_block_kit_and_links_the_dashboard(kind: Kind, locale: str) -> None:
    n = notification(kind, locale)
    message = render(n).slack
    check_block_kit(message)
    assert message["blocks"][-1]["elements"][0]["url"] == n.link


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["en_US", "de_DE"])
def test_every_teams_card_is_valid_against_the_adaptive_card_schema(kind: Kind, locale: str,
                                                                    card_schema: dict[str, Any]) -> None:
    n = notification(kind, locale)
    card = check_teams_envelope(render(n).teams, card_schema)
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": content(n).button, "url": n.link}]
    assert card["lang"] == locale[:2]


def test_the_schema_catches_a_broken_card(card_schema: dict[str, Any]) -> None:
    card = render(notification("review")).teams["attachments"][0]["content"]
    broken = {**card, "body": [{**card["body"][0], "weight": "heavy"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft6Validator(card_schema).validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft6Validator(card_schema).validate({**card, "actions": [{"type": "Action.OpenUrl"}]})


def test_a_long_summary_is_shortened_to_slacks_limits_not_refused() -> None:
    long = CHECK_IN.model_copy(update={"summary": "x" * 5000, "rep_name": "A" * 300})
    message = render(notification("check_in", data=long)).slack
    check_block_kit(message)
    assert message["blocks"][1]["text"]["text"].endswith("…")


def test_the_html_part_is_a_whole_document_in_the_recipients_language() -> None:
    html = render(notification("celebration", "de_DE")).email.html
    assert html.startswith("<!DOCTYPE html>") and '<html lang="de">' in html
    assert 'href="https://attain.example/reps/ana?period=2026-Q4"' in html


def test_layouts_take_content_alone() -> None:
    c = layouts.Content(language="en", greeting="Hi,", title="T", text="body", button="Go",
                        link="https://attain.example/")
    assert layouts.slack(c)["blocks"][0]["text"]["text"] == "T"
    assert layouts.email(c).text.startswith("Hi,")
