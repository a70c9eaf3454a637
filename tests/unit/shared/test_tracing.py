"""Trace context on every hop (shared/tracing.py): W3C headers in and out of Kafka records, the outbox row
keeping the context of the transaction that wrote it, the relay and consumer spans continuing it, and no
secret in an access log line or a span."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import logs, outbox, tracing
from shared.cloudevents import CloudEvent

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=TraceState([("vendor", "x1")]))
OTHER = SpanContext(0x11111111111111111111111111111111, 0x2222222222222222, is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this module's spans, exported to memory; off again after the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing._NoLoneQueries(TracerProvider().sampler))
    provider.add_span_processor(tracing.Redactor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


# --- headers ---------------------------------------------------------------------------------------------


def test_the_headers_of_a_context_are_w3c_trace_context_and_read_back_the_same() -> None:
    headers = tracing.headers_of(REMOTE)
    assert headers == [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                       ("tracestate", b"vendor=x1")]
    assert tracing.context_of([("ce_id", b"1"), *headers]) == REMOTE
    official = TraceContextTextMapPropagator().extract({n: v.decode() for n, v in headers})
    assert trace.get_current_span(official).get_span_context() == REMOTE


def test_a_record_without_or_with_a_malformed_traceparent_has_no_context() -> None:
    assert tracing.context_of(None) is None
    assert tracing.context_of([("ce_id", b"1")]) is None
    assert tracing.context_of([("traceparent", b"00-not-a-trace-01")]) is None
    assert tracing.context_of([("traceparent", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01")]) is None


def test_with_context_replaces_the_trace_headers_and_keeps_the_others() -> None:
    headers = [("ce_id", b"1"), *tracing.headers_of(REMOTE)]
    replaced = tracing.with_context(headers, OTHER)
    assert replaced[0] == ("ce_id", b"1")
    assert tracing.context_of(replaced) == OTHER
    assert [n for n, _ in replaced].count("traceparent") == 1 and "tracestate" not in dict(replaced)


def test_outside_any_span_there_is_nothing_to_carry() -> None:
    assert tracing.current_headers() == []


def test_tracing_is_off_without_an_endpoint_and_on_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.OtelSwitch().on
    assert tracing.OtelSwitch(exporter_otlp_endpoint="http://127.0.0.1:4318").on
    assert tracing.OtelSwitch(exporter_otlp_traces_endpoint="http://c:4318/v1/traces").on
    assert not tracing.OtelSwitch(exporter_otlp_endpoint="http://c:4318", sdk_disabled=True).on
    assert not tracing.OtelSwitch(exporter_otlp_endpoint="http://c:4318", traces_exporter="none").on
    assert not tracing.enabled()


# --- the hops --------------------------------------------------------------------------------------------


def test_a_publish_carries_the_context_of_its_producer_span(spans: InMemorySpanExporter) -> None:
    with tracing.producing(["sales.deals.v1", "sales.deals.v1"], 2) as carried:
        pass
    (span,) = spans.get_finished_spans()
    assert (span.name, span.kind) == ("send sales.deals.v1", SpanKind.PRODUCER)
    assert span.attributes is not None and span.attributes["messaging.system"] == "kafka"
    assert span.attributes["messaging.batch.message_count"] == 2
    assert tracing.context_of(carried) == SpanContext(span.context.trace_id, span.context.span_id, True,
                                                      span.context.trace_flags, span.context.trace_state)


def test_a_tenant_part_continues_its_first_traced_record_and_links_the_other_traces(
        spans: InMemorySpanExporter) -> None:
    carriers = [None, tracing.headers_of(REMOTE), tracing.headers_of(REMOTE), tracing.headers_of(OTHER)]
    with tracing.processing("attain-kpi", ["sales.deals.v1"] * 4, carriers, "acme"):
        inner = trace.get_current_span().get_span_context()
    done = {s.context.span_id: s for s in spans.get_finished_spans()}
    part = done[inner.span_id]
    assert (part.name, part.kind) == ("process sales.deals.v1", SpanKind.CONSUMER)
    assert part.context.trace_id == REMOTE.trace_id and part.parent is not None
    assert part.parent.span_id == REMOTE.span_id
    assert [link.context for link in part.links] == [OTHER]  # the parent is not linked again
    assert part.attributes is not None and part.attributes["messaging.consumer.group.name"] == "attain-kpi"
    assert part.attributes["messaging.batch.message_count"] == 4 and part.attributes["attain.tenant"] == "acme"
    (joined,) = [s for s in done.values() if s is not part]
    assert joined.context.trace_id == OTHER.trace_id  # a search by the other trace finds where it was applied
    assert [link.context.span_id for link in joined.links] == [inner.span_id]


def test_a_part_of_untraced_records_is_a_trace_of_its_own(spans: InMemorySpanExporter) -> None:
    with tracing.processing("attain-kpi", ["a", "b"], [None, [("ce_id", b"1")]], "acme"):
        pass
    (part,) = spans.get_finished_spans()
    assert part.parent is None and part.name == "process" and not part.links


class _Conn:
    """Takes the outbox's insert as asyncpg would, and keeps its arguments."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()

    async def execute(self, _sql: str, *args: Any) -> str:
        self.args = args
        return "SELECT 1"


def _event() -> CloudEvent:
    return CloudEvent("e-1", "kpi.attainment.updated", "attain/kpi", datetime(2026, 12, 1, tzinfo=UTC), "acme",
                      {"a": 1})


