"""The body of `PUT /v1/crm/{crm}/properties`: valid CRM property names, at most 50, each bad one named (422)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ingest.crm_api import PropertiesIn


def test_names_of_every_crm_are_taken_in_order_and_a_repeated_one_counts_once() -> None:
    body = PropertiesIn.model_validate({"properties": ["hs_lead_source", "Segment__c",
                                                      "dcf558aac1ae4e8c4f849ba5e668430d8df9be12", "hs_lead_source"]})
    assert body.properties == ["hs_lead_source", "Segment__c", "dcf558aac1ae4e8c4f849ba5e668430d8df9be12"]


def test_an_empty_list_carries_nothing() -> None:
    assert PropertiesIn.model_validate({"properties": []}).properties == []


def test_each_name_the_contract_refuses_is_named() -> None:
    with pytest.raises(ValidationError) as raised:
        PropertiesIn.model_validate({"properties": ["segment", "lead source", "-x", "fine"]})
    (error,) = raised.value.errors()
    assert error["loc"] == ("properties",)
    assert "'lead source', '-x': not a property name" in error["msg"]


def test_more_than_fifty_names_are_refused() -> None:
    PropertiesIn.model_validate({"properties": [f"p{n}" for n in range(50)]})
    with pytest.raises(ValidationError, match="at most 50 items"):
        PropertiesIn.model_validate({"properties": [f"p{n}" for n in range(51)]})


@pytest.mark.parametrize("body", [{}, {"properties": "segment"}, {"properties": [1]}, {"properties": [], "x": 1}])
def test_a_body_that_is_not_a_list_of_names_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PropertiesIn.model_validate(body)
