"""Canonical events for tests, valid unless a test breaks them on purpose."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.periods import PeriodKind, period_bounds, period_of


def _id() -> str:
    return uuid.uuid4().hex


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def this_quarter(back: timedelta, tz: str = "Europe/Berlin") -> tuple[str, datetime]:
    """The current quarter's label and an instant `back` ago, but never before the quarter's first moment.

    `now - back` alone falls in the previous quarter during the first `back` of a quarter: the deals would then
    count for another period than the test's target and scorecard.
    """
    now = datetime.now(UTC)
    quarter = period_of(PeriodKind.QUARTER, now, tz)
    return quarter.label, max(now - back, period_bounds(quarter, tz)[0])


def rep(rep_id: str, *, team: str = "team-a", manager: str = "mgr-1", name: str | None = None,
        at: datetime | None = None) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {"type": "rep.upserted", "id": _id(), "source": "api", "time": _t(at),
            "data": {"rep_id": rep_id, "name": name or rep_id.title(), "team_id": team, "manager_id": manager,
                     "timezone": "Europe/Berlin", "active": True}}


def target(rep_id: str, period: str, value: str, *, at: datetime | None = None) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {"type": "target.set", "id": _id(), "source": "api", "time": _t(at),
            "data": {"scope": "rep", "scope_id": rep_id, "metric": "won_revenue", "period": period, "value": value}}


def deal(deal_id: str, rep_id: str, amount: str, stage: str = "won", *, updated_at: datetime,
         closed_at: datetime | None = None, event_id: str | None = None, currency: str = "EUR") -> dict[str, Any]:
    data: dict[str, Any] = {"deal_id": deal_id, "rep_id": rep_id, "amount": amount, "currency": currency,
                            "stage": stage, "stage_label": stage.title(), "updated_at": _t(updated_at),
                            "created_at": _t(updated_at - timedelta(days=10))}
    if stage != "open":
        data["closed_at"] = _t(closed_at or updated_at)
    return {"type": "deal.upserted", "id": event_id or _id(), "source": "hubspot", "time": _t(updated_at),
            "data": data}


def activity(activity_id: str, rep_id: str, kind: str, occurred_at: datetime, *,
             event_id: str | None = None) -> dict[str, Any]:
    return {"type": "activity.logged", "id": event_id or _id(), "source": "api", "time": _t(occurred_at),
            "data": {"activity_id": activity_id, "rep_id": rep_id, "kind": kind, "occurred_at": _t(occurred_at)}}


def team(team_id: str, parent: str | None, *, at: datetime | None = None) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {"type": "team.upserted", "id": _id(), "source": "api", "time": _t(at),
            "data": {"team_id": team_id, "name": team_id.title(), "parent_team_id": parent}}
