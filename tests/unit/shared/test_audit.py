"""The audit log's pure parts (shared/audit.py): who, redaction, and an entry only for a real change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared import audit
from shared.authz import Principal
from shared.events import AUDIT_RECORDED, AuditRecorded

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _entry(before: dict | None, after: dict | None) -> AuditRecorded | None:
    item = audit.entry(audit.Change("acme", "thing.changed", "thing:1", before, after), service="ingest",
                       actor=audit.actor_of(Principal("acme", "admin", "tok-1")), at=AT)
    if item is None:
        return None
    topic, key, event = item
    assert (topic, key, event.type, event.tenant) == ("attain.audit.v1", b"acme:thing:1", AUDIT_RECORDED, "acme")
    assert isinstance(event.data, AuditRecorded) and event.id == event.data.audit_id
    return event.data


def test_a_change_is_an_entry_with_who_before_and_after() -> None:
    data = _entry({"value": Decimal("100")}, {"value": Decimal("150.50")})
    assert data is not None
    assert (data.before, data.after) == ({"value": "100"}, {"value": "150.50"})
    assert (data.actor.kind, data.actor.token_id, data.actor.role) == ("token", "tok-1", "admin")
    assert data.at == AT and data.service == "ingest"


def test_a_write_that_changes_nothing_is_no_entry() -> None:
    assert _entry({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}) is None
    assert _entry(None, None) is None


def test_a_new_secret_is_an_entry_that_never_holds_a_secret() -> None:
    data = _entry({"secret": "old-s3cret", "org_id": "00D"}, {"secret": "new-s3cret", "org_id": "00D"})
    assert data is not None
    assert data.before == data.after == {"secret": "(set)", "org_id": "00D"}
    assert "s3cret" not in data.model_dump_json()


@pytest.mark.parametrize(("name", "secret"), [
    ("secret", True), ("client_secret", True), ("token", True), ("refresh_token", True), ("webhook_secret", True),
    ("smtp_password", True), ("token_id", False), ("name", False), ("tokens", False)])
def test_what_counts_as_a_secret(name: str, secret: bool) -> None:
    assert audit.is_secret(name) is secret


def test_secrets_are_redacted_at_any_depth() -> None:
    assert audit.redacted({"crm": {"hubspot": {"secret": "x", "client_secret": ""}}, "list": [{"token": "y"}]}) == {
        "crm": {"hubspot": {"secret": "(set)", "client_secret": None}}, "list": [{"token": "(set)"}]}
    assert audit.redacted(None) is None


def test_who_made_a_change() -> None:
    rep = audit.actor_of(Principal("acme", "rep", "tok-2", rep_id="ana"))
    assert (rep.kind, rep.rep_id, rep.role) == ("token", "ana", "rep")
    assert audit.actor_of(None, cli=True, name="ops").model_dump()["kind"] == "cli"
    assert audit.actor_of(None, cli=True, name="ops").name == "ops"
    assert audit.actor_of(None).kind == "system"
