"""Pipedrive webhooks: Basic auth, and v1/v2 bodies read into vendor-neutral changes.

The fixtures in tests/fixtures/crm/pipedrive/ are written from Pipedrive's docs (their README names the pages):
`v1_*.json` mirror "Guide for Webhooks" (pipedrive.readme.io/docs/guide-for-webhooks), *Webhook format*;
`v2_*.json` mirror "Guide for Webhooks v2" (pipedrive.readme.io/docs/guide-for-webhooks-v2), *Webhook format*
and *Data and previous*.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.ingest.crm.mapping import TenantMaps, deal_data
from services.ingest.crm.model import (
    ActivityChange,
    DealChange,
    PayloadError,
    Secret,
    WebhookAuthError,
    WebhookRequest,
)
from services.ingest.crm.pipedrive import CRM, parse, verify
from services.ingest.crm.state import merge, view
from shared.events import DealUpserted

FIXTURES = Path(__file__).resolve().parents[5] / "tests" / "fixtures" / "crm" / "pipedrive"
URL = "https://attain.example.com/v1/webhooks/pipedrive/acme"
NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
SECRET = "s3cret-pässword"


def body(name: str) -> dict[str, Any]:
    """A fixture to edit; its floats re-serialise to the same digits (repr is the shortest round trip)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(payload: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> WebhookRequest:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return WebhookRequest(method="POST", url=URL, headers=headers or {}, body=data)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def only_deal(name: str) -> DealChange:
    changes = parse(request(raw(name)))
    assert len(changes) == 1
    change = changes[0]
    assert isinstance(change, DealChange)
    return change


def only_activity(payload: bytes | dict[str, Any]) -> ActivityChange:
    changes = parse(request(payload))
    assert len(changes) == 1
    change = changes[0]
    assert isinstance(change, ActivityChange)
    return change


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------ verify


def test_the_tenant_secret_as_basic_auth_password_is_accepted() -> None:
    verify(request(b"{}", basic("pipedrive", SECRET)), [Secret(SECRET)], NOW)


def test_any_basic_auth_user_name_is_accepted() -> None:
    verify(request(b"{}", basic("", SECRET)), [Secret(SECRET)], NOW)
    verify(request(b"{}", basic("whoever", SECRET)), [Secret(SECRET)], NOW)


def test_a_password_containing_colons_is_read_whole() -> None:
    # RFC 7617: the user-id cannot contain a colon, so the password is everything after the first one
    verify(request(b"{}", basic("pipedrive", "a:b:c")), [Secret("a:b:c")], NOW)


def test_the_previous_secret_still_works_during_rotation() -> None:
    verify(request(b"{}", basic("pipedrive", "old-one")), [Secret("new-one"), Secret("old-one")], NOW)


def test_the_basic_scheme_name_is_case_insensitive() -> None:
    headers = {"authorization": basic("u", SECRET)["authorization"].replace("Basic", "basic")}
    verify(request(b"{}", headers), [Secret(SECRET)], NOW)


def test_a_wrong_password_is_rejected() -> None:
    with pytest.raises(WebhookAuthError, match="wrong HTTP Basic auth password"):
        verify(request(b"{}", basic("pipedrive", "guess")), [Secret(SECRET), Secret("other")], NOW)


def test_a_password_that_only_starts_like_the_secret_is_rejected() -> None:
    with pytest.raises(WebhookAuthError, match="wrong"):
        verify(request(b"{}", basic("pipedrive", SECRET[:-1])), [Secret(SECRET)], NOW)


def test_a_request_without_authorization_header_is_rejected() -> None:
    with pytest.raises(WebhookAuthError, match="missing Authorization header"):
        verify(request(b"{}"), [Secret(SECRET)], NOW)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("Bearer abc.def", "not HTTP Basic"),
        ("Basic", "not HTTP Basic"),
        ("Basic !!!not-base64!!!", "not valid base64"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "not user:password"),
    ],
)
def test_a_malformed_authorization_header_is_rejected(header: str, problem: str) -> None:
    with pytest.raises(WebhookAuthError, match=problem):
        verify(request(b"{}", {"authorization": header}), [Secret(SECRET)], NOW)


def test_without_a_configured_secret_even_an_empty_password_is_rejected() -> None:
    with pytest.raises(WebhookAuthError, match="no Pipedrive secret"):
        verify(request(b"{}", basic("u", "")), [Secret("")], NOW)
    with pytest.raises(WebhookAuthError, match="no Pipedrive secret"):
        verify(request(b"{}", basic("u", "x")), [], NOW)


