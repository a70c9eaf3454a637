"""HubSpot: the v3 request signature, and the event-array payload mapped to deal and activity changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.ingest.crm import hubspot
from services.ingest.crm.mapping import TenantMaps, deal_data
from services.ingest.crm.model import (
    ActivityChange,
    DealChange,
    DealFields,
    PayloadError,
    Secret,
    WebhookAuthError,
    WebhookRequest,
)
from services.ingest.crm.state import merge, view
from shared.events import DealUpserted, ForecastCategory

FIXTURES = Path(__file__).parents[4] / "fixtures" / "crm" / "hubspot"  # sources: README.md there

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # the placeholder client secret of HubSpot's examples
PREVIOUS = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
NOW = datetime(2025, 11, 5, 9, 0, 5, tzinfo=UTC)
# As HubSpot calls it: a query string, two characters HubSpot decodes (%3A, %2F) and one it does not (%20).
URL = "https://attain.example.com/v1/webhooks/hubspot/acme?token=a%3Ab%2Fc&note=x%20y"
# The URI HubSpot signs, decoded by hand from its table: ":" and "/" decoded, "%20" kept.
SIGNED_URI = "https://attain.example.com/v1/webhooks/hubspot/acme?token=a:b/c&note=x%20y"
AT = datetime(2025, 11, 5, 9, 0, tzinfo=UTC)  # occurredAt 1762333200000
LATER = datetime(2025, 11, 5, 9, 0, 1, 250_000, tzinfo=UTC)  # occurredAt 1762333201250


def millis(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's documented steps: HMAC-SHA256 of method + URI + body + timestamp (UTF-8), base64."""
    source = method + uri + body.decode("utf-8") + timestamp
    return base64.b64encode(hmac.new(secret.encode(), source.encode("utf-8"), hashlib.sha256).digest()).decode()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed(
    body: bytes | None = None,
    *,
    secret: str = SECRET,
    sent_at: datetime = NOW,
    uri: str = SIGNED_URI,
    url: str = URL,
    headers: dict[str, str] | None = None,
) -> WebhookRequest:
    body = fixture("deal_property_changes.json") if body is None else body
    timestamp = millis(sent_at)
    all_headers = {
        "content-type": "application/json",
        "x-hubspot-request-timestamp": timestamp,
        "x-hubspot-signature-v3": v3_signature(secret, "POST", uri, body, timestamp),
    }
    all_headers.update(headers or {})
    return WebhookRequest(method="POST", url=url, headers=all_headers, body=body)


def delivery(body: bytes | list[Any]) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(method="POST", url=URL, headers={}, body=raw)


def event(**changes: Any) -> dict[str, Any]:
    """The Webhooks guide's example event, as a deal property change."""
    base = {"objectId": 1246965, "propertyName": "amount", "propertyValue": "100", "changeSource": "CRM_UI",
            "eventId": 3816279340, "subscriptionId": 25, "portalId": 33, "appId": 1160452,
            "occurredAt": 1762333201250, "subscriptionType": "deal.propertyChange", "attemptNumber": 0}  # fmt: skip
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def only_deal(body: list[Any]) -> DealChange:
    (change,) = hubspot.parse(delivery(body))
    assert isinstance(change, DealChange)
    return change


# --- verify ---------------------------------------------------------------------------------------


def test_a_request_signed_with_the_client_secret_is_accepted() -> None:
    hubspot.verify(signed(), [Secret(SECRET)], NOW)


def test_only_the_characters_hubspot_lists_are_decoded_in_the_signed_uri() -> None:
    raw_uri = signed(uri=URL)  # signed over the URL without HubSpot's decoding
    over_decoded = signed(uri=SIGNED_URI.replace("%20", " "))  # %20 decoded although HubSpot keeps it
    for request in (raw_uri, over_decoded):
        with pytest.raises(WebhookAuthError, match="does not match"):
            hubspot.verify(request, [Secret(SECRET)], NOW)


def test_lower_case_percent_encodings_are_decoded_like_upper_case_ones() -> None:
    hubspot.verify(signed(url=URL.replace("%3A", "%3a").replace("%2F", "%2f")), [Secret(SECRET)], NOW)


def test_the_previous_secret_is_still_accepted_during_rotation() -> None:
    hubspot.verify(signed(secret=PREVIOUS), [Secret(SECRET), Secret(PREVIOUS)], NOW)


