"""Where ingest puts each canonical event on Kafka, keyed how, and wrapped as which CloudEvent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from services.ingest.publishing import entity_key, to_record
from services.ingest.tenants import Tenant
from shared import cloudevents, topics
from shared.events import CANONICAL_EVENT, CanonicalEvent

TENANT = Tenant(slug="acme", timezone="America/New_York", currency="USD", fiscal_start_month=2)
AT = "2026-11-05T09:00:00Z"


def _event(type_: str, data: dict[str, Any]) -> CanonicalEvent:
    return CANONICAL_EVENT.validate_python({"type": type_, "id": f"id-{type_}", "source": "hubspot", "time": AT,
                                            "data": data})  # fmt: skip


def deal() -> CanonicalEvent:
    return _event("deal.upserted", {"deal_id": "d1", "rep_id": "r1", "amount": "9E+4", "currency": "USD",
                                    "stage": "won", "closed_at": AT, "updated_at": AT})  # fmt: skip


def deleted() -> CanonicalEvent:
    return _event("deal.deleted", {"deal_id": "d1", "updated_at": AT})


def activity() -> CanonicalEvent:
    return _event("activity.logged", {"activity_id": "a1", "rep_id": "r2", "kind": "call", "occurred_at": AT})


def rep() -> CanonicalEvent:
    return _event("rep.upserted", {"rep_id": "r3", "name": "Ann", "team_id": "team-a", "timezone": "UTC"})


def target(scope: str = "rep", scope_id: str = "r4") -> CanonicalEvent:
    return _event("target.set", {"scope": scope, "scope_id": scope_id, "metric": "won_revenue",
                                 "period": "2026-Q4", "value": "90000"})  # fmt: skip


@pytest.mark.parametrize(
    ("event", "topic"),
    [
        (deal(), topics.DEALS),
        (deleted(), topics.DEALS),
        (activity(), topics.ACTIVITIES),
        (rep(), topics.ROSTER),
        (target(), topics.TARGETS),
    ],
)
def test_each_type_goes_to_its_contract_topic(event: CanonicalEvent, topic: topics.Topic) -> None:
    name, _, _ = to_record(TENANT, event, None)
    assert name == topic.name


def test_topic_names_are_the_contract_names() -> None:
    names = {to_record(TENANT, e, None)[0] for e in (deal(), deleted(), activity(), rep(), target())}
    assert names == {"sales.deals.v1", "sales.activities.v1", "sales.roster.v1", "sales.targets.v1"}


@pytest.mark.parametrize(
    ("event", "key"),
    [(deal(), b"acme:r1"), (activity(), b"acme:r2"), (rep(), b"acme:r3"), (target(), b"acme:r4")],
)
def test_rep_events_are_keyed_tenant_colon_rep_id(event: CanonicalEvent, key: bytes) -> None:
    _, record_key, _ = to_record(TENANT, event, None)
    assert record_key == key


def test_deal_deleted_is_keyed_by_the_known_owner_so_it_stays_ordered_with_the_deals_upserts() -> None:
    assert to_record(TENANT, deleted(), "r1")[1] == to_record(TENANT, deal(), None)[1] == b"acme:r1"


def test_deal_deleted_with_unknown_owner_is_keyed_by_the_deal() -> None:
    assert to_record(TENANT, deleted(), None)[1] == b"acme:deal/d1"
    assert entity_key(deleted(), None) == "deal/d1"


def test_deal_owner_is_ignored_for_events_that_name_their_rep() -> None:
    assert entity_key(deal(), "someone-else") == "r1"


def test_team_targets_are_keyed_team_slash_id() -> None:
    assert to_record(TENANT, target(scope="team", scope_id="team-a"), None)[1] == b"acme:team/team-a"


def test_a_rep_target_and_a_team_target_with_the_same_id_get_different_keys() -> None:
    assert entity_key(target("rep", "x"), None) != entity_key(target("team", "x"), None)


def test_the_cloud_event_carries_the_envelope_tenant_and_tenant_extensions() -> None:
    event = deal()
    _, _, ce = to_record(TENANT, event, None)
    assert (ce.id, ce.type, ce.source, ce.tenant) == ("id-deal.upserted", "deal.upserted", "hubspot", "acme")
    assert ce.time == datetime(2026, 11, 5, 9, tzinfo=UTC)
    assert ce.tenant_timezone == "America/New_York"
    assert ce.extensions == {"tenanttimezone": "America/New_York", "tenantfiscalstart": "2", "tenantcurrency": "USD"}


def test_the_cloud_event_data_is_the_json_form_of_data_only_with_decimals_as_plain_strings() -> None:
    _, _, ce = to_record(TENANT, deal(), None)
    data = json.loads(cloudevents.encode(ce)[0])
    assert data["amount"] == "90000"
    assert data["deal_id"] == "d1"
    assert data["closed_at"] == "2026-11-05T09:00:00Z"
    assert "type" not in data
    assert "source" not in data


def test_the_record_encodes_with_the_timezone_header_and_decodes_back() -> None:
    _, _, ce = to_record(TENANT, rep(), None)
    value, headers = cloudevents.encode(ce)
    assert ("ce_tenanttimezone", b"America/New_York") in headers
    assert ("ce_tenant", b"acme") in headers
    back = cloudevents.decode(headers, value)
    assert back.tenant_timezone == "America/New_York"
    assert isinstance(ce.data, BaseModel)
    assert back.data == ce.data.model_dump(mode="json")


def test_a_team_goes_to_the_roster_topic_keyed_apart_from_any_rep_of_the_same_id() -> None:
    team = _event("team.upserted", {"team_id": "r3", "name": "EMEA", "parent_team_id": "acme"})
    name, key, _ = to_record(TENANT, team, None)
    assert name == topics.ROSTER.name and key == b"acme:team/r3"
    assert key != to_record(TENANT, rep(), None)[1]  # rep r3 keeps its own compacted record


def test_a_team_cannot_be_its_own_parent() -> None:
    with pytest.raises(ValueError, match="cannot be its own parent"):
        _event("team.upserted", {"team_id": "emea", "parent_team_id": "emea"})
