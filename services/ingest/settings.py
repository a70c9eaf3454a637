from pydantic import Field

from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
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