def test_a_request_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(WebhookAuthError, match="does not match"):
        hubspot.verify(signed(secret="someone-else"), [Secret(SECRET), Secret(PREVIOUS)], NOW)


def test_a_wrong_signature_is_refused_without_revealing_the_expected_one() -> None:
    request = signed(headers={"x-hubspot-signature-v3": base64.b64encode(b"0" * 32).decode()})
    expected = signed().headers["x-hubspot-signature-v3"]
    with pytest.raises(WebhookAuthError, match="does not match") as refused:
        hubspot.verify(request, [Secret(SECRET)], NOW)
    assert expected not in str(refused.value)


def test_a_truncated_body_no_longer_matches_its_signature() -> None:
    request = signed()
    truncated = replace(request, body=request.body[:-10])
    with pytest.raises(WebhookAuthError, match="does not match"):
        hubspot.verify(truncated, [Secret(SECRET)], NOW)


def test_the_method_is_part_of_what_is_signed() -> None:
    request = signed()
    as_put = replace(request, method="PUT")
    with pytest.raises(WebhookAuthError, match="does not match"):
        hubspot.verify(as_put, [Secret(SECRET)], NOW)


def test_a_timestamp_six_minutes_old_is_refused_even_when_correctly_signed() -> None:
    with pytest.raises(WebhookAuthError, match="older than 5 minutes"):
        hubspot.verify(signed(sent_at=NOW - timedelta(minutes=6)), [Secret(SECRET)], NOW)


def test_a_timestamp_four_minutes_old_is_accepted() -> None:
    hubspot.verify(signed(sent_at=NOW - timedelta(minutes=4)), [Secret(SECRET)], NOW)


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    with pytest.raises(WebhookAuthError, match="in the future"):
        hubspot.verify(signed(sent_at=NOW + timedelta(hours=1)), [Secret(SECRET)], NOW)


@pytest.mark.parametrize(
    ("missing", "message"),
    [("x-hubspot-signature-v3", "missing X-HubSpot-Signature-v3"),
     ("x-hubspot-request-timestamp", "missing X-HubSpot-Request-Timestamp")],
)  # fmt: skip
def test_a_request_without_the_signature_headers_is_refused(missing: str, message: str) -> None:
    request = signed()
    headers = {name: value for name, value in request.headers.items() if name != missing}
    with pytest.raises(WebhookAuthError, match=message):
        hubspot.verify(replace(request, headers=headers), [Secret(SECRET)], NOW)


@pytest.mark.parametrize("timestamp", ["2025-11-05T09:00:05Z", "1762333205.5", "-1", "9" * 40])
def test_a_timestamp_that_is_not_epoch_milliseconds_is_refused(timestamp: str) -> None:
    with pytest.raises(WebhookAuthError, match="not milliseconds"):
        hubspot.verify(signed(headers={"x-hubspot-request-timestamp": timestamp}), [Secret(SECRET)], NOW)


def test_without_a_configured_secret_every_request_is_refused() -> None:
    for secrets in ([], [Secret("")]):
        with pytest.raises(WebhookAuthError, match="no HubSpot client secret"):
            hubspot.verify(signed(secret=""), secrets, NOW)


def test_verifying_against_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        hubspot.verify(signed(), [Secret(SECRET)], NOW.replace(tzinfo=None))


# --- parse: deals ---------------------------------------------------------------------------------


def test_a_deal_creation_carries_only_the_deal_id_and_time() -> None:
    # deal_creation.json mirrors the Webhooks API guide's example payload.
    (change,) = hubspot.parse(delivery(fixture("deal_creation.json")))
    assert change == DealChange(crm="hubspot", event_id=change.event_id, deal_id="1246978", changed_at=AT)
    assert change.fields == DealFields()
    assert not change.deleted


def test_each_deal_property_change_becomes_one_field_and_others_are_ignored() -> None:
    # deal_property_changes.json mirrors the guide's propertyChange example, once per deal property.
    changes = hubspot.parse(delivery(fixture("deal_property_changes.json")))
    assert all(isinstance(c, DealChange) and c.deal_id == "1246965" and c.changed_at == LATER for c in changes)
    assert [c.fields for c in changes if isinstance(c, DealChange)] == [
        DealFields(amount=Decimal("1234567.89")),
        DealFields(currency="EUR"),
        DealFields(stage="closedwon"),
        DealFields(owner="910901"),
        DealFields(close_date=datetime(2025, 12, 31, tzinfo=UTC)),
        DealFields(created_at=datetime(2025, 11, 4, 16, 45, 12, 345_000, tzinfo=UTC)),
        DealFields(name="Acme Corp renewal"),
    ]  # `pipeline` and `description` give no change


