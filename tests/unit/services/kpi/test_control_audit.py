"""The audit page's words (dashboard/control_audit.py) and the audit module's examples."""

from __future__ import annotations

import doctest

from services.kpi.dashboard import control, control_audit
from services.kpi.dashboard.control_audit import NONE, changes, shown, who_words
from shared import audit


def test_the_examples_in_the_docstrings_hold() -> None:
    for module in (control_audit, control, audit):
        assert doctest.testmod(module).failed == 0


def test_an_entry_shows_only_what_changed() -> None:
    before = {"value": "100", "metric": "won_revenue", "period": "2026-Q1"}
    after = {"value": "150", "metric": "won_revenue", "period": "2026-Q1"}
    assert changes(before, after) == [("value", "100", "150")]
    assert changes({"a": 1}, None) == [("a", "1", NONE)]
    assert changes({"a": 1}, {"a": 1}) == []


def test_a_long_value_is_cut() -> None:
    text = shown("x" * 500)
    assert len(text) == control_audit.MAX_SHOWN and text.endswith("…")


def test_who_reads_as_a_person_where_a_token_speaks_for_one() -> None:
    assert who_words({"kind": "token", "role": "rep", "token_id": "t9", "rep_id": "ana"}, {}) == "ana (rep token t9)"
    assert who_words({"kind": "token", "role": "admin", "token_id": "initial"}, {}) == "admin token initial"
    assert who_words({"kind": "system", "name": ""}, {}) == "the service"
