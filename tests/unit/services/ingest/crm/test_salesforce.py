"""Salesforce: the URL token and OrganizationId check, Outbound Messages and CDC events, the SOAP answers.

Fixtures are in tests/fixtures/crm/salesforce (their README names the documentation page each one mirrors).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from services.ingest.crm import salesforce
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
from services.ingest.crm.state import FieldState, merge, view
from shared.events import DealUpserted, ForecastCategory

FIXTURES = Path(__file__).parents[4] / "fixtures" / "crm" / "salesforce"
NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
URL = "https://attain.example/v1/webhooks/salesforce/acme"
TOKEN = "s3cret-token-current"
ORG_18 = "00D5g000004ZaQbEAK"  # the org of the Outbound Message fixtures
ORG_15 = ORG_18[:15]
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"  # spelled out here, not imported: the test checks the module
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(body: bytes, *, token: str | None = TOKEN, content_type: str = "text/xml; charset=utf-8") -> WebhookRequest:
    query = {} if token is None else {"token": token}
    url = URL if token is None else f"{URL}?token={token}"
    return WebhookRequest("POST", url, {"content-type": content_type}, body, query)


def cdc(name: str) -> WebhookRequest:
    return request(fixture(name), content_type="application/json")


def envelope(*notifications: str, org: str = ORG_18) -> bytes:
    """An Outbound Message as the WSDL page describes it, around the given Notification elements."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g000000CaQ2AAK</ActionId>"
        '<SessionId xsi:nil="true"/><EnterpriseUrl>https://x/c</EnterpriseUrl><PartnerUrl>https://x/u</PartnerUrl>'
        f"{''.join(notifications)}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def notification(sobject_type: str, fields: str, notification_id: str = "04l5g00000BmTz9AAF") -> str:
    return (
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{fields}</sObject></Notification>"
    )


MODIFIED = "<sf:LastModifiedDate>2026-11-05T09:00:00.000Z</sf:LastModifiedDate>"


RECORD_ID = "<sf:Id>0065g00000Xk1AaAAJ</sf:Id>"


def opportunity(extra: str = "", *, modified: str = MODIFIED, record_id: str = RECORD_ID) -> str:
    return notification("Opportunity", f"{record_id}{modified}{extra}")


def one(changes: list[DealChange | ActivityChange]) -> DealChange | ActivityChange:
    assert len(changes) == 1, changes
    return changes[0]


def deal(body: bytes) -> DealChange:
    change = one(salesforce.parse(request(body)))
    assert isinstance(change, DealChange)
    return change


# --- verify: the token --------------------------------------------------------------------------------------------


def test_the_current_token_is_accepted() -> None:
    salesforce.verify(request(fixture("outbound_opportunities.xml")), [Secret(TOKEN)], NOW)


def test_the_previous_secret_still_opens_the_door_during_rotation() -> None:
    secrets = [Secret("the-new-one"), Secret(TOKEN)]
    salesforce.verify(request(fixture("outbound_opportunities.xml")), secrets, NOW)


def test_a_wrong_token_is_refused() -> None:
    with pytest.raises(WebhookAuthError, match="wrong token"):
        salesforce.verify(request(fixture("outbound_opportunities.xml"), token="guess"), [Secret(TOKEN)], NOW)


def test_a_request_without_a_token_is_refused() -> None:
    with pytest.raises(WebhookAuthError, match="missing token"):
        salesforce.verify(request(fixture("outbound_opportunities.xml"), token=None), [Secret(TOKEN)], NOW)


def test_an_empty_token_is_refused_even_against_an_empty_secret() -> None:
    with pytest.raises(WebhookAuthError, match="missing token"):
        salesforce.verify(request(fixture("outbound_opportunities.xml"), token=""), [Secret("")], NOW)


def test_the_token_is_read_from_the_url_when_the_query_was_not_split_out() -> None:
    unsplit = WebhookRequest("POST", f"{URL}?token={TOKEN}", {}, fixture("outbound_opportunities.xml"))
    salesforce.verify(unsplit, [Secret(TOKEN)], NOW)


def test_a_token_with_non_ascii_characters_is_compared_not_crashed_on() -> None:
    with pytest.raises(WebhookAuthError, match="wrong token"):
        salesforce.verify(request(fixture("outbound_opportunities.xml"), token="tökén"), [Secret(TOKEN)], NOW)


# --- verify: the org ------------------------------------------------------------------------------------------------


