"""CloudEvents 1.0 over Kafka in binary mode: what goes into headers and value, and what decode refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.cloudevents import CloudEvent, decode, encode, encode_model, message_key
from shared.errors import AttainError, InvalidMessage
from shared.events import TargetSet

TIME = datetime(2026, 11, 5, 9, 30, 15, 123456, tzinfo=UTC)
EVENT = CloudEvent(
    id="evt-1", type="deal.upserted", source="hubspot", time=TIME, tenant="acme",
    data={"deal_id": "d1", "amount": "90000", "stage": "won", "nested": {"a": [1, 2]}},
    extensions={"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1"},
)  # fmt: skip


def _headers(event: CloudEvent = EVENT) -> list[tuple[str, bytes]]:
    return encode(event)[1]


def _without(name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in _headers() if k != name]


def _replaced(name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, value if k == name else v) for k, v in _headers()]


VALUE = encode(EVENT)[0]


# --- encode ----------------------------------------------------------------------------------------------


def test_encode_puts_every_attribute_in_a_ce_header() -> None:
    headers = dict(_headers())
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_type"] == b"deal.upserted"
    assert headers["ce_source"] == b"hubspot"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_time"] == b"2026-11-05T09:30:15.123456+00:00"
    assert headers["ce_tenant"] == b"acme"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_tenanttimezone"] == b"Europe/Berlin"
    assert headers["ce_tenantfiscalstart"] == b"1"


def test_encode_headers_are_bytes_and_names_are_unique() -> None:
    headers = _headers()
    assert all(isinstance(name, str) and isinstance(value, bytes) for name, value in headers)
    assert len({name for name, _ in headers}) == len(headers)


def test_encode_value_is_the_data_as_compact_json() -> None:
    assert json.loads(VALUE) == EVENT.data
    assert b" " not in VALUE


def test_encode_value_holds_only_the_data_not_the_attributes() -> None:
    assert set(json.loads(VALUE)) == {"deal_id", "amount", "stage", "nested"}


def test_decode_of_encode_is_the_same_event() -> None:
    assert decode(_headers(), VALUE) == EVENT


def test_round_trip_keeps_a_non_utc_offset_instant() -> None:
    event = CloudEvent(id="e", type="t", source="s", tenant="acme", data={},
                       time=datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))))  # fmt: skip
    back = decode(*reversed(encode(event)))
    assert back.time == event.time
    assert back.time.utcoffset() == timedelta(hours=2)


def test_round_trip_without_extensions_gives_no_extensions() -> None:
    event = CloudEvent(id="e", type="t", source="s", time=TIME, tenant="acme", data={"x": 1})
    back = decode(*reversed(encode(event)))
    assert back.extensions == {}
    assert back.tenant_timezone is None


def test_tenant_timezone_comes_from_the_extension() -> None:
    assert decode(_headers(), VALUE).tenant_timezone == "Europe/Berlin"


def test_encode_model_gives_json_ready_data_with_plain_decimal_strings() -> None:
    data = encode_model(TargetSet(scope="rep", scope_id="r1", metric="won_revenue", period="2026-Q4", value="9E+4"))
    assert data == {"scope": "rep", "scope_id": "r1", "metric": "won_revenue", "period": "2026-Q4", "value": "90000"}


def test_message_key_is_tenant_colon_parts() -> None:
    assert message_key("acme", "r1") == b"acme:r1"
    assert message_key("acme", "rep", "r1", "2026-Q4", "won_revenue") == b"acme:rep:r1:2026-Q4:won_revenue"


# --- decode: accepted variations -------------------------------------------------------------------------


def test_decode_accepts_header_names_in_any_case() -> None:
    headers = [(name.upper(), value) for name, value in _headers()]
    assert decode(headers, VALUE) == EVENT


def test_decode_accepts_a_z_suffixed_time() -> None:
    event = decode(_replaced("ce_time", b"2026-11-05T09:30:15Z"), VALUE)
    assert event.time == datetime(2026, 11, 5, 9, 30, 15, tzinfo=UTC)


def test_decode_collects_unknown_ce_headers_as_extensions_and_ignores_others() -> None:
    headers = [*_headers(), ("ce_traceparent", b"00-abc"), ("x-retry", b"3")]
    event = decode(headers, VALUE)
    assert event.extensions == {"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1", "traceparent": "00-abc"}


# --- decode: refusals ----------------------------------------------------------------------------------


def test_invalid_message_is_an_attain_error() -> None:
    assert issubclass(InvalidMessage, AttainError)


@pytest.mark.parametrize("name", ["ce_id", "ce_type", "ce_source", "ce_specversion", "ce_tenant"])
def test_a_missing_required_header_is_named(name: str) -> None:
    with pytest.raises(InvalidMessage, match=f"missing CloudEvents header\\(s\\): {name}$"):
        decode(_without(name), VALUE)


def test_an_empty_required_header_counts_as_missing() -> None:
    with pytest.raises(InvalidMessage, match="missing CloudEvents header\\(s\\): ce_id"):
        decode(_replaced("ce_id", b""), VALUE)


def test_all_missing_headers_are_named_together() -> None:
    with pytest.raises(InvalidMessage, match="ce_id, ce_type, ce_source, ce_specversion, ce_time, ce_tenant"):
        decode([], VALUE)


def test_a_missing_time_is_refused_naming_ce_time() -> None:
    with pytest.raises(InvalidMessage, match="ce_time"):
        decode(_without("ce_time"), VALUE)


@pytest.mark.parametrize("value", [b"not json", b"{", b"", None, b"\xff\xfe\x00"])
def test_a_value_that_is_not_json_is_refused(value: bytes | None) -> None:
    with pytest.raises(InvalidMessage, match=r"^value is not JSON"):
        decode(_headers(), value)


@pytest.mark.parametrize("value", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_a_json_value_that_is_not_an_object_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidMessage, match=r"^value is not a JSON object$"):
        decode(_headers(), value)


@pytest.mark.parametrize("version", [b"0.3", b"1", b"2.0"])
def test_a_wrong_specversion_is_refused_naming_it(version: bytes) -> None:
    with pytest.raises(InvalidMessage, match=f"ce_specversion '{version.decode()}' is not 1.0"):
        decode(_replaced("ce_specversion", version), VALUE)


@pytest.mark.parametrize("content_type", [b"application/cloudevents+json", b"application/cloudevents+json; charset=x"])
def test_structured_mode_is_refused_saying_to_use_binary_mode(content_type: bytes) -> None:
    with pytest.raises(InvalidMessage, match=r"structured-mode .* binary mode"):
        decode(_replaced("content-type", content_type), VALUE)


def test_structured_mode_is_refused_before_complaining_about_missing_headers() -> None:
    structured = json.dumps({"specversion": "1.0", "id": "e", "type": "t", "source": "s", "data": {}}).encode()
    with pytest.raises(InvalidMessage, match="structured-mode"):
        decode([("content-type", b"application/cloudevents+json")], structured)


def test_a_header_that_is_not_utf8_is_refused_naming_it() -> None:
    with pytest.raises(InvalidMessage, match=r"^header ce_source is not UTF-8$"):
        decode(_replaced("ce_source", b"hub\xffspot"), VALUE)


def test_a_naive_time_is_refused_saying_it_has_no_offset() -> None:
    with pytest.raises(InvalidMessage, match="ce_time has no UTC offset"):
        decode(_replaced("ce_time", b"2026-11-05T09:30:15"), VALUE)


@pytest.mark.parametrize("time", [b"yesterday", b"2026-13-01T00:00:00Z", b"05/11/2026"])
def test_a_time_that_is_not_rfc3339_is_refused_naming_it(time: bytes) -> None:
    with pytest.raises(InvalidMessage, match=f"ce_time '{time.decode()}' is not RFC 3339"):
        decode(_replaced("ce_time", time), VALUE)
