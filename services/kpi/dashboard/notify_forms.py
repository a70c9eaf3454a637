"""The notification pages' forms, as pure functions (control_notify.py, notify_pages.py): a team's and the tenant's
write-only secrets turned into the body notify's API takes (a field absent keeps, null clears), a person's
preferences shown as a form and read back, notify's refusal put next to the field it names, and RFC 8058's
one-click unsubscribe told apart from the confirm page's form.

Nothing here validates what notify validates (an https URL, a time of day, the cap's range): a value is sent as
typed, and notify's own message, naming the field, is shown. Only what a form cannot say otherwise is read here
(a checkbox, "clear" against "keep").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KINDS: tuple[str, ...] = ("check_in", "escalation", "celebration", "review", "digest", "plan")
KIND_WORDS = {"check_in": "Check-ins", "escalation": "Escalations", "celebration": "Celebrations",
              "review": "Reviews", "digest": "The daily digest", "plan": "Action plans"}
PERSON_CHANNELS: tuple[str, ...] = ("email", "slack", "webhook")  # "teams" is a team's channel only
CHANNEL_WORDS = {"email": "E-mail", "slack": "Slack", "webhook": "Webhook", "teams": "Microsoft Teams"}
DEFAULT_CHANNELS: tuple[str, ...] = ("email",)  # what a kind nobody chose for goes to (notify's routing)
TEAM_FIELDS: tuple[str, ...] = ("slack_webhook", "teams_webhook")
CONNECTION_SECRETS: tuple[str, ...] = ("slack_bot_token", "webhook_secret")
PREFERENCE_FIELDS: tuple[str, ...] = ("channels", "public_celebrations", "quiet_start", "quiet_end",
                                      "weekends_quiet", "daily_cap")
DEFAULT_CAP = 20

Form = Mapping[str, Sequence[str]]


def _one(form: Form, name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def _ticked(form: Form, name: str) -> bool:
    return _one(form, name) in ("1", "on", "true")


def secrets_body(form: Form, names: Sequence[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The write-only fields of a form as notify takes them: a value typed sets (or replaces) it, "clear" ticked
    clears it (null), neither keeps it (absent). Both at once is refused by the field's name.

    >>> secrets_body({"slack_webhook": ["https://hooks.example/1"], "clear_teams_webhook": ["1"]}, TEAM_FIELDS)
    ({'slack_webhook': 'https://hooks.example/1', 'teams_webhook': None}, {})
    >>> secrets_body({"slack_webhook": ["https://x"], "clear_slack_webhook": ["1"]}, TEAM_FIELDS)[1]
    {'slack_webhook': 'type a new value or tick "clear", not both'}
    """
    body: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for name in names:
        typed, clear = _one(form, name), _ticked(form, f"clear_{name}")
        if typed and clear:
            errors[name] = 'type a new value or tick "clear", not both'
        elif clear:
            body[name] = None
        elif typed:
            body[name] = typed
    return body, errors


def connection_body(form: Form) -> tuple[dict[str, str | None], dict[str, str]]:
    """The tenant's connection form: the bot token and signing secret write-only (`secrets_body`), the webhook URL
    as shown and edited (not a secret: empty clears it).

    >>> connection_body({"webhook_url": [" https://hooks.example/in "], "slack_bot_token": [""]})
    ({'webhook_url': 'https://hooks.example/in'}, {})
    >>> connection_body({"webhook_url": [""], "clear_webhook_secret": ["1"]})
    ({'webhook_secret': None, 'webhook_url': None}, {})
    """
    body, errors = secrets_body(form, CONNECTION_SECRETS)
    body["webhook_url"] = _one(form, "webhook_url") or None
    return body, errors