def test_a_message_from_the_configured_org_is_accepted() -> None:
    salesforce.verify(request(fixture("outbound_opportunities.xml")), [Secret(TOKEN, org_id=ORG_18)], NOW)


def test_a_message_from_another_org_is_refused_even_with_the_right_token() -> None:
    with pytest.raises(WebhookAuthError, match="wrong OrganizationId '00D5g000009XyZwEAC'"):
        salesforce.verify(request(envelope(opportunity(), org="00D5g000009XyZwEAC")),
                          [Secret(TOKEN, org_id=ORG_18)], NOW)  # fmt: skip


@pytest.mark.parametrize(("claimed", "configured"), [(ORG_18, ORG_15), (ORG_15, ORG_18), (ORG_15, ORG_15)])
def test_the_15_and_18_character_forms_of_an_org_id_are_the_same_org(claimed: str, configured: str) -> None:
    salesforce.verify(request(envelope(opportunity(), org=claimed)), [Secret(TOKEN, org_id=configured)], NOW)


def test_org_ids_differing_only_in_case_are_different_orgs() -> None:
    with pytest.raises(WebhookAuthError, match="wrong OrganizationId"):
        salesforce.verify(request(envelope(opportunity(), org=ORG_15.lower())), [Secret(TOKEN, org_id=ORG_15)], NOW)


def test_the_org_check_uses_the_org_of_the_secret_that_matched() -> None:
    secrets = [Secret("other-tenants-token", org_id=ORG_18), Secret(TOKEN, org_id="00D5g000009XyZw")]
    with pytest.raises(WebhookAuthError, match="wrong OrganizationId"):
        salesforce.verify(request(fixture("outbound_opportunities.xml")), secrets, NOW)


def test_a_message_naming_no_org_is_refused_when_an_org_is_configured() -> None:
    body = envelope(opportunity()).replace(f"<OrganizationId>{ORG_18}</OrganizationId>".encode(), b"")
    with pytest.raises(WebhookAuthError, match="carries no OrganizationId"):
        salesforce.verify(request(body), [Secret(TOKEN, org_id=ORG_18)], NOW)


def test_an_unreadable_body_is_an_auth_failure_when_the_org_must_be_checked() -> None:
    with pytest.raises(WebhookAuthError, match="cannot read the OrganizationId: body is not well-formed XML"):
        salesforce.verify(request(b"<soapenv:Envelope"), [Secret(TOKEN, org_id=ORG_18)], NOW)


def test_without_a_configured_org_the_body_is_not_read_by_verify() -> None:
    salesforce.verify(request(b"<not-even-xml"), [Secret(TOKEN)], NOW)


def test_cdc_events_carry_no_org_so_the_token_alone_proves_the_sender() -> None:
    salesforce.verify(cdc("cdc_opportunity_update.json"), [Secret(TOKEN, org_id=ORG_18)], NOW)


def test_a_cdc_relay_naming_another_org_is_refused() -> None:
    body = b'{"OrganizationId": "00D5g000009XyZwEAC", ' + fixture("cdc_opportunity_delete.json").lstrip()[1:]
    with pytest.raises(WebhookAuthError, match="wrong OrganizationId"):
        salesforce.verify(request(body, content_type="application/json"), [Secret(TOKEN, org_id=ORG_18)], NOW)


def test_a_cdc_relay_naming_the_org_in_its_short_form_is_accepted() -> None:
    body = b'{"orgId": "' + ORG_15.encode() + b'", "data": ' + fixture("cdc_opportunity_update.json") + b"}"
    salesforce.verify(request(body, content_type="application/json"), [Secret(TOKEN, org_id=ORG_18)], NOW)


# --- Outbound Messages: Opportunity ---------------------------------------------------------------------------------


def test_one_message_with_three_notifications_gives_a_won_a_lost_and_an_open_deal() -> None:
    changes = salesforce.parse(request(fixture("outbound_opportunities.xml")))
    assert [(c.deal_id, c.fields.status, c.fields.stage) for c in changes if isinstance(c, DealChange)] == [
        ("0065g00000Xk1AaAAJ", "won", "Closed Won"),
        ("0065g00000Xk1AbAAJ", "lost", "Closed Lost"),
        ("0065g00000Xk1AcAAJ", "open", "Negotiation/Review"),
    ]


