"""shared/registry_signing.py: a registry record is applied only when a known key signed exactly these bytes."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from services.coaching.app import SPEC as COACHING
from services.ingest import keys
from services.ingest.app import SPEC as INGEST
from services.ingest.tenants import signed
from services.kpi.app import SPEC as KPI
from services.recognition.app import SPEC as RECOGNITION
from shared import metrics, topics
from shared import registry_signing as rs
from shared.cloudevents import CloudEvent, encode, message_key
from shared.consumer import TransactionalConsumer
from shared.events import ExchangeRate, TenantUpserted
from shared.service import registry_verifier
from shared.settings import ServiceSettings

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
INGEST_KEY = rs.generate_private_key()
SIGNER = rs.RegistrySigner(INGEST_KEY)
VERIFIER = rs.RegistryVerifier([INGEST_KEY.public_key()])


@dataclass
class Record:
    """What aiokafka hands the consumer (the fields it reads)."""

    headers: list[tuple[str, bytes]]
    value: bytes | None
    key: bytes | None
    topic: str = topics.TENANTS.name
    partition: int = 0
    offset: int = 3
    timestamp: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def entry(tenant: str = "acme", digest: str = "ab" * 32) -> TenantUpserted:
    return TenantUpserted(tenant=tenant, timezone="Europe/Berlin", currency="EUR", fiscal_start_month=1,
                          token_sha256=digest, active=True, locale="de_DE",
                          rates=[ExchangeRate(currency="USD", valid_from="2026-01-01", rate="0.921500000000")])


def event(tenant: str = "acme", digest: str = "ab" * 32) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), type="tenant.upserted", source="attain/ingest", time=AT, tenant=tenant,
                      data=entry(tenant, digest))


def record_of(cloud_event: CloudEvent, key: bytes | None = None) -> Record:
    """The record ingest's outbox writes for `cloud_event` (headers and value as `encode` makes them)."""
    value, headers = encode(cloud_event)
    return Record(headers, value, message_key(cloud_event.tenant) if key is None else key)


def signed_record(tenant: str = "acme", digest: str = "ab" * 32, signer: rs.RegistrySigner = SIGNER) -> Record:
    return record_of(signed(event(tenant, digest), message_key(tenant), signer))


def check(record: Record, verifier: rs.RegistryVerifier = VERIFIER) -> None:
    verifier.check(record.headers, record.key, record.value)


def replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in headers]


def test_a_record_ingest_signed_is_accepted() -> None:
    check(signed_record())


def test_an_unsigned_record_is_refused() -> None:
    with pytest.raises(rs.RegistryRejected) as refused:
        check(record_of(event()))
    assert refused.value.reason == "unsigned"


@pytest.mark.parametrize("header", rs.SIGNED_HEADERS)
def test_changing_any_signed_header_is_refused(header: str) -> None:
    good = signed_record()
    forged = Record(replaced(good.headers, header, b"other"), good.value, good.key)
    with pytest.raises(rs.RegistryRejected) as refused:
        check(forged)
    assert refused.value.reason == "bad_signature"


def test_changing_the_record_key_is_refused() -> None:
    good = signed_record()
    with pytest.raises(rs.RegistryRejected, match="bad_signature"):
        check(Record(good.headers, good.value, message_key("victim")))


def test_installing_another_digest_in_the_value_is_refused() -> None:
    good = signed_record()
    assert good.value is not None
    forged = good.value.replace(b"ab" * 32, b"cd" * 32)
    assert forged != good.value
    with pytest.raises(rs.RegistryRejected, match="bad_signature"):
        check(Record(good.headers, forged, good.key))


