"""ingest's `PUT /v1/crm/{crm}/secret` body (services/ingest/crm_connection_api.py): read as the CLI reads a
secret, and refused without ever repeating it."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest.crm_connection_api import secret_body

SECRET = "s3cret-never-shown"


def test_a_secret_is_taken_as_given_with_its_org_id_and_grace() -> None:
    assert secret_body({"secret": SECRET}) == (SECRET, None, None)
    assert secret_body({"secret": SECRET, "org_id": " 00D1 ", "grace_hours": 0}) == (SECRET, "00D1", 0)


@pytest.mark.parametrize("body", [
    SECRET, [SECRET], {"secret": ""}, {"secret": f"{SECRET}\n{SECRET}"}, {"secret": SECRET * 100},
    {"secret": SECRET, "grace_hours": -1}, {"secret": SECRET, "grace_hours": True}, {"secret": SECRET, "org_id": 5},
    {"secret": SECRET, "extra": SECRET}, {SECRET: SECRET}])
def test_a_refused_body_is_named_without_repeating_the_secret(body: Any) -> None:
    with pytest.raises(ValueError) as caught:
        secret_body(body)
    assert SECRET not in str(caught.value)
