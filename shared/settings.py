"""Settings every service reads from the environment (12-factor), with the contract's names.

Each service subclasses `ServiceSettings`; nothing else in the code base reads `os.environ`.
Defaults match the local stack (`deploy/local`) and `docker-compose.yml`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Configuration shared by all four services (CONTRACT.md, section 1)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/attain"
    http_host: str = "0.0.0.0"  # noqa: S104 - containers must listen beyond loopback
    http_port: int = 8000
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Kafka security for real clusters; PLAINTEXT needs none of these.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # Consumer groups are "<prefix>-<service>": deployments sharing one cluster use different prefixes.
    kafka_consumer_group_prefix: str = Field(default="attain", pattern=r"^[A-Za-z0-9._-]+$")
    # Static group membership: set per replica (e.g. the pod name) so restarts do not rebalance.
    kafka_group_instance_id: str | None = None

    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)

    # "system", "scaled:<RFC3339 start>@<rate>" (demos, replays) or "fixed:<RFC3339>".
    attain_clock: str = "system"

    # Outbox relay: how often it looks for unsent rows when nothing woke it.
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
