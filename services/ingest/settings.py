from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared import registry_signing, secret_box
from shared.cli import settings_problems
from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    # An invalid value is never echoed in an error (a traceback, a log): CRM_SECRET_KEYS holds keys.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    http_port: int = 8001
    # A JSON body is parsed whole; NDJSON is streamed in chunks, so it may be much larger.
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_ndjson_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    max_events_per_request: int = Field(default=10_000, gt=0, description="for JSON bodies")
    ndjson_chunk_events: int = Field(default=5_000, gt=0)
    # How long a request waits for Kafka's acks before answering 503.
    publish_timeout_s: float = Field(default=15.0, gt=0)
    rate_limit_requests_per_s: float = Field(default=50.0, gt=0)
    rate_limit_request_burst: float = Field(default=100.0, ge=1)
    rate_limit_events_per_s: float = Field(default=20_000.0, gt=0)
    rate_limit_event_burst: float = Field(default=200_000.0, ge=1)
    # Event ids are remembered this long: a retry within it is answered "duplicate".
    id_retention_days: int = Field(default=35, ge=1)
    # A webhook secret replaced by `tenants set-secret` is still accepted this long.
    secret_rotation_grace_hours: float = Field(default=24.0, ge=0)
    # The URL CRMs call us by (behind an ingress); HubSpot signs it. Unset: the URL the request arrived at.
    public_base_url: str | None = None
    # An event whose `time` (or a deal's `updated_at`) is more than this past ingest's clock is rejected (422):
    # services order versions by those moments, so one from far in the future would beat every correction.
    max_event_ahead_s: float = Field(default=86_400.0, gt=0)
    # A CRM webhook body is read streamed and refused (413) past this: vendors send at most a few hundred KB.
    max_webhook_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Reading a record from a tenant's CRM API (services/ingest/crm/fetch.py): the whole call's time, the
    # largest answer read, and hosts (comma-separated) exempt from the public-address and https checks, for
    # local stand-ins in tests and development only - never in production.
    crm_api_timeout_s: float = Field(default=10.0, gt=0)
    crm_api_max_response_bytes: int = Field(default=1024 * 1024, gt=0)
    crm_api_allowed_hosts: str = ""
    # OAuth connections to tenants' CRMs (services/ingest/crm/oauth_refresh.py, crm_oauth_api.py): how often the
    # timer renews access tokens about to expire.
    crm_oauth_refresh_interval_s: float = Field(default=60.0, gt=0)
    # Salesforce Change Data Capture over the Streaming API (services/ingest/crm/stream_supervisor.py): on, one
    # subscription per tenant with a connected Salesforce OAuth connection, checked every interval.
    salesforce_streaming: bool = False
    salesforce_streaming_interval_s: float = Field(default=60.0, gt=0)
    # The CRM user sync (services/ingest/crm/users_sync.py): how often the timer looks for syncs due, how often each
    # tenant's CRM users are read again (daily), and the debounce: at most one sync per tenant and CRM this often
    # (a webhook holding back a record for an unknown owner asks for one; a failed one is tried again after it).
    crm_users_sync_check_s: float = Field(default=60.0, gt=0)
    crm_users_sync_every_h: float = Field(default=24.0, gt=0)
    crm_users_sync_retry_s: float = Field(default=600.0, ge=0)
    # Reading a tenant's CRM through its API (services/ingest/crm/backfill.py, reconcile.py): the longest rate-limit
    # pause waited in place (a longer one pauses the job until then); how often the backfill timer looks for jobs,
    # how many it runs at once, and the lease a runner holds on a job (renewed each page; a stopped replica's job is
    # taken over when it ends); the reconciliation's interval, its overlap with the last pass, and the settle time
    # (a change newer than this is left for the next pass: its webhook may still be on the way).
    crm_read_max_wait_s: float = Field(default=60.0, gt=0)
    crm_backfill_poll_s: float = Field(default=5.0, gt=0)
    crm_backfill_concurrency: int = Field(default=2, ge=1)
    crm_backfill_lease_s: float = Field(default=120.0, gt=0)
    crm_reconcile_interval_s: float = Field(default=900.0, gt=0)
    crm_reconcile_overlap_s: float = Field(default=300.0, ge=0)
    crm_reconcile_settle_s: float = Field(default=120.0, ge=0)
    # The Fernet keys tenants' CRM secrets and API tokens are encrypted with at rest (shared/secret_box.py),
    # comma-separated: the first encrypts, every one decrypts. Required: without it ingest and its CLI refuse to
    # start, saying how to make a key. Empty here only so that the message below, not pydantic's, says so.
    crm_secret_keys: SecretStr = SecretStr("")

    @field_validator("crm_secret_keys")
    @classmethod
    def _crm_secret_keys_are_fernet_keys(cls, value: SecretStr) -> SecretStr:
        secret_box.parse_keys(value.get_secret_value())  # BadKeys (a ValueError) says what is wrong, keys unsaid
        return value

    # The Ed25519 private key ingest signs each registry record (`tenant.upserted` on attain.tenants.v1) with
    # (shared/registry_signing.py): base64 of its 32 raw bytes or PEM, or a file holding it. Required, as
    # CRM_SECRET_KEYS: ingest and its CLI refuse to start without; the readers hold its public key.
    registry_signing_key: SecretStr = SecretStr("")
    registry_signing_key_file: Path | None = None

    @model_validator(mode="after")
    def _registry_signing_key_is_a_key(self) -> Self:
        self.registry_signer()  # BadKey (a ValueError) names the variable, never the key
        return self

    def registry_signer(self) -> registry_signing.RegistrySigner:
        """The signer of registry records (REGISTRY_SIGNING_KEY, or the file REGISTRY_SIGNING_KEY_FILE names)."""
        given, path = self.registry_signing_key.get_secret_value(), self.registry_signing_key_file
        if given.strip() and path is not None:
            raise registry_signing.BadKey("REGISTRY_SIGNING_KEY and REGISTRY_SIGNING_KEY_FILE: set one, not both")
        if path is None:
            return registry_signing.RegistrySigner(registry_signing.parse_private_key(given))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as err:
            raise registry_signing.BadKey(f"REGISTRY_SIGNING_KEY_FILE={path}: cannot read it ({type(err).__name__})"
                                          ) from None
        return registry_signing.RegistrySigner(
            registry_signing.parse_private_key(text, registry_signing.SIGNING_FILE_SETTING))

    def crm_secret_box(self) -> secret_box.SecretBox:
        """The box CRM secrets and API tokens are sealed and unsealed with (keys checked at construction)."""
        return secret_box.SecretBox.from_setting(self.crm_secret_keys.get_secret_value())


def problems(err: ValidationError) -> str:
    """A settings error as one line for an operator (shared/cli.py's, the same for every service)."""
    return settings_problems(err)
