"""The CRM page's users sync and backfill (control_settings_crm.py), as pure functions: what ingest proposes for a
CRM user in words, what a sync did in one line, the "since" a backfill form asks for as the aware moment ingest
takes, and the fiscal year's first day (ingest's default) for the form to name. No I/O; time is a parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.periods import PeriodKind, local_midnight, period_bounds, period_of


def decision_words(decision: Mapping[str, Any]) -> str:
    """What a sync would do with one CRM user (a `decisions` item of ingest's users proposal), in words.

    >>> decision_words({"action": "keep", "rep_id": "alice"})
    'kept: rep alice'
    >>> decision_words({"action": "create", "rep_id": "bo", "new_rep": {"name": "Bo", "team_id": "unassigned"}})
    'created as rep bo (Bo, team unassigned)'
    >>> decision_words({"action": "skip", "rep_id": None})
    'skipped'
    """
    action, rep = decision.get("action"), decision.get("rep_id")
    if action == "keep":
        return f"kept: rep {rep}"
    if action == "map":
        return f"mapped to rep {rep}"
    if action == "create":
        new = decision.get("new_rep") or {}
        return f"created as rep {rep} ({new.get('name', rep)}, team {new.get('team_id', '?')})"
    return "skipped"


def sync_counts(answer: Mapping[str, Any]) -> dict[str, int]:
    """How many CRM users a proposal or sync kept, mapped, created and skipped, and how many held-back records it
    published (ingest's `republished.accepted`; 0 when nothing was retried).

    >>> sync_counts({"kept": {"1": "a"}, "mapped": {}, "created": {"2": "b", "3": "c"}, "skipped": {},
    ...              "republished": {"accepted": 4, "duplicate": 0, "still_dead_lettered": 1}})
    {'mapped': 0, 'created': 2, 'kept': 1, 'skipped': 0, 'republished': 4}
    """
    republished = answer.get("republished") or {}
    return {**{k: len(answer.get(k) or {}) for k in ("mapped", "created", "kept", "skipped")},
            "republished": int(republished.get("accepted", 0))}


def sync_words(crm_name: str, answer: Mapping[str, Any]) -> str:
    """What "Sync users now" did, in one line; in manual mode nothing was applied, and the line says so.

    >>> sync_words("HubSpot", {"applied": True, "mapped": {"7": "alice"}, "created": {}, "kept": {}, "skipped": {},
    ...                        "republished": {"accepted": 2, "duplicate": 0, "still_dead_lettered": 1}})
    'HubSpot users synced: 1 mapped, 0 created, 0 kept, 0 skipped; 2 held-back record(s) republished, 1 still held back'
    >>> sync_words("Pipedrive", {"applied": False, "mode": "manual", "mapped": {}, "created": {"8": "bo"}})
    'Pipedrive is in manual mode: nothing was changed; the proposal below would map 0, create 1, keep 0, skip 0'
    """
    n = sync_counts(answer)
    if not answer.get("applied"):
        return (f"{crm_name} is in manual mode: nothing was changed; the proposal below would map {n['mapped']},"
                f" create {n['created']}, keep {n['kept']}, skip {n['skipped']}")
    still = int((answer.get("republished") or {}).get("still_dead_lettered", 0))
    return (f"{crm_name} users synced: {n['mapped']} mapped, {n['created']} created, {n['kept']} kept,"
            f" {n['skipped']} skipped; {n['republished']} held-back record(s) republished, {still} still held back")


def since_of(text: str, zone: ZoneInfo) -> tuple[str | None, str]:
    """A backfill form's "since" day as the aware moment ingest takes (the day's first instant in the tenant's
    zone), or None when left empty (ingest's default: the fiscal year's start); a problem when it is no day.

    >>> since_of("2026-01-15", ZoneInfo("Europe/Berlin"))
    ('2026-01-15T00:00:00+01:00', '')
    >>> since_of("", ZoneInfo("UTC"))
    (None, '')
    >>> since_of("15/01/2026", ZoneInfo("UTC"))
    (None, 'since: 15/01/2026 is not a day (YYYY-MM-DD)')
    """
    if not text:
        return None, ""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, f"since: {text} is not a day (YYYY-MM-DD)"
    return local_midnight(day, zone).astimezone(zone).isoformat(), ""


def fiscal_year_start(zone: ZoneInfo, fiscal_start_month: int, now: datetime) -> date:
    """The first day of the fiscal year `now` is in, in the tenant's zone: where a backfill starts by default.

    >>> from datetime import UTC
    >>> fiscal_year_start(ZoneInfo("Europe/Berlin"), 4, datetime(2026, 3, 31, 22, tzinfo=UTC))
    datetime.date(2026, 4, 1)
    >>> fiscal_year_start(ZoneInfo("UTC"), 1, datetime(2026, 12, 7, tzinfo=UTC))
    datetime.date(2026, 1, 1)
    """
    year = period_of(PeriodKind.YEAR, now, zone, fiscal_start_month)
    return period_bounds(year, zone, fiscal_start_month)[0].astimezone(zone).date()


def resumable(jobs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ingest would resume the backfill (`{"resume": true}`): one of its jobs failed.

    >>> resumable([{"status": "done"}, {"status": "failed"}]), resumable([{"status": "running"}])
    (True, False)
    """
    return any(j.get("status") == "failed" for j in jobs)

