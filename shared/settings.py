"""Settings every service reads from the environment (12-factor), with the contract's names.

Each service subclasses `ServiceSettings`; nothing else in the code base reads `os.environ`.
Defaults match the local stack (`deploy/local`) and `docker-compose.yml`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import registry_signing


class ServiceSettings(BaseSettings):
    """Configuration shared by all four services (CONTRACT.md, section 1)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/attain"
    # The role the service works as (row-level security binds it; it must own nothing). Unset: DATABASE_URL
    # with the user `attain_<service>`, created by the service with DATABASE_URL's password (shared/db.py).
    database_app_url: SecretStr | None = None
    # Migrate at start as DATABASE_URL's owner (development, compose, the demo). False: the pod holds only its
    # working role (DATABASE_APP_URL, required), migrations run beforehand as the owner (`python -m
    # shared.migrate`, the Kubernetes Job), and the service refuses to start on a schema that is behind.
    db_migrate_on_start: bool = True
    # Derived-event ids the consumers deduplicate by (the inbox) are forgotten this long after they were
    # applied (shared/inbox.py): a duplicate delivery comes within seconds or minutes of the first.
    inbox_retention_days: int = Field(default=35, ge=1)
    # Loopback unless told otherwise: a process started by hand (the demo, a developer's shell) is not reachable
    # from the network. The image (deploy/Dockerfile, so docker-compose.yml and deploy/k8s too) sets
    # HTTP_HOST=0.0.0.0, as a container must.
    http_host: str = "127.0.0.1"
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

    # Rate limits at the HTTP edge (shared/ratelimit.py), per replica. A request that fails authentication
    # (401/403) costs its client address a token: past the burst the address gets 429 until it refilled.
    auth_failure_rate_per_s: float = Field(default=0.5, gt=0)
    auth_failure_burst: float = Field(default=20.0, ge=1)
    # Reads (GET, HEAD) per credential (bearer token, the dashboard's cookie) that authenticated before.
    read_rate_per_s: float = Field(default=20.0, gt=0)
    read_burst: float = Field(default=100.0, ge=1)
    # Reverse proxies whose X-Forwarded-For names the client: addresses or networks, comma-separated. Empty:
    # the client is the TCP peer, whatever the header says.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as err:
                raise ValueError(f"TRUSTED_PROXIES: {part!r} is not an address or network") from err
        return value

    # The largest request body a service reads (413 beyond); ingest's default is larger (IngestSettings).
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    # Every wait on PostgreSQL is bounded (shared/db.py `Timeouts`): for a pooled connection (past it: 503 with
    # Retry-After, a consumer retries), for one statement (PostgreSQL's statement_timeout), for a lock.
    db_acquire_timeout_s: float = Field(default=10.0, gt=0)
    db_statement_timeout_s: float = Field(default=30.0, gt=0)
    db_lock_timeout_s: float = Field(default=10.0, gt=0)
    # Liveness (shared/watchdog.py): every LIVENESS_INTERVAL_S a pooled connection is asked `SELECT 1`; /healthz
    # answers 503 once none could be had for LIVENESS_STALL_S because all were held (a stuck process, not a
    # database outage), or when the event loop was late by more than LIVENESS_MAX_LOOP_LAG_S.
    liveness_interval_s: float = Field(default=5.0, gt=0)
    liveness_stall_s: float = Field(default=60.0, gt=0)
    liveness_max_loop_lag_s: float = Field(default=10.0, gt=0)

    # "system", "scaled:<RFC3339 start>@<rate>" (demos, replays) or "fixed:<RFC3339>".
    attain_clock: str = "system"

    # Outbox relay: how often it looks for unsent rows when nothing woke it.
    outbox_poll_interval_s: float = Field(default=5.0, gt=0)

    # The Ed25519 public keys (comma-separated; two during a rotation) a registry record on attain.tenants.v1 must
    # be signed by to be applied (shared/registry_signing.py). Required by every service that reads the registry
    # (kpi, coaching, recognition): it refuses to start without (`registry_verifier`). Empty here only so that
    # the message there, not pydantic's, says how to make a pair.
    registry_verify_keys: str = ""

    @field_validator("registry_verify_keys")
    @classmethod
    def _verify_keys_are_keys(cls, value: str) -> str:
        if value.strip():
            registry_signing.parse_public_keys(value)  # BadKey (a ValueError) names the variable
        return value

    def registry_verifier(self) -> registry_signing.RegistryVerifier:
        """The verifier of registry records, its keys loaded once; BadKey naming REGISTRY_VERIFY_KEYS when unset."""
        return registry_signing.RegistryVerifier(registry_signing.parse_public_keys(self.registry_verify_keys))

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        """A half-configured security setting fails at start, naming the variables, rather than as an
        authentication or handshake error from the broker later."""
        protocol, problems = self.kafka_security_protocol, []
        if protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            problems.append("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (a client certificate and its key)")
        files = {"KAFKA_SSL_CAFILE": self.kafka_ssl_cafile, "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
                 "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile}
        given = [name for name, path in files.items() if path]
        if given and protocol not in ("SSL", "SASL_SSL"):
            problems.append(f"{', '.join(given)} apply only to KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}")
        problems += [f"{name}={path}: no such file" for name, path in files.items()
                     if path and not Path(path).is_file()]
        if problems:
            raise ValueError("; ".join(problems))
        return self
