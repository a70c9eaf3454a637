"""One notification's words (`Content`) laid out for each channel: Slack Block Kit, a Teams Adaptive Card,
an e-mail from Jinja2 templates. Pure; the words are already translated (`services.notify.messages`).

Limits that a receiver enforces are enforced here, so a long summary is shortened rather than refused:
Slack's header text 150 characters, section text 3000, a field 2000, a button's label 75, at most 10
fields; a Teams Workflows webhook takes the card as an attachment of a ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

__all__ = ["ADAPTIVE_CARD_VERSION", "Content", "Email", "email", "slack", "teams"]

ADAPTIVE_CARD_VERSION = "1.5"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_SLACK_HEADER, _SLACK_TEXT, _SLACK_FIELD, _SLACK_BUTTON, _SLACK_FIELDS = 150, 3000, 2000, 75, 10

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=False),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@dataclass(frozen=True, slots=True)
class Content:
    """The words of one notification, before any channel's layout."""

    language: str
    greeting: str
    title: str
    text: str
    facts: tuple[tuple[str, str], ...] = ()
    items: tuple[str, ...] = ()
    note: str = ""
    button: str = ""
    link: str = ""
    unsubscribe: str = ""
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class Email:
    subject: str
    text: str
    html: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (its docs: &, <, >), so event text never becomes a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(c: Content) -> dict[str, Any]:
    """A Block Kit message: `text` is the notification's fallback (what a phone's banner shows)."""
    body = _mrkdwn(c.text) + "".join(f"\n• {_mrkdwn(item)}" for item in c.items)
    section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, _SLACK_TEXT)}}
    if c.facts:
        section["fields"] = [{"type": "mrkdwn", "text": _cut(f"*{_mrkdwn(label)}*\n{_mrkdwn(value)}", _SLACK_FIELD)}
                             for label, value in c.facts[:_SLACK_FIELDS]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(c.title, _SLACK_HEADER), "emoji": True}},
        section]
    if c.note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_mrkdwn(c.note), _SLACK_TEXT)}]})
    blocks.append({"type": "actions", "elements": [{
        "type": "button", "action_id": "open_dashboard", "url": c.link, "style": "primary",
        "text": {"type": "plain_text", "text": _cut(c.button, _SLACK_BUTTON), "emoji": True}}]})
    return {"text": _cut(c.title, _SLACK_TEXT), "blocks": blocks}


def teams(c: Content) -> dict[str, Any]:
    """An Adaptive Card 1.5 in the envelope of a Teams Workflows webhook ("Post to a channel when a webhook
    request is received")."""
    # Enum values in lower case: the published schema's spelling (renderers read them case-insensitively).
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": c.title, "size": "large", "weight": "bolder", "wrap": True},
        {"type": "TextBlock", "text": c.text, "wrap": True}]
    if c.facts:
        body.append({"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in c.facts]})
    if c.items:
        body.append({"type": "TextBlock", "text": "\n".join(f"- {item}" for item in c.items), "wrap": True})
    if c.note:
        body.append({"type": "TextBlock", "text": c.note, "size": "small", "isSubtle": True, "wrap": True})
    card = {"type": "AdaptiveCard", "$schema": ADAPTIVE_CARD_SCHEMA, "version": ADAPTIVE_CARD_VERSION,
            "lang": c.language, "body": body, "fallbackText": c.title, "msteams": {"width": "Full"},
            "actions": [{"type": "Action.OpenUrl", "title": c.button, "url": c.link}]}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def email(c: Content) -> Email:
    """Subject, plain text and HTML (autoescaped: event text is never markup)."""
    values = {"c": c}
    return Email(subject=c.title, text=_TEMPLATES.get_template("email.txt").render(values),
                 html=_TEMPLATES.get_template("email.html").render(values))
