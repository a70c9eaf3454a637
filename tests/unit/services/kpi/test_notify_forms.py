"""The notification pages' forms (services/kpi/dashboard/notify_forms.py): a write-only secret is set, cleared or
kept, never both; a person's preferences round-trip through the form (a kind left at notify's default stays at
it); notify's refusal lands next to the field it names; RFC 8058's one-click body is told apart."""

from __future__ import annotations

import doctest

from services.kpi.dashboard import notify_forms
from services.kpi.dashboard.notify_forms import (
    KINDS,
    PREFERENCE_FIELDS,
    TEAM_FIELDS,
    connection_body,
    entered_preferences,
    one_click,
    preferences_body,
    preferences_form,
    refusals,
    secrets_body,
)

DOCUMENT = {"person_id": "ana", "channels": {"digest": [], "celebration": ["email", "slack"]},
            "public_celebrations": False, "quiet_start": "21:00", "quiet_end": "07:00", "weekends_quiet": True,
            "daily_cap": 12, "kinds": list(KINDS), "channels_available": ["email", "slack", "teams", "webhook"]}


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(notify_forms).failed == 0


def test_an_empty_secret_field_keeps_what_is_set_and_clear_sends_null() -> None:
    assert secrets_body({"slack_webhook": ["  "], "teams_webhook": [""]}, TEAM_FIELDS) == ({}, {})
    assert secrets_body({"clear_slack_webhook": ["1"]}, TEAM_FIELDS) == ({"slack_webhook": None}, {})


def test_a_secret_typed_and_cleared_at_once_is_refused_by_its_field_and_sends_nothing_of_it() -> None:
    body, errors = secrets_body({"teams_webhook": ["https://x.example/h"], "clear_teams_webhook": ["1"],
                                 "slack_webhook": ["https://hooks.slack.com/services/T/B/x"]}, TEAM_FIELDS)
    assert list(errors) == ["teams_webhook"] and "teams_webhook" not in body


def test_the_connections_webhook_url_is_sent_as_shown_and_empty_clears_it() -> None:
    body, _ = connection_body({"webhook_url": ["https://in.example/attain"], "slack_bot_token": ["xoxb-1"]})
    assert body == {"slack_bot_token": "xoxb-1", "webhook_url": "https://in.example/attain"}
    assert connection_body({"webhook_url": [""]})[0] == {"webhook_url": None}


def test_the_form_shows_each_kinds_channels_with_a_kind_nobody_chose_for_on_email() -> None:
    shown = preferences_form(DOCUMENT)
    assert shown["channels"]["celebration"] == ["email", "slack"]
    assert shown["channels"]["digest"] == []
    assert shown["channels"]["check_in"] == ["email"]
    assert "check_in" in shown["defaulted"] and "digest" not in shown["defaulted"]
    assert (shown["quiet_start"], shown["quiet_end"], shown["daily_cap"]) == ("21:00", "07:00", "12")


def test_a_form_saved_unchanged_stores_what_it_showed_and_keeps_defaults_as_defaults() -> None:
    shown = preferences_form(DOCUMENT)
    form: dict[str, list[str]] = {f"ch_{k}": v for k, v in shown["channels"].items()}
    form |= {f"defaulted_{k}": ["1"] for k in shown["defaulted"]}
    form |= {"quiet_start": ["21:00"], "quiet_end": ["07:00"], "daily_cap": ["12"], "weekends_quiet": ["1"]}
    body = preferences_body(form)
    assert body == {"channels": {"digest": [], "celebration": ["email", "slack"]}, "public_celebrations": False,
                    "quiet_start": "21:00", "quiet_end": "07:00", "weekends_quiet": True, "daily_cap": 12}


def test_unticking_everything_switches_a_kind_off_even_one_that_followed_the_default() -> None:
    body = preferences_body({"defaulted_check_in": ["1"], "ch_review": ["email", "webhook"],
                             "defaulted_review": ["1"], "daily_cap": ["3"]}, ("check_in", "review"))
    assert body["channels"] == {"check_in": [], "review": ["email", "webhook"]}


def test_a_cap_that_is_not_a_number_is_sent_as_typed_for_notify_to_name() -> None:
    assert preferences_body({"daily_cap": ["lots"]})["daily_cap"] == "lots"


def test_a_refused_form_is_shown_again_as_typed() -> None:
    again = entered_preferences({"ch_plan": ["slack"], "quiet_start": ["25:00"], "daily_cap": ["0"]}, ("plan",))
    assert again["channels"] == {"plan": ["slack"]} and again["quiet_start"] == "25:00" and again["daily_cap"] == "0"


def test_notifys_refusals_are_split_by_field_whichever_way_it_words_them() -> None:
    assert refusals({"detail": "daily_cap: must be at least 1; quiet_start: not a time"}, PREFERENCE_FIELDS) == (
        {"daily_cap": "must be at least 1", "quiet_start": "not a time"}, "")
    listed = {"detail": [{"loc": ["body", "teams_webhook"], "msg": "https is required"},
                         {"loc": ["body"], "msg": "bad body"}]}
    assert refusals(listed, TEAM_FIELDS) == ({"teams_webhook": "https is required"}, "bad body")
    assert refusals(None, TEAM_FIELDS) == ({}, "")


def test_only_rfc_8058s_body_is_a_one_click_unsubscribe() -> None:
    assert one_click({"List-Unsubscribe": ["One-Click"]})
    assert not one_click({"List-Unsubscribe": ["one-click-please"]})
    assert not one_click({})
