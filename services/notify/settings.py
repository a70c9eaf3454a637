from pydantic import Field, SecretStr, field_validator

from shared import secret_box
from shared.settings import ServiceSettings

SECRET_KEYS_SETTING = "NOTIFY_SECRET_KEYS"  # noqa: S105 - the setting's name, not a secret


class NotifySettings(ServiceSettings):
    http_port: int = 8005
    # where e-mail goes: smtp://user:pass@host:587 (STARTTLS), smtps://...:465, ?starttls=no for a local server;
    # unset: e-mail deliveries wait (pending) until it is set
    smtp_url: SecretStr | None = None  # its password never in a log or a settings dump
    notify_from: str = "notify@attain.invalid"  # the From address of every e-mail
    dashboard_base_url: str = "http://localhost:8002"  # the links in messages point under it
    # how often the delivery worker looks for due deliveries, and how many it takes per tenant and pass
    notify_interval_s: float = Field(default=1.0, gt=0)
    # an event older than this when notify reads it tells nobody (a new deployment reading the topics from their
    # start learns the roster from them, but does not send last month's check-ins)
    notify_max_age_h: float = Field(default=24.0, gt=0)
    notify_digest_interval_s: float = Field(default=60.0, gt=0)  # how often the managers' digests are made
    notify_batch: int = Field(default=50, ge=1)
    # how long a claimed delivery is held for its sender before another pass may try it again (a SIGKILL
    # mid-send: the same idempotency key then goes out again once this has passed)
    notify_lease_s: float = Field(default=120.0, gt=0)
    notify_max_attempts: int = Field(default=10, ge=1)  # transient failures in a row before a delivery is dead
    notify_backoff_s: float = Field(default=30.0, gt=0)  # the first retry's wait; doubled each time
    notify_backoff_max_s: float = Field(default=3600.0, gt=0)
    notify_paced_s: float = Field(default=1.0, ge=0)  # at most one post per this many seconds to one Slack channel
    # Slack's Web API (chat.postMessage, users.lookupByEmail) for tenants that connected a Slack app; another
    # base URL only for a local stand-in in tests
    slack_api_url: str = "https://slack.com/api/"
    # The Fernet keys notify seals what it keeps secret with (team channels' webhook URLs, a tenant's Slack bot
    # token and webhook signing secret; the unsubscribe links' tokens), comma-separated, the first encrypts
    # (shared/secret_box.py). Unset: notify still sends e-mail, but refuses to store a secret (saying it needs
    # this setting) and its e-mails carry the preferences page as their unsubscribe link, not one-click.
    notify_secret_keys: SecretStr = SecretStr("")

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_one(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            from services.notify.channels.smtp import SmtpServer  # noqa: PLC0415 - aiosmtplib only when serving

            SmtpServer.from_url(value.get_secret_value())  # a ValueError saying what is wrong, the URL unsaid
            return value
        return None

    def smtp(self) -> str | None:
        """SMTP_URL in the clear, for the mail channel; None when unset."""
        return self.smtp_url.get_secret_value() if self.smtp_url is not None else None

    @field_validator("notify_secret_keys")
    @classmethod
    def _keys_are_fernet_keys(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip():
            secret_box.parse_keys(value.get_secret_value(), SECRET_KEYS_SETTING)
        return value

    def box(self) -> secret_box.SecretBox | None:
        """The box notify's secrets are sealed with; None when NOTIFY_SECRET_KEYS is unset."""
        value = self.notify_secret_keys.get_secret_value()
        return secret_box.SecretBox.from_setting(value, SECRET_KEYS_SETTING) if value.strip() else None
