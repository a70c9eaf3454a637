"""services/ingest/settings.py: ingest does not start without CRM_SECRET_KEYS, and says how to make a key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.ingest import __main__ as ingest_main
from services.ingest.settings import IngestSettings, problems
from shared import registry_signing as rs
from shared.secret_box import MAKE_A_KEY

KEY = Fernet.generate_key().decode()
SIGNING_KEY = rs.encode_private_key(rs.generate_private_key())


@pytest.fixture(autouse=True)
def registry_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid REGISTRY_SIGNING_KEY unless a test takes it away: these tests are about the other settings."""
    monkeypatch.setenv("REGISTRY_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.delenv("REGISTRY_SIGNING_KEY_FILE", raising=False)


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


def test_without_a_registry_signing_key_ingest_refuses_to_start_naming_the_variable_and_how_to_make_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", KEY)
    monkeypatch.delenv("REGISTRY_SIGNING_KEY")
    monkeypatch.setattr(sys, "argv", ["python -m services.ingest"])
    assert ingest_main.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: REGISTRY_SIGNING_KEY is not set") and rs.MAKE_A_PAIR in err


def test_a_bad_registry_signing_key_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", KEY)
    monkeypatch.setenv("REGISTRY_SIGNING_KEY", "bm90IGEga2V5")
    with pytest.raises(ValidationError) as raised:
        IngestSettings()
    assert "REGISTRY_SIGNING_KEY: not 32 bytes" in problems(raised.value)
    assert "bm90IGEga2V5" not in str(raised.value)


def test_the_registry_signing_key_may_come_from_a_file_but_not_from_both(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", KEY)
    path = tmp_path / "registry-key"
    path.write_text(SIGNING_KEY + "\n")
    monkeypatch.setenv("REGISTRY_SIGNING_KEY_FILE", str(path))
    with pytest.raises(ValidationError, match="set one, not both"):
        IngestSettings()
    monkeypatch.delenv("REGISTRY_SIGNING_KEY")
    signer = IngestSettings().registry_signer()
    assert signer.key_id == rs.RegistrySigner(rs.parse_private_key(SIGNING_KEY)).key_id
