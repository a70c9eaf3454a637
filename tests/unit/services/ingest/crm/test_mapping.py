"""From a deal's known state to a canonical deal, and from an activity to a canonical activity, per tenant."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args

import pytest

from services.ingest.crm.mapping import DEFAULT_STAGES, TenantMaps, activity_data, deal_data
from services.ingest.crm.model import Forecast
from services.ingest.crm.state import DealView
from shared.events import ActivityKind, ActivityLogged, DealStage, DealUpserted, ForecastCategory

VERSION = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
STAGE_AT = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def deal_view(**changes: Any) -> DealView:
    """A complete, won HubSpot deal; `changes` take fields away or alter them."""
    known: dict[str, Any] = {
        "amount": Decimal("90000.00"), "currency": "EUR", "stage": "closedwon", "stage_label": None, "status": None,
        "status_at": STAGE_AT, "owner": "910901", "close_date": datetime(2026, 11, 20, 14, 0, tzinfo=UTC),
        "created_at": datetime(2026, 10, 1, 8, 15, tzinfo=UTC), "name": "Acme renewal", "deleted": False,
        "latest": VERSION, "expected_close": None, "probability": None, "forecast_category": None,
    }  # fmt: skip
    known.update(changes)
    return DealView(**known)


def maps(crm: str = "hubspot", **changes: Any) -> TenantMaps:
    base = TenantMaps(crm=crm, timezone="Europe/Berlin", currency="EUR", users={"910901": "rep-dana"})
    return replace(base, **changes)


def upserted(view: DealView, tenant: TenantMaps | None = None) -> DealUpserted:
    data = deal_data("d1", view, tenant or maps(), VERSION)
    assert isinstance(data, DealUpserted), data
    return data


def reasons(view: DealView, tenant: TenantMaps | None = None) -> list[str]:
    data = deal_data("d1", view, tenant or maps(), VERSION)
    assert isinstance(data, list), data
    return data


# --- complete deals ------------------------------------------------------------------------------------------------


def test_a_complete_deal_becomes_a_canonical_deal() -> None:
    deal = upserted(deal_view())
    assert deal == DealUpserted(deal_id="d1", rep_id="rep-dana", amount=Decimal("90000.00"), currency="EUR",
                                stage=DealStage.WON, stage_label="closedwon",
                                created_at=datetime(2026, 10, 1, 8, 15, tzinfo=UTC),
                                closed_at=datetime(2026, 11, 20, 14, 0, tzinfo=UTC), updated_at=VERSION)  # fmt: skip


def test_the_tenant_currency_fills_in_when_the_crm_sent_none() -> None:
    assert upserted(deal_view(currency=None), maps(currency="USD")).currency == "USD"


def test_the_stage_label_is_preferred_to_the_stage_id() -> None:
    assert upserted(deal_view(stage_label="Closed won")).stage_label == "Closed won"


def test_an_open_deal_has_no_close_time_even_with_a_close_date() -> None:
    deal = upserted(deal_view(stage="appointmentscheduled", close_date=date(2026, 12, 31)))
    assert (deal.stage, deal.closed_at) == (DealStage.OPEN, None)


# --- what is missing ---------------------------------------------------------------------------------------------


def test_a_deal_without_amount_stage_and_owner_gives_one_reason_per_field() -> None:
    assert reasons(deal_view(amount=None, stage=None, owner=None, status=None)) == [
        "amount: not received yet",
        "stage: not received yet",
        "owner: not received yet",
    ]


@pytest.mark.parametrize(
    ("missing", "reason"),
    [({"amount": None}, "amount: not received yet"), ({"stage": None}, "stage: not received yet"),
     ({"owner": None}, "owner: not received yet")],
)  # fmt: skip
def test_each_missing_field_is_named_alone(missing: dict[str, Any], reason: str) -> None:
    assert reasons(deal_view(**missing)) == [reason]


def test_a_stage_nobody_mapped_is_reported_as_not_mapped_with_its_crm() -> None:
    assert reasons(deal_view(stage="1234567")) == ["stage: '1234567' of hubspot is not mapped to open/won/lost"]


def test_an_owner_nobody_mapped_is_reported_with_its_crm_user_id() -> None:
    assert reasons(deal_view(owner="555")) == ["owner: hubspot user '555' is not mapped to a rep"]


# --- stages ------------------------------------------------------------------------------------------------------


def test_the_crm_status_beats_the_tenant_stage_map() -> None:
    # a Pipedrive stage is a step of the pipeline; `status` is the outcome
    tenant = maps("pipedrive", stages={"8": "lost"}, users={"4343": "rep-lee"})
    deal = upserted(deal_view(stage="8", status="won", owner="4343"), tenant)
    assert deal.stage == DealStage.WON


def test_the_tenant_stage_map_applies_when_the_crm_states_no_status() -> None:
    tenant = maps("hubspot", stages={"12345": "won"}, users={"7": "rep-lee"})
    assert upserted(deal_view(stage="12345", owner="7"), tenant).stage == DealStage.WON


def test_the_crm_status_beats_the_default_stages() -> None:
    tenant = maps("salesforce", users={"005": "rep-kim"})
    deal = upserted(deal_view(stage="Prospecting", status="won", owner="005"), tenant)
    assert DEFAULT_STAGES["salesforce"]["Prospecting"] == "open"
    assert deal.stage == DealStage.WON


def test_the_default_stages_apply_when_neither_the_tenant_nor_the_crm_says() -> None:
    assert upserted(deal_view(stage="closedlost")).stage == DealStage.LOST
    assert upserted(deal_view(stage="contractsent")).stage == DealStage.OPEN


def test_the_tenant_stage_map_beats_the_default_stages() -> None:
    assert upserted(deal_view(stage="closedwon"), maps(stages={"closedwon": "open"})).stage == DealStage.OPEN


def test_a_pipedrive_status_needs_no_stage_map() -> None:
    tenant = maps("pipedrive", users={"4343": "rep-lee"})
    assert upserted(deal_view(stage="8", status="lost", owner="4343"), tenant).stage == DealStage.LOST


def test_default_stages_belong_to_their_crm() -> None:
    assert reasons(deal_view(stage="closedwon"), maps("salesforce")) == [
        "stage: 'closedwon' of salesforce is not mapped to open/won/lost"
    ]


# --- users -------------------------------------------------------------------------------------------------------


def test_the_identity_mapping_makes_every_unlisted_crm_user_a_rep_of_the_same_id() -> None:
    tenant = maps(users={"*": "=", "910901": "rep-dana"})
    assert upserted(deal_view(owner="777"), tenant).rep_id == "777"
    assert upserted(deal_view(owner="910901"), tenant).rep_id == "rep-dana"  # a listed user keeps their rep


def test_a_star_mapped_to_anything_but_equals_is_not_the_identity() -> None:
    assert maps(users={"*": "rep-x"}).rep_of("777") is None


def test_without_an_owner_there_is_no_rep_even_with_the_identity_mapping() -> None:
    assert maps(users={"*": "="}).rep_of(None) is None


# --- close times -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "closed_at"),
    [("Europe/Berlin", datetime(2026, 11, 29, 23, 0, tzinfo=UTC)),
     ("America/New_York", datetime(2026, 11, 30, 5, 0, tzinfo=UTC)),
     ("Asia/Tokyo", datetime(2026, 11, 29, 15, 0, tzinfo=UTC)),
     ("UTC", datetime(2026, 11, 30, 0, 0, tzinfo=UTC))],
)  # fmt: skip
def test_a_close_date_is_local_midnight_in_the_tenant_zone(zone: str, closed_at: datetime) -> None:
    deal = upserted(deal_view(close_date=date(2026, 11, 30)), maps(timezone=zone))
    assert deal.closed_at == closed_at
    assert deal.closed_at is not None and deal.closed_at.utcoffset() == timedelta(0)


def test_a_close_date_in_summer_time_uses_that_day_offset() -> None:
    deal = upserted(deal_view(close_date=date(2026, 7, 1)), maps(timezone="Europe/Berlin"))
    assert deal.closed_at == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


def test_a_close_datetime_is_kept_as_an_instant_in_utc() -> None:
    close = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    assert upserted(deal_view(close_date=close), maps(timezone="Asia/Tokyo")).closed_at == close


def test_a_won_deal_without_a_close_date_closes_when_its_stage_last_changed() -> None:
    assert upserted(deal_view(close_date=None)).closed_at == STAGE_AT


def test_a_lost_deal_without_a_close_date_closes_when_its_status_last_changed() -> None:
    tenant = maps("pipedrive", users={"4343": "rep-lee"})
    deal = upserted(deal_view(stage="8", status="lost", owner="4343", close_date=None), tenant)
    assert deal.closed_at == STAGE_AT


# --- what the contract refuses -------------------------------------------------------------------------------------


def test_a_negative_amount_from_the_crm_is_a_reason_not_an_exception() -> None:
    found = reasons(deal_view(amount=Decimal("-5")))
    assert len(found) == 1
    assert found[0].startswith("amount: ")


def test_a_malformed_currency_from_the_crm_is_a_reason() -> None:
    found = reasons(deal_view(currency="euro"))
    assert len(found) == 1
    assert found[0].startswith("currency: ")


def test_an_amount_beyond_the_contract_precision_is_a_reason() -> None:
    assert reasons(deal_view(amount=Decimal("1E+30")))[0].startswith("amount: ")


# --- the forecast of an open deal ------------------------------------------------------------------------------------

OPEN = {"stage": "contractsent"}  # HubSpot's default pipeline: open


def test_the_crm_side_names_exactly_the_contracts_forecast_categories() -> None:
    assert set(get_args(Forecast)) == {category.value for category in ForecastCategory}


def test_an_open_deal_carries_its_probability_and_forecast_category() -> None:
    deal = upserted(deal_view(**OPEN, probability=Decimal("0.35"), forecast_category="best_case"))
    assert (deal.probability, deal.forecast_category) == (Decimal("0.35"), ForecastCategory.BEST_CASE)


def test_an_open_deal_without_forecast_fields_is_still_a_deal() -> None:
    deal = upserted(deal_view(**OPEN, close_date=None))
    assert (deal.stage, deal.expected_close_at, deal.probability, deal.forecast_category) == (
        DealStage.OPEN, None, None, None)


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_hubspot_and_salesforce_close_dates_of_an_open_deal_are_when_it_is_expected_to_close(crm: str) -> None:
    tenant = maps(crm, stages={"contractsent": "open"})
    close = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)
    deal = upserted(deal_view(**OPEN, close_date=close), tenant)
    assert (deal.closed_at, deal.expected_close_at) == (None, close)


def test_an_expected_close_date_alone_is_the_start_of_that_day_in_the_tenant_zone() -> None:
    berlin = upserted(deal_view(**OPEN, close_date=date(2026, 12, 31)), maps(timezone="Europe/Berlin"))
    new_york = upserted(deal_view(**OPEN, close_date=date(2026, 12, 31)), maps(timezone="America/New_York"))
    assert berlin.expected_close_at == datetime(2026, 12, 30, 23, 0, tzinfo=UTC)
    assert new_york.expected_close_at == datetime(2026, 12, 31, 5, 0, tzinfo=UTC)


def test_pipedrive_expects_the_close_from_its_own_field_not_from_an_old_close_time() -> None:
    tenant = maps("pipedrive", users={"4343": "rep-lee"})
    reopened = deal_view(stage="2", status="open", owner="4343", close_date=datetime(2026, 10, 1, 9, 0, tzinfo=UTC),
                         expected_close=date(2026, 12, 15))  # won on Oct 1, then reopened  # fmt: skip
    assert upserted(reopened, tenant).expected_close_at == datetime(2026, 12, 14, 23, 0, tzinfo=UTC)
    assert upserted(replace(reopened, expected_close=None), tenant).expected_close_at is None


@pytest.mark.parametrize("stage", ["closedwon", "closedlost"])
def test_a_closed_deal_carries_no_forecast_even_when_the_crm_knows_one(stage: str) -> None:
    deal = upserted(deal_view(stage=stage, probability=Decimal(1), forecast_category="commit",
                              expected_close=date(2026, 12, 1)))  # fmt: skip
    assert deal.closed_at is not None
    assert (deal.expected_close_at, deal.probability, deal.forecast_category) == (None, None, None)


def test_an_expected_close_the_contract_refuses_is_left_out_and_reported_and_the_deal_still_counts() -> None:
    ignored: list[str] = []
    data = deal_data("d1", deal_view(**OPEN, close_date=date(281, 11, 30), probability=Decimal("0.5")), maps(),
                     VERSION, ignored)  # fmt: skip
    assert isinstance(data, DealUpserted)
    assert (data.amount, data.expected_close_at, data.probability) == (Decimal("90000.00"), None, Decimal("0.5"))
    assert len(ignored) == 1
    assert ignored[0].startswith("expected_close_at: ") and "between 1970 and 9998" in ignored[0]


def test_an_expected_close_past_the_last_datetime_is_left_out_not_a_crash() -> None:
    ignored: list[str] = []
    data = deal_data("d1", deal_view(**OPEN, close_date=date(1, 1, 1)), maps(timezone="Asia/Tokyo"), VERSION,
                     ignored)  # midnight in Tokyo is still in year 0 in UTC  # fmt: skip
    assert isinstance(data, DealUpserted) and data.expected_close_at is None
    assert ignored == ["expected_close_at: 0001-01-01 is out of range"]


def test_a_forecast_value_the_contract_refuses_is_left_out_even_when_nobody_collects_the_report() -> None:
    data = deal_data("d1", deal_view(**OPEN, probability=Decimal("1.5"), forecast_category="closed"), maps(),
                     VERSION)  # fmt: skip
    assert isinstance(data, DealUpserted)
    assert (data.probability, data.forecast_category) == (None, None)


def test_a_bad_amount_is_still_the_reason_when_a_forecast_value_is_bad_too() -> None:
    ignored: list[str] = []
    found = deal_data("d1", deal_view(**OPEN, amount=Decimal("-5"), probability=Decimal("1.5")), maps(), VERSION,
                      ignored)  # fmt: skip
    assert isinstance(found, list)
    assert [reason.split(":")[0] for reason in found] == ["amount"]
    assert [problem.split(":")[0] for problem in ignored] == ["probability"]


# --- activities ----------------------------------------------------------------------------------------------------

OCCURRED = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)


def test_an_activity_of_a_mapped_owner_becomes_a_canonical_activity() -> None:
    data = activity_data("a1", "call", "910901", OCCURRED, "d1", 300, maps())
    assert data == ActivityLogged(activity_id="a1", rep_id="rep-dana", kind=ActivityKind.CALL, occurred_at=OCCURRED,
                                  deal_id="d1", duration_s=300)  # fmt: skip


def test_an_activity_without_a_deal_or_duration_is_still_an_activity() -> None:
    data = activity_data("a2", "meeting", "910901", OCCURRED, None, None, maps())
    assert isinstance(data, ActivityLogged)
    assert (data.kind, data.deal_id, data.duration_s) == (ActivityKind.MEETING, None, None)


def test_the_identity_mapping_applies_to_activities_too() -> None:
    data = activity_data("a3", "email", "777", OCCURRED, None, None, maps(users={"*": "="}))
    assert isinstance(data, ActivityLogged)
    assert data.rep_id == "777"


def test_an_activity_of_an_unmapped_owner_names_the_crm_user() -> None:
    assert activity_data("a4", "call", "555", OCCURRED, None, None, maps()) == [
        "owner: hubspot user '555' is not mapped to a rep"
    ]


def test_an_activity_without_an_owner_says_so() -> None:
    assert activity_data("a5", "call", None, OCCURRED, None, None, maps()) == ["owner: not received"]


def test_a_negative_activity_duration_is_a_reason_not_an_exception() -> None:
    found = activity_data("a6", "call", "910901", OCCURRED, None, -5, maps())
    assert isinstance(found, list)
    assert len(found) == 1
    assert found[0].startswith("duration_s: ")


# --- CRM properties the tenant carries -----------------------------------------------------------------------------


def test_a_deal_carries_the_chosen_properties_it_knows_and_no_others() -> None:
    view = deal_view(properties={"segment": "SMB", "lead_source": "web", "dropped": "once chosen"})
    deal = upserted(view, maps(properties=("lead_source", "segment", "never_sent")))
    assert deal.properties == {"lead_source": "web", "segment": "SMB"}


def test_without_chosen_or_known_properties_a_deal_carries_none() -> None:
    assert upserted(deal_view(properties={"segment": "SMB"})).properties is None
    assert upserted(deal_view(), maps(properties=("segment",))).properties is None


@pytest.mark.parametrize("stage", ["closedwon", "appointmentscheduled"])
def test_open_and_closed_deals_alike_carry_their_properties(stage: str) -> None:
    deal = upserted(deal_view(stage=stage, properties={"segment": "SMB"}), maps(properties=("segment",)))
    assert deal.properties == {"segment": "SMB"}


def test_an_activity_carries_the_chosen_properties() -> None:
    tenant = maps(properties=("outcome",))
    data = activity_data("a1", "call", "910901", OCCURRED, "d1", 300, tenant, {"outcome": "connected", "x": "y"})
    assert isinstance(data, ActivityLogged) and data.properties == {"outcome": "connected"}
    bare = activity_data("a2", "call", "910901", OCCURRED, None, None, tenant)
    assert isinstance(bare, ActivityLogged) and bare.properties is None