@pytest.mark.parametrize("field_", ["tenant", "timezone", "currency", "active", "locale", "rate"])
def test_changing_any_field_of_the_data_is_refused(field_: str) -> None:
    good = signed_record()
    assert good.value is not None
    swaps = {"tenant": (b'"tenant":"acme"', b'"tenant":"evil"'), "timezone": (b"Europe/Berlin", b"Asia/Tokyo"),
             "currency": (b'"EUR"', b'"GBP"'), "active": (b'"active":true', b'"active":false'),
             "locale": (b'"de_DE"', b'"fr_FR"'), "rate": (b"0.9215", b"9.9215")}
    old, new = swaps[field_]
    assert old in good.value
    with pytest.raises(rs.RegistryRejected, match="bad_signature"):
        check(Record(good.headers, good.value.replace(old, new), good.key))


def test_moving_a_signature_to_another_tenants_record_is_refused() -> None:
    theirs, mine = signed_record("victim"), record_of(event("victim", "cd" * 32))
    signature = dict(theirs.headers)[rs.H_SIGNATURE]
    with pytest.raises(rs.RegistryRejected, match="bad_signature"):
        check(Record([*mine.headers, (rs.H_SIGNATURE, signature)], mine.value, mine.key))


def test_a_record_signed_by_an_attackers_key_is_refused_as_an_unknown_key() -> None:
    with pytest.raises(rs.RegistryRejected) as refused:
        check(signed_record(signer=rs.RegistrySigner(rs.generate_private_key())))
    assert refused.value.reason == "unknown_key"


def test_an_attacker_claiming_ingests_key_id_fails_on_the_signature() -> None:
    attacker = rs.RegistrySigner(rs.generate_private_key())
    attacker.key_id = SIGNER.key_id  # the key id is public: it selects a key, it proves nothing
    with pytest.raises(rs.RegistryRejected, match="bad_signature"):
        check(signed_record(signer=attacker))


@pytest.mark.parametrize("value", [b"", b"garbage", b"abc:", f"{SIGNER.key_id}:!!".encode(),
                                   f"{SIGNER.key_id}:AAAA".encode(), b"\xff\xfe"])
def test_a_malformed_signature_header_is_refused(value: bytes) -> None:
    good = record_of(event())
    with pytest.raises(rs.RegistryRejected) as refused:
        check(Record([*good.headers, (rs.H_SIGNATURE, value)], good.value, good.key))
    assert refused.value.reason in ("malformed", "unsigned")


def test_during_a_rotation_both_keys_verify_and_then_the_old_one_no_longer_does() -> None:
    new_key = rs.generate_private_key()
    both = rs.RegistryVerifier(rs.parse_public_keys(
        f"{rs.encode_public_key(new_key.public_key())}, {rs.encode_public_key(INGEST_KEY.public_key())}"))
    old_record, new_record = signed_record(), signed_record(signer=rs.RegistrySigner(new_key))
    check(old_record, both)
    check(new_record, both)
    only_new = rs.RegistryVerifier([new_key.public_key()])
    check(new_record, only_new)
    with pytest.raises(rs.RegistryRejected, match="unknown_key"):
        check(old_record, only_new)


def test_keys_read_as_base64_or_pem_and_a_bad_one_is_named_by_position_only() -> None:
    pem = INGEST_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()
    assert rs.RegistrySigner(rs.parse_private_key(pem)).key_id == SIGNER.key_id
    raw = base64.urlsafe_b64decode(rs.encode_private_key(INGEST_KEY))
    assert rs.RegistrySigner(rs.parse_private_key(base64.urlsafe_b64encode(raw).decode())).key_id == SIGNER.key_id
    public_pem = INGEST_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert rs.RegistryVerifier(rs.parse_public_keys(public_pem)).key_ids == [SIGNER.key_id]
    secret = rs.encode_private_key(INGEST_KEY)
    with pytest.raises(rs.BadKey, match="REGISTRY_VERIFY_KEYS: key 2 of 2") as bad:
        rs.parse_public_keys(f"{rs.encode_public_key(INGEST_KEY.public_key())},{secret[:20]}")
    assert secret[:20] not in str(bad.value)
    with pytest.raises(rs.BadKey, match="REGISTRY_VERIFY_KEYS is not set"):
        rs.parse_public_keys(" , ")


