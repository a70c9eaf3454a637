"""One event of each kind notify renders, and a notification around it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.notify.messages import DigestItem, EventData, Kind, Notification, OpenCheckIns, dashboard_link
from shared.events import (
    Evidence,
    MilestoneReached,
    PlanStepSettled,
    ReviewFigure,
    ReviewPublished,
    TaskCreated,
    TaskEscalated,
)

BASE = "https://attain.example"
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 12, 9, 16, 0, tzinfo=UTC)

CHECK_IN = TaskCreated(
    task_id="t-1", rep_id="ana", manager_id="max", rule="behind_pace", severity="warning",
    summary="Ana is at 61% of the expected won revenue for 2026-Q4.",
    evidence=Evidence(metric="won_revenue", actual=Decimal("1234.5"), expected=Decimal("2024"), period="2026-Q4"),
    suggested_actions=["Review the three largest open deals", "Plan two demos"], training=[], due_at=DUE,
    rep_name="Ana Berg", team_id="north")
ESCALATION = TaskEscalated(task_id="t-1", rep_id="ana", manager_id="max", escalated_to="eva", rule="behind_pace",
                           severity="warning", summary=CHECK_IN.summary, due_at=DUE, escalated_at=NOW)
WIN = MilestoneReached(celebration_id="c-1", scope="rep", scope_id="ana", milestone="quota", period="2026-Q4",
                       value=Decimal("1"), headline="Ana Berg just hit 100% of the 2026-Q4 target!", occurred_at=NOW,
                       name="Ana Berg")
REVIEW = ReviewPublished(
    review_id="r-1", scope="rep", scope_id="ana", name="Ana Berg", manager_id="max", week="2026-W49",
    headline="A strong week: 3 deals won.", figures=[
        ReviewFigure(metric="won_revenue", period="2026-Q4", actual=Decimal("1234.5"), target=Decimal("5000"),
                     attainment=Decimal("0.2469"), pace=None, previous_period=None, previous_attainment=None,
                     trend="up"),
        ReviewFigure(metric="calls", period="2026-Q4", actual=Decimal("1520"), target=None, attainment=None,
                     pace=None, previous_period=None, previous_attainment=None, trend="new")],
    activities_week=42, activities_week_before=37, open_tasks=2, overdue_tasks=1, published_at=NOW)
PLAN = PlanStepSettled(plan_id="p-1", step_id="s-1", rep_id="ana", manager_id="max", title="Book 5 demos",
                       metric="meetings", target=Decimal("5"), progress=Decimal("3"), due_at=DUE, status="missed",
                       settled_at=NOW, plan_status="missed")
DIGEST = OpenCheckIns(items=(DigestItem("Ana Berg", "Behind pace", DUE), DigestItem("Ben Ott", "No activity", DUE)))

EVENTS: dict[Kind, EventData] = {"check_in": CHECK_IN, "escalation": ESCALATION, "celebration": WIN, "review": REVIEW,
                              "plan": PLAN, "digest": DIGEST}


def notification(kind: Kind, locale: str = "en_US", *, data: EventData | None = None,
                 unsubscribe_url: str | None = f"{BASE}/me/notifications") -> Notification:
    event = EVENTS[kind] if data is None else data
    return Notification(kind, event, recipient="Max", locale=locale, currency="EUR", timezone="Europe/Berlin",
                        link=dashboard_link(BASE, event), unsubscribe_url=unsubscribe_url)
