"""The words that celebrate a milestone: one sentence from a template and the milestone's facts.

Pure. A tenant's template (``settings.templates``, per milestone kind) overrides `DEFAULT_TEMPLATES`.
Placeholders are the facts' names, filled with values formatted for the tenant's locale by Babel:
amounts as money (a deal's own currency, otherwise the tenant's), percentages rounded DOWN (99.6%
never reads 100%), counts with grouping, dates in the locale's medium style. A template that names
an unknown placeholder, uses positional fields, conversions, format specs or broken braces, or
renders empty, is not used: the default template is, so a typo in a tenant's settings never loses a
celebration. The default sentences are English (the locale formats their numbers); a tenant writes
its own language.

Placeholders (those a milestone's facts provide): ``name`` (the rep or team), ``period``,
``metric`` (in words), ``actual``, ``target``, ``attainment`` (alias ``percent``), ``threshold``,
``amount``, ``previous_record``, ``currency``, ``deal_id``, ``days``, ``daily_goal``,
``first_day``, ``last_day``, ``place``, ``ordinal``, ``team_id``, ``rep``; a contest's: ``name`` (the
contest at its start, the rep or team otherwise), ``contest``, ``value``, ``participants``,
``participant_kind``, ``prize``, ``since``, ``runner_up``, ``runner_up_value``, ``margin`` and ``finish``
("won", "tied for 1st in", "finished 2nd in").

Where a default sentence names a fact a milestone may lack (a contest without prizes, a leader without a
runner-up), `SHORT_TEMPLATES` has the sentence without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from string import Formatter
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent

from services.recognition.model import (
    CONTEST_LEAD,
    CONTEST_STARTED,
    CONTEST_WON,
    FIRST_WIN,
    FIRST_WIN_EVER,
    PERSONAL_RECORD,
    STREAK,
    TEAM_GOAL,
    TEAM_LARGEST_DEAL,
)
from shared.events import Metric
from shared.formatting import locale_of

__all__ = ["ALSO_PHRASES", "DEFAULT_TEMPLATES", "GENERIC_TEMPLATE", "SHORT_TEMPLATES", "kind_of", "render",
           "with_also"]

DEFAULT_TEMPLATES: Mapping[str, str] = {
    "quota": "{name} just hit {threshold} of the {period} {metric} target: {actual} of {target}!",
    TEAM_GOAL: "{name} reached the {period} team goal: {actual} of {target} won!",
    FIRST_WIN_EVER: "First win ever for {name}: a {amount} deal!",
    FIRST_WIN: "First win of {period} for {name}: a {amount} deal!",
    PERSONAL_RECORD: "{name} just set a personal record: a {amount} deal (previous best {previous_record})!",
    TEAM_LARGEST_DEAL: "{rep} closed the largest deal of {period} for {name}: {amount}!",
    STREAK: "{name} met the daily goal of {daily_goal} activities {days} business days in a row!",
    "leaderboard": "{name} finished {ordinal} in {metric} for {period}: {actual}!",
    CONTEST_STARTED: "{name} has started: {metric} through {last_day}, {participants} {participant_kind} in the race,"
                     " and 1st place takes home {prize}!",
    CONTEST_LEAD: "{name} took the lead in {contest} with {value}, {margin} ahead of {runner_up}!",
    CONTEST_WON: "{name} {finish} {contest} with {value} and takes home {prize}!",
}
# the default sentence without the fact a milestone may lack (no prize, nobody behind the leader)
SHORT_TEMPLATES: Mapping[str, str] = {
    CONTEST_STARTED: "{name} has started: {metric} through {last_day}, {participants} {participant_kind} in the race!",
    CONTEST_LEAD: "{name} took the lead in {contest} with {value}!",
    CONTEST_WON: "{name} {finish} {contest} with {value}!",
}
# for a kind without a template (a milestone added later): never fails, needs only a name
GENERIC_TEMPLATE = "{name} reached a new milestone!"
# what a celebration says of the milestones it carries besides its lead ("Also: first win of 2026-Q4.")
ALSO_PHRASES: Mapping[str, str] = {
    "quota": "{threshold} of the {metric} target",
    TEAM_GOAL: "the team goal",
    FIRST_WIN_EVER: "first win ever",
    FIRST_WIN: "first win of {period}",
    PERSONAL_RECORD: "a personal record",
    STREAK: "a {days}-day streak",
    "leaderboard": "{ordinal} in {metric}",
}

_KINDS = (TEAM_GOAL, FIRST_WIN_EVER, FIRST_WIN, PERSONAL_RECORD, TEAM_LARGEST_DEAL, STREAK)
_QUOTA = re.compile(r"quota_[0-9]+(_[a-z_]+)?")
_LEADERBOARD = re.compile(r"leaderboard_[0-9]+(?:_[a-z_]+)?")
_MONEY_METRICS = frozenset({Metric.WON_REVENUE, Metric.PIPELINE_CREATED, Metric.AVG_DEAL_SIZE})
_SHARE_METRICS = frozenset({Metric.WIN_RATE})
_METRIC_WORDS: Mapping[str, str] = {m.value: m.value.replace("_", " ") for m in Metric}
_DATE_FACTS = ("first_day", "last_day")


def kind_of(milestone: str) -> str:
    """The template kind of a milestone name: ``quota_150`` or ``quota_100_calls`` -> ``quota``,
    ``leaderboard_2_won_revenue`` -> ``leaderboard``, ``first_win`` -> ``first_win``; an unknown name is
    its own kind."""
    if _QUOTA.fullmatch(milestone):
        return "quota"
    if _LEADERBOARD.fullmatch(milestone):
        return "leaderboard"
    return milestone


def render(
    kind: str,
    facts: Mapping[str, Any],
    *,
    locale: str,
    currency: str | None,
    templates: Mapping[str, str] | None = None,
) -> str:
    """One headline for a milestone of ``kind`` (see `kind_of`) from its ``facts``.

    ``currency`` is the tenant's (None: amounts without a symbol); a fact ``currency`` (a deal's)
    wins for the deal's ``amount`` and ``previous_record``. An unknown ``locale`` reads as English.

    Example: kind "quota", facts {name: "Ann Lee", period: "2026-Q4", metric: "won_revenue",
    actual: 90000, target: 90000, threshold: 100}, locale "en", currency "EUR" -> "Ann Lee just hit
    100% of the 2026-Q4 won revenue target: €90,000.00 of €90,000.00!"; locale "de_DE" gives
    "90.000,00 €" for the amounts.
    """
    values = _values(facts, locale_of(locale), currency)
    for template in ((templates or {}).get(kind), DEFAULT_TEMPLATES.get(kind), SHORT_TEMPLATES.get(kind),
                     GENERIC_TEMPLATE):
        if template is not None and (text := _fill(template, values)) is not None and text.strip():
            return text
    return f"{values.get('name', '')} reached a new milestone!".strip()


def with_also(headline: str, others: Sequence[tuple[str, Mapping[str, Any]]], *, locale: str,
              currency: str | None) -> str:
    """A lead milestone's headline naming the ``others`` (kind, facts) it carries, in their order.

    Example: "First win ever for Ann Lee: a €50,000.00 deal!" with a first_win of 2026-Q4 -> "First win ever
    for Ann Lee: a €50,000.00 deal! Also: first win of 2026-Q4."
    """
    phrases = []
    for kind, facts in others:
        values = _values(facts, locale_of(locale), currency)
        phrase = _fill(ALSO_PHRASES.get(kind, "{milestone}"), {**values, "milestone": kind.replace("_", " ")})
        phrases.append(phrase if phrase is not None else kind.replace("_", " "))
    return f"{headline} Also: {', '.join(phrases)}." if phrases else headline


def _fill(template: str, values: Mapping[str, str]) -> str | None:
    """``template`` with its placeholders filled, or None if it is malformed or names a missing value.

    Only plain ``{name}`` fields are allowed: no attribute or index access, conversion or format spec,
    so a tenant's template can neither crash the service nor reach into objects.
    """
    parts: list[str] = []
    try:
        for literal, field, spec, conversion in Formatter().parse(template):
            parts.append(literal)
            if field is None:
                continue
            if spec or conversion or not field.isidentifier() or field not in values:
                return None
            parts.append(values[field])
    except ValueError:  # unbalanced braces
        return None
    return "".join(parts)


def _values(facts: Mapping[str, Any], locale: Locale, currency: str | None) -> dict[str, str]:
    """Every fact as display text; facts without a formatter (ids, periods) as ``str()``."""
    metric = str(facts.get("metric") or "")
    deal_currency = str(facts.get("currency") or currency or "") or None

    def money(value: Decimal) -> str:
        return _money(value, deal_currency, locale)

    def figure(value: Decimal) -> str:
        return _figure(value, metric, currency, locale)

    def percent(value: Decimal) -> str:
        return _percent(value, locale)

    def count(value: Decimal) -> str:
        return format_decimal(value, locale=locale)

    numeric: dict[str, Callable[[Decimal], str]] = {
        "amount": money, "previous_record": money, "actual": figure, "target": figure,
        "attainment": percent, "percent": percent, "threshold": lambda value: percent(value / 100),
        "days": count, "daily_goal": count, "place": count, "participants": count,
        "value": figure, "runner_up_value": figure,
        "margin": percent if facts.get("rank_by") == "attainment" else figure,  # a contest's, in its ranking
    }  # fmt: skip
    values: dict[str, str] = {}
    for key, value in facts.items():
        if value is None:
            continue
        number = _decimal(value) if key in numeric else None
        values[key] = numeric[key](number) if number is not None else str(value)
        if key in _DATE_FACTS and (day := _date(value)) is not None:
            values[key] = format_date(day, format="medium", locale=locale)
    if metric:
        values["metric"] = _METRIC_WORDS.get(metric, metric.replace("_", " "))
    if "attainment" in values:
        values.setdefault("percent", values["attainment"])
    if facts.get("participants") == 1 and str(facts.get("participant_kind", "")).endswith("s"):
        values["participant_kind"] = str(facts["participant_kind"])[:-1]  # "1 rep", "3 reps"
    if (place := _decimal(facts.get("place"))) is not None:
        values["ordinal"] = _ordinal(int(place), locale)
        if "tied" in facts:  # a contest's place
            values["finish"] = _finish(int(place), facts["tied"] is True, values["ordinal"])
    return values


def _finish(place: int, tied: bool, ordinal: str) -> str:
    """How a contest's place reads before its name: "won", "tied for 1st in", "finished 2nd in"."""
    if tied:
        return f"tied for {ordinal} in"
    return "won" if place == 1 else f"finished {ordinal} in"


def _figure(value: Decimal, metric: str, currency: str | None, locale: Locale) -> str:
    if metric in _MONEY_METRICS:
        return _money(value, currency, locale)
    if metric in _SHARE_METRICS:
        return _percent(value, locale)
    return format_decimal(value, locale=locale)


def _money(amount: Decimal, currency: str | None, locale: Locale) -> str:
    if currency is None:
        return format_decimal(amount, format="#,##0.00", locale=locale)
    return format_currency(amount, currency, locale=locale)


def _percent(share: Decimal, locale: Locale) -> str:
    """A share as a whole percentage rounded DOWN: 0.996 -> "99%", never "100%"."""
    whole = (share * 100).quantize(Decimal(1), rounding=ROUND_DOWN)
    return format_percent(whole / 100, locale=locale)


def _ordinal(place: int, locale: Locale) -> str:
    if locale.language != "en":
        return f"{place}."
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"


def _decimal(value: Any) -> Decimal | None:
    """A fact as a Decimal: facts read back from JSON hold strings ("90000")."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None
