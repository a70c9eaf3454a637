"""The CRM pipeline's pure part: what a deal must differ in from the last one emitted to be published again."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.ingest.crm.model import ActivityChange
from services.ingest.crm.pipeline import _activity_from, comparable
from shared.events import DealUpserted

AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def deal(**changes: Any) -> DealUpserted:
    data = {"deal_id": "d1", "rep_id": "rep-dana", "amount": Decimal(900), "currency": "EUR", "stage": "open",
            "updated_at": AT} | changes  # fmt: skip
    return DealUpserted.model_validate(data)


# What the pipeline stored as emitted for an open deal before the forecast fields existed.
EMITTED_BEFORE = {"deal_id": "d1", "rep_id": "rep-dana", "amount": "900", "currency": "EUR", "stage": "open",
                  "stage_label": None, "created_at": None, "closed_at": None}  # fmt: skip


def test_a_deal_without_forecast_equals_what_was_emitted_before_the_forecast_fields_existed() -> None:
    assert comparable(deal()) == EMITTED_BEFORE


def test_a_forecast_field_that_became_known_makes_the_deal_differ() -> None:
    assert comparable(deal(probability=Decimal("0.4"))) == {**EMITTED_BEFORE, "probability": "0.4"}
    assert comparable(deal(probability=Decimal("0.4"))) != comparable(deal(probability=Decimal("0.5")))


def test_a_field_known_to_be_empty_before_stays_in_what_is_compared() -> None:
    assert comparable(deal(stage="won", closed_at=AT))["stage_label"] is None
    assert comparable(deal(stage_label="Contract sent")) != comparable(deal())


def test_the_version_alone_never_makes_a_deal_differ() -> None:
    assert comparable(deal(updated_at=AT.replace(hour=16))) == comparable(deal())


def test_a_deal_without_properties_equals_what_was_emitted_before_they_were_carried() -> None:
    assert comparable(deal(properties=None)) == EMITTED_BEFORE


def test_a_property_that_became_known_or_changed_makes_the_deal_differ() -> None:
    assert comparable(deal(properties={"segment": "SMB"})) == {**EMITTED_BEFORE, "properties": {"segment": "SMB"}}
    assert comparable(deal(properties={"segment": "SMB"})) != comparable(deal(properties={"segment": "Enterprise"}))


def test_a_dead_lettered_activity_keeps_its_properties_and_its_problems_are_not_counted_twice() -> None:
    change = ActivityChange(crm="pipedrive", event_id="v2:activity:9:e1", activity_id="9", changed_at=AT,
                            kind="call", owner="77", occurred_at=AT, properties={"location": "Berlin"},
                            ignored=("data.note: is longer than 500 characters (501); left out, not cut",))
    stored = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(change).items()}  # as kept
    assert _activity_from(json.dumps(stored)) == replace(change, ignored=())
