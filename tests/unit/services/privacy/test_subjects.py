"""The declared mapping of a rep's rows and the export's rendering (services/privacy/subjects.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from services.privacy.subjects import Table, known, ordered, render, render_row, rep_like


def test_a_new_table_with_a_rep_column_is_not_covered_until_declared() -> None:
    assert not known(Table("kpi", "streaks", ("tenant", "rep_id", "days")))
    assert known(Table("kpi", "deals", ("tenant", "deal_id", "rep_id")))
    assert known(Table("kpi", "fx_rates", ("tenant", "currency", "rate")))  # nothing of a rep's
    assert rep_like("crm_user_id") and rep_like("scope_id") and not rep_like("tenant")


def test_a_reps_rows_are_the_tenants_and_the_reps_and_mentions_only_when_asked() -> None:
    reps = Table("coaching", "reps", ("tenant", "rep_id", "manager_id"))
    assert reps.rep_predicate() == "tenant = $1 AND ((rep_id = $2))"
    assert reps.rep_predicate(mentions=True) == "tenant = $1 AND ((rep_id = $2) OR (manager_id = $2))"
    assert Table("kpi", "fx_rates", ("tenant", "rate")).rep_predicate() is None
    assert Table("ingest", "tenants", ("slug", "timezone")).tenant_predicate == "slug = $1"
    assert "action_plans" in Table("coaching", "plan_steps", ("plan_id", "title")).tenant_predicate
    with pytest.raises(ValueError, match="no way to tell"):
        _ = Table("kpi", "orphans", ("id",)).tenant_predicate


def test_children_are_deleted_before_their_parents_and_the_registry_last() -> None:
    names = [t.qualified for t in ordered([Table("ingest", "tenants", ()), Table("ingest", "deal_owners", ()),
                                           Table("ingest", "crm_deals", ()), Table("ingest", "accepted_events", ())])]
    assert names == ["ingest.crm_deals", "ingest.accepted_events", "ingest.deal_owners", "ingest.tenants"]


def test_values_are_rendered_losslessly() -> None:
    assert render(Decimal("1200.50")) == "1200.50"
    assert render(datetime(2026, 12, 1, 9, 30, tzinfo=UTC)) == "2026-12-01T09:30:00+00:00"
    assert render(date(2026, 12, 1)) == "2026-12-01"
    assert render(b"\x00\xff") == "AP8="
    assert render(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"


def test_jsonb_keeps_its_numbers_exact_and_sealed_secrets_are_redacted() -> None:
    row = render_row(Table("ingest", "tenant_secrets", ("tenant", "secret", "org_id")),
                     {"tenant": "acme", "secret": "fernet:abc", "org_id": None})
    assert row == {"tenant": "acme", "secret": "<redacted>", "org_id": None}
    tasks = Table("coaching", "tasks", ("tenant", "evidence"))
    assert render_row(tasks, {"tenant": "acme", "evidence": '{"gap": 0.10}'}, frozenset({"evidence"})) == {
        "tenant": "acme", "evidence": {"gap": "0.10"}}