@pytest.mark.parametrize(
    ("value", "amount"),
    [("0.1", "0.1"), ("1234567.89", "1234567.89"), ("90000", "90000"), ("0.10", "0.10"), ("1E+3", "1E+3"),
     ("99999999999999999.99", "99999999999999999.99")],
)  # fmt: skip
def test_amounts_are_exact_decimals(value: str, amount: str) -> None:
    parsed = only_deal([event(propertyValue=value)]).fields.amount
    assert parsed == Decimal(amount)
    assert str(parsed) == amount  # not a float on the way


@pytest.mark.parametrize(
    ("value", "close_date"),
    [("1767139200000", datetime(2025, 12, 31, tzinfo=UTC)),
     ("2025-12-31T10:00:00+02:00", datetime(2025, 12, 31, 8, tzinfo=UTC)),
     ("2025-12-31T08:00:00Z", datetime(2025, 12, 31, 8, tzinfo=UTC)),
     ("2025-12-31", date(2025, 12, 31))],
)  # fmt: skip
def test_close_dates_in_epoch_milliseconds_or_iso_become_aware_utc(value: str, close_date: datetime | date) -> None:
    fields = only_deal([event(propertyName="closedate", propertyValue=value)]).fields
    assert fields.close_date == close_date
    assert not isinstance(fields.close_date, datetime) or fields.close_date.tzinfo == UTC


def test_a_currency_code_is_normalised_to_upper_case() -> None:
    assert only_deal([event(propertyName="deal_currency_code", propertyValue="usd")]).fields.currency == "USD"


@pytest.mark.parametrize("value", ["", None])
def test_a_cleared_property_gives_no_change(value: str | None) -> None:
    assert hubspot.parse(delivery([event(propertyName="amount", propertyValue=value)])) == []


def test_a_deal_deletion_is_a_deleted_change() -> None:
    (change,) = hubspot.parse(delivery(fixture("deal_deletion.json")))
    assert isinstance(change, DealChange)
    assert (change.deal_id, change.deleted, change.changed_at) == ("1246965", True, AT)


def test_generic_object_events_for_deals_map_like_the_legacy_ones() -> None:
    # generic_deal_events.json mirrors "Create generic webhook subscriptions": objectTypeId 0-3 is a deal.
    amount, created, restored = hubspot.parse(delivery(fixture("generic_deal_events.json")))
    assert isinstance(amount, DealChange) and amount.fields == DealFields(amount=Decimal("90000"))
    assert isinstance(created, DealChange) and (created.deal_id, created.fields) == ("1246990", DealFields())
    assert isinstance(restored, DealChange) and (restored.deal_id, restored.deleted) == ("1246991", False)


def test_a_deal_merge_deletes_the_merged_deals_and_keeps_the_survivor() -> None:
    changes = hubspot.parse(delivery(fixture("deal_merge.json")))
    assert [(c.deal_id, c.deleted) for c in changes if isinstance(c, DealChange)] == [
        ("1246965", False), ("1246978", True), ("1246979", True),
    ]  # fmt: skip
    assert len({c.event_id for c in changes}) == 3


def test_a_merge_into_a_new_record_deletes_the_primary_too() -> None:
    merge = json.loads(fixture("deal_merge.json"))
    merge[0]["newObjectId"] = 1247000
    changes = hubspot.parse(delivery(merge))
    assert [(c.deal_id, c.deleted) for c in changes if isinstance(c, DealChange)] == [
        ("1247000", False), ("1246965", True), ("1246978", True), ("1246979", True),
    ]  # fmt: skip


def test_the_documented_example_field_name_event_type_is_read_like_subscription_type() -> None:
    change = only_deal([event(subscriptionType=None, eventType="deal.deletion")])
    assert change.deleted


