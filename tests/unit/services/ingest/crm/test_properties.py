"""The CRM properties a tenant chose to carry: valid names, and each value as the contract's text or left out."""

from __future__ import annotations

import doctest
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from services.ingest.crm import properties as properties_module
from services.ingest.crm.model import PayloadError
from services.ingest.crm.properties import MAX_PROPERTIES, MAX_VALUE, as_text, carried, invalid_names
from shared.events import Properties


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(properties_module).failed == 0


@pytest.mark.parametrize("name", ["hs_lead_source", "Segment__c", "dcf558aac1ae4e8c4f849ba5e668430d8df9be12",
                                  "0_first", "a.b:c-d", "x" * 100])
def test_crm_names_of_every_vendor_are_valid_property_names(name: str) -> None:
    assert invalid_names([name]) == []


@pytest.mark.parametrize("name", ["", "lead source", "-leading", ".leading", ":leading", "x" * 101, "naïve", "a/b",
                                  "a\x00b"])
def test_a_name_the_contract_refuses_is_named(name: str) -> None:
    assert invalid_names(["fine", name]) == [name]


def test_the_limits_are_the_contracts() -> None:
    adapter = TypeAdapter(Properties)
    adapter.validate_python({f"p{n}": "v" * MAX_VALUE for n in range(MAX_PROPERTIES)})
    with pytest.raises(ValidationError):
        adapter.validate_python({f"p{n}": "v" for n in range(MAX_PROPERTIES + 1)})
    with pytest.raises(ValidationError):
        adapter.validate_python({"p": "v" * (MAX_VALUE + 1)})


@pytest.mark.parametrize(("value", "text"), [
    ("EMEA", "EMEA"), (" padded ", " padded "), (40, "40"), (-3, "-3"), (Decimal("1200.50"), "1200.50"),
    (Decimal("1E+3"), "1E+3"), (1.5, "1.5"), (True, "true"), (False, "false"), ("x" * MAX_VALUE, "x" * MAX_VALUE),
])  # fmt: skip
def test_values_become_text_numbers_and_booleans_as_json_writes_them(value: object, text: str) -> None:
    assert as_text(value, "where") == text


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_are_unset(value: object) -> None:
    assert as_text(value, "where") is None


@pytest.mark.parametrize(("value", "problem"), [
    ("x" * (MAX_VALUE + 1), "where: is longer than 500 characters (501); left out, not cut"),
    ({"value": 1}, "where: expected text, a number or a boolean, got dict"),
    (["a"], "where: expected text, a number or a boolean, got list"),
    ("a\x00b", "where: must not contain the NUL character"),
    ("\ud800", "where: must be valid Unicode (no lone surrogates)"),
    (Decimal("NaN"), "where: NaN is not a finite number"),
])  # fmt: skip
def test_a_value_the_contract_cannot_carry_is_refused_by_name(value: object, problem: str) -> None:
    with pytest.raises(PayloadError) as raised:
        as_text(value, "where")
    assert str(raised.value).startswith(problem)


def test_only_the_chosen_names_are_carried_and_a_bad_value_is_reported_not_cut() -> None:
    ignored: list[str] = []
    record = {"segment": "SMB", "seats": 40, "notes": "n" * 501, "region": None, "other": "not chosen"}
    found = carried(record, ["segment", "seats", "notes", "region", "missing"], "current.", ignored)
    assert found == {"segment": "SMB", "seats": "40"}
    assert ignored == ["current.notes: is longer than 500 characters (501); left out, not cut"]


def test_nothing_chosen_carries_nothing() -> None:
    assert carried({"segment": "SMB"}, [], "current.", []) == {}
