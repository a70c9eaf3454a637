"""The dashboard's check-in forms: a form token bound to the session, and what each role is offered."""

from __future__ import annotations

import pytest

from services.kpi.dashboard.pages import _acts, csrf_token
from shared.authz import Principal


def test_a_form_token_belongs_to_its_session_only() -> None:
    one, other = csrf_token("atn_session-one"), csrf_token("atn_session-two")
    assert one == csrf_token("atn_session-one") and one != other
    assert len(one) == 32 and "session" not in one


@pytest.mark.parametrize(("role", "check_ins", "plans"), [
    ("admin", True, True), ("manager", True, True), ("rep", True, False),
    ("integration", False, False), ("viewer", False, False),
])
def test_each_role_is_offered_what_it_may_do(role: str, check_ins: bool, plans: bool) -> None:
    assert _acts(Principal("t", role, "k")) == {"check_ins": check_ins, "plans": plans}  # type: ignore[arg-type]
