"""The demo's own reference projection of deals (pure): what the numbers must come to.

A deal's current state is its version with the newest `updated_at`, then the greatest event id
(as kpi orders them: equal `updated_at`s are ordered by event id); a deletion is a version too;
older versions, re-sends and late deliveries change nothing. kpi must arrive at the same
won revenue per rep; the demo uses this book for its counters and to check kpi's figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["DealBook", "DealState"]


@dataclass(frozen=True, slots=True)
class DealState:
    deal_id: str
    rep_id: str | None  # None only for a deal we only ever saw deleted
    amount: Decimal
    stage: str
    closed_at: datetime | None
    updated_at: datetime
    deleted: bool = False
    event_id: str = ""  # of the version: orders equal `updated_at`s


class DealBook:
    """Deals by id, last writer (by `updated_at`, then event id) wins."""

    def __init__(self) -> None:
        self._deals: dict[str, DealState] = {}

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one canonical event; True when it changed a deal (other types are ignored)."""
        data = event.get("data") or {}
        if event.get("type") == "deal.upserted":
            closed = data.get("closed_at")
            state = DealState(
                deal_id=data["deal_id"],
                rep_id=data["rep_id"],
                amount=Decimal(str(data["amount"])),
                stage=data["stage"],
                closed_at=datetime.fromisoformat(closed) if closed else None,
                updated_at=datetime.fromisoformat(data["updated_at"]),
                event_id=str(event.get("id", "")),
            )
        elif event.get("type") == "deal.deleted":
            known = self._deals.get(data["deal_id"])
            state = DealState(
                deal_id=data["deal_id"],
                rep_id=known.rep_id if known else None,
                amount=Decimal(0),
                stage="deleted",
                closed_at=None,
                updated_at=datetime.fromisoformat(data["updated_at"]),
                deleted=True,
                event_id=str(event.get("id", "")),
            )
        else:
            return False
        current = self._deals.get(state.deal_id)
        if current is not None and (state.updated_at, state.event_id) <= (current.updated_at, current.event_id):
            return False
        self._deals[state.deal_id] = state
        return True

    def won(self, start: datetime, end: datetime) -> dict[str, Decimal]:
        """Won revenue per rep of the deals closed in [start, end)."""
        totals: dict[str, Decimal] = {}
        for deal in self._won(start, end):
            assert deal.rep_id is not None
            totals[deal.rep_id] = totals.get(deal.rep_id, Decimal(0)) + deal.amount
        return totals

    def deals_won(self, start: datetime, end: datetime) -> int:
        return sum(1 for _ in self._won(start, end))

    def revenue(self, start: datetime, end: datetime) -> Decimal:
        return sum((deal.amount for deal in self._won(start, end)), Decimal(0))

    def state(self, deal_id: str) -> DealState | None:
        return self._deals.get(deal_id)

    def _won(self, start: datetime, end: datetime) -> list[DealState]:
        return [
            d for d in self._deals.values()
            if d.stage == "won" and d.closed_at is not None and start <= d.closed_at < end
        ]  # fmt: skip
