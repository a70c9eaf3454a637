from pydantic import Field

from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    http_port: int = 8001
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_events_per_request: int = Field(default=10_000, gt=0)
