"""The CRM page's users sync and backfill words (services/kpi/dashboard/control_settings_crm_forms.py): the
examples in the docstrings hold, and a "since" day is its first instant even when that midnight is a DST gap."""

from __future__ import annotations

import doctest
from datetime import datetime
from zoneinfo import ZoneInfo

from services.kpi.dashboard import control_settings_crm_forms
from services.kpi.dashboard.control_settings_crm_forms import since_of, sync_counts


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(control_settings_crm_forms).failed == 0


def test_a_since_day_whose_midnight_does_not_exist_starts_at_its_first_instant() -> None:
    # Santiago skipped 2022-09-11 00:00-01:00 local time: the day began at 01:00 (-03:00)
    since, problem = since_of("2022-09-11", ZoneInfo("America/Santiago"))
    assert problem == ""
    assert since == "2022-09-11T01:00:00-03:00"
    assert datetime.fromisoformat(since).utcoffset() is not None


def test_counts_of_an_answer_without_lists_are_zero() -> None:
    assert sync_counts({}) == {"mapped": 0, "created": 0, "kept": 0, "skipped": 0, "republished": 0}