def test_an_outbound_opportunity_carries_every_deal_field_it_sends() -> None:
    won = salesforce.parse(request(fixture("outbound_opportunities.xml")))[0]
    assert won == DealChange(
        crm="salesforce",
        event_id="04l5g00000BmTr1AAF",
        deal_id="0065g00000Xk1AaAAJ",
        changed_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC),
        fields=DealFields(amount=Decimal("90000.00"), currency="EUR", stage="Closed Won", stage_label="Closed Won",
                          status="won", owner="0055g00000Ab1CdAAE", close_date=date(2026, 11, 30),
                          created_at=datetime(2026, 10, 1, 8, 15, tzinfo=UTC), name="Acme - 200 seats"),
    )  # fmt: skip


def test_amounts_are_exact_and_a_soap_double_in_exponent_form_is_written_out() -> None:
    changes = salesforce.parse(request(fixture("outbound_opportunities.xml")))
    amounts = [c.fields.amount for c in changes if isinstance(c, DealChange)]
    assert amounts == [Decimal("90000.00"), Decimal("12500.5"), Decimal("15000000")]
    assert str(amounts[2]) == "15000000"


def test_the_close_date_is_a_date_not_a_datetime() -> None:
    change = salesforce.parse(request(fixture("outbound_opportunities.xml")))[0]
    assert isinstance(change, DealChange)
    assert type(change.fields.close_date) is date


def test_a_retried_message_gives_the_same_event_ids_so_the_pipeline_sees_duplicates() -> None:
    first = salesforce.parse(request(fixture("outbound_opportunities.xml")))
    again = salesforce.parse(request(fixture("outbound_opportunities.xml")))
    assert [c.event_id for c in first] == [c.event_id for c in again] == [
        "04l5g00000BmTr1AAF", "04l5g00000BmTr2AAF", "04l5g00000BmTr3AAF",
    ]  # fmt: skip


def test_a_deleted_opportunity_is_reported_deleted_without_fields() -> None:
    change = deal(envelope(opportunity("<sf:IsDeleted>true</sf:IsDeleted><sf:Amount>5</sf:Amount>")))
    assert change.deleted
    assert change.fields == DealFields()


def test_without_last_modified_date_the_system_modstamp_orders_the_change() -> None:
    stamp = "<sf:SystemModstamp>2026-11-05T09:30:00.000Z</sf:SystemModstamp>"
    assert deal(envelope(opportunity(modified=stamp))).changed_at == datetime(2026, 11, 5, 9, 30, tzinfo=UTC)


def test_an_opportunity_that_cannot_be_ordered_is_refused_with_the_fix() -> None:
    with pytest.raises(PayloadError, match="LastModifiedDate and SystemModstamp are missing"):
        salesforce.parse(request(envelope(opportunity(modified=""))))


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ("<sf:IsClosed>true</sf:IsClosed><sf:IsWon>true</sf:IsWon>", "won"),
        ("<sf:IsClosed>true</sf:IsClosed><sf:IsWon>false</sf:IsWon>", "lost"),
        ("<sf:IsClosed>false</sf:IsClosed>", "open"),
        ("<sf:IsWon>true</sf:IsWon>", "won"),
        ("<sf:IsWon>false</sf:IsWon>", None),  # open or lost: not said
        ("<sf:IsClosed>true</sf:IsClosed>", None),  # won or lost: not said
        ("", None),
    ],
)
def test_status_is_stated_only_when_the_flags_decide_it(flags: str, status: str | None) -> None:
    assert deal(envelope(opportunity(flags))).fields.status == status


def test_nil_fields_are_absent_not_cleared() -> None:
    change = deal(envelope(opportunity('<sf:Amount xsi:nil="true"/><sf:CurrencyIsoCode xsi:nil="true"/>')))
    assert change.fields.amount is None
    assert change.fields.currency is None


def test_a_single_currency_org_sends_no_currency_and_none_is_reported() -> None:
    assert deal(envelope(opportunity("<sf:Amount>100</sf:Amount>"))).fields.currency is None


def test_other_sobjects_in_a_message_are_skipped() -> None:
    lead = notification("Lead", "<sf:Id>00Q5g00000AbCdEEAZ</sf:Id>")
    assert salesforce.parse(request(envelope(lead))) == []


def test_without_xsi_type_the_id_prefix_tells_an_opportunity() -> None:
    untyped = opportunity().replace(' xsi:type="sf:Opportunity"', "")
    assert deal(envelope(untyped)).deal_id == "0065g00000Xk1AaAAJ"


# --- Outbound Messages: the forecast --------------------------------------------------------------------------------