# ------------------------------------------------------------------------------------------ v1 deals


def test_v1_added_deal_carries_every_field_with_the_owner_given_as_an_object() -> None:
    change = only_deal("v1_deal_added.json")
    assert change.crm == CRM == "pipedrive"
    assert change.deal_id == "314"
    assert not change.deleted
    assert change.changed_at == datetime(2026, 11, 2, 8, 15, 0, 123456, tzinfo=UTC)  # meta.timestamp_micro
    fields = change.fields
    assert fields.amount == Decimal("1234.56")
    assert str(fields.amount) == "1234.56"  # parsed exactly, never through a float
    assert (fields.currency, fields.stage, fields.status, fields.owner) == ("EUR", "2", "open", "4242")
    assert fields.created_at == utc(2026, 11, 2, 8, 15)
    assert fields.close_date is None
    assert fields.name == "Acme Corp — 40 seats"


def test_v1_updated_deal_reports_the_current_state_with_the_owner_given_as_an_id() -> None:
    change = only_deal("v1_deal_updated.json")
    assert change.fields.stage == "3"
    assert change.fields.owner == "4242"
    assert change.changed_at == datetime(2026, 11, 3, 10, 20, 30, 654321, tzinfo=UTC)


def test_v1_won_deal_closes_at_its_won_time() -> None:
    fields = only_deal("v1_deal_won.json").fields
    assert fields.status == "won"
    assert fields.close_date == utc(2026, 11, 20, 16, 45, 10)


def test_v1_lost_deal_closes_at_its_lost_time() -> None:
    fields = only_deal("v1_deal_lost.json").fields
    assert fields.status == "lost"
    assert fields.close_date == utc(2026, 11, 21, 9, 0)


def test_v1_deleted_deal_becomes_a_deletion_without_fields() -> None:
    change = only_deal("v1_deal_deleted.json")
    assert change.deleted
    assert change.deal_id == "314"
    assert change.changed_at == datetime(2026, 11, 22, 12, 0, 0, 777, tzinfo=UTC)
    assert change.fields.amount is None


def test_v1_deal_with_status_deleted_is_a_deletion() -> None:
    payload = body("v1_deal_updated.json")
    payload["current"]["status"] = "deleted"
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    assert change.deleted


def test_v1_merged_deal_is_an_update_of_the_deal_merged_into() -> None:
    payload = body("v1_deal_updated.json")
    payload["meta"]["action"] = payload["event"] = "merged"
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    assert not change.deleted
    assert change.fields.stage == "3"


def test_a_v1_retry_keeps_the_event_id_and_a_later_change_gets_another() -> None:
    first = body("v1_deal_updated.json")
    retry = copy.deepcopy(first)
    retry["retry"] = 2
    later = body("v1_deal_won.json")
    first_id = parse(request(first))[0].event_id
    assert parse(request(retry))[0].event_id == first_id
    assert parse(request(later))[0].event_id != first_id


def test_v1_change_time_falls_back_to_whole_seconds_without_timestamp_micro() -> None:
    payload = body("v1_deal_updated.json")
    del payload["meta"]["timestamp_micro"]
    [change] = parse(request(payload))
    assert change.changed_at == utc(2026, 11, 3, 10, 20, 30)


# ------------------------------------------------------------------------------------------ v2 deals


def test_v2_created_deal_carries_every_field_with_the_owner_as_an_id() -> None:
    change = only_deal("v2_deal_create.json")
    assert change.deal_id == "315"
    assert change.changed_at == utc(2026, 11, 6, 9, 0)
    fields = change.fields
    assert fields.amount == Decimal("98765.43")
    assert str(fields.amount) == "98765.43"
    assert (fields.currency, fields.stage, fields.status, fields.owner) == ("USD", "7", "open", "4343")
    assert fields.created_at == utc(2026, 11, 6, 9, 0)
    assert fields.name == "Globex renewal"


def test_v2_changed_deal_reports_every_field_in_data_not_only_those_in_previous() -> None:
    change = only_deal("v2_deal_change.json")
    assert change.changed_at == datetime(2026, 11, 7, 13, 14, 15, 250000, tzinfo=UTC)
    assert change.fields.stage == "8"  # the changed one...
    assert change.fields.amount == Decimal("98765.43")  # ...and the unchanged ones
    assert change.fields.owner == "4343"


