"""The settings sections' forms, as pure functions: what each field is (its words, unit and limits, from the
owning service's model), a form's text turned into the body the service's API takes, the service's refusal
turned back into a message next to the field it names, and the CRM user a held-back record waits for.

Nothing here validates what the service validates: a value is sent as typed, and the service's own message
(naming the field) is shown. Only what a form cannot say otherwise is read here (a list, a mapping, yes/no).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

Kind = Literal["number", "integer", "list", "bool", "text", "map"]


@dataclass(frozen=True)
class Field:
    """One setting as a form shows it: `name` as the API spells it, its words, its unit and limits (`help`)."""

    name: str
    label: str
    kind: Kind
    help: str


@dataclass(frozen=True)
class Group:
    title: str
    fields: tuple[Field, ...]


def _f(name: str, label: str, kind: Kind, help: str) -> Field:
    return Field(name, label, kind, help)


# coaching's `Policy` (services/coaching/model.py): every threshold of the rules. A share is a decimal (0.7 is 70 %).
POLICY: tuple[Group, ...] = (
    Group("Behind pace", (
        _f("pace_threshold", "Behind pace below", "number",
           "Pace = actual ÷ expected by now. Below this a rep is behind pace: 0.7 is 70 %. Above 0."),
        _f("pace_critical_below", "Critical below pace", "number",
           "Below this pace the check-in is critical. 0 or more."),
        _f("pace_recover_at", "Recovers at pace", "number",
           "An open behind-pace check-in closes once the pace is back at this (above the threshold, so it does not"
           " flap). Above 0."),
        _f("pace_min_gap_share", "Smallest gap, share of target", "number",
           "No check-in for a gap (expected − actual) below this share of the target: 0.05 is 5 %. 0 to below 1."),
        _f("pace_grace_share", "Quiet start, share of working days", "number",
           "No pace check before this share of the period's working days has passed: 0.1 is 10 %. 0 to below 1."),
        _f("new_target_grace_s", "Grace for a new target, seconds", "integer",
           "A target seen for the first time is not checked for this long: 259200 is 3 days. 0 or more."),
        _f("pace_metrics", "Metrics checked for pace", "list",
           "Comma-separated: built-in metrics (won_revenue, deals_won, pipeline_created, …) or ids of your own KPIs."),
    )),
    Group("Activity shortfall", (
        _f("activity_metrics", "Activity metrics checked", "list",
           "Comma-separated, of calls, emails, meetings and activities."),
        _f("activity_window_days", "Window, calendar days", "integer", "The trailing window counted: 1 to 90 days."),
        _f("activity_threshold", "Short below, share of pace", "number",
           "Short below this share of the activities the pace needs: 0.8 is 80 %. Above 0."),
        _f("activity_critical_below", "Critical below, share of pace", "number", "0 or more."),
        _f("activity_recover_at", "Recovers at, share of pace", "number",
           "An open shortfall check-in closes at this share of the pace. Above 0."),
        _f("activity_min_gap", "Smallest shortfall, activities", "number",
           "No check-in for fewer missing activities than this in the window. 0 or more."),
    )),
    Group("Pipeline and forecast", (
        _f("coverage_multiple", "Coverage below, × remaining target", "number",
           "Open pipeline below this multiple of the remaining target is a finding. 0 or more."),
        _f("coverage_recover_multiple", "Coverage recovers at, ×", "number",
           "An open coverage check-in closes at this multiple. 0 or more."),
        _f("coverage_min_gap_share", "Smallest coverage shortfall, share of target", "number",
           "No coverage check-in for a shortfall below this share of the target: 0.1 is 10 %. 0 or more."),
        _f("stale_deal_days", "Deal stalled after, days", "integer",
           "An open deal untouched this long is stalled: 1 to 365 days."),
        _f("stale_min_deals", "Stalled deals for a check-in", "integer",
           "Stalled deals alone raise a check-in from this many on. 1 or more."),
        _f("forecast_coverage", "Forecast coverage, × gap", "number",
           "Forecast short when the open deals expected to close in the period are below this multiple of the gap"
           " (target − won so far). 1: not even winning every one closes it; 0 turns the rule off."),
    )),
    Group("Win rate", (
        _f("win_rate_recent_days", "Recent window, days", "integer", "1 to 365 days."),
        _f("win_rate_baseline_days", "Baseline window, days", "integer",
           "The window before the recent one: 1 to 730 days."),
        _f("win_rate_min_recent", "Closed deals needed, recent", "integer", "1 or more."),
        _f("win_rate_min_baseline", "Closed deals needed, baseline", "integer", "1 or more."),
        _f("win_rate_drop", "Falling when down by, share", "number",
           "Falling when recent < baseline × (1 − this): 0.25 is 25 %. Above 0, below 1."),
        _f("win_rate_critical_drop", "Critical when down by, share", "number", "Above 0, below 1."),
        _f("win_rate_recover_drop", "Recovers when down by at most, share", "number",
           "An open win-rate check-in closes at baseline × (1 − this). 0 to below 1."),
    )),
    Group("No activity", (
        _f("no_activity_days", "No activity for, working days", "integer", "1 to 60 working days."),
        _f("no_activity_recover_days", "Recovers after active, working days", "integer",
           "An open check-in closes once the last this many working days each hold an activity: 1 to 60."),
    )),
    Group("Check-ins and reviews", (
        _f("cooldown_days", "Cooldown, days", "integer", "No repeat of a rule for a rep within this: 1 to 90 days."),
        _f("due_working_days", "Due after, working days", "integer",
           "A check-in is due this many working days on: 0 to 20."),
        _f("due_hour", "Due at, hour", "integer", "The hour of the rep's own day it is due: 0 to 23."),
        _f("review_weekday", "Weekly review, weekday", "integer", "ISO weekday: 1 is Monday, 7 Sunday."),
        _f("review_hour", "Weekly review, hour", "integer", "The tenant's local hour: 0 to 23."),
        _f("holdout_share", "Hold-out, share of reps", "number",
           "This share of reps (chosen by a stable hash) gets no check-ins: the comparison group that shows whether"
           " coaching helps. 0 to 0.5."),
    )),
)

# recognition's `Settings` (services/recognition/model.py)
RECOGNITION: tuple[Group, ...] = (
    Group("Quota", (
        _f("quota_thresholds", "Attainment shares celebrated", "list",
           "Comma-separated shares of target: 0.5, 1, 1.5 celebrate 50 %, 100 % and 150 %. At least one."),
        _f("quota_metrics", "Metrics celebrated", "list",
           "Comma-separated metrics whose quota crossings are celebrated. Empty: every metric with a target."),
    )),
    Group("Streaks and leaderboards", (
        _f("streak_days", "Streak length, business days", "integer",
           "Consecutive business days at the daily activity goal: 2 to 60."),
        _f("streak_daily_activities", "Daily activity goal", "integer",
           "Activities a day that count toward a streak: 1 to 500."),
        _f("leaderboard_metrics", "Leaderboard metrics", "list",
           "Comma-separated metrics whose top places are celebrated."),
        _f("leaderboard_places", "Places celebrated", "integer", "The top this many: 1 to 10."),
        _f("contest_lead_debounce_s", "Contest lead held for, seconds", "integer",
           "A contest's sole leader must keep the lead this long before it is celebrated: 0 to 604800 (a week)."),
    )),
    Group("What is announced", (
        _f("disabled", "Milestone kinds switched off", "list",
           "Comma-separated kinds, e.g. activity_streak. At most 32."),
        _f("corrections", "Announce corrections", "bool",
           "Announce when figures drop back below a celebrated threshold (never a second celebration)."),
        _f("history_horizon_hours", "Quiet for history older than, hours", "integer",
           "A milestone older than this when found is recorded quietly, so an import never floods the floor: 1 to"
           " 87600."),
        _f("locale", "Headline locale", "text", "Formats amounts and dates in headlines, e.g. de_DE."),
        _f("templates", "Headlines", "map",
           "One per line, kind = headline, with {placeholders} from its facts, e.g. quota = {name} just hit"
           " {threshold} of the {period} target!"),
    )),
)


def fields_of(groups: Sequence[Group]) -> dict[str, Field]:
    return {f.name: f for g in groups for f in g.fields}


def shown(value: Any, kind: Kind) -> str:
    """A stored override as its form field shows it (None: not overridden, an empty field)."""
    if value is None:
        return ""
    if kind == "list" and isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if kind == "map" and isinstance(value, Mapping):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if kind == "bool" and isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def overrides_from(form: Mapping[str, str], fields: Mapping[str, Field]) -> tuple[dict[str, Any], dict[str, str]]:
    """The overrides a settings form says (an empty field: not overridden), and per field what cannot be read.

    >>> overrides_from({"due_hour": "16", "pace_threshold": " 0.65 ", "pace_metrics": "calls, , deals_won",
    ...                 "cooldown_days": ""}, fields_of(POLICY))
    ({'pace_threshold': '0.65', 'pace_metrics': ['calls', 'deals_won'], 'due_hour': 16}, {})
    """
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, f in fields.items():
        text = (form.get(name) or "").strip()
        if not text:
            continue
        if f.kind == "integer":
            body[name] = int(text) if re.fullmatch(r"[+-]?\d+", text) else text  # the service names a bad one
        elif f.kind == "list":
            body[name] = [part.strip() for part in text.split(",") if part.strip()]
        elif f.kind == "bool":
            if text not in ("true", "false"):
                errors[name] = "choose yes, no or the default"
                continue
            body[name] = text == "true"
        elif f.kind == "map":
            mapping, problem = _mapping(text)
            if problem:
                errors[name] = problem
                continue
            body[name] = mapping
        else:  # a number travels as its text: exact, as the services' decimals do
            body[name] = text
    return body, errors


def _mapping(text: str) -> tuple[dict[str, str], str]:
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            return {}, f"line {number}: expected kind = headline"
        out[key.strip()] = value.strip()
    return out, ""


def field_errors(detail: str, names: Sequence[str]) -> tuple[dict[str, str], str]:
    """A service's 422 (`"due_hour: Input should be ... ; pace_metrics.1: ..."`) split by the field each part
    names; what names none comes back whole.

    >>> field_errors("due_hour: Input should be less than or equal to 23, got 24", ["due_hour", "review_hour"])
    ({'due_hour': 'Input should be less than or equal to 23, got 24'}, '')
    """
    by_field: dict[str, str] = {}
    rest: list[str] = []
    for part in (p.strip() for p in detail.split("; ")):
        where, sep, message = part.partition(": ")
        name = where.split(".", 1)[0]
        if sep and name in names:
            if where != name:  # an item of a list: say which (counted from 1, as a reader counts)
                index = where.split(".", 1)[1]
                message = f"item {int(index) + 1 if index.isdigit() else index}: {message}"
            by_field[name] = f"{by_field[name]}; {message}" if name in by_field else message
        elif part:
            rest.append(part)
    return by_field, "; ".join(rest)


def lines(text: str) -> list[str]:
    """A textarea's non-empty lines (a playbook's actions, its training)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def table_from(keys: Sequence[str], values: Sequence[str]) -> tuple[dict[str, str], str]:
    """An editable two-column table (a stage mapping, a user mapping) as the mapping the API takes: a row with
    an empty key is dropped (that is how a row is removed); a key twice is refused by name.

    >>> table_from(["appointmentscheduled", "closedwon", ""], ["open", "won", "lost"])
    ({'appointmentscheduled': 'open', 'closedwon': 'won'}, '')
    """
    out: dict[str, str] = {}
    for raw_key, raw_value in zip(keys, values, strict=False):
        key, value = raw_key.strip(), raw_value.strip()
        if not key:
            continue
        if not value:
            return {}, f"{key!r}: give it a value, or empty its first column to remove the row"
        if key in out:
            return {}, f"{key!r} is listed twice"
        out[key] = value
    return out, ""