def test_an_open_opportunity_carries_its_probability_and_forecast_category() -> None:
    change = deal(envelope(opportunity("<sf:IsClosed>false</sf:IsClosed><sf:CloseDate>2027-03-31</sf:CloseDate>"
                                       "<sf:Probability>75</sf:Probability>"
                                       "<sf:ForecastCategoryName>Best Case</sf:ForecastCategoryName>")))
    assert (change.fields.close_date, change.fields.probability, change.fields.forecast_category) == (
        date(2027, 3, 31), Decimal("0.75"), "best_case")
    assert change.fields.expected_close is None  # the close date is the expected one: mapping.py
    assert change.ignored == ()


@pytest.mark.parametrize(
    ("name", "category"),
    [("Pipeline", "pipeline"), ("Best Case", "best_case"), ("Commit", "commit"), ("Omitted", "omitted"),
     ("Closed", None)],
)  # fmt: skip
def test_forecast_category_names_map_to_the_contracts_and_closed_to_none(name: str, category: str | None) -> None:
    change = deal(envelope(opportunity(f"<sf:ForecastCategoryName>{name}</sf:ForecastCategoryName>")))
    assert (change.fields.forecast_category, change.ignored) == (category, ())


@pytest.mark.parametrize(("percent", "probability"), [("10", "0.10"), ("0", "0.00"), ("100", "1.00"), ("12.5", "0.125"),
                                                      ("33.33333", "0.3333")])  # fmt: skip
def test_the_probability_percentage_becomes_0_to_1_with_at_most_four_places(percent: str, probability: str) -> None:
    change = deal(envelope(opportunity(f"<sf:Probability>{percent}</sf:Probability>")))
    assert str(change.fields.probability) == probability


def test_a_nil_probability_is_not_in_the_delivery() -> None:
    change = deal(envelope(opportunity('<sf:Probability xsi:nil="true"/>')))
    assert (change.fields.probability, change.ignored) == (None, ())


@pytest.mark.parametrize(
    ("field", "problem"),
    [("<sf:Probability>150</sf:Probability>", "Probability: 150 is not between 0 and 100"),
     ("<sf:Probability>lots</sf:Probability>", "Probability: 'lots' is not a number"),
     ("<sf:ForecastCategoryName>Upside</sf:ForecastCategoryName>",
      "ForecastCategoryName: 'Upside' is not a forecast category we map")],
)  # fmt: skip
def test_a_bad_forecast_value_is_left_out_and_reported_not_a_refused_message(field: str, problem: str) -> None:
    change = deal(envelope(opportunity(f"<sf:Amount>500</sf:Amount>{field}")))
    assert change.fields == DealFields(amount=Decimal(500))
    assert len(change.ignored) == 1
    assert change.ignored[0].startswith(f"Notification 04l5g00000BmTz9AAF: {problem}")


# --- Outbound Messages: Task and Event -----------------------------------------------------------------------------


def test_a_logged_call_becomes_a_call_on_its_opportunity() -> None:
    change = one(salesforce.parse(request(fixture("outbound_task_call.xml"))))
    assert change == ActivityChange(
        crm="salesforce",
        event_id="04l5g00000BmTs1AAF",
        activity_id="00T5g00000Qw3ErEAJ",
        changed_at=datetime(2026, 11, 5, 10, 13, tzinfo=UTC),
        kind="call",
        owner="0055g00000Ab1CdAAE",
        occurred_at=datetime(2026, 11, 5, 10, 12, tzinfo=UTC),
        deal_id="0065g00000Xk1AcAAJ",
        duration_s=420,
    )


def test_an_event_becomes_a_meeting_with_its_duration_in_seconds_and_no_deal_when_on_an_account() -> None:
    change = one(salesforce.parse(request(fixture("outbound_event_meeting.xml"))))
    assert isinstance(change, ActivityChange)
    assert (change.kind, change.occurred_at, change.duration_s, change.deal_id) == (
        "meeting", datetime(2026, 11, 6, 14, 0, tzinfo=UTC), 2700, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ("<sf:TaskSubtype>Email</sf:TaskSubtype>", "email"),
        ("<sf:TaskSubtype>Task</sf:TaskSubtype>", "task"),
        ("<sf:TaskSubtype>ListEmail</sf:TaskSubtype>", "other"),
        ("<sf:TaskSubtype>Cadence</sf:TaskSubtype>", "other"),
        ("<sf:Type>Call</sf:Type>", "call"),  # an org sending no TaskSubtype
        ("", "task"),
    ],
)
def test_a_task_kind_follows_its_subtype(fields: str, kind: str) -> None:
    task = notification("Task", f"<sf:Id>00T5g00000Qw3EsEAJ</sf:Id>{fields}"
                                "<sf:CreatedDate>2026-11-05T10:00:00.000Z</sf:CreatedDate>")  # fmt: skip
    change = one(salesforce.parse(request(envelope(task))))
    assert isinstance(change, ActivityChange)
    assert change.kind == kind


