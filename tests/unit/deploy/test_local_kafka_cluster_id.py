"""A cluster id is what `kafka-storage format --cluster-id` accepts: never a leading "-", which its argument
parser reads as an option (the secured test broker failed to format with one, CI, December 2026)."""

from __future__ import annotations

import base64
import uuid

import pytest

from deploy.local import kafka_setup


def test_a_new_cluster_id_never_starts_with_a_dash_even_when_the_uuid_would_give_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=1)
    drawn = iter([dashed, dashed, plain])
    monkeypatch.setattr(kafka_setup.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka_setup.new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22


def test_new_cluster_ids_are_22_url_safe_characters_and_differ() -> None:
    ids = {kafka_setup.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") and set(i) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids)
