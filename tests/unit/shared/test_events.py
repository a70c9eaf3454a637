"""The contract's event models: exact decimals on the wire, aware times, and published schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import (
    CANONICAL_DATA,
    CANONICAL_EVENT,
    ActivityLogged,
    AttainmentUpdated,
    DealStage,
    DealUpserted,
    DealUpsertedEvent,
    Evidence,
    MilestoneReached,
    RepUpserted,
    TargetSet,
    TaskCreated,
    TenantUpserted,
    json_schemas,
)

AT = datetime(2026, 11, 5, 9, tzinfo=UTC)
TYPES = ("deal.upserted", "deal.deleted", "activity.logged", "rep.upserted", "target.set",
         "team.upserted", "time_off.set")  # the contract's five; team nesting and time off (extensions)


def deal(**changes: Any) -> DealUpserted:
    fields: dict[str, Any] = {"deal_id": "d1", "rep_id": "r1", "amount": "90000", "currency": "EUR",
                              "stage": "won", "closed_at": AT, "updated_at": AT}  # fmt: skip
    fields.update(changes)
    return DealUpserted(**fields)


def attainment(**changes: Any) -> AttainmentUpdated:
    fields: dict[str, Any] = {"scope": "rep", "scope_id": "r1", "period": "2026-Q4", "metric": "won_revenue",
                              "actual": Decimal("9E+4"), "target": Decimal("1.8E+5"), "attainment": Decimal("0.5000"),
                              "expected": Decimal("45000.0000"), "pace": Decimal("2.0000"), "as_of": AT}  # fmt: skip
    fields.update(changes)
    return AttainmentUpdated(**fields)


# --- decimals on the wire ------------------------------------------------------------------------------


def test_decimals_serialise_as_plain_strings_never_exponents() -> None:
    data = attainment().model_dump(mode="json")
    assert data["actual"] == "90000"
    assert data["target"] == "180000"
    assert data["attainment"] == "0.5000"
    assert data["expected"] == "45000.0000"
    assert data["pace"] == "2.0000"


def test_model_dump_json_writes_decimals_as_plain_strings_too() -> None:
    text = attainment().model_dump_json()
    assert '"actual":"90000"' in text
    assert "E+" not in text


@pytest.mark.parametrize(
    ("amount", "wire"), [("9E+4", "90000"), ("1.5E+3", "1500"), ("0.0001", "0.0001"), ("12.50", "12.50"), ("0", "0")]
)
def test_money_keeps_its_exact_value_and_scale_on_the_wire(amount: str, wire: str) -> None:
    assert deal(amount=amount).model_dump(mode="json")["amount"] == wire


def test_decimals_stay_decimals_in_python_mode() -> None:
    assert deal(amount="9E+4").model_dump()["amount"] == Decimal("90000")
    assert isinstance(deal().model_dump()["amount"], Decimal)


def test_none_decimals_serialise_as_null() -> None:
    data = attainment(target=None, attainment=None, expected=None, pace=None).model_dump(mode="json")
    assert data["target"] is data["attainment"] is data["expected"] is data["pace"] is None


def test_a_wire_form_round_trips_to_equal_models() -> None:
    original = attainment()
    assert AttainmentUpdated.model_validate_json(original.model_dump_json()) == original


def test_derived_events_serialise_decimals_plainly() -> None:
    evidence = Evidence(metric="won_revenue", actual=Decimal("1E+4"), expected=Decimal("4.5E+4"), period="2026-11")
    task = TaskCreated(task_id="t1", rep_id="r1", manager_id=None, rule="behind_pace", severity="critical",
                       summary="s", evidence=evidence, suggested_actions=[], training=[],
                       due_at=AT)  # fmt: skip
    assert task.model_dump(mode="json")["evidence"]["actual"] == "10000"
    assert task.model_dump(mode="json")["evidence"]["expected"] == "45000"
    milestone = MilestoneReached(celebration_id="c1", scope="rep", scope_id="r1", milestone="quota_100",
                                 period="2026-Q4", value=Decimal("9E+4"), headline="h",
                                 occurred_at=AT)  # fmt: skip
    assert milestone.model_dump(mode="json")["value"] == "90000"


# --- json_schemas --------------------------------------------------------------------------------------


def test_json_schemas_cover_every_event_type_of_the_contract() -> None:
    schemas = json_schemas()
    for type_ in (*TYPES, "kpi.attainment.updated", "coaching.task.created", "recognition.milestone.reached"):
        assert type_ in schemas
        assert schemas[type_]["type"] == "object"
        assert schemas[type_]["properties"]


def test_canonical_event_schema_discriminates_on_type() -> None:
    schema = json_schemas()["canonical-event"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(TYPES)


def test_canonical_data_schemas_list_the_contracts_required_fields() -> None:
    schemas = json_schemas()
    assert set(schemas["deal.upserted"]["required"]) == {"deal_id", "rep_id", "amount", "currency", "stage",
                                                          "updated_at"}  # fmt: skip
    assert set(schemas["deal.deleted"]["required"]) == {"deal_id", "updated_at"}
    assert set(schemas["activity.logged"]["required"]) == {"activity_id", "rep_id", "kind", "occurred_at"}
    assert set(schemas["rep.upserted"]["required"]) == {"rep_id", "name", "team_id", "timezone"}
    assert set(schemas["target.set"]["required"]) == {"scope", "scope_id", "metric", "period", "value"}


def test_json_schemas_are_json_serialisable() -> None:
    assert json.loads(json.dumps(json_schemas())) == json_schemas()


def test_canonical_data_maps_each_type_to_its_data_model() -> None:
    assert set(CANONICAL_DATA) == set(TYPES)
    assert CANONICAL_DATA["deal.upserted"] is DealUpserted


# --- validation basics ---------------------------------------------------------------------------------


def test_an_open_deal_needs_no_close_date() -> None:
    assert deal(stage="open", closed_at=None).stage is DealStage.OPEN


@pytest.mark.parametrize("stage", ["won", "lost"])
def test_a_closed_deal_needs_a_close_date(stage: str) -> None:
    with pytest.raises(ValidationError, match=f"closed_at is required when stage is {stage}"):
        deal(stage=stage, closed_at=None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "-0.01"),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("amount", "0.00001"),  # more than 4 decimal places
        ("amount", "123456789012345678901"),  # more than 20 digits
        ("currency", "eur"),
        ("stage", "pending"),
        ("deal_id", ""),
        ("rep_id", "x" * 201),
        ("updated_at", datetime(2026, 11, 5, 9)),
    ],
)
def test_invalid_deal_fields_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        deal(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_aware_times_in_any_offset_are_accepted() -> None:
    moment = datetime(2026, 11, 5, 10, tzinfo=timezone(timedelta(hours=1)))
    assert deal(updated_at=moment).updated_at == AT


def test_unknown_fields_are_ignored() -> None:
    model = deal(win_chance="0.4")
    assert "win_chance" not in model.model_dump()


def test_forecast_fields_are_optional_and_checked() -> None:
    assert deal().probability is None and deal().expected_close_at is None and deal().forecast_category is None
    model = deal(probability="0.35", expected_close_at="2026-03-31T17:00:00+02:00", forecast_category="commit")
    assert model.probability == Decimal("0.35") and model.forecast_category == "commit"
    for bad in ({"probability": "1.5"}, {"probability": "-0.1"}, {"probability": "0.12345"},
                {"forecast_category": "maybe"}, {"expected_close_at": "2026-03-31T17:00:00"}):
        with pytest.raises(ValidationError):
            deal(**bad)


def test_models_are_frozen() -> None:
    model = deal()
    with pytest.raises(ValidationError):
        model.amount = Decimal("1")  # type: ignore[misc]


def test_activity_duration_cannot_be_negative() -> None:
    with pytest.raises(ValidationError):
        ActivityLogged(activity_id="a", rep_id="r", kind="call", occurred_at=AT, duration_s=-1)


def test_rep_defaults_to_active_and_needs_a_known_timezone() -> None:
    assert RepUpserted(rep_id="r", name="Ann", team_id="t", timezone="Asia/Kolkata").active is True
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Atlantis'"):
        RepUpserted(rep_id="r", name="Ann", team_id="t", timezone="Europe/Atlantis")


@pytest.mark.parametrize("period", ["2026-11", "2026-Q4", "2026-W48", "2026"])
def test_targets_accept_every_period_form(period: str) -> None:
    assert TargetSet(scope="team", scope_id="t", metric="calls", period=period, value="40").period == period


@pytest.mark.parametrize("period", ["2026-Q5", "2026-00", "2026-W60", "2026-q4", "26"])
def test_targets_reject_malformed_periods(period: str) -> None:
    with pytest.raises(ValidationError, match=period):
        TargetSet(scope="rep", scope_id="r", metric="won_revenue", period=period, value="1")


def test_a_target_names_a_built_in_metric_or_a_kpi_id_and_nothing_else() -> None:
    for name in ("won_revenue", "demos_held", "new_logo_revenue"):  # a KPI may be defined after its target
        assert TargetSet(scope="rep", scope_id="r", metric=name, period="2026", value="1").metric == name
    for bad in ("Revenue", "won-revenue", "1st", "", "x" * 41, "demos held"):
        with pytest.raises(ValidationError):
            TargetSet(scope="rep", scope_id="r", metric=bad, period="2026", value="1")


def test_records_may_carry_crm_properties_within_bounds() -> None:
    assert deal(properties={"hs_lead_source": "Webinar", "new_logo": "true"}).properties == {
        "hs_lead_source": "Webinar", "new_logo": "true"}
    for bad in ({"bad name": "x"}, {"x": "y" * 501}, {f"p{i}": "v" for i in range(51)}, {"x": "a\x00b"}, {"x": 1}):
        with pytest.raises(ValidationError):
            deal(properties=bad)


def test_the_envelope_source_must_be_a_lowercase_name() -> None:
    envelope = {"type": "deal.deleted", "id": "e", "time": AT, "data": {"deal_id": "d", "updated_at": AT}}
    assert CANONICAL_EVENT.validate_python({**envelope, "source": "hubspot"}).source == "hubspot"
    with pytest.raises(ValidationError):
        CANONICAL_EVENT.validate_python({**envelope, "source": "HubSpot"})


def test_the_canonical_adapter_picks_the_model_by_type() -> None:
    event = CANONICAL_EVENT.validate_python({"type": "deal.upserted", "id": "e", "source": "api", "time": AT,
                                             "data": deal().model_dump()})  # fmt: skip
    assert isinstance(event, DealUpsertedEvent)


REGISTRY_ENTRY: dict[str, Any] = {"tenant": "acme", "timezone": "Europe/Berlin", "currency": "EUR",
                                  "fiscal_start_month": 1, "token_sha256": "ab" * 32, "active": True}


def test_a_registry_entry_from_before_tenants_had_a_locale_reads_as_english() -> None:
    assert TenantUpserted.model_validate(REGISTRY_ENTRY).locale == "en"


def test_a_registry_entry_carries_the_tenants_locale() -> None:
    entry = TenantUpserted.model_validate({**REGISTRY_ENTRY, "locale": "de_DE"})
    assert entry.locale == "de_DE"
    assert json.loads(entry.model_dump_json())["locale"] == "de_DE"


def test_the_published_registry_schema_documents_the_locale_and_its_default() -> None:
    field = json_schemas()["tenant.upserted"]["properties"]["locale"]
    assert field["default"] == "en"
    assert "Babel" in field["description"]
    assert "locale" not in json_schemas()["tenant.upserted"].get("required", [])


def test_a_moment_periods_cannot_be_computed_for_is_refused_at_the_edge() -> None:
    """A deal closed in year 281 would be accepted and then fail in every service that counts it."""
    event = {"type": "deal.upserted", "id": "e-1", "source": "api", "time": "2026-11-01T00:00:00Z",
             "data": {"deal_id": "d", "rep_id": "r", "amount": "1", "currency": "EUR", "stage": "won",
                      "closed_at": "0281-03-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"}}
    with pytest.raises(ValidationError, match="closed_at\n  Value error, must be a moment between 1970 and 9998"):
        CANONICAL_EVENT.validate_python(event)
    event["data"]["closed_at"] = "1970-01-01T00:00:00Z"
    assert CANONICAL_EVENT.validate_python(event).data.closed_at.year == 1970
