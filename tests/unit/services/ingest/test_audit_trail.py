"""What ingest writes down for accepted events (services/ingest/audit_trail.py): targets, reps, teams and time off,
each with the value before; deals and activities not at all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.ingest import audit_trail
from shared.events import CANONICAL_EVENT
from tests.factories import deal, rep, target


def _events(*raw: dict[str, Any]) -> list[Any]:
    return [CANONICAL_EVENT.validate_python(r) for r in raw]


def test_changes_chain_within_a_request_and_start_from_what_was_known() -> None:
    known = {"target:rep/ana/won_revenue/2026-Q1": {"value": "5"}}
    events = _events(target("ana", "2026-Q1", "10"), target("ana", "2026-Q1", "20"), rep("ana"),
                     deal("d1", "ana", "100", updated_at=datetime(2026, 2, 1, tzinfo=UTC)))
    changes, values = audit_trail.changes(events, known, "acme")
    assert [(c.action, c.subject) for c in changes] == [
        ("target.set", "target:rep/ana/won_revenue/2026-Q1"), ("target.set", "target:rep/ana/won_revenue/2026-Q1"),
        ("rep.upserted", "rep:ana")]
    assert changes[0].before == {"value": "5"}
    assert changes[1].before == changes[0].after and changes[1].after is not None
    assert changes[2].before is None
    assert set(values) == {"target:rep/ana/won_revenue/2026-Q1", "rep:ana"}


def test_a_crm_s_deals_are_not_audited() -> None:
    events = _events(deal("d1", "ana", "100", updated_at=datetime(2026, 2, 1, tzinfo=UTC)))
    assert audit_trail.changes(events, {}, "acme") == ([], {})
    assert [audit_trail.subject_of(e) for e in events] == [None]
