from pydantic import Field

from shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    http_port: int = 8005
    # where e-mail goes: smtp://user:pass@host:587 (STARTTLS), smtps://...:465, ?starttls=no for a local server;
    # unset: e-mail deliveries wait (pending) until it is set
    smtp_url: str | None = None
    notify_from: str = "notify@attain.invalid"  # the From address of every e-mail
    dashboard_base_url: str = "http://localhost:8002"  # the links in messages point under it
    # how often the delivery worker looks for due deliveries, and how many it takes per tenant and pass
    notify_interval_s: float = Field(default=1.0, gt=0)
    notify_batch: int = Field(default=50, ge=1)
    # how long a claimed delivery is held for its sender before another pass may try it again (a SIGKILL
    # mid-send: the same idempotency key then goes out again once this has passed)
    notify_lease_s: float = Field(default=120.0, gt=0)
    notify_max_attempts: int = Field(default=10, ge=1)  # transient failures in a row before a delivery is dead
    notify_backoff_s: float = Field(default=30.0, gt=0)  # the first retry's wait; doubled each time
    notify_backoff_max_s: float = Field(default=3600.0, gt=0)
