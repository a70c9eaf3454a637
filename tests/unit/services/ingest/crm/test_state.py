"""A deal's last known state, field by field: merge by the CRM's change time, and the view the mapping reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from services.ingest.crm.model import DealChange, DealFields
from services.ingest.crm.state import DELETED, FieldState, merge, view

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def change(minutes: int, *, deleted: bool = False, **fields: Any) -> DealChange:
    return DealChange(crm="hubspot", event_id=f"e{minutes}", deal_id="d1", changed_at=at(minutes),
                      fields=DealFields(**fields), deleted=deleted)  # fmt: skip


def merged(*changes: DealChange, state: FieldState | None = None) -> FieldState:
    result: FieldState = state if state is not None else {}
    for each in changes:
        result = merge(result, each)
    return result


def through_json(state: FieldState) -> FieldState:
    """The state as the pipeline stores it (a jsonb column) and reads it back."""
    loaded: FieldState = json.loads(json.dumps(state))
    return loaded


# --- merge ---------------------------------------------------------------------------------------------------------


def test_a_newer_value_replaces_an_older_one() -> None:
    state = merged(change(0, amount=Decimal(100)), change(5, amount=Decimal(200)))
    assert view(state).amount == Decimal(200)


def test_a_late_older_change_does_not_undo_a_newer_one() -> None:
    state = merged(change(5, amount=Decimal(200)), change(0, amount=Decimal(100)))
    assert view(state).amount == Decimal(200)


def test_the_newer_wins_per_field_not_per_change() -> None:
    state = merged(change(10, amount=Decimal(500)), change(0, stage="appointmentscheduled"))
    late = change(5, amount=Decimal(100), stage="closedwon")  # older than the amount, newer than the stage
    current = view(merge(state, late))
    assert current.amount == Decimal(500)
    assert current.stage == "closedwon"


def test_a_change_at_the_same_time_applies() -> None:
    state = merged(change(5, stage="contractsent"), change(5, stage="closedwon"))
    assert view(state).stage == "closedwon"


def test_fields_a_change_does_not_carry_keep_their_last_value() -> None:
    state = merged(change(0, amount=Decimal(900), owner="910901", currency="EUR"), change(5, stage="closedwon"))
    current = view(state)
    assert (current.amount, current.owner, current.currency, current.stage) == (
        Decimal(900), "910901", "EUR", "closedwon"
    )


def test_each_field_remembers_its_own_change_time_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    state = merged(DealChange(crm="pipedrive", event_id="e", deal_id="d1",
                              changed_at=datetime(2026, 11, 2, 11, 0, tzinfo=berlin),
                              fields=DealFields(amount=Decimal("1200.50"))))  # fmt: skip
    assert state["amount"] == {"v": "1200.50", "t": "2026-11-02T10:00:00+00:00"}


def test_merge_leaves_the_given_state_as_it_was() -> None:
    before = merged(change(0, amount=Decimal(100)))
    snapshot = json.dumps(before, sort_keys=True)
    merge(before, change(5, amount=Decimal(200), stage="closedwon"))
    assert json.dumps(before, sort_keys=True) == snapshot


# --- deletion ----------------------------------------------------------------------------------------------------


def test_a_deletion_marks_the_deal_deleted_and_keeps_its_fields() -> None:
    state = merged(change(0, amount=Decimal(100), stage="closedwon"), change(5, deleted=True))
    current = view(state)
    assert current.deleted
    assert (current.amount, current.stage) == (Decimal(100), "closedwon")


def test_a_later_change_restores_a_deleted_deal() -> None:
    state = merged(change(0, amount=Decimal(100)), change(5, deleted=True), change(10))  # e.g. HubSpot's restore
    assert not view(state).deleted


def test_a_change_older_than_the_deletion_does_not_restore_it() -> None:
    state = merged(change(5, deleted=True), change(0, amount=Decimal(100)))
    current = view(state)
    assert current.deleted
    assert current.amount == Decimal(100)  # the field itself was unknown, so it is taken


def test_a_deletion_older_than_the_last_change_does_not_delete() -> None:
    state = merged(change(10, stage="closedwon"), change(5, deleted=True))
    assert not view(state).deleted


def test_the_deleted_marker_is_stored_under_its_own_key() -> None:
    assert merged(change(0, deleted=True))[DELETED]["v"] is True


# --- JSON round trip ---------------------------------------------------------------------------------------------


def test_a_close_date_that_is_a_date_stays_a_date_through_json() -> None:
    state = through_json(merged(change(0, close_date=date(2026, 11, 30))))
    assert state["close_date"]["v"] == {"date": "2026-11-30"}
    close = view(state).close_date
    assert close == date(2026, 11, 30)
    assert not isinstance(close, datetime)


def test_a_close_date_that_is_a_datetime_stays_an_aware_utc_datetime_through_json() -> None:
    plus_two = timezone(timedelta(hours=2))
    state = through_json(merged(change(0, close_date=datetime(2026, 11, 30, 18, 0, tzinfo=plus_two),
                                       created_at=datetime(2026, 10, 1, 8, 15, tzinfo=UTC))))  # fmt: skip
    current = view(state)
    assert current.close_date == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert isinstance(current.close_date, datetime)
    assert current.close_date.utcoffset() == timedelta(0)
    assert current.created_at == datetime(2026, 10, 1, 8, 15, tzinfo=UTC)


def test_amounts_survive_json_exactly_and_in_plain_notation() -> None:
    state = through_json(merged(change(0, amount=Decimal("1200.50")), change(1, stage="s")))
    assert view(state).amount == Decimal("1200.50")
    assert str(view(state).amount) == "1200.50"
    exponent = through_json(merged(change(0, amount=Decimal("1.5E+7"))))
    assert exponent["amount"]["v"] == "15000000"
    assert view(exponent).amount == Decimal(15_000_000)


def test_every_field_round_trips_through_json() -> None:
    fields = DealFields(amount=Decimal("90000.00"), currency="EUR", stage="Closed Won", stage_label="Closed Won",
                        status="won", owner="0055g00000Ab1CdAAE", close_date=date(2026, 11, 30),
                        created_at=datetime(2026, 10, 1, 8, 15, tzinfo=UTC), name="Acme - 200 seats",
                        expected_close=date(2026, 12, 15), probability=Decimal("0.3333"),
                        forecast_category="best_case")  # fmt: skip
    state = merge({}, DealChange(crm="salesforce", event_id="e", deal_id="d1", changed_at=T0, fields=fields))
    assert view(through_json(state)) == view(state)


def test_the_forecast_fields_survive_json_exactly() -> None:
    state = through_json(merged(change(0, expected_close=date(2026, 12, 15), probability=Decimal("0.35"),
                                       forecast_category="commit")))  # fmt: skip
    assert state["expected_close"]["v"] == {"date": "2026-12-15"}
    assert state["probability"]["v"] == "0.35"
    current = view(state)
    assert (current.expected_close, current.probability, current.forecast_category) == (
        date(2026, 12, 15), Decimal("0.35"), "commit")
    assert str(current.probability) == "0.35"


# --- the forecast fields, delivered in part --------------------------------------------------------------------------


def test_a_change_without_forecast_fields_keeps_the_last_known_ones() -> None:
    state = merged(change(0, probability=Decimal("0.4"), forecast_category="commit", expected_close=date(2026, 12, 1)),
                   change(5, amount=Decimal(900), stage="contractsent"))  # fmt: skip
    current = view(state)
    assert (current.probability, current.forecast_category, current.expected_close) == (
        Decimal("0.4"), "commit", date(2026, 12, 1))


def test_a_newer_probability_replaces_the_older_and_leaves_the_category_alone() -> None:
    state = merged(change(0, probability=Decimal("0.4"), forecast_category="commit"),
                   change(5, probability=Decimal("0.6")))  # fmt: skip
    assert (view(state).probability, view(state).forecast_category) == (Decimal("0.6"), "commit")


def test_a_late_older_forecast_does_not_undo_a_newer_one() -> None:
    state = merged(change(5, probability=Decimal("0.6"), expected_close=date(2027, 1, 15)),
                   change(0, probability=Decimal("0.4"), expected_close=date(2026, 12, 1)))  # fmt: skip
    assert (view(state).probability, view(state).expected_close) == (Decimal("0.6"), date(2027, 1, 15))


def test_a_state_stored_before_the_forecast_fields_existed_has_none() -> None:
    stored: FieldState = {"amount": {"v": "100", "t": T0.isoformat()}}
    current = view(stored)
    assert (current.expected_close, current.probability, current.forecast_category) == (None, None, None)


# --- view ----------------------------------------------------------------------------------------------------------


def test_the_view_of_an_unknown_deal_is_empty() -> None:
    current = view({})
    assert current.amount is None and current.stage is None and current.owner is None
    assert current.status_at is None
    assert not current.deleted
    assert current.latest == datetime.min.replace(tzinfo=UTC)


def test_the_view_carries_every_field() -> None:
    current = view(merged(change(0, amount=Decimal(1), currency="USD", stage="3", stage_label="Proposal",
                                 status="open", owner="42", name="Globex")))  # fmt: skip
    assert (current.amount, current.currency, current.stage, current.stage_label, current.status, current.owner,
            current.name) == (Decimal(1), "USD", "3", "Proposal", "open", "42", "Globex")  # fmt: skip


def test_latest_is_the_newest_change_time_of_any_field() -> None:
    state = merged(change(0, stage="a"), change(20, amount=Decimal(1)), change(10, owner="o"))
    assert view(state).latest == at(20)


def test_status_at_is_when_the_stage_or_status_last_changed_not_other_fields() -> None:
    state = merged(change(0, stage="contractsent"), change(7, status="won"), change(30, amount=Decimal(5)))
    current = view(state)
    assert current.status_at == at(7)
    assert current.latest == at(30)


def test_status_at_follows_the_stage_alone_when_no_status_is_known() -> None:
    assert view(merged(change(3, stage="closedwon"), change(9, owner="o"))).status_at == at(3)


# --- CRM properties the tenant carries -----------------------------------------------------------------------------


def test_a_partial_change_of_one_property_keeps_the_others() -> None:
    state = merged(change(0, properties={"segment": "SMB", "lead_source": "web"}),
                   change(5, properties={"segment": "Enterprise"}))  # a HubSpot property change, a CDC UPDATE
    assert view(through_json(state)).properties == {"lead_source": "web", "segment": "Enterprise"}


def test_a_late_older_property_value_does_not_undo_a_newer_one() -> None:
    state = merged(change(5, properties={"segment": "Enterprise"}), change(0, properties={"segment": "SMB"}))
    assert view(state).properties == {"segment": "Enterprise"}


def test_a_property_change_moves_latest_and_leaves_the_fields_alone() -> None:
    state = merged(change(0, amount=Decimal(100), owner="o"), change(9, properties={"segment": "SMB"}))
    current = view(state)
    assert (current.amount, current.owner, current.latest) == (Decimal(100), "o", at(9))


def test_a_property_named_like_a_field_is_kept_apart_from_it() -> None:
    current = view(merged(change(0, amount=Decimal(100), properties={"amount": "lots", "name": "n"})))
    assert current.amount == Decimal(100) and current.name is None
    assert current.properties == {"amount": "lots", "name": "n"}


def test_a_state_stored_before_properties_existed_has_none() -> None:
    assert view(through_json(merged(change(0, amount=Decimal(1))))).properties == {}