# --- parse: the forecast -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "probability"), [("0.2", "0.2"), ("1", "1"), ("0", "0"), ("0.123456", "0.1235")])
def test_the_deal_stage_probability_is_the_probability_rounded_to_four_places(value: str, probability: str) -> None:
    change = only_deal([event(propertyName="hs_deal_stage_probability", propertyValue=value)])
    assert change.fields == DealFields(probability=Decimal(probability))
    assert str(change.fields.probability) == probability
    assert change.ignored == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("1.5", "1.5 is not between 0 and 1"), ("35", "35 is not between 0 and 1"), ("-0.1", "-0.1 is not between"),
     ("high", "'high' is not a number")],
)  # fmt: skip
def test_a_probability_out_of_range_is_left_out_and_reported_not_refused(value: str, problem: str) -> None:
    change = only_deal([event(eventId=9, propertyName="hs_deal_stage_probability", propertyValue=value)])
    assert change.fields == DealFields()
    assert len(change.ignored) == 1
    assert change.ignored[0].startswith(f"event 0: hs_deal_stage_probability: {problem}")


@pytest.mark.parametrize(
    ("value", "category"),
    [("PIPELINE", "pipeline"), ("BEST_CASE", "best_case"), ("COMMIT", "commit"), ("OMIT", "omitted"),
     ("OMITTED", "omitted"), ("commit", "commit"), (" Best_Case ", "best_case")],
)  # fmt: skip
def test_forecast_categories_map_to_the_contracts(value: str, category: str) -> None:
    change = only_deal([event(propertyName="hs_forecast_category", propertyValue=value)])
    assert change.fields == DealFields(forecast_category=category)  # type: ignore[arg-type]
    assert ForecastCategory(category)  # a value of the contract


def test_the_closed_forecast_category_gives_no_change() -> None:
    assert hubspot.parse(delivery([event(propertyName="hs_forecast_category", propertyValue="CLOSED")])) == []


def test_an_unknown_forecast_category_is_left_out_and_reported() -> None:
    change = only_deal([event(propertyName="hs_forecast_category", propertyValue="MOST_LIKELY")])
    assert change.fields == DealFields()
    assert change.ignored == ("event 0: hs_forecast_category: 'MOST_LIKELY' is not a forecast category we map"
                              " (PIPELINE, BEST_CASE, COMMIT, OMIT, OMITTED, CLOSED)",)


@pytest.mark.parametrize("name", ["hs_deal_stage_probability", "hs_forecast_category"])
@pytest.mark.parametrize("value", ["", None])
def test_a_cleared_forecast_property_gives_no_change(name: str, value: str | None) -> None:
    assert hubspot.parse(delivery([event(propertyName=name, propertyValue=value)])) == []


def test_a_bad_probability_costs_the_delivery_none_of_its_other_changes() -> None:
    amount, probability, stage = hubspot.parse(delivery([
        event(propertyName="amount", propertyValue="900"),
        event(propertyName="hs_deal_stage_probability", propertyValue="150"),
        event(propertyName="dealstage", propertyValue="contractsent"),
    ]))  # fmt: skip
    assert isinstance(amount, DealChange) and amount.fields == DealFields(amount=Decimal(900))
    assert isinstance(probability, DealChange) and probability.ignored
    assert isinstance(stage, DealChange) and stage.fields == DealFields(stage="contractsent")


def test_an_open_deal_expects_to_close_at_its_close_date_and_keeps_its_forecast_across_partial_changes() -> None:
    first = hubspot.parse(delivery([
        event(occurredAt=1762333200000, propertyName="amount", propertyValue="900"),
        event(occurredAt=1762333200000, propertyName="dealstage", propertyValue="contractsent"),
        event(occurredAt=1762333200000, propertyName="hubspot_owner_id", propertyValue="910901"),
        event(occurredAt=1762333200000, propertyName="closedate", propertyValue="1767139200000"),
        event(occurredAt=1762333200000, propertyName="hs_deal_stage_probability", propertyValue="0.9"),
        event(occurredAt=1762333200000, propertyName="hs_forecast_category", propertyValue="COMMIT"),
    ]))  # fmt: skip
    later = only_deal([event(occurredAt=1762333260000, propertyName="amount", propertyValue="1200")])
    state: dict[str, Any] = {}
    for change in [*first, later]:
        assert isinstance(change, DealChange)
        state = merge(state, change)
    tenant = TenantMaps("hubspot", "Europe/Berlin", "EUR", users={"910901": "rep-dana"})
    deal = deal_data("1246965", view(state), tenant, LATER)
    assert isinstance(deal, DealUpserted)
    assert (deal.amount, deal.closed_at, deal.expected_close_at, deal.probability, deal.forecast_category) == (
        Decimal(1200), None, datetime(2025, 12, 31, tzinfo=UTC), Decimal("0.9"), ForecastCategory.COMMIT)