def test_v2_won_deal_closes_at_its_won_time() -> None:
    fields = only_deal("v2_deal_won.json").fields
    assert (fields.status, fields.close_date) == ("won", utc(2026, 11, 25, 15, 0))


def test_v2_lost_deal_closes_at_its_lost_time() -> None:
    fields = only_deal("v2_deal_lost.json").fields
    assert (fields.status, fields.close_date) == ("lost", utc(2026, 11, 26, 8, 30))


def test_v2_deleted_deal_becomes_a_deletion() -> None:
    change = only_deal("v2_deal_delete.json")
    assert change.deleted
    assert change.deal_id == "315"
    assert change.changed_at == utc(2026, 11, 27, 10, 0)


def test_v2_deal_flagged_is_deleted_is_a_deletion() -> None:
    payload = body("v2_deal_change.json")
    payload["data"]["is_deleted"] = True
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    assert change.deleted


def test_a_v2_retry_keeps_the_event_id_and_another_event_gets_another() -> None:
    first = body("v2_deal_change.json")
    retry = copy.deepcopy(first)
    retry["meta"]["attempt"] = 3
    first_id = parse(request(first))[0].event_id
    assert parse(request(retry))[0].event_id == first_id
    assert parse(request(raw("v2_deal_won.json")))[0].event_id != first_id


def test_v2_timestamp_given_as_unix_seconds_is_read_too() -> None:
    payload = body("v2_deal_change.json")
    payload["meta"]["timestamp"] = 1_794_057_255  # the guide's meta table says "10 character timestamp"
    [change] = parse(request(payload))
    assert change.changed_at == datetime.fromtimestamp(1_794_057_255, UTC)


# ----------------------------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("literal", ["1234.56", "0.1", "19999999.99", "1e3", "0", "42"])
def test_amounts_are_read_exactly_as_written(literal: str) -> None:
    text = raw("v2_deal_create.json").decode().replace('"value": 98765.43', f'"value": {literal}')
    [change] = parse(request(text.encode()))
    assert isinstance(change, DealChange)
    assert change.fields.amount == Decimal(literal)
    assert str(change.fields.amount) == str(Decimal(literal))


def test_an_amount_sent_as_a_string_is_read_exactly() -> None:
    payload = body("v1_deal_updated.json")
    payload["current"]["value"] = "1234.56"
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    assert str(change.fields.amount) == "1234.56"


def test_a_deal_without_value_leaves_the_amount_unknown() -> None:
    payload = body("v2_deal_change.json")
    del payload["data"]["value"]
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    assert change.fields.amount is None


# -------------------------------------------------------------------------------------------- the forecast


def _deal(name: str, **fields: Any) -> DealChange:
    payload = body(name)
    payload["current" if "current" in payload else "data"].update(fields)
    [change] = parse(request(payload))
    assert isinstance(change, DealChange)
    return change


@pytest.mark.parametrize(("name", "day"), [("v1_deal_added.json", date(2026, 12, 15)),
                                          ("v2_deal_create.json", date(2026, 12, 31))])  # fmt: skip
def test_the_expected_close_date_is_a_date_and_an_unset_probability_is_unknown(name: str, day: date) -> None:
    change = only_deal(name)
    assert change.fields.expected_close == day
    assert type(change.fields.expected_close) is date  # read in the tenant's zone by the mapping
    assert change.fields.probability is None  # the fixtures' `"probability": null`
    assert change.fields.forecast_category is None  # Pipedrive has none
    assert change.ignored == ()


@pytest.mark.parametrize(
    ("percent", "probability"),
    [(40, "0.40"), (0, "0.00"), (100, "1.00"), (12.5, "0.125"), (33.33333, "0.3333"),
     ("75", "0.75")],
)  # fmt: skip
def test_the_probability_percentage_becomes_0_to_1_with_at_most_four_places(percent: object, probability: str) -> None:
    change = _deal("v2_deal_change.json", probability=percent)
    assert str(change.fields.probability) == probability


def test_a_probability_read_from_json_keeps_its_exact_digits() -> None:
    text = raw("v1_deal_updated.json").decode().replace('"probability": null', '"probability": 33.33333', 1)
    [change] = parse(request(text.encode()))
    assert isinstance(change, DealChange)
    assert str(change.fields.probability) == "0.3333"


