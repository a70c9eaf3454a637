"""The CRM API record converters: a documented read response in, a complete deal change out.

The bodies are shaped like each vendor's documented response, and loaded the way `Fetcher` loads them
(`values.load_json`: numbers are exact Decimals):
- HubSpot CRM API v3, `GET /crm/v3/objects/deals/{dealId}?properties=...`: `id`, `properties` (every value a string
  or null), `createdAt`, `updatedAt` (ISO 8601), `archived`;
- Pipedrive API v2, `GET /api/v2/deals/{id}`: `{"success": true, "data": {...}}` with `owner_id`, `stage_id`,
  `value` (a number), `currency`, `status`, `is_deleted`, RFC 3339 `add_time`/`update_time`/`close_time`/
  `won_time`/`lost_time`;
- Salesforce REST API, `GET /services/data/vXX.X/sobjects/Opportunity/{id}`: `attributes` (`type`, `url`) and the
  Opportunity's fields, date-times as `2026-11-05T09:00:00.000+0000`, `CloseDate` as `YYYY-MM-DD`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.ingest.crm import values
from services.ingest.crm.fetch import (
    HUBSPOT_DEAL_PROPERTIES,
    CrmAccess,
    Fetcher,
    hubspot_deal,
    hubspot_engagement,
    pipedrive_deal,
    salesforce_deal,
)
from services.ingest.crm.model import ActivityChange, DealChange, DealFields, PayloadError

HUBSPOT_DEAL = """{
  "id": "1246965",
  "properties": {
    "amount": "1234567.89",
    "closedate": "2025-12-31T10:00:00Z",
    "createdate": "2025-11-04T16:45:12.345Z",
    "deal_currency_code": "EUR",
    "dealname": "Acme Corp renewal",
    "dealstage": "closedwon",
    "hs_lastmodifieddate": "2025-11-05T09:00:01.250Z",
    "hs_object_id": "1246965",
    "hubspot_owner_id": "910901"
  },
  "createdAt": "2025-11-04T16:45:12.345Z",
  "updatedAt": "2025-11-05T09:00:01.250Z",
  "archived": false
}"""

PIPEDRIVE_DEAL = """{
  "success": true,
  "data": {
    "id": 315, "title": "Globex renewal", "creator_user_id": 4343, "owner_id": 4343, "value": 98765.43,
    "person_id": 56, "org_id": 13, "stage_id": 8, "pipeline_id": 2, "currency": "USD",
    "add_time": "2026-11-06T09:00:00Z", "update_time": "2026-11-07T13:14:15Z",
    "stage_change_time": "2026-11-07T13:14:15Z", "is_deleted": false, "is_archived": false, "status": "won",
    "probability": null, "lost_reason": null, "visible_to": 3, "close_time": "2026-11-07T13:14:15Z",
    "won_time": "2026-11-07T13:14:15Z", "lost_time": null, "expected_close_date": "2026-12-31", "label_ids": [],
    "origin": "ManuallyCreated", "origin_id": null, "channel": null, "channel_id": null
  }
}"""

SALESFORCE_OPPORTUNITY = """{
  "attributes": {"type": "Opportunity", "url": "/services/data/v61.0/sobjects/Opportunity/0065g00000Xk1AaAAJ"},
  "Id": "0065g00000Xk1AaAAJ", "IsDeleted": false, "AccountId": "0015g00000Qr7XyAAJ", "IsPrivate": false,
  "Name": "Acme - 200 seats", "Description": null, "StageName": "Closed Won", "Amount": 90000.0,
  "Probability": 100.0, "ExpectedRevenue": 90000.0, "CloseDate": "2026-11-30", "Type": "New Customer",
  "IsClosed": true, "IsWon": true, "ForecastCategory": "Closed", "ForecastCategoryName": "Closed",
  "CurrencyIsoCode": "EUR", "OwnerId": "0055g00000Ab1CdAAE", "CreatedDate": "2026-10-01T08:15:00.000+0000",
  "CreatedById": "0055g00000Ab1CdAAE", "LastModifiedDate": "2026-11-05T09:00:00.000+0000",
  "LastModifiedById": "0055g00000Ab1CdAAE", "SystemModstamp": "2026-11-05T09:00:00.000+0000",
  "FiscalQuarter": 4, "FiscalYear": 2026, "Fiscal": "2026 4"
}"""

HUBSPOT_CALL = """{
  "id": "51234567890",
  "properties": {"hs_timestamp": "2026-11-10T09:30:00Z", "hubspot_owner_id": "910901", "hs_call_duration": "95000",
                 "hs_object_id": "51234567890"},
  "createdAt": "2026-11-10T09:45:00Z", "updatedAt": "2026-11-10T09:45:00Z", "archived": false,
  "associations": {"deals": {"results": [{"id": "1246965", "type": "call_to_deal"}]}}
}"""


def loaded(text: str, **changes: Any) -> dict[str, Any]:
    """A body as `Fetcher` reads it; `changes` replace top-level keys, or keys of `data`/`properties`."""
    body = values.load_json(text.encode())
    assert isinstance(body, dict)
    inner = body.get("data") if "data" in body else body.get("properties", body)
    assert isinstance(inner, dict)
    inner.update(changes)
    return body


# --- HubSpot -------------------------------------------------------------------------------------------------------


def test_a_hubspot_deal_carries_every_property_we_track() -> None:
    change = hubspot_deal("1246965", loaded(HUBSPOT_DEAL))
    assert change == DealChange(
        crm="hubspot", event_id="fetch:1246965:2025-11-05T09:00:01.250Z", deal_id="1246965",
        changed_at=datetime(2025, 11, 5, 9, 0, 1, 250_000, tzinfo=UTC),
        fields=DealFields(amount=Decimal("1234567.89"), currency="EUR", stage="closedwon", owner="910901",
                          close_date=datetime(2025, 12, 31, 10, 0, tzinfo=UTC),
                          created_at=datetime(2025, 11, 4, 16, 45, 12, 345_000, tzinfo=UTC), name="Acme Corp renewal"),
    )  # fmt: skip


def test_unset_hubspot_properties_are_null_and_read_as_not_known() -> None:
    body = loaded(HUBSPOT_DEAL, amount=None, closedate=None, dealstage="", hubspot_owner_id=None,
                  deal_currency_code="")  # fmt: skip
    fields = hubspot_deal("1246965", body).fields
    assert (fields.amount, fields.close_date, fields.stage, fields.owner, fields.currency) == (None,) * 5


def test_an_archived_hubspot_deal_is_deleted() -> None:
    body = loaded(HUBSPOT_DEAL)
    body["archived"] = True
    assert hubspot_deal("1246965", body).deleted


def test_a_hubspot_amount_is_read_exactly() -> None:
    assert str(hubspot_deal("1", loaded(HUBSPOT_DEAL, amount="0.10")).fields.amount) == "0.10"


def test_an_unreadable_hubspot_amount_is_left_out_and_the_rest_still_counts() -> None:
    fields = hubspot_deal("1", loaded(HUBSPOT_DEAL, amount="lots")).fields
    assert (fields.amount, fields.stage, fields.owner) == (None, "closedwon", "910901")


def test_an_unreadable_hubspot_date_makes_the_record_unreadable() -> None:
    with pytest.raises(PayloadError, match=r"^properties\.closedate: 'soon' is not a date-time$"):
        hubspot_deal("1", loaded(HUBSPOT_DEAL, closedate="soon"))


def test_the_hubspot_deal_properties_asked_for_include_the_forecast() -> None:
    assert {"closedate", "hs_deal_stage_probability", "hs_forecast_category"} <= set(
        HUBSPOT_DEAL_PROPERTIES.split(","))


def test_a_hubspot_deal_carries_its_stage_probability_and_forecast_category() -> None:
    change = hubspot_deal("1", loaded(HUBSPOT_DEAL, hs_deal_stage_probability="0.123456", hs_forecast_category="OMIT"))
    assert (change.fields.probability, change.fields.forecast_category, change.ignored) == (
        Decimal("0.1235"), "omitted", ())


@pytest.mark.parametrize("unset", [None, ""])
def test_unset_hubspot_forecast_properties_are_not_known(unset: str | None) -> None:
    change = hubspot_deal("1", loaded(HUBSPOT_DEAL, hs_deal_stage_probability=unset, hs_forecast_category=unset))
    assert (change.fields.probability, change.fields.forecast_category, change.ignored) == (None, None, ())


def test_unreadable_hubspot_forecast_properties_are_left_out_and_the_record_still_counts() -> None:
    change = hubspot_deal("1", loaded(HUBSPOT_DEAL, hs_deal_stage_probability="2", hs_forecast_category="MAYBE"))
    assert (change.fields.probability, change.fields.forecast_category) == (None, None)
    assert (change.fields.amount, change.fields.stage) == (Decimal("1234567.89"), "closedwon")
    assert [problem.split(":")[0] for problem in change.ignored] == [
        "properties.hs_deal_stage_probability", "properties.hs_forecast_category"]


def test_a_hubspot_engagement_gets_its_owner_time_deal_and_duration() -> None:
    bare = ActivityChange(crm="hubspot", event_id="e1", activity_id="51234567890",
                          changed_at=datetime(2026, 11, 10, 9, 45, tzinfo=UTC), kind="call", owner=None,
                          occurred_at=datetime(2026, 11, 10, 9, 45, tzinfo=UTC))  # fmt: skip
    done = hubspot_engagement(bare, loaded(HUBSPOT_CALL))
    assert (done.owner, done.occurred_at, done.deal_id, done.duration_s) == (
        "910901", datetime(2026, 11, 10, 9, 30, tzinfo=UTC), "1246965", 95
    )


# --- Pipedrive -----------------------------------------------------------------------------------------------------


def test_a_won_pipedrive_deal_closes_at_its_won_time() -> None:
    change = pipedrive_deal("315", loaded(PIPEDRIVE_DEAL))
    assert change == DealChange(
        crm="pipedrive", event_id="fetch:315:2026-11-07T13:14:15Z", deal_id="315",
        changed_at=datetime(2026, 11, 7, 13, 14, 15, tzinfo=UTC),
        fields=DealFields(amount=Decimal("98765.43"), currency="USD", stage="8", status="won", owner="4343",
                          close_date=datetime(2026, 11, 7, 13, 14, 15, tzinfo=UTC),
                          created_at=datetime(2026, 11, 6, 9, 0, tzinfo=UTC), name="Globex renewal",
                          expected_close=date(2026, 12, 31)),
    )  # fmt: skip


def test_a_pipedrive_value_is_read_exactly_not_through_a_float() -> None:
    body = values.load_json(PIPEDRIVE_DEAL.replace("98765.43", "19999999999999999.99").encode())
    assert isinstance(body, dict)
    assert str(pipedrive_deal("315", body).fields.amount) == "19999999999999999.99"


def test_a_lost_pipedrive_deal_closes_at_its_lost_time_even_if_it_was_won_before() -> None:
    body = loaded(PIPEDRIVE_DEAL, status="lost", won_time="2026-10-01T10:00:00Z", lost_time="2026-11-07T13:14:15Z",
                  close_time="2026-11-07T13:14:15Z")  # fmt: skip
    fields = pipedrive_deal("315", body).fields
    assert (fields.status, fields.close_date) == ("lost", datetime(2026, 11, 7, 13, 14, 15, tzinfo=UTC))


def test_an_open_pipedrive_deal_has_no_close_date() -> None:
    body = loaded(PIPEDRIVE_DEAL, status="open", won_time=None, close_time=None)
    fields = pipedrive_deal("315", body).fields
    assert (fields.status, fields.close_date) == ("open", None)


def test_an_open_pipedrive_deal_carries_its_expected_close_date_and_probability() -> None:
    body = values.load_json(PIPEDRIVE_DEAL.replace('"probability": null', '"probability": 33.33333').encode())
    assert isinstance(body, dict)
    body["data"].update(status="open", won_time=None, close_time=None)
    fields = pipedrive_deal("315", body).fields
    assert (fields.expected_close, fields.probability) == (date(2026, 12, 31), Decimal("0.3333"))


def test_a_bad_pipedrive_forecast_value_is_left_out_and_the_record_still_counts() -> None:
    change = pipedrive_deal("315", loaded(PIPEDRIVE_DEAL, probability=150, expected_close_date="31.12.2026"))
    assert (change.fields.probability, change.fields.expected_close) == (None, None)
    assert change.fields.amount == Decimal("98765.43")
    assert change.ignored == ("data.expected_close_date: '31.12.2026' is not a YYYY-MM-DD date",
                              "data.probability: 150 is not between 0 and 100")


def test_a_won_pipedrive_deal_without_won_time_falls_back_to_close_time() -> None:
    body = loaded(PIPEDRIVE_DEAL, won_time=None, close_time="2026-11-08T08:00:00Z")
    assert pipedrive_deal("315", body).fields.close_date == datetime(2026, 11, 8, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("deleted", [{"is_deleted": True}, {"status": "deleted"}])
def test_a_deleted_pipedrive_deal_is_deleted(deleted: dict[str, Any]) -> None:
    assert pipedrive_deal("315", loaded(PIPEDRIVE_DEAL, **deleted)).deleted


def test_pipedrive_ids_are_strings_and_missing_ones_none() -> None:
    fields = pipedrive_deal("315", loaded(PIPEDRIVE_DEAL, owner_id=None, stage_id=12)).fields
    assert (fields.owner, fields.stage) == (None, "12")


# --- Salesforce ----------------------------------------------------------------------------------------------------


def test_a_won_salesforce_opportunity_carries_every_field_we_track() -> None:
    change = salesforce_deal("0065g00000Xk1AaAAJ", loaded(SALESFORCE_OPPORTUNITY))
    assert change == DealChange(
        crm="salesforce", event_id="fetch:0065g00000Xk1AaAAJ:2026-11-05T09:00:00.000+0000",
        deal_id="0065g00000Xk1AaAAJ", changed_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC),
        fields=DealFields(amount=Decimal("90000.0"), currency="EUR", stage="Closed Won", stage_label="Closed Won",
                          status="won", owner="0055g00000Ab1CdAAE", close_date=date(2026, 11, 30),
                          created_at=datetime(2026, 10, 1, 8, 15, tzinfo=UTC), name="Acme - 200 seats",
                          probability=Decimal("1.000")),  # ForecastCategoryName "Closed": no category
    )  # fmt: skip
    assert not isinstance(change.fields.close_date, datetime)


@pytest.mark.parametrize(("closed", "won", "status"), [(True, False, "lost"), (False, False, "open")])
def test_a_salesforce_status_comes_from_is_closed_and_is_won(closed: bool, won: bool, status: str) -> None:
    body = loaded(SALESFORCE_OPPORTUNITY, IsClosed=closed, IsWon=won, StageName="Closed Lost")
    assert salesforce_deal("0065g00000Xk1AaAAJ", body).fields.status == status


def test_a_salesforce_opportunity_without_is_closed_has_no_status() -> None:
    body = loaded(SALESFORCE_OPPORTUNITY)
    del body["IsClosed"], body["IsWon"]
    assert salesforce_deal("0065g00000Xk1AaAAJ", body).fields.status is None


def test_a_single_currency_org_sends_no_currency_code() -> None:
    body = loaded(SALESFORCE_OPPORTUNITY)
    del body["CurrencyIsoCode"]
    assert salesforce_deal("0065g00000Xk1AaAAJ", body).fields.currency is None


def test_an_open_salesforce_opportunity_carries_its_probability_and_forecast_category() -> None:
    body = loaded(SALESFORCE_OPPORTUNITY, IsClosed=False, IsWon=False, StageName="Negotiation/Review",
                  Probability=Decimal("90.0"), ForecastCategoryName="Commit")  # fmt: skip
    fields = salesforce_deal("0065g00000Xk1AaAAJ", body).fields
    assert (fields.status, fields.close_date, fields.probability, fields.forecast_category) == (
        "open", date(2026, 11, 30), Decimal("0.900"), "commit")


def test_a_bad_salesforce_forecast_value_is_left_out_and_the_record_still_counts() -> None:
    body = loaded(SALESFORCE_OPPORTUNITY, Probability=Decimal("101"), ForecastCategoryName=7)
    change = salesforce_deal("0065g00000Xk1AaAAJ", body)
    assert (change.fields.probability, change.fields.forecast_category, change.fields.status) == (None, None, "won")
    assert change.ignored == ("Probability: 101 is not between 0 and 100",
                              "ForecastCategoryName: expected a non-empty string, got int")


def test_a_salesforce_close_date_that_is_not_a_date_makes_the_record_unreadable() -> None:
    with pytest.raises(PayloadError, match="CloseDate"):
        salesforce_deal("0065g00000Xk1AaAAJ", loaded(SALESFORCE_OPPORTUNITY, CloseDate="30.11.2026"))


# --- Fetcher: an unreadable record counts as not fetched -----------------------------------------------------------


ACCESS = CrmAccess("token", "https://crm.example")


class _CannedFetcher(Fetcher):
    """A Fetcher whose HTTP calls answer from memory."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.body = body

    async def _get(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        return self.body


async def test_the_fetcher_returns_the_converted_record() -> None:
    fetched = await _CannedFetcher(loaded(SALESFORCE_OPPORTUNITY)).deal(ACCESS, "salesforce", "0065g00000Xk1AaAAJ")
    assert fetched is not None
    assert fetched.fields.status == "won"


async def test_an_unreadable_record_is_not_fetched_rather_than_an_error() -> None:
    body = loaded(SALESFORCE_OPPORTUNITY, CreatedDate="yesterday")
    assert await _CannedFetcher(body).deal(ACCESS, "salesforce", "0065g00000Xk1AaAAJ") is None


async def test_a_pipedrive_answer_without_success_is_not_fetched() -> None:
    body = json.loads(PIPEDRIVE_DEAL.replace('"success": true', '"success": false'))
    assert await _CannedFetcher(body).deal(ACCESS, "pipedrive", "315") is None


# --- the CRM properties the tenant carries ---------------------------------------------------------------------------


class _Recording(_CannedFetcher):
    """A canned Fetcher that remembers what it was asked for."""

    def __init__(self, body: Any) -> None:
        super().__init__(body)
        self.asked: list[tuple[str, dict[str, str] | None]] = []

    async def _get(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        self.asked.append((url, params))
        return self.body


async def test_hubspot_is_asked_for_the_chosen_properties_besides_ours_and_they_are_carried() -> None:
    fetcher = _Recording(loaded(HUBSPOT_DEAL, hs_lead_source="ORGANIC_SEARCH", segment=None))
    fetched = await fetcher.deal(ACCESS, "hubspot", "1246965", ("hs_lead_source", "segment", "amount"))
    assert fetched is not None
    assert fetched.fields.properties == {"hs_lead_source": "ORGANIC_SEARCH", "amount": "1234567.89"}
    ((url, params),) = fetcher.asked
    assert url == "https://crm.example/crm/v3/objects/deals/1246965"
    assert params == {"properties": HUBSPOT_DEAL_PROPERTIES + ",hs_lead_source,segment"}


async def test_without_a_choice_hubspot_is_asked_for_our_properties_alone() -> None:
    fetcher = _Recording(loaded(HUBSPOT_DEAL))
    fetched = await fetcher.deal(ACCESS, "hubspot", "1246965")
    assert fetched is not None and fetched.fields.properties == {}
    assert fetcher.asked[0][1] == {"properties": HUBSPOT_DEAL_PROPERTIES}


async def test_a_hubspot_engagement_is_fetched_with_its_chosen_properties() -> None:
    bare = ActivityChange(crm="hubspot", event_id="e1", activity_id="51234567890", kind="call", owner=None,
                          changed_at=datetime(2026, 11, 10, 9, 45, tzinfo=UTC),
                          occurred_at=datetime(2026, 11, 10, 9, 45, tzinfo=UTC))  # fmt: skip
    fetcher = _Recording(loaded(HUBSPOT_CALL, hs_call_disposition="f240bbac-87c9-4f6e-bf70-924b57d47db7"))
    done = await fetcher.activity(ACCESS, "hubspot", bare, ("hs_call_disposition",))
    assert done is not None and done.properties == {"hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7"}
    assert fetcher.asked[0][1] == {"properties": "hubspot_owner_id,hs_timestamp,hs_call_duration,hs_call_disposition",
                                   "associations": "deals"}


def test_a_pipedrive_deal_carries_its_chosen_fields_from_custom_fields() -> None:
    key = "dcf558aac1ae4e8c4f849ba5e668430d8df9be12"
    body = loaded(PIPEDRIVE_DEAL, custom_fields={key: {"value": 2300, "currency": "EUR"}})
    change = pipedrive_deal("315", body, (key, "origin", "channel"))
    assert change.fields.properties == {key: "2300", "origin": "ManuallyCreated"}


def test_a_salesforce_record_carries_its_chosen_fields_by_api_name() -> None:
    change = salesforce_deal("0065g00000Xk1AaAAJ", loaded(SALESFORCE_OPPORTUNITY),
                             ("Type", "FiscalQuarter", "IsPrivate", "Description", "LeadSource"))
    assert change.fields.properties == {"Type": "New Customer", "FiscalQuarter": "4", "IsPrivate": "false"}


def test_a_chosen_value_too_long_is_left_out_and_reported() -> None:
    change = hubspot_deal("1", loaded(HUBSPOT_DEAL, segment="s" * 501), ("segment",))
    assert change.fields.properties == {}
    assert change.ignored == ("properties.segment: is longer than 500 characters (501); left out, not cut",)
