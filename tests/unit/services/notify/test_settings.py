"""notify's settings: SMTP_URL checked at start (its password never echoed), NOTIFY_SECRET_KEYS optional."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.notify.settings import NotifySettings
from shared.cli import settings_problems


def test_a_wrong_smtp_url_stops_notify_at_start_saying_what_is_wrong_but_not_the_url() -> None:
    with pytest.raises(ValidationError) as caught:
        NotifySettings(smtp_url="http://mailer:hunter2@example.com")
    said = settings_problems(caught.value)
    assert "SMTP_URL must look like smtp://" in said and "hunter2" not in said
    good = NotifySettings(smtp_url="smtp://mailer:hunter2@example.com:587")
    assert good.smtp() == "smtp://mailer:hunter2@example.com:587" and "hunter2" not in repr(good)
    assert NotifySettings(smtp_url="").smtp() is None


def test_the_secret_keys_are_optional_but_checked_when_set() -> None:
    assert NotifySettings().box() is None
    key = Fernet.generate_key().decode()
    box = NotifySettings(notify_secret_keys=key).box()
    assert box is not None and box.unseal(box.seal("x")) == "x"
    with pytest.raises(ValidationError, match="NOTIFY_SECRET_KEYS: key 1 of 1 is not a Fernet key"):
        NotifySettings(notify_secret_keys="not-a-key")