@pytest.mark.parametrize("unset", [{"expected_close_date": None}, {"expected_close_date": ""}])
def test_an_unset_expected_close_date_is_unknown(unset: dict[str, Any]) -> None:
    change = _deal("v1_deal_updated.json", **unset)
    assert (change.fields.expected_close, change.ignored) == (None, ())


@pytest.mark.parametrize(
    ("fields", "problem"),
    [({"probability": 150}, "data.probability: 150 is not between 0 and 100"),
     ({"probability": -5}, "data.probability: -5 is not between 0 and 100"),
     ({"probability": "high"}, "data.probability: 'high' is not a number"),
     ({"expected_close_date": "2026-13-45"}, "data.expected_close_date: '2026-13-45' is not a YYYY-MM-DD date"),
     ({"expected_close_date": "next week"}, "data.expected_close_date: 'next week' is not a YYYY-MM-DD date"),
     ({"expected_close_date": 20_000}, "data.expected_close_date: expected a non-empty string, got int")],
)  # fmt: skip
def test_a_bad_forecast_value_is_left_out_and_reported_while_the_deal_still_counts(fields: dict[str, Any],
                                                                                   problem: str) -> None:
    change = _deal("v2_deal_change.json", **fields)
    assert change.ignored == (problem,)
    assert (change.fields.amount, change.fields.stage, change.fields.owner) == (Decimal("98765.43"), "8", "4343")
    name = "probability" if "probability" in fields else "expected_close"
    assert getattr(change.fields, name) is None


def test_a_change_with_the_probability_unset_keeps_the_last_known_one() -> None:
    tenant = TenantMaps("pipedrive", "Europe/Berlin", "EUR", users={"4343": "rep-lee"})
    first = _deal("v2_deal_create.json", probability=40)
    later = _deal("v2_deal_change.json", probability=None)  # null: not told, so not cleared
    assert later.changed_at > first.changed_at
    deal = deal_data("315", view(merge(merge({}, first), later)), tenant, later.changed_at)
    assert isinstance(deal, DealUpserted)
    assert (deal.stage, deal.probability) == ("open", Decimal("0.40"))
    assert deal.expected_close_at == datetime(2026, 12, 30, 23, 0, tzinfo=UTC)  # Dec 31, midnight in Berlin


# -------------------------------------------------------------------------------- properties the tenant carries

SEGMENT = "dcf558aac1ae4e8c4f849ba5e668430d8df9be12"  # a custom field's key: a hash of the account's own
BUDGET = "d4de1c1518b4531717c676029a45911c340390a6"  # a monetary custom field (the API v2 migration guide's)
TAGS = "9f1c2e3d4b5a69788796a5b4c3d2e1f00f1e2d3c"  # a multiple-options custom field
CHOSEN = (SEGMENT, BUDGET, TAGS, "origin")


def _carried(name: str, edit: dict[str, Any], chosen: tuple[str, ...] = CHOSEN) -> DealChange | ActivityChange:
    payload = body(name)
    payload["current" if "current" in payload else "data"].update(edit)
    [change] = parse(request(payload), chosen)
    assert isinstance(change, DealChange | ActivityChange)
    return change


def test_v1_custom_fields_are_read_from_the_deal_itself_by_key() -> None:
    change = _carried("v1_deal_updated.json", {SEGMENT: "SMB", BUDGET: 2300, f"{BUDGET}_currency": "EUR",
                                               TAGS: "12,13", "unchosen_key": "x"})
    assert isinstance(change, DealChange)
    assert change.fields.properties == {SEGMENT: "SMB", BUDGET: "2300", TAGS: "12,13"}


def test_v2_custom_fields_are_read_from_custom_fields_a_monetary_one_as_its_amount_options_as_v1_writes_them() -> None:
    change = _carried("v2_deal_change.json", {"custom_fields": {
        SEGMENT: "SMB", BUDGET: {"value": 2300, "currency": "EUR"}, TAGS: [12, 13]}, "origin": "ManuallyCreated"})
    assert isinstance(change, DealChange)
    assert change.fields.properties == {SEGMENT: "SMB", BUDGET: "2300", TAGS: "12,13", "origin": "ManuallyCreated"}
    assert change.ignored == ()


def test_without_a_choice_no_field_is_carried() -> None:
    change = _carried("v2_deal_change.json", {"custom_fields": {SEGMENT: "SMB"}}, chosen=())
    assert isinstance(change, DealChange) and change.fields.properties == {}