def test_an_open_task_occurs_at_noon_utc_of_its_activity_date() -> None:
    task = notification("Task", "<sf:Id>00T5g00000Qw3EsEAJ</sf:Id><sf:ActivityDate>2026-11-09</sf:ActivityDate>"
                                "<sf:CreatedDate>2026-11-05T10:00:00.000Z</sf:CreatedDate>")  # fmt: skip
    change = one(salesforce.parse(request(envelope(task))))
    assert isinstance(change, ActivityChange)
    assert change.occurred_at == datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
    assert change.changed_at == datetime(2026, 11, 5, 10, 0, tzinfo=UTC)  # no LastModifiedDate: CreatedDate


def test_a_deleted_task_is_skipped() -> None:
    task = notification("Task", "<sf:Id>00T5g00000Qw3EsEAJ</sf:Id><sf:IsDeleted>true</sf:IsDeleted>")
    assert salesforce.parse(request(envelope(task))) == []


def test_an_activity_without_any_time_is_refused() -> None:
    with pytest.raises(PayloadError, match="CreatedDate is missing"):
        salesforce.parse(request(envelope(notification("Event", "<sf:Id>00U5g00000Lm9PrEAJ</sf:Id>"))))


# --- Outbound Messages: refused bodies -----------------------------------------------------------------------------


def test_a_billion_laughs_document_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadError, match="DOCTYPE/ENTITY declarations are refused"):
        salesforce.parse(request(fixture("outbound_billion_laughs.xml")))


def test_an_external_entity_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>'
    with pytest.raises(PayloadError, match="refused"):
        salesforce.parse(request(body))


def test_a_doctype_hidden_in_utf_16_is_refused_by_the_parser() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'.encode("utf-16-le")
    assert b"DOCTYPE" not in body  # the pre-scan cannot see it
    with pytest.raises(PayloadError, match="DOCTYPE declarations are refused"):
        salesforce.parse(request(body))


def test_truncated_xml_is_refused() -> None:
    body = fixture("outbound_opportunities.xml")
    with pytest.raises(PayloadError, match="not well-formed XML"):
        salesforce.parse(request(body[: len(body) // 2]))


def test_xml_that_is_not_a_soap_envelope_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"not a SOAP 1\.1 envelope"):
        salesforce.parse(request(b"<notifications/>"))


def test_a_soap_envelope_without_notifications_is_refused() -> None:
    body = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><other/></e:Body></e:Envelope>'
    with pytest.raises(PayloadError, match="not an Outbound Message"):
        salesforce.parse(request(body))


def test_notifications_without_a_notification_are_refused() -> None:
    with pytest.raises(PayloadError, match="holds no Notification"):
        salesforce.parse(request(envelope()))


def test_a_notification_without_an_id_is_refused() -> None:
    with pytest.raises(PayloadError, match="Notification 2 has no Id"):
        salesforce.parse(request(envelope(opportunity(), opportunity().replace("<Id>04l5g00000BmTz9AAF</Id>", ""))))


def test_a_record_without_an_id_is_refused() -> None:
    with pytest.raises(PayloadError, match="Notification 04l5g00000BmTz9AAF: Id is missing"):
        salesforce.parse(request(envelope(opportunity(record_id=""))))


@pytest.mark.parametrize("amount", ["abc", "1,000", "NaN", "Infinity", "1_000", ""])
def test_a_bad_amount_is_refused_by_name(amount: str) -> None:
    if not amount:
        assert deal(envelope(opportunity("<sf:Amount></sf:Amount>"))).fields.amount is None  # empty: not sent
        return
    with pytest.raises(PayloadError, match="Amount is not a number"):
        salesforce.parse(request(envelope(opportunity(f"<sf:Amount>{amount}</sf:Amount>"))))


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("<sf:CloseDate>30.11.2026</sf:CloseDate>", "CloseDate is not a date"),
        ("<sf:CreatedDate>2026-11-05T09:00:00</sf:CreatedDate>", "CreatedDate has no UTC offset"),
        ("<sf:IsWon>yes</sf:IsWon>", "IsWon is not a boolean"),
        ("<sf:CurrencyIsoCode>euro</sf:CurrencyIsoCode>", "CurrencyIsoCode is not an ISO 4217 code"),
    ],
)
def test_a_bad_field_value_is_refused_by_name(field: str, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        salesforce.parse(request(envelope(opportunity(field))))


@pytest.mark.parametrize(("body", "problem"), [(b"", "empty body"), (b"   \n", "empty body"),
                                               (b"hello", "neither an Outbound Message")])  # fmt: skip
def test_a_body_that_is_neither_xml_nor_json_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        salesforce.parse(request(body))


# --- Change Data Capture -------------------------------------------------------------------------------------------


def test_a_cdc_create_in_a_cometd_envelope_carries_all_its_fields() -> None:
    change = one(salesforce.parse(cdc("cdc_opportunity_create.json")))
    assert change == DealChange(
        crm="salesforce",
        event_id="0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e001:1:0065g00000Xk1AdAAJ",
        deal_id="0065g00000Xk1AdAAJ",
        changed_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC),
        fields=DealFields(amount=Decimal("42000.5"), currency="EUR", stage="Prospecting", stage_label="Prospecting",
                          status="open", owner="0055g00000Ab1CdAAE", close_date=date(2026, 12, 15),
                          created_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC), name="Umbrella - pilot"),
    )  # fmt: skip


