"""The demo's reference projection: the newest version of a deal counts, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from deploy.demo.book import DealBook

START, END = datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC)


def _deal(updated: str, stage: str = "won", amount: str = "1000.00", deal_id: str = "d1") -> dict[str, Any]:
    data = {"deal_id": deal_id, "rep_id": "r1", "amount": amount, "currency": "EUR", "stage": stage,
            "updated_at": updated}  # fmt: skip
    if stage != "open":
        data["closed_at"] = updated
    return {"type": "deal.upserted", "id": f"e-{updated}", "data": data}


def test_a_newer_version_replaces_an_older_one_and_a_stale_one_is_ignored() -> None:
    book = DealBook()
    assert book.apply(_deal("2026-11-02T10:00:00+01:00", "open"))
    assert book.apply(_deal("2026-11-05T10:00:00+01:00", "won", "1200.00"))
    assert not book.apply(_deal("2026-11-03T10:00:00+01:00", "open"))
    assert not book.apply(_deal("2026-11-05T10:00:00+01:00", "won", "1200.00"))
    assert book.won(START, END) == {"r1": Decimal("1200.00")}
    assert (book.deals_won(START, END), book.revenue(START, END)) == (1, Decimal("1200.00"))


def test_offsets_are_compared_as_instants_not_as_text() -> None:
    book = DealBook()
    book.apply(_deal("2026-11-05T10:00:00+01:00", "won", "1000.00"))
    # 09:30 UTC is after 10:00+01:00 (09:00 UTC) although it sorts first as text
    assert book.apply(_deal("2026-11-05T09:30:00+00:00", "lost"))
    assert book.won(START, END) == {}


def test_a_deletion_takes_the_revenue_back_and_an_older_upsert_does_not_revive_it() -> None:
    book = DealBook()
    book.apply(_deal("2026-11-05T10:00:00+01:00"))
    assert book.apply({"type": "deal.deleted", "data": {"deal_id": "d1", "updated_at": "2026-11-06T10:00:00+01:00"}})
    assert not book.apply(_deal("2026-11-05T12:00:00+01:00"))
    assert book.won(START, END) == {}
    assert book.state("d1").deleted  # type: ignore[union-attr]


def test_only_deals_closed_inside_the_period_count() -> None:
    book = DealBook()
    book.apply(_deal("2026-09-30T23:59:00+02:00", deal_id="before"))
    book.apply(_deal("2026-10-01T00:00:00+02:00", deal_id="first"))
    book.apply(_deal("2027-01-01T00:00:00+01:00", deal_id="after"))
    assert book.deals_won(START, END) == 1


def test_other_event_types_are_ignored() -> None:
    assert not DealBook().apply({"type": "activity.logged", "data": {"activity_id": "a"}})
