"""`PUT /v1/settings` validates each field as `tenants create` and `tenants locale` do, naming the field
(services/ingest/tenant_settings.py)."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from services.ingest import tenant_settings
from services.ingest.tenant_settings import checked
from services.ingest.tenants import TenantError


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(tenant_settings).failed == 0


def test_only_the_fields_given_are_changed() -> None:
    assert checked({}) == {}
    assert checked({"timezone": "America/New_York", "fiscal_start_month": 4}) == {
        "timezone": "America/New_York", "fiscal_start_month": 4}


@pytest.mark.parametrize(("given", "named"), [
    ({"timezone": "Mars/Olympus_Mons"}, "timezone: unknown time zone 'Mars/Olympus_Mons'"),
    ({"timezone": "America"}, "timezone: unknown time zone"),
    ({"currency": "eur"}, "currency: 'eur' is not an ISO 4217 code"),
    ({"fiscal_start_month": 0}, "fiscal_start_month: must be 1-12"),
    ({"locale": "xx_YY_zz"}, "locale: unknown locale"),
])
def test_a_bad_value_is_refused_by_its_field(given: dict[str, Any], named: str) -> None:
    with pytest.raises(TenantError, match=f"^{named}"):
        checked(given)
