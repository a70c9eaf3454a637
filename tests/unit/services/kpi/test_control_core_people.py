"""The control room's people page groups tokens by the person they speak for (control_core_people.grouped)."""

from __future__ import annotations

import doctest

from services.kpi.dashboard import control_core_people
from services.kpi.dashboard.control_core_people import OTHERS, grouped


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(control_core_people).failed == 0


def test_a_persons_tokens_stay_together_people_by_name_and_the_rest_last() -> None:
    tokens = [{"token_id": "k1", "role": "rep", "rep_id": "bo"}, {"token_id": "k2", "role": "admin"},
              {"token_id": "k3", "role": "rep", "rep_id": "ana"}, {"token_id": "k4", "role": "rep", "rep_id": "bo"},
              {"token_id": "k5", "role": "manager", "manager_id": "ana"}, {"token_id": "k6", "role": "viewer"}]
    groups = grouped(tokens, {"ana": "Ana Adler", "bo": "bo Berg"})
    assert [(label, [t["token_id"] for t in ts]) for label, ts in groups] == [
        ("Ana Adler (ana)", ["k3", "k5"]), ("bo Berg (bo)", ["k1", "k4"]), (OTHERS, ["k2", "k6"])]


def test_no_tokens_no_groups() -> None:
    assert grouped([], {}) == []
