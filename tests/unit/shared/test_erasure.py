"""Which records a consumer skips after an erasure (shared/erasure.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.erasure import WHOLE_TENANT, erased, produced_at, subjects
from shared.events import DealUpserted, TargetSet

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)
BEFORE, AFTER = AT - timedelta(seconds=1), AT + timedelta(seconds=1)


def test_a_rep_is_found_by_the_key_and_by_the_data() -> None:
    assert subjects(b"acme:ana", None) == {"ana"}
    assert subjects(b"acme:rep:ana:2026-Q4:won_revenue", None) == {"ana"}
    assert subjects(b"acme:team:east:2026-Q4:won_revenue", None) == set()
    assert subjects(b"acme:team/east", None) == {"team/east"}
    assert subjects(None, None) == set()
    deal = DealUpserted.model_validate({"deal_id": "d1", "rep_id": "bo", "amount": "10", "currency": "EUR",
                                        "stage": "open", "created_at": AT, "updated_at": AT})
    assert subjects(b"acme:deal/d1", deal) == {"deal/d1", "bo"}


def test_a_target_of_a_rep_names_the_rep_and_a_teams_does_not() -> None:
    def target(scope: str) -> TargetSet:
        return TargetSet.model_validate({"scope": scope, "scope_id": "ana", "metric": "won_revenue",
                                         "period": "2026-Q4", "value": "100"})
    assert "ana" in subjects(None, target("rep"))
    assert subjects(None, target("team")) == set()


def test_records_produced_before_an_erasure_are_erased_and_later_ones_are_new_data() -> None:
    rep = {("acme", "ana"): AT}
    assert erased("acme", {"ana"}, BEFORE, rep)
    assert not erased("acme", {"ana"}, AFTER, rep)
    assert not erased("acme", {"bo"}, BEFORE, rep)
    assert not erased("other", {"ana"}, BEFORE, rep)
    tenant = {("acme", WHOLE_TENANT): AT}
    assert erased("acme", set(), BEFORE, tenant) and erased("acme", {"bo"}, BEFORE, tenant)
    assert not erased("acme", {"bo"}, AFTER, tenant)
    assert not erased("acme", {"ana"}, BEFORE, {})


def test_a_kafka_timestamp_is_an_aware_moment() -> None:
    assert produced_at(int(AT.timestamp() * 1000)) == AT