# --- parse: the CRM properties the tenant carries ------------------------------------------------


CHOSEN = ("hs_lead_source", "segment", "dealname")


def test_a_change_of_a_chosen_property_carries_its_value_and_other_properties_stay_skipped() -> None:
    lead, other = hubspot.parse(delivery([
        event(propertyName="hs_lead_source", propertyValue="ORGANIC_SEARCH"),
        event(propertyName="segment", propertyValue="Mid-market", eventId=2),
        event(propertyName="description", propertyValue="not chosen", eventId=3),
    ]), CHOSEN)  # fmt: skip
    assert isinstance(lead, DealChange) and lead.fields == DealFields(properties={"hs_lead_source": "ORGANIC_SEARCH"})
    assert isinstance(other, DealChange) and other.fields == DealFields(properties={"segment": "Mid-market"})


def test_without_a_choice_no_property_is_carried() -> None:
    assert hubspot.parse(delivery([event(propertyName="hs_lead_source", propertyValue="ORGANIC_SEARCH")])) == []


def test_a_chosen_property_that_is_also_ours_fills_both() -> None:
    change = only_deal([event(propertyName="dealname", propertyValue="Acme renewal")])
    assert change.fields == DealFields(name="Acme renewal")
    chosen = hubspot.parse(delivery([event(propertyName="dealname", propertyValue="Acme renewal")]), CHOSEN)
    assert [c.fields for c in chosen if isinstance(c, DealChange)] == [
        DealFields(name="Acme renewal", properties={"dealname": "Acme renewal"})]


def test_a_cleared_chosen_property_gives_no_change() -> None:
    assert hubspot.parse(delivery([event(propertyName="segment", propertyValue="")]), CHOSEN) == []


def test_a_chosen_value_too_long_is_left_out_and_reported_not_cut() -> None:
    (change,) = hubspot.parse(delivery([event(propertyName="segment", propertyValue="x" * 501)]), CHOSEN)
    assert isinstance(change, DealChange) and change.fields == DealFields()
    assert change.ignored == ("event 0: segment: is longer than 500 characters (501); left out, not cut",)


def test_partial_property_changes_keep_the_other_properties_of_the_deal() -> None:
    first = hubspot.parse(delivery([
        event(occurredAt=1762333200000, propertyName="amount", propertyValue="900"),
        event(occurredAt=1762333200000, propertyName="dealstage", propertyValue="contractsent"),
        event(occurredAt=1762333200000, propertyName="hubspot_owner_id", propertyValue="910901"),
        event(occurredAt=1762333200000, propertyName="hs_lead_source", propertyValue="ORGANIC_SEARCH"),
        event(occurredAt=1762333200000, propertyName="segment", propertyValue="SMB"),
    ]), CHOSEN)  # fmt: skip
    later = hubspot.parse(delivery([event(occurredAt=1762333260000, propertyName="segment",
                                          propertyValue="Enterprise")]), CHOSEN)
    state: dict[str, Any] = {}
    for change in [*first, *later]:
        assert isinstance(change, DealChange)
        state = merge(state, change)
    tenant = TenantMaps("hubspot", "Europe/Berlin", "EUR", users={"910901": "rep-dana"}, properties=CHOSEN)
    deal = deal_data("1246965", view(state), tenant, LATER)
    assert isinstance(deal, DealUpserted)
    assert deal.properties == {"hs_lead_source": "ORGANIC_SEARCH", "segment": "Enterprise"}


# --- parse: engagements and what is skipped ------------------------------------------------------


def test_engagement_creations_become_activities_without_owner() -> None:
    # engagement_creations.json: generic object.creation for calls, meetings, emails, tasks and notes.
    changes = hubspot.parse(delivery(fixture("engagement_creations.json")))
    assert all(isinstance(c, ActivityChange) for c in changes)
    assert [(c.activity_id, c.kind) for c in changes if isinstance(c, ActivityChange)] == [
        ("51001", "call"), ("51002", "meeting"), ("51003", "email"), ("51004", "task"), ("51005", "other"),
    ]  # fmt: skip
    # (the engagement property change and deletion at the end of the fixture give nothing)
    call = changes[0]
    assert isinstance(call, ActivityChange)
    assert (call.owner, call.occurred_at, call.changed_at, call.deal_id) == (None, AT, AT, None)


