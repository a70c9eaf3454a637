"""What a failed refresh means for a CRM connection, and when an authorization is too old
(services/ingest/crm/oauth_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.ingest.crm.oauth_rules import (
    BACKOFF_MAX,
    MAX_REASON,
    Refused,
    Revoked,
    TokenSet,
    Unreachable,
    after_failure,
    backoff,
    clip,
    pending_expired,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_revoked_refresh_token_ends_the_connection_with_the_crms_reason_and_no_retry() -> None:
    after = after_failure(Revoked("refresh token is invalid, expired or revoked"), failures=1,
                          expires_at=NOW + timedelta(minutes=10), now=NOW)
    assert after.status == "revoked" and after.reason == "refresh token is invalid, expired or revoked"
    assert after.retry_at is None and after.forget_tokens


def test_a_transient_failure_keeps_the_connection_while_its_access_token_still_works() -> None:
    working = after_failure(Unreachable("the CRM's token endpoint answered status 503"), failures=1,
                            expires_at=NOW + timedelta(minutes=4), now=NOW)
    assert (working.status, working.retry_at, working.forget_tokens) == ("connected", NOW + timedelta(minutes=1),
                                                                          False)
    expired = after_failure(Unreachable("timeout"), failures=2, expires_at=NOW, now=NOW)
    assert expired.status == "error" and expired.retry_at == NOW + timedelta(minutes=2)


def test_a_refusal_is_an_error_retried_after_a_backoff() -> None:
    after = after_failure(Refused("invalid_client", "client authentication failed"), failures=3,
                          expires_at=NOW + timedelta(minutes=20), now=NOW)
    assert (after.status, after.reason, after.retry_at) == ("error", "client authentication failed",
                                                            NOW + timedelta(minutes=4))


def test_the_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (0, 1, 2, 3)] == [timedelta(minutes=m) for m in (1, 1, 2, 4)]
    assert backoff(7) == backoff(500) == BACKOFF_MAX


def test_an_authorization_expires_after_ten_minutes() -> None:
    assert not pending_expired(NOW, NOW + timedelta(minutes=10))
    assert pending_expired(NOW, NOW + timedelta(minutes=10, seconds=1))


def test_a_crms_reason_is_one_short_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    assert len(clip("x" * 1000)) == MAX_REASON
    assert Refused("invalid_scope").reason == "invalid_scope"


def test_a_token_sets_repr_shows_no_token() -> None:
    tokens = TokenSet("access-secret", NOW, "refresh-secret", "https://acme.my.salesforce.com", ("api",))
    assert "secret" not in repr(tokens) and "acme" in repr(tokens)
