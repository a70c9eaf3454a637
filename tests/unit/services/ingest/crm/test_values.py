"""The shared value readers: what each accepts, what it refuses, and that every refusal names the field."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.ingest.crm import values
from services.ingest.crm.model import PayloadError

# --- JSON ------------------------------------------------------------------------------------------------------


def test_json_numbers_load_as_exact_decimals_and_integers_stay_integers() -> None:
    loaded = values.load_json(b'{"value": 98765.43, "tiny": 0.1, "big": 99999999999999999.99, "n": 42}')
    assert loaded == {"value": Decimal("98765.43"), "tiny": Decimal("0.1"),
                      "big": Decimal("99999999999999999.99"), "n": 42}  # fmt: skip
    assert isinstance(loaded, dict)
    assert str(loaded["big"]) == "99999999999999999.99"  # a float would have made it 1e+17
    assert type(loaded["n"]) is int


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_not_numbers(constant: str) -> None:
    with pytest.raises(ValueError, match=f"{constant} is not a number"):
        values.load_json(f'{{"value": {constant}}}'.encode())


def test_reject_constant_is_usable_with_the_standard_json_module() -> None:
    with pytest.raises(ValueError, match="NaN is not a number"):
        json.loads("[NaN]", parse_constant=values.reject_constant)


def test_a_json_number_no_decimal_can_hold_is_a_value_error_not_an_arithmetic_one() -> None:
    with pytest.raises(ValueError, match="out of range"):
        values.load_json(b"[1e99999999999999999999]")


@pytest.mark.parametrize("raw", [b"not json", b"", b"\xff[]", b"[1,]"])
def test_what_is_not_json_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):  # json.loads's own errors, whatever their wording
        values.load_json(raw)


def test_nesting_deeper_than_the_parser_goes_is_a_recursion_error() -> None:
    with pytest.raises(RecursionError):
        values.load_json(b"[" * 100_000)


# --- kinds and integers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [(None, "null"), (True, "bool"), ("x", "str"), ([1], "list"),
                                             ({}, "dict"), (Decimal(1), "Decimal"), (1, "int")])  # fmt: skip
def test_kind_names_the_json_type(value: object, kind: str) -> None:
    assert values.kind(value) == kind


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, True), (-5, True), (True, False), (False, False),
                                                 (1.0, False), ("1", False), (None, False)])  # fmt: skip
def test_a_bool_is_not_a_json_integer(value: object, expected: bool) -> None:
    assert values.is_integer(value) is expected


@pytest.mark.parametrize(("value", "expected"), [(42, 42), ("42", 42), (" -7 ", -7), ("+3", 3), (0, 0)])
def test_integers_come_as_json_integers_or_as_digits(value: object, expected: int) -> None:
    assert values.integer(value, "f") == expected


@pytest.mark.parametrize("value", [True, 1.5, "1.5", "1e3", "", "abc", "1" * 19, None, [1]])
def test_anything_else_is_not_an_integer(value: object) -> None:
    with pytest.raises(PayloadError, match=r"^Notification 7: CallDurationInSeconds: .* is not an integer$"):
        values.integer(value, "Notification 7: CallDurationInSeconds")


# --- text and ids ------------------------------------------------------------------------------------------------


def test_text_is_returned_as_sent() -> None:
    assert values.text("  Acme  ", "data.title") == "  Acme  "


@pytest.mark.parametrize(("value", "kind"), [("", "str"), (None, "null"), (978, "int"), (True, "bool")])
def test_text_must_be_a_non_empty_string(value: object, kind: str) -> None:
    with pytest.raises(PayloadError, match=rf"^data\.currency: expected a non-empty string, got {kind}$"):
        values.text(value, "data.currency")


@pytest.mark.parametrize("value", [None, ""])
def test_optional_text_reads_null_and_empty_as_not_set(value: object) -> None:
    assert values.optional_text(value, "data.title") is None


def test_optional_text_still_refuses_a_non_string() -> None:
    with pytest.raises(PayloadError, match=r"^data\.title: expected a non-empty string, got int$"):
        values.optional_text(5, "data.title")


@pytest.mark.parametrize(("value", "expected"), [(315, "315"), ("315", "315"), (" 0065g00000Xk1Ad ", "0065g00000Xk1Ad"),
                                                 (0, "0")])  # fmt: skip
def test_ids_are_strings_whether_sent_as_integers_or_strings(value: object, expected: str) -> None:
    assert values.identifier(value, "meta.id") == expected


@pytest.mark.parametrize(("value", "kind"), [(None, "null"), (True, "bool"), (2.5, "float"), ("  ", "str"),
                                             ({"id": 1}, "dict")])  # fmt: skip
def test_what_is_not_an_id_is_refused_by_name(value: object, kind: str) -> None:
    with pytest.raises(PayloadError, match=rf"^meta\.entity_id: expected an id \(integer or string\), got {kind}$"):
        values.identifier(value, "meta.entity_id")


# --- decimals ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [("1234.56", "1234.56"), (" 0.10 ", "0.10"), ("1E+3", "1E+3"), ("1e3", "1E+3"), (".5", "0.5"), ("5.", "5"),
     ("-0", "-0"), ("+12", "12"), (42, "42"), (Decimal("98765.43"), "98765.43"),
     ("99999999999999999.99", "99999999999999999.99")],
)  # fmt: skip
def test_decimals_are_exact_as_written(value: object, written: str) -> None:
    amount = values.decimal(value, "amount")
    assert amount == Decimal(written)
    assert str(amount) == written


@pytest.mark.parametrize("value", ["12,50", "abc", "1_000", "€100", "", "1e", "0x10", "1.2.3"])
def test_text_that_is_not_a_plain_decimal_is_not_a_number(value: str) -> None:
    with pytest.raises(PayloadError, match=rf"^current\.value: {re.escape(repr(value))} is not a number$"):
        values.decimal(value, "current.value")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "inf", "sNaN", Decimal("NaN"), Decimal("-Inf")])
def test_nan_and_infinity_are_not_finite_numbers(value: object) -> None:
    with pytest.raises(PayloadError, match=r"^current\.value: .* is not a finite number$"):
        values.decimal(value, "current.value")


@pytest.mark.parametrize(("value", "kind"), [(True, "bool"), (False, "bool"), (1.5, "float"), ([1], "list"),
                                             (None, "null"), ({}, "dict")])  # fmt: skip
def test_floats_booleans_and_other_types_are_not_amounts(value: object, kind: str) -> None:
    with pytest.raises(PayloadError, match=rf"^data\.value: expected a number, got {kind}$"):
        values.decimal(value, "data.value")


def test_an_exponent_no_decimal_holds_is_not_a_number() -> None:
    with pytest.raises(PayloadError, match="is not a number"):
        values.decimal("1e99999999999999999999", "amount")


# --- probabilities -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "percent", "expected"),
    [("0.35", False, "0.35"), (Decimal("0.6"), False, "0.6"), (0, False, "0"), (1, False, "1"), ("1.0000", False,
     "1.0000"), (40, True, "0.40"), (Decimal("12.5"), True, "0.125"), ("100", True, "1.00"), (0, True, "0.00"),
     ("-0", False, "0")],
)  # fmt: skip
def test_a_probability_is_0_to_1_as_written_and_a_percentage_is_divided_exactly(
        value: object, percent: bool, expected: str) -> None:
    assert str(values.probability(value, "probability", percent=percent)) == expected


@pytest.mark.parametrize(
    ("value", "percent", "expected"),
    [(Decimal("33.33333"), True, "0.3333"), ("66.666666", True, "0.6667"), ("0.123456", False, "0.1235"),
     ("0.33335", False, "0.3334"), ("0.33345", False, "0.3334"), ("99.995", True, "1.0000"),
     ("0.00004", False, "0.0000")],
)  # fmt: skip
def test_more_than_four_places_are_rounded_half_even_not_refused(value: object, percent: bool, expected: str) -> None:
    assert str(values.probability(value, "probability", percent=percent)) == expected


@pytest.mark.parametrize(
    ("value", "percent", "message"),
    [(150, True, "150 is not between 0 and 100"), ("1.5", False, "1.5 is not between 0 and 1"),
     (-1, True, "-1 is not between 0 and 100"), ("1E+999999999", True, "1E+999999999 is not between 0 and 100"),
     ("lots", False, "'lots' is not a number"), ("NaN", True, "'NaN' is not a finite number"), (True, False,
     "expected a number, got bool"), ("35%", True, "'35%' is not a number")],
)  # fmt: skip
def test_a_probability_out_of_range_or_not_a_number_is_refused_by_name(value: object, percent: bool,
                                                                     message: str) -> None:
    with pytest.raises(PayloadError, match=f"^data.probability: {re.escape(message)}$"):
        values.probability(value, "data.probability", percent=percent)


def test_lenient_gives_the_value_or_none_with_the_problem_noted() -> None:
    ignored: list[str] = []
    assert values.lenient(lambda: values.probability("0.5", "p"), ignored) == Decimal("0.5")
    assert values.lenient(lambda: values.probability("5", "p"), ignored) is None
    assert values.lenient(lambda: values.day("soon", "expected_close_date"), ignored) is None
    assert ignored == ["p: 5 is not between 0 and 1", "expected_close_date: 'soon' is not a YYYY-MM-DD date"]


def test_lenient_lets_anything_but_a_payload_error_through() -> None:
    def broken() -> Decimal:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        values.lenient(broken, [])


# --- currency and booleans -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "code"), [("EUR", "EUR"), (" USD ", "USD"), ("JPY", "JPY")])
def test_a_currency_is_three_capital_letters(value: str, code: str) -> None:
    assert values.currency(value, "CurrencyIsoCode") == code


@pytest.mark.parametrize("value", ["eur", "Euro", "EU", "E1R", "", None, 978, "€"])
def test_anything_else_is_not_an_iso_4217_code(value: object) -> None:
    with pytest.raises(PayloadError, match=r"^CurrencyIsoCode: .* is not an ISO 4217 code$"):
        values.currency(value, "CurrencyIsoCode")


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("true", True), (" false ", False),
                                                 ("1", True), ("0", False)])  # fmt: skip
def test_booleans_come_as_json_booleans_or_their_soap_text(value: object, expected: bool) -> None:
    assert values.boolean(value, "IsWon") is expected


@pytest.mark.parametrize("value", ["yes", "True", "", 1, 0, None])
def test_anything_else_is_not_a_boolean(value: object) -> None:
    with pytest.raises(PayloadError, match=r"^IsWon: .* is not a boolean$"):
        values.boolean(value, "IsWon")


# --- date-times and dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2026-11-07T13:14:15.250Z", datetime(2026, 11, 7, 13, 14, 15, 250_000, tzinfo=UTC)),
     ("2026-11-07T15:14:15+02:00", datetime(2026, 11, 7, 13, 14, 15, tzinfo=UTC)),
     ("2026-10-01T08:15:00.000+0000", datetime(2026, 10, 1, 8, 15, tzinfo=UTC)),  # Salesforce REST
     ("2026-11-03 10:20:30", datetime(2026, 11, 3, 10, 20, 30, tzinfo=UTC)),  # Pipedrive v1: UTC without offset
     (" 2026-11-03 ", datetime(2026, 11, 3, tzinfo=UTC)),
     (1_794_057_255, datetime(2026, 11, 7, 13, 14, 15, tzinfo=UTC)),
     (0, datetime(1970, 1, 1, tzinfo=UTC))],
)  # fmt: skip
def test_instants_are_aware_utc_from_iso_text_or_epoch_seconds(value: object, expected: datetime) -> None:
    moment = values.instant(value, "meta.timestamp")
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)
    assert moment.tzinfo is UTC


def test_an_offset_is_converted_to_utc_not_kept() -> None:
    moment = values.instant("2026-11-07T08:14:15-05:00", "when")
    assert (moment.hour, moment.tzinfo) == (13, UTC)
    assert moment == datetime(2026, 11, 7, 8, 14, 15, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [(1_762_333_201_250, values.MILLISECOND, datetime(2025, 11, 5, 9, 0, 1, 250_000, tzinfo=UTC)),
     (1_793_701_230_654_321, values.MICROSECOND, datetime(2026, 11, 3, 10, 20, 30, 654_321, tzinfo=UTC)),
     (-1, values.MILLISECOND, datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))],
)  # fmt: skip
def test_epoch_integers_count_the_given_unit(value: int, unit: timedelta, expected: datetime) -> None:
    assert values.instant(value, "occurredAt", unit=unit) == expected


def test_text_without_an_offset_can_be_refused() -> None:
    with pytest.raises(values.NoUtcOffset, match=r"^CreatedDate: '2026-11-05T09:00:00' has no UTC offset$"):
        values.instant("2026-11-05T09:00:00", "CreatedDate", naive_is_utc=False)
    assert issubclass(values.NoUtcOffset, PayloadError)
    assert values.instant("2026-11-05T09:00:00Z", "CreatedDate", naive_is_utc=False) == datetime(
        2026, 11, 5, 9, tzinfo=UTC
    )


@pytest.mark.parametrize("value", ["soon", "", "31/12/2025", "2025-13-45T00:00:00"])
def test_text_that_is_not_a_date_time_is_refused_by_name(value: str) -> None:
    with pytest.raises(PayloadError, match=rf"^data\.add_time: {re.escape(repr(value))} is not a date-time$"):
        values.instant(value, "data.add_time")


def test_an_epoch_beyond_what_a_datetime_holds_is_out_of_range() -> None:
    with pytest.raises(PayloadError, match=r"^meta\.timestamp: 100000000000000000000 is out of range$"):
        values.instant(10**20, "meta.timestamp")


@pytest.mark.parametrize(("value", "kind"), [(True, "bool"), (1.5, "float"), (Decimal(1), "Decimal"),
                                             (None, "null"), ([], "list")])  # fmt: skip
def test_other_types_are_not_date_times(value: object, kind: str) -> None:
    with pytest.raises(PayloadError, match=rf"^meta\.timestamp: expected a date-time, got {kind}$"):
        values.instant(value, "meta.timestamp")


def test_dates_are_yyyy_mm_dd() -> None:
    assert values.day("2026-11-30", "CloseDate") == date(2026, 11, 30)
    assert values.day(" 2026-11-30 ", "CloseDate") == date(2026, 11, 30)


@pytest.mark.parametrize("value", ["30.11.2026", "20261130", "2026-W48-1", "2026-02-30", "2026-11-30T00:00:00"])
def test_other_date_forms_are_refused_by_name(value: str) -> None:
    with pytest.raises(PayloadError, match=rf"^data\.due_date: {re.escape(repr(value))} is not a YYYY-MM-DD date$"):
        values.day(value, "data.due_date")


def test_a_date_that_is_not_text_is_refused_unless_epoch_days_are_expected() -> None:
    with pytest.raises(PayloadError, match=r"^data\.due_date: expected a non-empty string, got int$"):
        values.day(20_000, "data.due_date")
    assert values.day(20_000, "CloseDate", epoch_days=True) == date(2024, 10, 4)
    assert values.day(-1, "CloseDate", epoch_days=True) == date(1969, 12, 31)


def test_epoch_days_beyond_what_a_date_holds_are_out_of_range() -> None:
    with pytest.raises(PayloadError, match=r"^CloseDate: 1000000000000 is out of range$"):
        values.day(10**12, "CloseDate", epoch_days=True)


def test_every_reader_names_the_field_first() -> None:
    readers: list[tuple[Any, object]] = [
        (values.text, 1), (values.identifier, None), (values.integer, "x"), (values.decimal, "x"),
        (values.currency, "x"), (values.boolean, "x"), (values.instant, "x"), (values.day, "x"),
        (values.probability, "x"), (values.probability, 2),
    ]  # fmt: skip
    for read, bad in readers:
        with pytest.raises(PayloadError) as refused:
            read(bad, "Notification 04l5g00000BmTz9AAF: Amount")
        assert str(refused.value).startswith("Notification 04l5g00000BmTz9AAF: Amount: "), read