def test_events_for_objects_we_do_not_track_are_skipped_not_refused() -> None:
    # unhandled_objects.json: the guide's contact example, a company, a generic contact, an association change.
    assert hubspot.parse(delivery(fixture("unhandled_objects.json"))) == []


def test_an_empty_delivery_has_no_changes() -> None:
    assert hubspot.parse(delivery(b"[]")) == []


# --- parse: idempotency keys ---------------------------------------------------------------------


def test_a_retried_delivery_yields_the_same_event_ids() -> None:
    first = json.loads(fixture("deal_property_changes.json"))
    retry = [{**item, "attemptNumber": 1} for item in first]
    assert [c.event_id for c in hubspot.parse(delivery(first))] == [c.event_id for c in hubspot.parse(delivery(retry))]


def test_different_changes_have_different_event_ids_even_when_hubspot_repeats_an_event_id() -> None:
    same_event_id = [
        event(propertyName="amount", propertyValue="1"),
        event(propertyName="dealname", propertyValue="A"),
        event(objectId=2, propertyValue="1"),
        event(occurredAt=1762333209999, propertyValue="2"),
    ]
    ids = [c.event_id for c in hubspot.parse(delivery(same_event_id))]
    assert len(set(ids)) == 4


def test_every_change_of_every_fixture_has_its_own_event_id() -> None:
    ids = [c.event_id for path in sorted(FIXTURES.glob("*.json")) for c in hubspot.parse(delivery(path.read_bytes()))]
    assert len(ids) == len(set(ids)) > 0


# --- parse: refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"<xml/>", "not JSON"), (b"", "not JSON"), (b"\xff[]", "not JSON"), (b"[NaN]", "not JSON"),
     (b'{"eventId": 1}', "not a JSON array"), (b"[1]", "event 0 is not a JSON object")],
)  # fmt: skip
def test_a_body_that_is_not_an_array_of_events_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        hubspot.parse(delivery(body))


@pytest.mark.parametrize(
    ("changes", "msg"),
    [({"objectId": None}, "event 1: missing objectId"),
     ({"occurredAt": "1762333201250"}, "event 1: occurredAt is not an integer"),
     ({"eventId": True}, "event 1: eventId is not an integer"),
     ({"portalId": None}, "event 1: missing portalId"),
     ({"subscriptionType": None}, "event 1: missing subscriptionType"),
     ({"subscriptionType": 7}, "event 1: subscriptionType is not a string"),
     ({"propertyName": None}, "event 1: missing propertyName"),
     ({"propertyValue": 100}, "event 1: propertyValue is not a string"),
     ({"subscriptionType": "object.creation"}, "event 1: missing objectTypeId")],
)  # fmt: skip
def test_an_event_missing_a_field_or_of_the_wrong_type_is_refused_by_name(changes: dict[str, Any], msg: str) -> None:
    with pytest.raises(PayloadError, match=msg):
        hubspot.parse(delivery([event(), event(**changes)]))


@pytest.mark.parametrize("value", ["12,50", "abc", "NaN", "Infinity", "1_000", "€100"])
def test_an_amount_that_is_not_a_plain_decimal_is_refused(value: str) -> None:
    with pytest.raises(PayloadError, match=r"amount .* is not a decimal number"):
        hubspot.parse(delivery([event(propertyValue=value)]))


def test_a_currency_that_is_not_an_iso_code_is_refused() -> None:
    with pytest.raises(PayloadError, match="not an ISO 4217 code"):
        hubspot.parse(delivery([event(propertyName="deal_currency_code", propertyValue="Euro")]))


@pytest.mark.parametrize("value", ["next friday", "2025-13-45", "31/12/2025"])
def test_a_close_date_that_is_neither_milliseconds_nor_iso_is_refused(value: str) -> None:
    with pytest.raises(PayloadError, match="closedate"):
        hubspot.parse(delivery([event(propertyName="closedate", propertyValue=value)]))


def test_an_out_of_range_occurred_at_is_refused() -> None:
    with pytest.raises(PayloadError, match="out of range"):
        hubspot.parse(delivery([event(occurredAt=10**18)]))


def test_a_merge_without_a_list_of_merged_ids_is_refused() -> None:
    merge = json.loads(fixture("deal_merge.json"))
    merge[0]["mergedObjectIds"] = "1246978"
    with pytest.raises(PayloadError, match="mergedObjectIds"):
        hubspot.parse(delivery(merge))