def test_a_cdc_update_carries_only_the_changed_fields() -> None:
    change = one(salesforce.parse(cdc("cdc_opportunity_update.json")))
    assert isinstance(change, DealChange)
    assert change.fields == DealFields(stage="Closed Won", stage_label="Closed Won", status="won")
    assert change.changed_at == datetime(2026, 11, 20, 15, 42, 10, tzinfo=UTC)  # commitTimestamp
    assert not change.deleted


def test_a_cdc_delete_reports_the_deal_deleted() -> None:
    change = one(salesforce.parse(cdc("cdc_opportunity_delete.json")))
    assert isinstance(change, DealChange)
    assert (change.deal_id, change.deleted, change.fields) == ("0065g00000Xk1AdAAJ", True, DealFields())


def test_a_cdc_undelete_brings_the_deal_back_with_its_fields() -> None:
    body = fixture("cdc_opportunity_create.json").replace(b'"CREATE"', b'"UNDELETE"')
    change = one(salesforce.parse(request(body, content_type="application/json")))
    assert isinstance(change, DealChange)
    assert (change.deleted, change.fields.amount) == (False, Decimal("42000.5"))


def test_a_gap_event_is_a_change_without_fields_for_the_pipeline_to_fetch() -> None:
    change = one(salesforce.parse(cdc("cdc_opportunity_gap.json")))
    assert isinstance(change, DealChange)
    assert (change.fields, change.deleted) == (DealFields(), False)
    assert change.changed_at == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def test_a_gap_delete_still_says_the_deal_is_gone() -> None:
    body = fixture("cdc_opportunity_gap.json").replace(b'"GAP_UPDATE"', b'"GAP_DELETE"')
    change = one(salesforce.parse(request(body, content_type="application/json")))
    assert isinstance(change, DealChange)
    assert change.deleted


def test_a_list_of_events_gives_one_change_per_record_and_skips_other_entities_and_overflow() -> None:
    changes = salesforce.parse(cdc("cdc_batch.json"))
    assert [(c.event_id, c.deal_id) for c in changes] == [
        ("0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e0d1:1:0065g00000Xk1AeAAJ", "0065g00000Xk1AeAAJ"),
        ("0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e0d1:1:0065g00000Xk1AfAAJ", "0065g00000Xk1AfAAJ"),
        ("0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e0d3:2:0065g00000Xk1AgAAJ", "0065g00000Xk1AgAAJ"),
    ]
    assert all(isinstance(c, DealChange) and c.fields.owner == "0055g00000Ab1CeAAE" for c in changes[:2])


def test_a_pub_sub_event_reads_epoch_dates_and_treats_its_nulls_as_not_sent() -> None:
    change = salesforce.parse(cdc("cdc_batch.json"))[2]
    assert isinstance(change, DealChange)
    assert change.fields == DealFields(amount=Decimal("77000.25"), close_date=date(2027, 1, 2))


