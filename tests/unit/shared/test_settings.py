"""Kafka security settings: complete, or a start-up error that names the variables to set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import ServiceSettings


def settings(**env: str) -> ServiceSettings:
    return ServiceSettings(**env)  # type: ignore[arg-type]


def test_plaintext_needs_nothing_more() -> None:
    assert settings().kafka_security_protocol == "PLAINTEXT"


def test_sasl_without_credentials_names_the_missing_variables() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and "
                                              "KAFKA_SASL_PASSWORD"):
        settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"):
        settings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(cert))


def test_tls_files_with_a_plaintext_protocol_are_a_mistake(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValidationError, match="KAFKA_SSL_CAFILE apply only to KAFKA_SECURITY_PROTOCOL=SSL or "
                                              "SASL_SSL, not SASL_PLAINTEXT"):
        settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p",
                 kafka_ssl_cafile=str(ca))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=f"KAFKA_SSL_CAFILE={tmp_path}/nope.pem: no such file"):
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "nope.pem"))


def test_a_complete_sasl_ssl_setting_is_read_from_the_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": "attain", "KAFKA_SASL_PASSWORD": "s3cret",
                        "KAFKA_SSL_CAFILE": str(ca)}.items():
        monkeypatch.setenv(name, value)
    got = ServiceSettings()
    assert (got.kafka_security_protocol, got.kafka_sasl_mechanism, got.kafka_sasl_username) == (
        "SASL_SSL", "SCRAM-SHA-512", "attain")
    assert got.kafka_sasl_password is not None and got.kafka_sasl_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(got)  # never in a log line