def test_an_unset_custom_field_is_not_carried_and_one_that_cannot_be_is_reported() -> None:
    change = _carried("v2_deal_change.json", {"custom_fields": {
        SEGMENT: None, BUDGET: {"from": "2026-01-01", "until": "2026-02-01"}, TAGS: "t" * 501}})
    assert isinstance(change, DealChange)
    assert change.fields.properties == {"origin": "ManuallyCreated"}
    assert change.ignored == (f"data.{BUDGET}: expected text, a number or a boolean, got dict",
                              f"data.{TAGS}: is longer than 500 characters (501); left out, not cut")
    assert change.fields.amount is not None  # the deal's own fields still count


def test_an_activity_carries_its_chosen_fields() -> None:
    change = _carried("v2_activity_create.json", {"location": "Berlin office", "custom_fields": {SEGMENT: "SMB"}},
                      chosen=("location", SEGMENT, "note"))
    assert isinstance(change, ActivityChange)
    assert change.properties == {"location": "Berlin office", SEGMENT: "SMB"}


def test_every_delivery_restates_the_chosen_fields_and_the_mapping_carries_them() -> None:
    tenant = TenantMaps("pipedrive", "Europe/Berlin", "EUR", users={"4343": "rep-lee"}, properties=CHOSEN)
    first = _carried("v2_deal_create.json", {"custom_fields": {SEGMENT: "SMB"}})
    later = _carried("v2_deal_change.json", {"custom_fields": {SEGMENT: "Enterprise"}})
    assert isinstance(first, DealChange) and isinstance(later, DealChange)
    deal = deal_data("315", view(merge(merge({}, first), later)), tenant, later.changed_at)
    assert isinstance(deal, DealUpserted)
    assert deal.properties == {SEGMENT: "Enterprise", "origin": "ManuallyCreated"}


# -------------------------------------------------------------------------------------------- activities


def test_v1_added_activity_is_a_call_at_its_due_date_and_time_in_utc() -> None:
    change = only_activity(raw("v1_activity_added.json"))
    assert change.crm == "pipedrive"
    assert change.activity_id == "9001"
    assert change.kind == "call"
    assert change.owner == "4242"
    assert change.deal_id == "314"
    assert change.occurred_at == utc(2026, 11, 4, 14, 30)
    assert change.duration_s == 45 * 60
    assert change.changed_at == datetime(2026, 11, 3, 11, 0, 0, 1, tzinfo=UTC)


def test_v1_updated_all_day_demo_occurred_when_marked_done() -> None:
    change = only_activity(raw("v1_activity_updated.json"))
    assert change.kind == "demo"
    assert change.occurred_at == utc(2026, 11, 5, 17, 5)
    assert change.duration_s == 90 * 60


def test_v2_created_activity_is_a_meeting_owned_by_owner_id() -> None:
    change = only_activity(raw("v2_activity_create.json"))
    assert (change.activity_id, change.kind, change.owner, change.deal_id) == ("9002", "meeting", "4343", "315")
    assert change.occurred_at == utc(2026, 11, 10, 9, 30)
    assert change.duration_s == 75 * 60
    assert change.changed_at == utc(2026, 11, 6, 10, 0)


def test_v2_changed_all_day_task_occurred_when_marked_done() -> None:
    change = only_activity(raw("v2_activity_change.json"))
    assert (change.activity_id, change.kind) == ("9003", "task")
    assert change.occurred_at == utc(2026, 11, 12, 18, 0)
    assert change.duration_s is None


def test_an_all_day_activity_without_a_done_time_sits_at_noon_utc_of_its_due_date() -> None:
    payload = body("v2_activity_change.json")
    payload["data"]["marked_as_done_time"] = None
    change = only_activity(payload)
    assert change.occurred_at == utc(2026, 11, 10, 12, 0)
    assert change.occurred_at.date() == date(2026, 11, 10)


@pytest.mark.parametrize(
    ("type_key", "kind"),
    [("call", "call"), ("meeting", "meeting"), ("email", "email"), ("task", "task"), ("demo", "demo"),
     ("lunch", "other"), ("deadline", "other"), ("custom_site_visit", "other")],
)  # fmt: skip
def test_activity_types_map_to_kinds(type_key: str, kind: str) -> None:
    payload = body("v2_activity_create.json")
    payload["data"]["type"] = type_key
    assert only_activity(payload).kind == kind