def _cdc_body(name: str, **fields: Any) -> bytes:
    body = json.loads(fixture(name))
    payload = body["data"]["payload"] if "data" in body else body["payload"]
    payload.update(fields)
    return json.dumps(body).encode()


def test_a_cdc_create_reads_the_forecast_from_json_numbers() -> None:
    body = _cdc_body("cdc_opportunity_create.json", Probability=20, ForecastCategoryName="Pipeline")
    change = one(salesforce.parse(request(body, content_type="application/json")))
    assert isinstance(change, DealChange)
    assert (change.fields.probability, change.fields.forecast_category) == (Decimal("0.20"), "pipeline")


def test_a_cdc_update_of_the_probability_alone_carries_only_the_probability() -> None:
    body = _cdc_body("cdc_opportunity_update.json", StageName=None, IsClosed=None, IsWon=None, Probability=60)
    change = one(salesforce.parse(request(body, content_type="application/json")))
    assert isinstance(change, DealChange)
    assert change.fields == DealFields(probability=Decimal("0.60"))


def test_a_cdc_update_without_forecast_fields_keeps_the_last_known_ones() -> None:
    created = one(salesforce.parse(request(_cdc_body("cdc_opportunity_create.json", Probability=20,
                                                     ForecastCategoryName="Commit"),
                                           content_type="application/json")))  # fmt: skip
    renamed = one(salesforce.parse(request(_cdc_body("cdc_opportunity_update.json", StageName="Qualification",
                                                     IsClosed=False, IsWon=False),
                                           content_type="application/json")))  # fmt: skip
    state: FieldState = {}
    for change in (created, renamed):
        assert isinstance(change, DealChange)
        state = merge(state, change)
    tenant = TenantMaps("salesforce", "Europe/Berlin", "EUR", users={"0055g00000Ab1CdAAE": "rep-kim"})
    data = deal_data("0065g00000Xk1AdAAJ", view(state), tenant, renamed.changed_at)
    assert isinstance(data, DealUpserted)
    assert (data.stage, data.stage_label, data.probability, data.forecast_category) == (
        "open", "Qualification", Decimal("0.20"), ForecastCategory.COMMIT)
    assert data.expected_close_at == datetime(2026, 12, 14, 23, 0, tzinfo=UTC)  # CloseDate Dec 15, Berlin midnight


def test_a_bad_cdc_probability_is_left_out_and_the_rest_of_the_event_counts() -> None:
    body = _cdc_body("cdc_opportunity_create.json", Probability=150)
    change = one(salesforce.parse(request(body, content_type="application/json")))
    assert isinstance(change, DealChange)
    assert (change.fields.amount, change.fields.probability) == (Decimal("42000.5"), None)
    assert change.ignored == ("change event 1 (0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e001:1): Probability: 150 is not"
                              " between 0 and 100",)


