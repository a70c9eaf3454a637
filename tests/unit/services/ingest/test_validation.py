"""Ingest validation: reading a request body, and judging each item against the contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.ingest.validation import NDJSON, BodyError, judge, judge_line, parse_body
from shared.events import (
    ActivityLoggedEvent,
    DealDeletedEvent,
    DealUpsertedEvent,
    ForecastCategory,
    RepUpsertedEvent,
    TargetSetEvent,
)

AT = "2026-11-05T09:00:00Z"
TYPES = ["deal.upserted", "deal.deleted", "activity.logged", "rep.upserted", "target.set"]


def _event(type_: str, data: dict[str, Any], event_id: str = "evt-1") -> dict[str, Any]:
    return {"type": type_, "id": event_id, "source": "hubspot", "time": AT, "data": data}


def deal(**changes: Any) -> dict[str, Any]:
    data = {"deal_id": "d1", "rep_id": "r1", "amount": "90000", "currency": "EUR", "stage": "won",
            "closed_at": AT, "updated_at": AT}  # fmt: skip
    data.update(changes)
    return _event("deal.upserted", data)


def deleted() -> dict[str, Any]:
    return _event("deal.deleted", {"deal_id": "d1", "updated_at": AT})


def activity() -> dict[str, Any]:
    return _event("activity.logged", {"activity_id": "a1", "rep_id": "r1", "kind": "call", "occurred_at": AT,
                                      "duration_s": 60})  # fmt: skip


def rep(**changes: Any) -> dict[str, Any]:
    data = {"rep_id": "r1", "name": "Ann Lee", "team_id": "team-a", "manager_id": "m1",
            "timezone": "Europe/Berlin"}  # fmt: skip
    data.update(changes)
    return _event("rep.upserted", data)


def target(**changes: Any) -> dict[str, Any]:
    data = {"scope": "rep", "scope_id": "r1", "metric": "won_revenue", "period": "2026-Q4", "value": "90000"}
    data.update(changes)
    return _event("target.set", data)


def _body(*items: Any) -> bytes:
    return json.dumps(list(items)).encode()


# --- parse_body -------------------------------------------------------------------------------


def test_a_single_object_body_gives_one_item() -> None:
    assert parse_body(json.dumps(deal()).encode(), "application/json", 10) == [deal()]


def test_a_json_array_body_gives_its_items_in_order() -> None:
    assert parse_body(_body(deal(), rep(), target()), "application/json", 10) == [deal(), rep(), target()]


def test_ndjson_body_gives_one_item_per_non_blank_line() -> None:
    body = f"{json.dumps(deal())}\n\n{json.dumps(rep())}\r\n{json.dumps(target())}\n".encode()
    assert parse_body(body, NDJSON, 10) == [deal(), rep(), target()]


def test_ndjson_content_type_may_carry_parameters_and_any_case() -> None:
    body = f"{json.dumps(deal())}\n{json.dumps(rep())}".encode()
    assert parse_body(body, "Application/X-NDJSON; charset=utf-8", 10) == [deal(), rep()]


def test_ndjson_lines_are_not_read_as_one_json_document_without_the_ndjson_content_type() -> None:
    body = f"{json.dumps(deal())}\n{json.dumps(rep())}".encode()
    with pytest.raises(BodyError, match="malformed JSON"):
        parse_body(body, "application/json", 10)


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\r\n\t"])
@pytest.mark.parametrize("content_type", ["application/json", NDJSON])
def test_an_empty_body_is_rejected_saying_what_to_send(body: bytes, content_type: str) -> None:
    with pytest.raises(BodyError, match="the body is empty"):
        parse_body(body, content_type, 10)


def test_a_body_that_is_not_utf8_is_rejected_naming_the_byte() -> None:
    with pytest.raises(BodyError, match=r"not UTF-8 \(byte 6\)"):
        parse_body(b'{"id":\xff}', "application/json", 10)


def test_malformed_json_is_rejected_naming_line_and_column() -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(b'{"id": "e1",\n  "type": }', "application/json", 10)
    message = str(caught.value)
    assert message.startswith("malformed JSON: Expecting value")
    assert "line 2 column 11" in message


def test_a_bad_ndjson_line_is_rejected_naming_its_line_number_and_column() -> None:
    body = f'{json.dumps(deal())}\n\n{{"id": \n{json.dumps(rep())}'.encode()
    with pytest.raises(BodyError, match=r"^line 3 is not valid JSON: Expecting value \(column 8\)$"):
        parse_body(body, NDJSON, 10)


def test_ndjson_lines_are_split_only_at_newlines_not_at_unicode_line_separators() -> None:
    # JSON allows U+2028 / U+2029 / U+0085 raw inside strings (JSON.stringify and
    # json.dumps(ensure_ascii=False) emit them); NDJSON separates records with "\n" only.
    first, second = rep(name="Ann\u2028Lee\u2029Jr\x85"), target()
    body = f"{json.dumps(first, ensure_ascii=False)}\n{json.dumps(second)}".encode()
    try:
        items = parse_body(body, NDJSON, 10)
    except BodyError as err:
        pytest.fail(
            f"parse_body split an NDJSON record inside a JSON string at U+2028 (splitlines() instead of "
            f"split('\\n')); valid NDJSON rejected: {err}"
        )
    assert items == [first, second]


def test_a_body_with_more_events_than_the_limit_is_rejected_naming_count_and_limit() -> None:
    with pytest.raises(BodyError, match=r"^3 events in one request; the limit is 2$"):
        parse_body(_body(deal(), rep(), target()), "application/json", 2)


def test_an_ndjson_body_with_more_events_than_the_limit_is_rejected() -> None:
    body = "\n".join(json.dumps(item) for item in (deal(), rep(), target())).encode()
    with pytest.raises(BodyError, match="3 events in one request; the limit is 2"):
        parse_body(body, NDJSON, 2)


def test_exactly_the_limit_of_events_is_accepted() -> None:
    assert len(parse_body(_body(deal(), rep()), "application/json", 2)) == 2


def test_json_numbers_with_a_fraction_are_kept_as_their_exact_text() -> None:
    items = parse_body(b'[{"amount": 0.1}, {"amount": 1e5}, {"amount": 7}]', "application/json", 10)
    assert items == [{"amount": "0.1"}, {"amount": "1e5"}, {"amount": 7}]


def test_json_numbers_in_ndjson_are_kept_as_their_exact_text() -> None:
    assert parse_body(b'{"amount": 0.30}\n', NDJSON, 10) == [{"amount": "0.30"}]


# --- judge: valid events --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "model"),
    [
        (deal(), DealUpsertedEvent),
        (deal(stage="open", closed_at=None), DealUpsertedEvent),
        (deleted(), DealDeletedEvent),
        (activity(), ActivityLoggedEvent),
        (rep(), RepUpsertedEvent),
        (target(), TargetSetEvent),
        (target(scope="team", scope_id="team-a", metric="calls", period="2026-W48", value="40"), TargetSetEvent),
    ],
)
def test_a_valid_event_of_each_type_is_accepted_as_its_model(item: dict[str, Any], model: type) -> None:
    verdict = judge(4, item)
    assert verdict.reason is None
    assert verdict.index == 4
    assert verdict.id == "evt-1"
    assert isinstance(verdict.event, model)
    assert verdict.event.type == item["type"]


def test_unknown_fields_are_ignored() -> None:
    item = deal(win_chance="0.5")  # not `probability`: that one is the contract's now
    item["trace"] = "abc"
    assert judge(0, item).event is not None


def test_an_accepted_deal_carries_exact_decimal_and_aware_times() -> None:
    event = judge(0, deal(amount="1234.5600")).event
    assert isinstance(event, DealUpsertedEvent)
    assert event.data.amount == Decimal("1234.56")
    assert isinstance(event.data.amount, Decimal)
    assert event.data.updated_at.utcoffset() is not None


def test_an_open_deal_may_carry_its_forecast_in_json_and_in_ndjson() -> None:
    forecast = {"stage": "open", "closed_at": None, "expected_close_at": "2026-12-15T00:00:00+01:00",
                "probability": "0.35", "forecast_category": "best_case"}
    text = json.dumps(deal(**forecast)).replace('"probability": "0.35"', '"probability": 0.35')
    [item] = parse_body(text.encode(), "application/json", 10)
    for verdict in (judge(0, item), judge_line(0, text.encode(), 1)):
        assert isinstance(verdict.event, DealUpsertedEvent), verdict.reason
        data = verdict.event.data
        assert (str(data.probability), data.forecast_category) == ("0.35", ForecastCategory.BEST_CASE)
        assert data.expected_close_at == datetime(2026, 12, 14, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"probability": "1.5"}, "data.probability"), ({"probability": "-0.1"}, "data.probability"),
     ({"probability": "0.33333"}, "data.probability"), ({"forecast_category": "likely"}, "data.forecast_category"),
     ({"expected_close_at": "2026-12-15T00:00:00"}, "data.expected_close_at")],
)  # fmt: skip
def test_a_forecast_value_the_contract_refuses_is_rejected_naming_the_field(changes: dict[str, Any],
                                                                           field: str) -> None:
    reason = judge(0, deal(stage="open", closed_at=None, **changes)).reason
    assert reason is not None and reason.startswith(f"{field}: ")


# --- judge: rejections ----------------------------------------------------------------------------


def test_unknown_type_is_rejected_naming_it_and_listing_the_expected_types() -> None:
    item = deal()
    item["type"] = "deal.created"
    verdict = judge(0, item)
    assert verdict.event is None
    assert verdict.id == "evt-1"
    assert verdict.reason is not None
    assert verdict.reason.startswith("type: unknown event type 'deal.created'")
    for type_ in TYPES:
        assert repr(type_) in verdict.reason


def test_missing_type_is_rejected_as_a_required_field() -> None:
    item = deal()
    del item["type"]
    assert judge(0, item).reason == "type: field required"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (deal(), "deal_id"),
        (deal(), "rep_id"),
        (deal(), "amount"),
        (deal(), "currency"),
        (deal(), "stage"),
        (deal(), "updated_at"),
        (deleted(), "updated_at"),
        (activity(), "kind"),
        (activity(), "occurred_at"),
        (rep(), "name"),
        (rep(), "team_id"),
        (rep(), "timezone"),
        (target(), "scope"),
        (target(), "metric"),
        (target(), "period"),
        (target(), "value"),
    ],
)
def test_missing_required_field_is_rejected_naming_data_dot_field(item: dict[str, Any], field: str) -> None:
    del item["data"][field]
    verdict = judge(0, item)
    assert verdict.event is None
    assert verdict.reason == f"data.{field}: Field required"


@pytest.mark.parametrize("field", ["id", "source", "time", "data"])
def test_missing_envelope_field_is_rejected_naming_it(field: str) -> None:
    item = rep()
    del item[field]
    reason = judge(0, item).reason
    assert reason is not None
    assert reason.startswith(f"{field}: Field required")


def test_negative_amount_is_rejected_naming_the_field() -> None:
    assert judge(0, deal(amount="-1")).reason == "data.amount: Input should be greater than or equal to 0"


def test_negative_target_value_is_rejected_naming_the_field() -> None:
    reason = judge(0, target(value="-5")).reason
    assert reason is not None
    assert reason.startswith("data.value:")


@pytest.mark.parametrize("stage", ["won", "lost"])
def test_closed_deal_without_closed_at_is_rejected_saying_closed_at_is_required(stage: str) -> None:
    item = deal(stage=stage)
    del item["data"]["closed_at"]
    reason = judge(0, item).reason
    assert reason is not None
    assert reason.startswith("data.closed_at: ")
    assert f"closed_at is required when stage is {stage}" in reason


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_a_currency_that_is_not_an_iso_code_is_rejected_naming_the_field(currency: str) -> None:
    reason = judge(0, deal(currency=currency)).reason
    assert reason is not None
    assert reason.startswith("data.currency:")


@pytest.mark.parametrize("period", ["2026-Q5", "2026-13", "2026-W54", "26-Q1", "2026-q4", "Q4 2026"])
def test_a_bad_period_is_rejected_naming_the_field_and_the_period(period: str) -> None:
    reason = judge(0, target(period=period)).reason
    assert reason is not None
    assert reason.startswith("data.period:")
    assert period in reason


def test_an_unknown_timezone_in_rep_upserted_is_rejected_naming_the_field() -> None:
    reason = judge(0, rep(timezone="Mars/Olympus")).reason
    assert reason is not None
    assert reason.startswith("data.timezone:")
    assert "unknown time zone 'Mars/Olympus'" in reason


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({**rep(), "time": "2026-11-05T09:00:00"}, "time"),
        (deal(updated_at="2026-11-05T09:00:00"), "data.updated_at"),
        (deal(closed_at="2026-11-05T09:00:00"), "data.closed_at"),
        (activity(), "data.occurred_at"),
    ],
)
def test_naive_timestamps_are_rejected_naming_the_field(item: dict[str, Any], path: str) -> None:
    if path == "data.occurred_at":
        item["data"]["occurred_at"] = "2026-11-05T09:00:00"
    assert judge(0, item).reason == f"{path}: Input should have timezone info"


def test_an_unknown_enum_value_is_rejected_naming_the_field() -> None:
    reason = judge(0, deal(stage="pending")).reason
    assert reason is not None
    assert reason.startswith("data.stage:")


def test_several_problems_are_all_reported() -> None:
    reason = judge(0, deal(amount="-1", currency="eur")).reason
    assert reason is not None
    assert "data.amount:" in reason
    assert "data.currency:" in reason


@pytest.mark.parametrize("item", [[deal()], "deal.upserted", 42, None])
def test_an_item_that_is_not_an_object_is_rejected_naming_its_index(item: Any) -> None:
    verdict = judge(7, item)
    assert verdict.event is None
    assert verdict.id is None
    assert verdict.reason == "event 7 is not a JSON object"


def test_a_non_string_id_is_not_echoed_back() -> None:
    item = deal()
    item["id"] = 12
    verdict = judge(0, item)
    assert verdict.id is None
    assert verdict.reason is not None
    assert verdict.reason.startswith("id:")


# --- amounts given as JSON numbers stay exact -----------------------------------------------------


def _amount_of(raw_amount: str) -> Decimal:
    text = json.dumps(deal()).replace('"amount": "90000"', f'"amount": {raw_amount}')
    [item] = parse_body(text.encode(), "application/json", 10)
    event = judge(0, item).event
    assert isinstance(event, DealUpsertedEvent)
    return event.data.amount


def test_an_amount_given_as_a_json_number_is_the_exact_decimal_written() -> None:
    assert _amount_of("0.1") + _amount_of("0.2") == Decimal("0.3")
    assert str(_amount_of("1234.5678")) == "1234.5678"


def test_an_amount_in_exponent_notation_is_exact_and_serialises_plainly() -> None:
    amount = _amount_of("9e4")
    assert amount == Decimal("90000")
    event = judge(0, deal(amount="9E+4")).event
    assert isinstance(event, DealUpsertedEvent)
    assert event.data.model_dump(mode="json")["amount"] == "90000"


def test_a_float_artefact_amount_is_rejected_rather_than_rounded() -> None:
    text = json.dumps(deal()).replace('"amount": "90000"', '"amount": 0.30000000000000004')
    [item] = parse_body(text.encode(), "application/json", 10)
    reason = judge(0, item).reason
    assert reason is not None
    assert reason.startswith("data.amount:")
    assert "decimal places" in reason


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_amounts_are_rejected(raw: str) -> None:
    text = json.dumps(deal()).replace('"amount": "90000"', f'"amount": {raw}')
    [item] = parse_body(text.encode(), "application/json", 10)
    reason = judge(0, item).reason
    assert reason is not None
    assert reason.startswith("data.amount:")