def test_deleted_activities_are_skipped() -> None:
    v1 = body("v1_activity_added.json")
    v1["meta"]["action"], v1["previous"], v1["current"] = "deleted", v1["current"], None
    v2 = body("v2_activity_create.json")
    v2["meta"]["action"], v2["previous"], v2["data"] = "delete", v2["data"], None
    assert parse(request(v1)) == []
    assert parse(request(v2)) == []


# ---------------------------------------------------------------------------------------- other entities


@pytest.mark.parametrize("name", ["v1_person_updated.json", "v2_organization_create.json"])
def test_entities_other_than_deals_and_activities_are_ignored(name: str) -> None:
    assert parse(request(raw(name))) == []


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "body: expected an object"),
        (b'{"v": 1}', "meta: expected an object"),
        (b'{"meta": {"action": "create"}}', "neither a Pipedrive webhooks v1"),
        (b'{"v": 1, "meta": {"object": "deal", "action": "added", "id": 1, "timestamp": NaN}}', "not JSON"),
    ],
)
def test_a_body_that_is_not_a_pipedrive_payload_is_a_payload_error(payload: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse(request(payload))


def _v1_deal(**current: Any) -> dict[str, Any]:
    payload = body("v1_deal_updated.json")
    payload["current"].update(current)
    return payload


def _v2(**meta: Any) -> dict[str, Any]:
    payload = body("v2_deal_change.json")
    payload["meta"].update(meta)
    return payload


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_v1_deal(value=True), r"current\.value: expected a number, got bool"),
        (_v1_deal(value=[1]), r"current\.value: expected a number, got list"),
        (_v1_deal(value="lots"), r"current\.value: 'lots' is not a number"),
        (_v1_deal(value="Infinity"), r"current\.value: 'Infinity' is not a finite number"),
        (_v1_deal(status="pending"), r"current\.status: unknown deal status 'pending'"),
        (_v1_deal(stage_id=2.5), r"current\.stage_id: expected an id"),
        (_v1_deal(user_id={"name": "Dana"}), r"current\.user_id\.id: expected an id"),
        (_v1_deal(add_time="yesterday"), r"current\.add_time: 'yesterday' is not a date-time"),
        (_v1_deal(currency=978), r"current\.currency: expected a non-empty string, got int"),
        (_v2(action="archive"), r"meta\.action: unknown v2 action 'archive'"),
        (_v2(entity_id=None), r"meta\.entity_id: expected an id"),
        (_v2(id=None), r"meta\.id: expected an id"),
        (_v2(timestamp="soon"), r"meta\.timestamp: 'soon' is not a date-time"),
        (_v2(timestamp=10**20), r"meta\.timestamp: 100000000000000000000 is out of range"),
        (_v2(entity=None), r"meta\.entity: expected a non-empty string, got null"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_payload_error_naming_it(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse(request(payload))


def test_a_v1_upsert_without_current_is_a_payload_error() -> None:
    payload = body("v1_deal_updated.json")
    payload["current"] = None
    with pytest.raises(PayloadError, match="current: expected an object, got null"):
        parse(request(payload))


def test_a_v2_change_without_data_is_a_payload_error() -> None:
    payload = body("v2_deal_change.json")
    del payload["data"]
    with pytest.raises(PayloadError, match="data: expected an object, got null"):
        parse(request(payload))


def test_a_v1_payload_with_an_unknown_action_is_a_payload_error() -> None:
    payload = body("v1_deal_updated.json")
    payload["meta"]["action"] = "exploded"
    with pytest.raises(PayloadError, match="unknown v1 action 'exploded'"):
        parse(request(payload))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("due_time", "half past", "is not an HH:MM time"), ("duration", "1h", "is not an HH:MM duration"),
     ("due_date", "11/10/2026", "is not a YYYY-MM-DD date")],
)  # fmt: skip
def test_malformed_activity_times_are_payload_errors(field: str, value: str, problem: str) -> None:
    payload = body("v2_activity_create.json")
    payload["data"][field] = value
    with pytest.raises(PayloadError, match=rf"data\.{field}: '.*' {problem}"):
        parse(request(payload))


@pytest.mark.parametrize("name", ["v1_activity_added.json", "v2_activity_create.json"])
def test_a_planned_activity_counts_only_once_it_is_done(name: str) -> None:
    payload = body(name)
    payload["current" if "current" in payload else "data"]["done"] = False
    assert parse(request(payload)) == []