def test_a_wildcard_record_id_names_no_deal() -> None:
    body = fixture("cdc_opportunity_update.json").replace(b'"0065g00000Xk1AdAAJ"', b'"006*"')
    assert salesforce.parse(request(body, content_type="application/json")) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"ChangeEventHeader": ', "not valid JSON"),
        (b'{"Amount": NaN, "ChangeEventHeader": {}}', "NaN is not a number"),
        (b'{"payload": {"Amount": 1}}', "change event 1: not a change event"),
        (b"[1]", "change event 1: not a change event"),
        (b'{"ChangeEventHeader": []}', "ChangeEventHeader is not an object"),
        (b'{"ChangeEventHeader": {"entityName": "Opportunity", "changeType": "SNAPSHOT"}}', "not a documented"),
        (b'{"ChangeEventHeader": {"entityName": "Opportunity", "changeType": "DELETE", "recordIds": ["006x"]}}',
         "commitTimestamp, transactionKey and sequenceNumber are required"),
        (b'{"ChangeEventHeader": {"entityName": "Opportunity", "changeType": "DELETE", "transactionKey": "t",'
         b' "sequenceNumber": 1, "commitTimestamp": 1, "recordIds": "006x"}}', "recordIds is not a list"),
        (b"[" * 100_000, "nested too deeply|not valid JSON"),
    ],
)  # fmt: skip
def test_a_malformed_change_event_is_refused_with_what_is_wrong(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        salesforce.parse(request(body, content_type="application/json"))


def test_a_bad_cdc_amount_names_the_event_and_the_field() -> None:
    body = fixture("cdc_opportunity_create.json").replace(b"42000.5", b'"lots"')
    with pytest.raises(PayloadError, match=r"change event 1 \(0002f6c4-.*:1\): Amount is not a number"):
        salesforce.parse(request(body, content_type="application/json"))


# --- answers -------------------------------------------------------------------------------------------------------


def test_the_ack_is_a_soap_notifications_response_with_ack_true() -> None:
    body, content_type = salesforce.ack()
    root = ElementTree.fromstring(body)
    ack = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notificationsResponse/{{{OUTBOUND}}}Ack")
    assert ack is not None
    assert ack.text == "true"
    assert content_type == "text/xml; charset=utf-8"


def test_a_fault_is_valid_soap_with_the_message_escaped() -> None:
    body, content_type = salesforce.nack_fault("Amount <bad> & worse\x00")
    root = ElementTree.fromstring(body)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soapenv:Client"
    assert fault.findtext("faultstring") == "Amount <bad> & worse\ufffd"
    assert content_type == "text/xml; charset=utf-8"


def test_the_crm_name_is_salesforce() -> None:
    assert salesforce.CRM == "salesforce"


# --- the CRM properties the tenant carries ---------------------------------------------------------------------------

CHOSEN = ("LeadSource", "Segment__c", "Seats__c", "Status")


def test_an_outbound_opportunity_carries_the_chosen_fields_it_sends_as_soap_text() -> None:
    body = envelope(opportunity("<sf:LeadSource>Web</sf:LeadSource><sf:Segment__c>SMB</sf:Segment__c>"
                                '<sf:Seats__c xsi:nil="true"/><sf:Description>not chosen</sf:Description>'))
    change = one(salesforce.parse(request(body), CHOSEN))
    assert isinstance(change, DealChange)
    assert change.fields.properties == {"LeadSource": "Web", "Segment__c": "SMB"}  # nil: not in this delivery


def test_without_a_choice_no_field_is_carried() -> None:
    body = envelope(opportunity("<sf:LeadSource>Web</sf:LeadSource>"))
    assert deal(body).fields.properties == {}


def test_an_outbound_task_carries_its_chosen_fields() -> None:
    change = one(salesforce.parse(request(fixture("outbound_task_call.xml")), CHOSEN))
    assert isinstance(change, ActivityChange)
    assert (change.properties, change.ignored) == ({"Status": "Completed"}, ())


def test_a_chosen_field_too_long_is_left_out_and_reported_and_the_opportunity_still_counts() -> None:
    body = envelope(opportunity(f"<sf:Segment__c>{'x' * 501}</sf:Segment__c><sf:Amount>100</sf:Amount>"))
    change = one(salesforce.parse(request(body), CHOSEN))
    assert isinstance(change, DealChange)
    assert (change.fields.amount, change.fields.properties) == (Decimal(100), {})
    assert change.ignored == ("Notification 04l5g00000BmTz9AAF: Segment__c: is longer than 500 characters (501);"
                              " left out, not cut",)


def test_a_cdc_event_carries_json_numbers_and_booleans_as_json_text() -> None:
    body = _cdc_body("cdc_opportunity_create.json", Seats__c=40, Segment__c="SMB", LeadSource=None)
    change = one(salesforce.parse(request(body, content_type="application/json"), (*CHOSEN, "IsClosed")))
    assert isinstance(change, DealChange)
    assert change.fields.properties == {"Segment__c": "SMB", "Seats__c": "40", "IsClosed": "false"}


def test_a_cdc_update_of_one_chosen_field_keeps_the_others() -> None:
    created = one(salesforce.parse(request(_cdc_body("cdc_opportunity_create.json", LeadSource="Web",
                                                     Segment__c="SMB"), content_type="application/json"), CHOSEN))
    changed = one(salesforce.parse(request(_cdc_body("cdc_opportunity_update.json", Segment__c="Enterprise"),
                                           content_type="application/json"), CHOSEN))
    assert isinstance(changed, DealChange) and changed.fields.properties == {"Segment__c": "Enterprise"}
    state: FieldState = {}
    for change in (created, changed):
        assert isinstance(change, DealChange)
        state = merge(state, change)
    tenant = TenantMaps("salesforce", "Europe/Berlin", "EUR", users={"*": "="}, properties=CHOSEN)
    data = deal_data("0065g00000Xk1AdAAJ", view(state), tenant, changed.changed_at)
    assert isinstance(data, DealUpserted)
    assert data.properties == {"LeadSource": "Web", "Segment__c": "Enterprise"}