def chosen_channels(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per kind, the person channels a preferences document sends it on (a kind absent: the default, e-mail).

    >>> chosen_channels({"channels": {"digest": [], "celebration": ["email", "slack"]}})["digest"]
    []
    >>> chosen_channels({"channels": {}})["check_in"]
    ['email']
    """
    channels = document.get("channels") or {}
    return {k: list(channels[k]) if k in channels else list(DEFAULT_CHANNELS) for k in _kinds(document)}


def _kinds(document: Mapping[str, Any]) -> list[str]:
    return [str(k) for k in document.get("kinds") or KINDS]


def offered(document: Mapping[str, Any]) -> list[str]:
    """The channels a person may choose, in a stable order: notify's list without the team-only one.

    >>> offered({"channels_available": ["email", "slack", "teams", "webhook"]})
    ['email', 'slack', 'webhook']
    >>> offered({})
    ['email', 'slack', 'webhook']
    """
    available = document.get("channels_available") or PERSON_CHANNELS
    return [c for c in available if c != "teams"]


def preferences_form(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the preferences form shows: per kind the channels ticked and whether that is notify's default (so a
    save that leaves it ticked as shown keeps following the default), and the rest as the inputs take them."""
    channels = document.get("channels") or {}
    return {"channels": chosen_channels(document), "defaulted": [k for k in _kinds(document) if k not in channels],
            "public_celebrations": bool(document.get("public_celebrations", True)),
            "quiet_start": str(document.get("quiet_start") or "")[:5],
            "quiet_end": str(document.get("quiet_end") or "")[:5],
            "weekends_quiet": bool(document.get("weekends_quiet", True)),
            "daily_cap": str(document.get("daily_cap", DEFAULT_CAP))}


def preferences_body(form: Form, kinds: Sequence[str] = KINDS,
                     channels: Sequence[str] = PERSON_CHANNELS) -> dict[str, Any]:
    """The preferences form as `PUT /v1/notify/preferences/me` takes it. A kind's ticked channels become its
    list (none ticked: switched off), except a kind that followed the default and still shows it (`defaulted_`):
    it stays absent, so notify's default (which adds the team's Slack to celebrations) keeps applying.

    >>> body = preferences_body({"ch_check_in": ["email", "slack"], "ch_digest": [], "ch_review": ["email"],
    ...     "defaulted_review": ["1"], "quiet_start": ["21:00"], "quiet_end": ["07:30"], "daily_cap": ["5"],
    ...     "weekends_quiet": ["1"]}, ("check_in", "digest", "review"))
    >>> body["channels"], body["public_celebrations"], body["weekends_quiet"], body["daily_cap"]
    ({'check_in': ['email', 'slack'], 'digest': []}, False, True, 5)
    """
    chosen: dict[str, list[str]] = {}
    for kind in kinds:
        ticked = [c for c in channels if c in (form.get(f"ch_{kind}") or ())]
        if _ticked(form, f"defaulted_{kind}") and ticked == list(DEFAULT_CHANNELS):
            continue
        chosen[kind] = ticked
    cap = _one(form, "daily_cap")
    return {"channels": chosen, "public_celebrations": _ticked(form, "public_celebrations"),
            "quiet_start": _one(form, "quiet_start"), "quiet_end": _one(form, "quiet_end"),
            "weekends_quiet": _ticked(form, "weekends_quiet"),
            "daily_cap": int(cap) if cap.isdigit() else cap}  # as typed otherwise: notify names what is wrong


def entered_preferences(form: Form, kinds: Sequence[str] = KINDS,
                        channels: Sequence[str] = PERSON_CHANNELS) -> dict[str, Any]:
    """A refused form shown again as it was typed (`preferences_form`'s shape), to be corrected."""
    return {"channels": {k: [c for c in channels if c in (form.get(f"ch_{k}") or ())] for k in kinds},
            "defaulted": [k for k in kinds if _ticked(form, f"defaulted_{k}")],
            "public_celebrations": _ticked(form, "public_celebrations"), "quiet_start": _one(form, "quiet_start"),
            "quiet_end": _one(form, "quiet_end"), "weekends_quiet": _ticked(form, "weekends_quiet"),
            "daily_cap": _one(form, "daily_cap")}


def refusals(body: Any, names: Sequence[str]) -> tuple[dict[str, str], str]:
    """notify's 422 split by the field each part names: a `detail` text (``"daily_cap: must be at least 1"``,
    parts joined by ``"; "``) or FastAPI's list of validation errors (the field in each one's ``loc``); what
    names no field comes back whole.

    >>> refusals({"detail": "slack_webhook: https is required"}, TEAM_FIELDS)
    ({'slack_webhook': 'https is required'}, '')
    >>> refusals({"detail": [{"loc": ["body", "channels", "plan", 0], "msg": "bad channel"}]}, PREFERENCE_FIELDS)
    ({'channels': 'plan.0: bad channel'}, '')
    >>> refusals({"detail": "the tenant is unknown"}, TEAM_FIELDS)
    ({}, 'the tenant is unknown')
    """
    detail = body.get("detail", "") if isinstance(body, dict) else body
    by_field: dict[str, str] = {}
    rest: list[str] = []

    def add(name: str, message: str) -> None:
        by_field[name] = f"{by_field[name]}; {message}" if name in by_field else message

    if isinstance(detail, list):
        for item in detail:
            loc = [str(p) for p in item.get("loc", ())] if isinstance(item, dict) else []
            message = str(item.get("msg", item)) if isinstance(item, dict) else str(item)
            message = message.removeprefix("Value error, ")  # pydantic's prefix to a validator's own words
            named = next((i for i, p in enumerate(loc) if p in names), None)
            if named is None:
                rest.append(message)
            else:
                inner = ".".join(loc[named + 1:])
                add(loc[named], f"{inner}: {message}" if inner else message)
        return by_field, "; ".join(rest)
    for part in (p.strip() for p in str(detail or "").split("; ")):
        where, sep, message = part.partition(": ")
        name, _, inner = where.partition(".")
        if sep and name in names:
            add(name, f"{inner}: {message}" if inner else message)
        elif part:
            rest.append(part)
    return by_field, "; ".join(rest)


def one_click(form: Form) -> bool:
    """Is this RFC 8058's one-click unsubscribe (a mail provider's POST, its body ``List-Unsubscribe=One-Click``)?

    >>> one_click({"List-Unsubscribe": ["One-Click"]}), one_click({"t": ["x"], "csrf": ["y"]})
    (True, False)
    """
    return _one(form, "List-Unsubscribe") == "One-Click"


def recipient_words(recipient: str, names: Mapping[str, str | None]) -> str:
    """A delivery's recipient in words: a person by name (and id), a team's channel as such.

    >>> recipient_words("team:north", {}), recipient_words("ana", {"ana": "Ana Alves"}), recipient_words("bo", {})
    ('team north', 'Ana Alves (ana)', 'bo')
    """
    if recipient.startswith("team:"):
        return f"team {recipient.removeprefix('team:')}"
    name = names.get(recipient)
    return f"{name} ({recipient})" if name else recipient