def test_the_signed_bytes_frame_each_part_so_moving_bytes_between_parts_changes_them() -> None:
    headers = [("ce_id", b"ab"), ("ce_type", b"c")]
    moved = [("ce_id", b"a"), ("ce_type", b"bc")]
    assert rs.signed_bytes(headers, b"k", b"v") != rs.signed_bytes(moved, b"k", b"v")
    assert rs.signed_bytes(headers, b"kv", b"") != rs.signed_bytes(headers, b"k", b"v")


# --- the consumer: refused records are dead-letter reasons, counted by reason, never applied ----------------------

def consumer(verifier: rs.RegistryVerifier | None) -> TransactionalConsumer:
    return TransactionalConsumer(pool=None, producer=None, group_id="g-test-registry", service="t",  # type: ignore[arg-type]
                                 models={"tenant.upserted": TenantUpserted}, handler=None,  # type: ignore[arg-type]
                                 verifier=verifier)


def rejected(reason: str) -> float:
    return metrics.REGISTRY_REJECTED.labels(reason)._value.get()  # type: ignore[no-any-return]


def test_the_consumer_applies_a_signed_registry_record_and_dead_letters_a_forged_one_with_its_reason() -> None:
    good, forged = signed_record(), record_of(event("acme", "cd" * 32))
    before = rejected("unsigned")
    decoded = consumer(VERIFIER).decode_all([good, forged])  # type: ignore[list-item]
    accepted = decoded[id(good)]
    assert not isinstance(accepted, str) and isinstance(accepted.data, TenantUpserted)
    assert decoded[id(forged)] == "registry record refused (unsigned): no ce_attainsig header"
    assert rejected("unsigned") == before + 1


def test_a_consumer_given_no_keys_applies_no_registry_record() -> None:
    reason = consumer(None).decode_all([signed_record()])  # type: ignore[list-item]
    assert list(reason.values()) == ["registry record refused (unknown_key): this consumer was given no"
                                     " REGISTRY_VERIFY_KEYS"]


def test_records_of_other_topics_need_no_signature() -> None:
    plain = record_of(event())
    plain.topic = topics.DEALS.name
    assert not isinstance(consumer(None).decode_all([plain])[id(plain)], str)  # type: ignore[list-item]


# --- start-up and the key command ---------------------------------------------------------------------------------

def test_kpi_coaching_and_recognition_refuse_to_start_without_verify_keys_and_ingest_needs_none() -> None:
    for spec in (KPI, COACHING, RECOGNITION):
        with pytest.raises(rs.BadKey, match="REGISTRY_VERIFY_KEYS is not set"):
            registry_verifier(spec, ServiceSettings(registry_verify_keys=""))
        given = ServiceSettings(registry_verify_keys=rs.encode_public_key(INGEST_KEY.public_key()))
        verifier = registry_verifier(spec, given)
        assert verifier is not None and verifier.key_ids == [SIGNER.key_id]
    assert registry_verifier(INGEST, ServiceSettings(registry_verify_keys="")) is None


def test_the_key_command_writes_the_private_key_to_a_new_file_only_its_owner_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "registry.key"
    assert keys.main(["registry", "--private-key-file", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "private_key" not in shown and stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = rs.RegistrySigner(rs.parse_private_key(path.read_text()))
    assert rs.RegistryVerifier(rs.parse_public_keys(shown["public_key"])).key_ids == [signer.key_id] == [
        shown["key_id"]]
    assert keys.main(["registry", "--private-key-file", str(path)]) == 2  # never overwritten


def test_the_key_command_prints_both_keys_without_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert keys.main(["registry"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert rs.encode_public_key(rs.parse_private_key(shown["private_key"]).public_key()) == shown["public_key"]