async def test_an_outbox_row_keeps_the_context_of_the_transaction_that_wrote_it(spans: InMemorySpanExporter) -> None:
    conn = _Conn()
    with trace.use_span(trace.NonRecordingSpan(REMOTE)):
        await outbox.enqueue_many(conn, [("kpi.attainment.v1", b"acme:ana", _event())] * 2)  # type: ignore[arg-type]
    packs = conn.args[3]
    assert [tracing.context_of(outbox.row_headers(pack, None)) for pack in packs] == [REMOTE, REMOTE]
    assert dict(outbox.row_headers(packs[0], None))["ce_id"] == b"e-1"


async def test_with_tracing_off_an_outbox_row_carries_no_context() -> None:
    conn = _Conn()
    with trace.use_span(trace.NonRecordingSpan(REMOTE)):
        await outbox.enqueue_many(conn, [("kpi.attainment.v1", b"acme:ana", _event())])  # type: ignore[arg-type]
    assert tracing.traceparent_of(outbox.row_headers(conn.args[3][0], None)) is None


def test_the_relay_sends_each_stored_context_on_under_one_span_per_trace_and_topic(
        spans: InMemorySpanExporter) -> None:
    relay = tracing.RelaySpans()
    stored = [("ce_id", b"1"), *tracing.headers_of(REMOTE)]
    first, second = relay.headers("kpi.attainment.v1", stored), relay.headers("kpi.attainment.v1", stored)
    untraced = [("ce_id", b"2")]
    assert relay.headers("kpi.attainment.v1", untraced) is untraced
    relay.end(committed=True)
    (span,) = spans.get_finished_spans()
    assert (span.name, span.kind) == ("send kpi.attainment.v1", SpanKind.PRODUCER)
    assert span.parent is not None and span.parent.span_id == REMOTE.span_id
    assert span.attributes is not None and span.attributes["messaging.batch.message_count"] == 2
    sent = tracing.context_of(first)
    assert sent is not None and (sent.trace_id, sent.span_id) == (REMOTE.trace_id, span.context.span_id)
    assert first == second and first[0] == ("ce_id", b"1")


def test_a_relay_transaction_that_did_not_commit_ends_its_spans_as_errors(spans: InMemorySpanExporter) -> None:
    relay = tracing.RelaySpans()
    relay.headers("t", tracing.headers_of(REMOTE))
    relay.end(committed=False, error=TimeoutError("broker"))
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR and "broker" in (span.status.description or "")


def test_a_query_outside_any_trace_is_not_sampled_one_inside_is(spans: InMemorySpanExporter) -> None:
    tracer = tracing._get_tracer()
    db = {"db.system": "postgresql"}
    tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=db).end()
    with tracer.start_as_current_span("process t", kind=SpanKind.CONSUMER):
        tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=db).end()
    assert sorted(s.name for s in spans.get_finished_spans()) == ["SELECT", "process t"]


# --- no secrets ------------------------------------------------------------------------------------------


def test_credential_like_query_parameters_are_redacted() -> None:
    query = "limit=5&access_token=t0k&X-Amz-Signature=s1g&client_secret=s3c&apiKey=k3y&password=pw&cursor=12"
    redacted = logs.redact_query(query)
    assert redacted == ("limit=5&access_token=REDACTED&X-Amz-Signature=REDACTED&client_secret=REDACTED"
                        "&apiKey=REDACTED&password=REDACTED&cursor=12")


def test_spans_never_hold_a_token_from_the_query_or_a_share_link(spans: InMemorySpanExporter) -> None:
    tracing._get_tracer().start_span("GET", kind=SpanKind.SERVER, attributes={
        "url.query": "token=t0k&page=2", "url.path": "/tv/share/acme.0f1e2d.abcdef0123456789:s1g",
        "url.full": "http://x/a?sig=s1g"}).end()
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert dict(span.attributes) == {"url.query": "token=REDACTED&page=2", "url.path": "/tv/share/REDACTED",
                                     "url.full": "http://x/a?sig=REDACTED"}


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What `attain.access` writes, as the services' JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("ingest"))
    logger = logging.getLogger("attain.access")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_the_access_log_says_what_was_asked_and_answered_and_holds_no_credential(
        access_lines: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/v1/reps/{rep}")
    async def read(rep: str) -> dict[str, str]:
        return {"rep": rep}

    app.add_middleware(logs.AccessLog)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/v1/reps/ana?token=s3cr3t-t0k&limit=5",
                                  headers={"Authorization": "Bearer atn_very-secret", "Cookie": "session=c00k"})
        await client.get("/tv/share/acme.0f1e2d.abcdef0123456789:s1gnature")
    assert answer.status_code == 200
    text = access_lines.getvalue()
    for secret in ("s3cr3t-t0k", "atn_very-secret", "Bearer", "c00k", "s1gnature"):
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert {k: first[k] for k in ("msg", "method", "path", "query", "route", "status")} == {
        "msg": "request", "method": "GET", "path": "/v1/reps/ana", "query": "token=REDACTED&limit=5",
        "route": "/v1/reps/{rep}", "status": 200}
    assert first["duration_ms"] >= 0 and first["logger"] == "attain.access"
    assert (second["path"], second["status"]) == ("/tv/share/REDACTED", 404)


def test_a_log_line_written_inside_a_span_names_its_trace(spans: InMemorySpanExporter) -> None:
    record = logging.makeLogRecord({"name": "x", "msg": "hello", "levelname": "INFO"})
    with tracing._get_tracer().start_as_current_span("work") as span:
        line = json.loads(logs.JsonFormatter("kpi").format(record))
    ctx = span.get_span_context()
    assert (line["trace_id"], line["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert "trace_id" not in json.loads(logs.JsonFormatter("kpi").format(record))