_UNMAPPED = re.compile(r"owner: (?P<crm>[a-z]+) user (?P<user>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
                       r" is not mapped to a rep")


def unmapped_user(reason: str, crm: str) -> str | None:
    """The CRM user a held-back record waits for, as ingest's reason names it (`crm/mapping.py`), else None.

    >>> unmapped_user("amount: not received yet; owner: hubspot user '4711' is not mapped to a rep", "hubspot")
    '4711'
    """
    found = _UNMAPPED.search(reason)
    if found is None or found["crm"] != crm:
        return None
    try:
        user = ast.literal_eval(found["user"])
    except (ValueError, SyntaxError):
        return None
    return user if isinstance(user, str) and user else None


def time_off_event(*, event_id: str, time_off_id: str, rep_id: str, first_day: str, last_day: str, reason: str,
                   now: str, cancelled: bool = False) -> dict[str, Any]:
    """A `time_off.set` as ingest's `POST /v1/events` takes it (the record every service counts); a form's dates
    are checked only as dates, the rest by ingest."""
    for words, text in (("first day", first_day), ("last day", last_day)):
        try:
            date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{words}: {text!r} is not a date (YYYY-MM-DD)") from None
    data: dict[str, Any] = {"time_off_id": time_off_id, "rep_id": rep_id, "first_day": first_day,
                            "last_day": last_day, "reason": reason or None}
    if cancelled:
        data["cancelled"] = True
    return {"id": event_id, "source": "control-room", "time": now, "type": "time_off.set", "data": data}
