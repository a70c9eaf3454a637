"""The settings sections' forms (services/kpi/dashboard/control_settings_forms.py): every field of the owning
services' models is on its form, a form becomes the body the API takes, and a refusal lands next to its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.coaching.model import Policy
from services.kpi.dashboard.control_settings_forms import (
    POLICY,
    RECOGNITION,
    field_errors,
    fields_of,
    lines,
    overrides_from,
    shown,
    table_from,
    time_off_event,
    unmapped_user,
)
from services.recognition.model import Settings


def test_the_policy_form_has_every_threshold_of_coachings_policy_and_no_other() -> None:
    assert set(fields_of(POLICY)) == set(Policy.model_fields)


def test_the_recognition_form_has_every_setting_of_recognition_and_no_other() -> None:
    assert set(fields_of(RECOGNITION)) == set(Settings.model_fields)


def test_every_field_is_labelled_and_explained() -> None:
    for f in (*fields_of(POLICY).values(), *fields_of(RECOGNITION).values()):
        assert f.label and f.help.endswith((".", "!")), f


def test_an_empty_field_is_no_override_and_the_rest_are_typed_as_the_api_takes_them() -> None:
    form = {"due_hour": " 16 ", "pace_threshold": "0.65", "pace_metrics": "won_revenue, ,demos_held",
            "cooldown_days": "   ", "holdout_share": ""}
    body, errors = overrides_from(form, fields_of(POLICY))
    assert body == {"due_hour": 16, "pace_threshold": "0.65", "pace_metrics": ["won_revenue", "demos_held"]}
    assert errors == {}


def test_a_value_the_form_cannot_read_as_a_number_is_sent_as_typed_for_the_service_to_name() -> None:
    body, errors = overrides_from({"due_hour": "five"}, fields_of(POLICY))
    assert body == {"due_hour": "five"} and errors == {}


def test_the_body_a_form_makes_is_one_the_services_models_accept() -> None:
    body, _ = overrides_from({"due_hour": "16", "pace_threshold": "0.65", "activity_metrics": "calls, emails"},
                             fields_of(POLICY))
    assert Policy().with_overrides(body).due_hour == 16
    settings, _ = overrides_from({"quota_thresholds": "0.5, 1", "corrections": "true", "streak_days": "4",
                                  "templates": "quota = {name} did it!\n\n"}, fields_of(RECOGNITION))
    made = Settings.model_validate(settings)
    assert made.corrections is True and made.streak_days == 4 and made.templates == {"quota": "{name} did it!"}


def test_yes_no_and_headlines_that_cannot_be_read_are_named_and_nothing_else_is_sent_for_them() -> None:
    body, errors = overrides_from({"corrections": "maybe", "templates": "quota_crossed {name}", "streak_days": "4"},
                                  fields_of(RECOGNITION))
    assert body == {"streak_days": 4}
    assert set(errors) == {"corrections", "templates"} and "line 1" in errors["templates"]


@pytest.mark.parametrize(("value", "kind", "text"), [
    (None, "number", ""), ("0.7", "number", "0.7"), (["calls", "meetings"], "list", "calls, meetings"),
    ({"a": "x", "b": "y"}, "map", "a = x\nb = y"), (False, "bool", "false"), (7, "integer", "7")])
def test_a_stored_override_shows_as_its_field_reads_it_back(value: Any, kind: Any, text: str) -> None:
    assert shown(value, kind) == text


def test_coachings_refusal_is_split_by_the_field_it_names() -> None:
    bad = {"due_hour": 24, "pace_metrics": ["won_revenue", "Demos Held"]}
    with pytest.raises(ValidationError) as caught:
        Policy().with_overrides(bad)
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}, got {e['input']!r}"
                       for e in caught.value.errors())  # as coaching's `_set_policy` words it
    by_field, rest = field_errors(detail + "; something else", list(fields_of(POLICY)))
    assert set(by_field) == {"due_hour", "pace_metrics"}
    assert "23" in by_field["due_hour"] and by_field["pace_metrics"].startswith("item 2: ")
    assert rest == "something else"


def test_a_mapping_table_drops_emptied_rows_and_refuses_a_key_twice_or_without_value() -> None:
    assert table_from(["a", " ", "b"], ["open", "won", "lost"]) == ({"a": "open", "b": "lost"}, "")
    assert table_from(["a", "a"], ["open", "won"])[1] == "'a' is listed twice"
    assert "give it a value" in table_from(["101"], [""])[1]
    assert lines(" first \n\n second") == ["first", "second"]


@pytest.mark.parametrize(("reason", "crm", "user"), [
    ("owner: hubspot user '4711' is not mapped to a rep", "hubspot", "4711"),
    ("amount: not received yet; owner: pipedrive user \"it's me\" is not mapped to a rep", "pipedrive", "it's me"),
    ("owner: hubspot user '4711' is not mapped to a rep", "salesforce", None),
    ("stage: 'x' of hubspot is not mapped to open/won/lost", "hubspot", None),
    ("owner: not received yet", "hubspot", None)])
def test_the_crm_user_a_held_back_record_waits_for_is_read_from_ingests_reason(reason: str, crm: str,
                                                                              user: str | None) -> None:
    assert unmapped_user(reason, crm) == user


def test_time_off_is_a_time_off_set_event_and_a_cancellation_the_same_id_cancelled() -> None:
    event = time_off_event(event_id="e1", time_off_id="t1", rep_id="ana", first_day="2030-07-01",
                           last_day="2030-07-05", reason="", now="2030-06-01T10:00:00+00:00")
    assert event == {"id": "e1", "source": "control-room", "time": "2030-06-01T10:00:00+00:00",
                     "type": "time_off.set", "data": {"time_off_id": "t1", "rep_id": "ana", "first_day": "2030-07-01",
                                                      "last_day": "2030-07-05", "reason": None}}
    cancel = time_off_event(event_id="e2", time_off_id="t1", rep_id="ana", first_day="2030-07-01",
                            last_day="2030-07-05", reason="", now="2030-06-02T10:00:00+00:00", cancelled=True)
    assert cancel["data"]["cancelled"] is True
    with pytest.raises(ValueError, match="first day"):
        time_off_event(event_id="e", time_off_id="t", rep_id="ana", first_day="1.7.2030", last_day="2030-07-05",
                       reason="", now="2030-06-01T10:00:00+00:00")
