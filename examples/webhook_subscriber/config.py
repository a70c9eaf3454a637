"""Settings: environment variables, overridden by command-line options."""

from __future__ import annotations

import argparse
import base64
import binascii
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TOPICS = "recognition.celebrations.v1,coaching.tasks.v1"


class Settings(BaseSettings):
    """Each field is read from the environment variable of its name in capitals (`WEBHOOK_URL`, ...)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # The same names and meaning as Attain's services (CONTRACT.md): a subscriber of a secured cluster.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    webhook_url: str = Field(min_length=1, description="Where the events of WEBHOOK_TENANTS are POSTed.")
    # Attain's topics carry every tenant's events (a rep's private check-ins among them): only the tenants named
    # here reach WEBHOOK_URL, and without any the subscriber does not start.
    webhook_tenants: str = Field(default="", validate_default=True,
                                 description="Comma-separated tenant slugs whose events go to WEBHOOK_URL.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_<base64>: signs each delivery; without it no webhook-signature is sent.")
    webhook_topics: str = DEFAULT_TOPICS
    webhook_group: str = "attain-webhooks"
    webhook_state: Path = Path("webhook-deliveries.sqlite3")
    webhook_start_at: Literal["latest", "earliest"] = Field(
        default="latest", description="Where a new consumer group starts: only new events, or all the topics hold.")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_initial_backoff_s: float = Field(default=0.5, gt=0)
    webhook_max_backoff_s: float = Field(default=60.0, gt=0)
    webhook_retry_after_cap_s: float = Field(default=300.0, ge=0)
    webhook_max_attempts: int = Field(default=0, ge=0, description="0: retry until the receiver answers.")
    webhook_keep_days: float = Field(default=30.0, gt=0, description="How long delivered ids are remembered.")
    log_level: str = "INFO"

    @field_validator("webhook_secret")
    @classmethod
    def _a_standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """`whsec_` and the base64 of 24 to 64 random bytes (the spec's range); the error never shows it."""
        if value is None:
            return None
        secret = value.get_secret_value()
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not secret.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError("must be whsec_ followed by the base64 of 24 to 64 random bytes")
        return value

    @field_validator("webhook_tenants")
    @classmethod
    def _some_tenants(cls, value: str) -> str:
        """At least one tenant: a URL receives one organisation's events, never every tenant's."""
        if not [t for t in value.split(",") if t.strip()]:
            raise ValueError("WEBHOOK_TENANTS is not set: name the tenant(s) whose events go to this URL"
                             " (comma-separated slugs, e.g. --tenants acme); the topics carry every tenant's events,"
                             " private check-ins among them, and one URL must receive only its own organisation's")
        return value

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (self.kafka_sasl_username
                                                                     and self.kafka_sasl_password):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME "
                             "and KAFKA_SASL_PASSWORD")
        return self

    def kafka_options(self) -> dict[str, object]:
        """aiokafka's connection options: bootstrap servers, and SASL and TLS when the cluster wants them."""
        options: dict[str, object] = {"bootstrap_servers": self.kafka_bootstrap_servers,
                                      "security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            options["ssl_context"] = context
        if self.kafka_security_protocol.startswith("SASL_"):
            assert self.kafka_sasl_password is not None  # the validator saw to it
            options |= {"sasl_mechanism": self.kafka_sasl_mechanism, "sasl_plain_username": self.kafka_sasl_username,
                        "sasl_plain_password": self.kafka_sasl_password.get_secret_value()}
        return options

    @property
    def topics(self) -> list[str]:
        return [t.strip() for t in self.webhook_topics.split(",") if t.strip()]

    @property
    def tenants(self) -> frozenset[str]:
        """The tenants whose events are delivered; every other tenant's are skipped (and committed)."""
        return frozenset(t.strip() for t in self.webhook_tenants.split(",") if t.strip())


_OPTIONS = {  # command-line option -> settings field
    "url": "webhook_url", "tenants": "webhook_tenants", "secret": "webhook_secret", "topics": "webhook_topics",
    "group": "webhook_group",
    "state": "webhook_state", "bootstrap_servers": "kafka_bootstrap_servers", "start_at": "webhook_start_at",
    "max_attempts": "webhook_max_attempts",
}


def parse(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m examples.webhook_subscriber",
        description="A reference receiver of Attain's topics for your own integration: one organisation's "
                    "celebrations and check-in tasks to a webhook, signed (Standard Webhooks). People are notified "
                    "by Attain's notify service, not by this.",
        epilog="Every option can also be set in the environment: WEBHOOK_URL, WEBHOOK_TENANTS, WEBHOOK_SECRET, "
               "WEBHOOK_TOPICS, "
               "WEBHOOK_GROUP, WEBHOOK_STATE, KAFKA_BOOTSTRAP_SERVERS, WEBHOOK_START_AT, WEBHOOK_MAX_ATTEMPTS, "
               "and WEBHOOK_TIMEOUT_S, WEBHOOK_INITIAL_BACKOFF_S, WEBHOOK_MAX_BACKOFF_S, "
               "WEBHOOK_RETRY_AFTER_CAP_S, WEBHOOK_KEEP_DAYS, LOG_LEVEL; a secured cluster: KAFKA_SECURITY_PROTOCOL, "
               "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE, "
               "KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE.")
    parser.add_argument("--url", help="the webhook URL (WEBHOOK_URL)")
    parser.add_argument("--tenants", help="comma-separated tenant slugs whose events go to the URL, and no other's"
                                          " (WEBHOOK_TENANTS; required)")
    parser.add_argument("--secret", help="whsec_<base64> signing secret (WEBHOOK_SECRET); prefer the environment")
    parser.add_argument("--topics", help=f"comma-separated topics (default {DEFAULT_TOPICS})")
    parser.add_argument("--group", help="Kafka consumer group (default attain-webhooks)")
    parser.add_argument("--state", help="SQLite file of delivered ids (default ./webhook-deliveries.sqlite3)")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    parser.add_argument("--start-at", choices=("latest", "earliest"), help="where a new group starts (latest)")
    parser.add_argument("--max-attempts", type=int, help="give up (exit 1) after this many attempts; 0: never")
    args = vars(parser.parse_args(argv))
    overrides = {field: args[option] for option, field in _OPTIONS.items() if args[option] is not None}
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in err.errors())
        parser.error(problems)  # exits with status 2
