"""A token's role and its person go together (services/ingest/tokens.py `check_grant`)."""

from __future__ import annotations

import pytest

from services.ingest.tenants import TenantError
from services.ingest.tokens import check_grant


@pytest.mark.parametrize(("role", "rep", "manager"), [
    ("admin", None, None), ("integration", None, None), ("viewer", None, None),
    ("rep", "ana", None), ("manager", None, "mia"),
])
def test_a_role_with_its_person_is_accepted(role: str, rep: str | None, manager: str | None) -> None:
    check_grant(role, rep, manager, None)
    check_grant(role, rep, manager, 30)


@pytest.mark.parametrize(("role", "rep", "manager", "days", "says"), [
    ("owner", None, None, None, "is not one of"),
    ("rep", None, None, None, "give --rep"),
    ("manager", None, None, None, "give --manager"),
    ("admin", "ana", None, None, "--rep is for rep tokens"),
    ("rep", "ana", "mia", None, "--manager is for manager tokens"),
    ("rep", "a\x00b", None, None, "control characters"),
    ("viewer", None, None, 0, "--expires-days"),
    ("viewer", None, None, 99999, "--expires-days"),
])
def test_a_role_without_its_person_or_with_anothers_is_refused_by_name(role: str, rep: str | None,
                                                                        manager: str | None, days: float | None,
                                                                        says: str) -> None:
    with pytest.raises(TenantError, match=says):
        check_grant(role, rep, manager, days)
