"""notify's Slack messages against the Block Kit schema generated from Slack's own types (@slack/types, by
ts-json-schema-generator: tests/schemas/block_kit.py), and that schema refusing what Slack refuses.

No skip: without Node.js, npm or the registry the schema cannot be made, and these tests fail saying why."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from services.notify.messages import KINDS, Kind, render
from tests.schemas import block_kit
from tests.unit.services.notify.factories import CHECK_IN, REVIEW, WIN, notification


@pytest.fixture(scope="module")
def blocks() -> jsonschema.Draft7Validator:
    return block_kit.validator()


def errors(message: dict[str, Any], blocks: jsonschema.Draft7Validator) -> list[str]:
    return list(block_kit.message_errors(message, blocks))


def test_the_schema_is_generated_from_slacks_known_block_type() -> None:
    schema = block_kit.generated()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$ref"] == "#/definitions/Blocks"
    assert schema["definitions"]["Blocks"]["items"] == {"$ref": "#/definitions/KnownBlock"}
    known = {ref["$ref"].rpartition("/")[2] for ref in schema["definitions"]["KnownBlock"]["anyOf"]}
    assert {"HeaderBlock", "SectionBlock", "ContextBlock", "ActionsBlock", "DividerBlock", "ImageBlock"} <= known
    header = schema["definitions"]["HeaderBlock"]
    assert header["properties"]["type"]["const"] == "header" and header["additionalProperties"] is False
    assert header["properties"]["text"]["$ref"] == "#/definitions/PlainTextElement"
    assert (block_kit.directory() / "node_modules" / "@slack" / "types" / "package.json").is_file()


@pytest.mark.parametrize("limit", block_kit.LIMITS, ids=lambda limit: f"{limit.definition}.{limit.prop or '*'}")
def test_every_added_limit_is_one_that_slacks_types_state(limit: block_kit.Limit) -> None:
    """The limits TypeScript cannot express come from the types' own doc comments, word for word."""
    definition = block_kit.generated()["definitions"][limit.definition]
    described = definition["properties"][limit.described_by]["description"]
    assert limit.stated in described


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["en_US", "de_DE"])
def test_every_slack_message_notify_renders_is_valid_block_kit(kind: Kind, locale: str,
                                                               blocks: jsonschema.Draft7Validator) -> None:
    message = render(notification(kind, locale)).slack
    assert errors(message, blocks) == []


@pytest.mark.parametrize("scope", ["rep", "team"])
@pytest.mark.parametrize("locale", ["en_US", "de_DE"])
def test_celebrations_and_reviews_of_a_rep_and_of_a_team_are_valid(scope: str, locale: str,
                                                                   blocks: jsonschema.Draft7Validator) -> None:
    name = "Ana Berg" if scope == "rep" else "Team Nord"
    win = WIN.model_copy(update={"scope": scope, "scope_id": "north" if scope == "team" else "ana", "name": name})
    review = REVIEW.model_copy(update={"scope": scope, "scope_id": "north" if scope == "team" else "ana",
                                       "name": name})
    for n in (notification("celebration", locale, data=win), notification("review", locale, data=review)):
        message = render(n).slack
        assert errors(message, blocks) == [], n.kind
        assert message["blocks"][0]["type"] == "header"


def test_a_summary_longer_than_slack_takes_is_shortened_into_a_valid_message(
        blocks: jsonschema.Draft7Validator) -> None:
    long = CHECK_IN.model_copy(update={"summary": "x" * 5000, "rep_name": "A" * 300,
                                       "suggested_actions": ["y" * 3000] * 3})
    assert errors(render(notification("check_in", data=long)).slack, blocks) == []


def _check_in() -> dict[str, Any]:
    return copy.deepcopy(render(notification("check_in", "en_US")).slack)


def _broken(path: str, value: Any) -> dict[str, Any]:
    """The check-in's message with the block (or the part of it) at `path` (``1.text``) replaced by `value`."""
    message = _check_in()
    *parents, last = (int(p) if p.isdigit() else p for p in path.split("."))
    node: Any = message["blocks"]
    for key in parents:
        node = node[key]
    node[last] = value
    return message


BROKEN = {
    "a header with mrkdwn text": (_broken("0.text", {"type": "mrkdwn", "text": "*Hi*"}),
                                  "blocks[0].text.type: 'plain_text' was expected"),
    "a header of 151 characters": (_broken("0.text.text", "x" * 151),
                                   "blocks[0].text.text: 151 characters, at most 150 allowed"),
    "an unknown block type": (_broken("1", {"type": "banner", "text": {"type": "mrkdwn", "text": "x"}}),
                              "blocks[1]: unknown type 'banner'"),
    "a section without text or fields": (_broken("1", {"type": "section"}),
                                         "blocks[1]: none of: 'text' is a required property"),
    "a section with empty text": (_broken("1.text.text", ""), "blocks[1].text.text: 0 characters, at least 1"),
    "a text object of an unknown type": (_broken("1.text.type", "markdown"),
                                         "blocks[1].text: unknown type 'markdown' (known here: mrkdwn, plain_text)"),
    "eleven fields": (_broken("1.fields", [{"type": "mrkdwn", "text": "a"}] * 11),
                      "blocks[1].fields: 11 items, at most 10 allowed"),
    "a field of 2001 characters": (_broken("1.fields.0.text", "x" * 2001),
                                   "blocks[1].fields[0].text: 2001 characters, at most 2000 allowed"),
    "a property Slack does not know": (_broken("1.colour", "red"),
                                       "blocks[1]: Additional properties are not allowed ('colour' was unexpected)"),
    "an empty context": (_broken("2.elements", []), "blocks[2].elements: 0 items, at least 1 needed"),
    "a button label of 76 characters": (_broken("3.elements.0.text.text", "x" * 76),
                                        "blocks[3].elements[0].text.text: 76 characters, at most 75 allowed"),
    "a button style Slack does not have": (_broken("3.elements.0.style", "success"),
                                           "blocks[3].elements[0].style: 'success' is not one of"),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_the_schema_refuses_what_slack_refuses(case: str, blocks: jsonschema.Draft7Validator) -> None:
    message, said = BROKEN[case]
    found = errors(message, blocks)
    assert len(found) == 1 and found[0].startswith(said), found


def test_a_message_needs_fallback_text_and_at_most_50_blocks(blocks: jsonschema.Draft7Validator) -> None:
    message = _check_in()
    assert errors({**message, "text": ""}, blocks) == [
        "text: a message needs a non-empty `text` (the notification's fallback)"]
    assert errors({"blocks": message["blocks"]}, blocks)[0].startswith("text:")
    divider = {"type": "divider"}
    assert errors({"text": "t", "blocks": [divider] * 50}, blocks) == []
    assert errors({"text": "t", "blocks": [divider] * 51}, blocks) == ["blocks: 51 items, at most 50 allowed"]
    assert errors(["not", "an", "object"], blocks) == ["the body is not a JSON object but list"]  # type: ignore[arg-type]
