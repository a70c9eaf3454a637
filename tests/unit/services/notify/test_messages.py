"""Rendering one notification: words in the tenant's language, amounts and dates in its locale, the link."""

from __future__ import annotations

from dataclasses import replace

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from services.notify import messages
from services.notify.i18n import LOCALE_DIR, translations
from services.notify.messages import KINDS, Kind, Notification, content, dashboard_link, render
from tests.unit.services.notify.factories import BASE, CHECK_IN, ESCALATION, PLAN, REVIEW, WIN, notification


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["en_US", "de_DE"])
def test_every_kind_renders_for_every_channel_with_the_link(kind: Kind, locale: str) -> None:
    n = notification(kind, locale)
    rendered = render(n)
    assert rendered.email.subject
    assert n.link in rendered.email.text and n.link in rendered.email.html
    assert rendered.slack["blocks"][-1]["elements"][0]["url"] == n.link
    assert rendered.teams["attachments"][0]["content"]["actions"][0]["url"] == n.link


def test_a_german_check_in_reads_german_with_german_amounts_and_dates() -> None:
    email = render(notification("check_in", "de_DE")).email
    assert email.subject == "Check-in mit Ana Berg"
    for expected in ("Hallo Max,", "Umsatz gewonnen", "1.234,50\xa0€", "erwartet 2.024,00\xa0€", "Fällig",
                     "09.12.2026", "Zu den Zahlen", "Vertraulich"):
        assert expected in email.text, expected
    assert "1.234,50&nbsp;€" in email.html or "1.234,50\xa0€" in email.html


def test_an_english_check_in_reads_english_with_english_amounts() -> None:
    text = render(notification("check_in", "en_US")).email.text
    assert "Check-in with Ana Berg" in text and "€1,234.50" in text and "Dec 9, 2026" in text


def test_the_weekly_review_in_german_shows_shares_counts_and_the_week() -> None:
    c = content(notification("review", "de_DE"))
    assert c.title == "Deine Woche 2026-W49"
    facts = dict(c.facts)
    assert facts["Umsatz gewonnen"] == "1.234,50\xa0€ von 5.000,00\xa0€ (24\xa0%)"  # 24.69 % rounds down
    assert facts["Anrufe"] == "1.520"
    assert facts["Aktivitäten"] == "42 (Vorwoche: 37)"
    assert facts["Offene Check-ins"] == "2 (1 überfällig)"


def test_a_team_review_names_the_team() -> None:
    team = REVIEW.model_copy(update=dict(scope="team", scope_id="north", name="Team Nord"))
    assert content(notification("review", "de_DE", data=team)).title == "Team Nord: Woche 2026-W49"


def test_a_digest_counts_in_the_plural_of_the_language() -> None:
    assert content(notification("digest", "de_DE")).title == "2 offene Check-ins"
    assert content(notification("digest", "en_US")).title == "2 open check-ins"


def test_a_missed_plan_step_says_so_in_german() -> None:
    c = content(notification("plan", "de_DE"))
    assert c.title == "Schritt verpasst: Book 5 demos" and dict(c.facts)["Termine"] == "3 von 5"


def test_a_celebration_carries_recognitions_headline_as_written() -> None:
    c = content(notification("celebration", "de_DE"))
    assert c.title == "Glückwunsch, Ana Berg!" and c.text == WIN.headline


def test_an_escalation_names_the_rep_from_the_roster() -> None:
    n = replace(notification("escalation", "en_US"), subject_name="Ana Berg")
    assert content(n).title == "Overdue check-in: Ana Berg"


def test_a_locale_without_a_catalogue_reads_english_with_its_own_numbers() -> None:
    text = render(notification("check_in", "fr_FR")).email.text
    assert "Check-in with Ana Berg" in text and "1\u202f234,50\xa0€" in text


def test_dates_are_the_recipients_local_dates() -> None:
    late = CHECK_IN.model_copy(update={"due_at": CHECK_IN.due_at.replace(hour=23, minute=30)})  # 00:30 in Berlin
    assert "10.12.2026" in render(notification("check_in", "de_DE", data=late)).email.text


def test_event_text_is_escaped_in_html_and_slack_but_plain_in_the_text_part() -> None:
    hostile = CHECK_IN.model_copy(update=dict(summary="<script>alert(1)</script> & <https://evil.example|click>"))
    rendered = render(notification("check_in", "en_US", data=hostile))
    assert "<script>" not in rendered.email.html and "&lt;script&gt;" in rendered.email.html
    assert "<script>alert(1)</script>" in rendered.email.text
    section = rendered.slack["blocks"][1]["text"]["text"]
    assert "<https://evil" not in section and "&lt;https://evil.example|click&gt; " not in section
    assert "&amp;" in section


def test_a_notification_refuses_data_of_another_kind_and_a_link_that_is_not_http() -> None:
    with pytest.raises(TypeError, match="check_in notification carries TaskCreated"):
        Notification("check_in", WIN, recipient="Max", locale="en", currency="EUR", timezone="UTC", link=BASE)
    with pytest.raises(ValueError, match="http"):
        Notification("plan", PLAN, recipient="Max", locale="en", currency="EUR", timezone="UTC",
                     link="javascript:alert(1)")


def test_dashboard_links_point_at_the_page_that_explains_the_numbers() -> None:
    assert dashboard_link(BASE, CHECK_IN) == f"{BASE}/reps/ana?period=2026-Q4"
    assert dashboard_link(BASE, ESCALATION) == f"{BASE}/reps/ana"
    team_win = WIN.model_copy(update={"scope": "team", "scope_id": "north"})
    assert dashboard_link(BASE + "/", team_win) == f"{BASE}/teams/north?period=2026-Q4"
    contest = WIN.model_copy(update={"scope": "contest", "scope_id": "c 1"})
    assert dashboard_link(BASE, contest) == f"{BASE}/contests/c%201"
    assert dashboard_link(BASE, REVIEW) == f"{BASE}/reps/ana?period=2026-Q4"


def test_every_message_has_a_german_translation() -> None:
    german = translations("de")
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "notify.po").open("rb") as po:
        catalog = read_po(po)
    untranslated = [m.id for m in catalog if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])]
    assert not untranslated
    assert german.gettext("See the numbers") == "Zu den Zahlen"


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_catalogues_hold_exactly_the_messages_the_code_says(language: str) -> None:
    """A message added to messages.py without `pybabel update` (i18n.py says how) fails here, not in German."""
    said = {message if isinstance(message, str) else message[0]
            for _, message, _, _ in extract_from_file(
                "python", messages.__file__, keywords={"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)})}
    with (LOCALE_DIR / language / "LC_MESSAGES" / "notify.po").open("rb") as po:
        held = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(po) if m.id}
    assert said == held
