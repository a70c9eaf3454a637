"""services/ingest/settings.py: ingest does not start without CRM_SECRET_KEYS, and says how to make a key."""

from __future__ import annotations

import sys

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.ingest import __main__ as ingest_main
from services.ingest.secret_box import MAKE_A_KEY
from services.ingest.settings import IngestSettings, problems

KEY = Fernet.generate_key().decode()


def test_without_crm_secret_keys_the_settings_are_refused_naming_the_variable_and_how_to_make_a_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_SECRET_KEYS", raising=False)
    with pytest.raises(ValidationError) as raised:
        IngestSettings()
    assert problems(raised.value).startswith("CRM_SECRET_KEYS is not set")
    assert MAKE_A_KEY in problems(raised.value)


def test_a_bad_key_is_refused_and_no_error_shows_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", f"{KEY},not-a-fernet-key")
    with pytest.raises(ValidationError) as raised:
        IngestSettings()
    for shown in (str(raised.value), repr(raised.value), problems(raised.value)):
        assert "key 2 of 2 is not a Fernet key" in shown
        assert KEY not in shown and "not-a-fernet-key" not in shown


def test_the_keys_build_the_box_and_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    other = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_SECRET_KEYS", f"{KEY},{other}")
    settings = IngestSettings()
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    sealed = settings.crm_secret_box().seal("s")
    assert Fernet(KEY).decrypt(sealed.removeprefix("fernet:").encode()) == b"s"  # the first key seals


def test_the_service_stops_at_start_with_the_message_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CRM_SECRET_KEYS", raising=False)
    monkeypatch.setattr(sys, "argv", ["python -m services.ingest"])
    assert ingest_main.main() == 2  # before anything is served or connected
    err = capsys.readouterr().err
    assert err.startswith("error: CRM_SECRET_KEYS is not set") and MAKE_A_KEY in err
