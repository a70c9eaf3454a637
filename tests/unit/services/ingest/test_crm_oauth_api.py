"""The pure parts of ingest's CRM OAuth API (services/ingest/crm_oauth_api.py): the redirect URI registered at the
CRM, where another origin for the CRM's OAuth endpoints may point, and what the client body takes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from services.ingest.crm_oauth_api import ClientIn, _origin, redirect_uri


def test_the_redirect_uri_is_under_the_public_base_url_per_tenant_and_crm() -> None:
    request: Any = SimpleNamespace(base_url="http://10.0.0.7:8001/")
    assert redirect_uri(request, "https://attain.example.com/", "acme", "hubspot") == \
        "https://attain.example.com/v1/crm/oauth/callback/acme/hubspot"
    assert redirect_uri(request, None, "acme", "salesforce") == \
        "http://10.0.0.7:8001/v1/crm/oauth/callback/acme/salesforce"


def test_another_origin_for_the_oauth_endpoints_must_be_https_unless_an_allowed_stand_in() -> None:
    assert _origin("https://test.salesforce.com/", []) == "https://test.salesforce.com"
    assert _origin(None, []) is None and _origin("  ", []) is None
    assert _origin("http://127.0.0.1:8123", ["127.0.0.1"]) == "http://127.0.0.1:8123"
    with pytest.raises(HTTPException) as refused:
        _origin("http://test.salesforce.com", [])
    assert refused.value.status_code == 422


def test_the_client_body_takes_no_unknown_field_and_no_id_with_spaces() -> None:
    assert ClientIn(client_id="attain-app").client_secret is None
    with pytest.raises(ValidationError):
        ClientIn.model_validate({"client_id": "attain-app", "secret": "s"})
    with pytest.raises(ValidationError):
        ClientIn(client_id="two words")
