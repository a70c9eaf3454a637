"""Traces across every hop: HTTP -> Kafka -> consumer -> outbox -> Kafka, one trace per webhook (docs/tracing.md).

Off unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
HTTP/protobuf; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off again). Off, no provider is
installed: FastAPI's own telemetry stays out of the way, no span object is made, and every call site below
checks `enabled()` once per request, batch or transaction, never per record. Everything else is the SDK's
standard configuration, read by the SDK itself: `OTEL_SERVICE_NAME` (default `attain-<service>`),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`.

On Kafka a trace travels as W3C Trace Context headers, `traceparent` and `tracestate`, beside the CloudEvents
headers (binary mode: a CloudEvents consumer ignores them; the registry's signature does not cover them).
Where they come from and where they go:

- ingest: FastAPI's native server span; `producing` wraps the publish of a request's accepted events in one
  PRODUCER span whose context every record carries;
- a consumer (shared/consumer.py): `processing` opens one CONSUMER span per tenant part of a batch (the unit a
  handler applies), the child of the first of its records that carries a context, with a link to every
  other distinct context of the part; each of those traces gets a short span of its own that links to it,
  so a search by any trace id finds where its events were applied;
- the outbox (shared/outbox.py): each row stores the context of the span that wrote it (the part's span), and
  the relay sends it under a PRODUCER span, one per stored context and topic in a Kafka transaction, the
  child of that context; the record carries the relay span's context.

Database round trips are spans of the asyncpg instrumentation. A query outside any traced operation (the
watchdog's probe, the relay's poll, a timer's sweep) would be a trace of its own every few seconds: those
root spans are dropped by the sampler (`_NoLoneQueries`), whatever `OTEL_TRACES_SAMPLER` says of the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logs import redact_path, redact_query

log = logging.getLogger(__name__)

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
Headers = Sequence[tuple[str, bytes | None]]
MAX_LINKS = 128  # the SDK's default link limit per span: a part of more distinct traces links 128 of them

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("attain")  # a proxy until `configure` installs the provider
_provider: TracerProvider | None = None
SHUTDOWN_TIMEOUT_S = 3.0


class OtelSwitch(BaseSettings):
    """The standard variables that decide whether traces are exported at all (the SDK reads the rest)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore", frozen=True)

    exporter_otlp_endpoint: str = ""
    exporter_otlp_traces_endpoint: str = ""
    sdk_disabled: bool = False
    traces_exporter: str = Field(default="otlp")

    @property
    def on(self) -> bool:
        wanted = bool(self.exporter_otlp_endpoint.strip() or self.exporter_otlp_traces_endpoint.strip())
        return wanted and not self.sdk_disabled and self.traces_exporter.strip().lower() != "none"


def enabled() -> bool:
    """Whether this process exports traces (`configure` installed a provider)."""
    return _provider is not None


def configure(service: str, switch: OtelSwitch | None = None) -> bool:
    """Install the tracer provider (OTLP over HTTP/protobuf, batched) and the asyncpg instrumentation when an
    endpoint is configured; return whether it did. Once per process, before the app serves."""
    global _provider  # noqa: PLW0603 - one provider per process, as OpenTelemetry's own global is
    if _provider is not None or not (switch or OtelSwitch()).on:
        return _provider is not None
    # imported only when tracing is on: the exporter brings protobuf and requests, the instrumentation wrapt
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the default name (merge: the later resource wins)
    resource = Resource.create({SERVICE_NAME: f"attain-{service}"}).merge(OTELResourceDetector().detect())
    sampler = _NoLoneQueries(TracerProvider(shutdown_on_exit=False).sampler)  # OTEL_TRACES_SAMPLER's, wrapped
    # no shutdown at exit: `shutdown` flushes with a bound instead (the SDK's own waits up to 30 s per processor)
    provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(Redactor())  # first: what the exporter sees is already redacted
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _provider = provider
    log.info("tracing on", extra={"service_name": resource.attributes.get(SERVICE_NAME)})
    return True


def install(provider: TracerProvider | None) -> None:
    """Make this module's spans with `provider` (None: off again), without touching OpenTelemetry's global
    provider, which a process may set only once: for tests, with an in-memory exporter. Services: `configure`."""
    global _provider  # noqa: PLW0603
    _provider = provider


def shutdown(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Export what is still buffered, for `timeout_s` at most: a collector that is down must not hold a
    stopping pod past its grace period. (The exporting thread is a daemon: the process ends without it.)"""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def _get_tracer() -> trace.Tracer:
    """This module's tracer: of the installed provider (made once per provider: the SDK builds a new one per
    call), else OpenTelemetry's proxy."""
    global _cached  # noqa: PLW0603
    if _provider is None:
        return _tracer
    if _cached[0] is not _provider:
        _cached = (_provider, _provider.get_tracer("attain"))
    return _cached[1]


_cached: tuple[TracerProvider | None, trace.Tracer] = (None, _tracer)


class _NoLoneQueries(Sampler):
    """Drops a database query that is not part of any trace (a root CLIENT span of the asyncpg
    instrumentation); everything else as the configured sampler decides."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context: otel_context.Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: trace.TraceState | None = None,
                      ) -> SamplingResult:
        if (kind is SpanKind.CLIENT and attributes and ("db.system" in attributes or "db.system.name" in attributes)
                and not trace.get_current_span(parent_context).get_span_context().is_valid):
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoLoneQueries({self._delegate.get_description()})"


class Redactor(SpanProcessor):
    """No secret leaves in a span: token-, signature- and secret-like query parameters (`url.query`, `url.full`)
    and share links in paths (`url.path`) are redacted as the spans start, as in the access log."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes or {}
        query = attributes.get("url.query")
        if isinstance(query, str) and query:
            span.set_attribute("url.query", redact_query(query))
        path = attributes.get("url.path")
        if isinstance(path, str):
            span.set_attribute("url.path", redact_path(path))
        full = attributes.get("url.full")
        if isinstance(full, str) and "?" in full:
            base, _, query = full.partition("?")
            span.set_attribute("url.full", f"{base}?{redact_query(query)}")

    def on_end(self, span: ReadableSpan) -> None:
        pass


# --- Kafka headers ---------------------------------------------------------------------------------------


def headers_of(ctx: SpanContext) -> list[tuple[str, bytes]]:
    """The W3C Trace Context headers that carry `ctx` (written by OpenTelemetry's own propagator)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(ctx)))
    return [(name, value.encode("latin-1")) for name, value in carrier.items()]


def current_headers() -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) of the span active now; none outside a span (or with tracing off)."""
    ctx = trace.get_current_span().get_span_context()
    return headers_of(ctx) if ctx.is_valid else []


def traceparent_of(headers: Headers | None) -> bytes | None:
    """The raw `traceparent` header of a record, if any."""
    for name, raw in headers or ():
        if name == TRACEPARENT:
            return raw
    return None


def context_of(headers: Headers | None) -> SpanContext | None:
    """The (remote) span context a record's headers carry; None when they carry none or a malformed one."""
    carrier: dict[str, str] = {}
    for name, raw in headers or ():
        if name in (TRACEPARENT, TRACESTATE) and raw is not None:
            carrier[name] = raw.decode("latin-1")
    if TRACEPARENT not in carrier:
        return None
    ctx = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return ctx if ctx.is_valid else None


def with_context(headers: Iterable[tuple[str, bytes]], ctx: SpanContext) -> list[tuple[str, bytes]]:
    """`headers` with their trace context replaced by `ctx`."""
    return _with_trace(headers, headers_of(ctx))


def _with_trace(headers: Iterable[tuple[str, bytes]], carried: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(n, v) for n, v in headers if n not in (TRACEPARENT, TRACESTATE)] + carried


def _messaging(operation: str, destination: str | None = None, **more: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"messaging.system": "kafka", "messaging.operation.type": operation,
                                  "messaging.operation.name": operation}
    if destination is not None:
        attributes["messaging.destination.name"] = destination
    attributes.update({k: v for k, v in more.items() if v is not None})
    return attributes


def _span_name(operation: str, destinations: Iterable[str]) -> tuple[str, str | None]:
    names = set(destinations)
    only = next(iter(names)) if len(names) == 1 else None
    return (f"{operation} {only}" if only else operation), only


# --- the three hops --------------------------------------------------------------------------------------


@contextlib.contextmanager
def producing(topics: Iterable[str], count: int) -> Iterator[list[tuple[str, bytes]]]:
    """A PRODUCER span (`send <topic>`) around publishing `count` records of the current request; yields the
    headers every record must carry (its context). Only call when `enabled()`."""
    name, topic = _span_name("send", topics)
    with _get_tracer().start_as_current_span(
            name, kind=SpanKind.PRODUCER,
            attributes=_messaging("send", topic, **{"messaging.batch.message_count": count})) as span:
        yield headers_of(span.get_span_context())


@contextlib.contextmanager
def processing(group: str, topics: Iterable[str], carriers: Sequence[Headers | None],
               tenant: str) -> Iterator[None]:
    """The CONSUMER span (`process <topic>`) of one tenant's part of a batch, current while its handler runs
    (so the outbox rows it writes carry it): the child of the first record that carries a context, linked to
    every other distinct one. Each of those traces gets a span of its own, linked to this one. Only when
    `enabled()`."""
    seen: dict[bytes, SpanContext] = {}
    for headers in carriers:
        raw = traceparent_of(headers)
        if raw is not None and raw not in seen and (ctx := context_of(headers)) is not None:
            seen[raw] = ctx
    contexts = list(seen.values())
    name, topic = _span_name("process", topics)
    attributes = _messaging("process", topic, **{"messaging.consumer.group.name": group,
                                                 "messaging.batch.message_count": len(carriers),
                                                 "attain.tenant": tenant})
    parent = trace.set_span_in_context(NonRecordingSpan(contexts[0])) if contexts else otel_context.Context()
    tracer = _get_tracer()
    # linked to the other traces only: a link that repeats the parent makes backends (Jaeger) drop the parent
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
                                      links=[Link(c) for c in contexts[1:MAX_LINKS + 1]]) as span:
        here = span.get_span_context()
        joined = [tracer.start_span(name, context=trace.set_span_in_context(NonRecordingSpan(c)),
                                    kind=SpanKind.CONSUMER,
                                    attributes={**attributes, "attain.continued_in_trace": f"{here.trace_id:032x}"},
                                    links=[Link(here)])
                  for c in contexts[1:MAX_LINKS + 1]]
        try:
            yield
        except BaseException as err:
            for other in joined:
                other.set_status(StatusCode.ERROR, repr(err)[:200])
            raise
        finally:
            for other in joined:
                other.end()


@dataclass(slots=True)
class _Sending:
    span: trace.Span
    carried: list[tuple[str, bytes]]  # its trace headers, made once per span, not per row
    count: int = 0


class RelaySpans:
    """The PRODUCER spans of one relay transaction: one per stored context and topic (`send <topic>`), the
    child of the context the row was written in; a record sent under one carries its context. Made only
    when `enabled()`; rows without a stored context go out as they are."""

    def __init__(self) -> None:
        self._open: dict[tuple[bytes, str], _Sending] = {}

    def headers(self, topic: str, headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The headers to send a row with: its stored context replaced by that of the span sending it."""
        raw = traceparent_of(headers)
        if raw is None:
            return headers
        sending = self._open.get((raw, topic))
        if sending is None:
            parent = context_of(headers)
            if parent is None:
                return headers
            span = _get_tracer().start_span(
                f"send {topic}", context=trace.set_span_in_context(NonRecordingSpan(parent)),
                kind=SpanKind.PRODUCER, attributes=_messaging("send", topic, **{"attain.outbox": True}))
            sending = self._open[(raw, topic)] = _Sending(span, headers_of(span.get_span_context()))
        sending.count += 1
        return _with_trace(headers, sending.carried)

    def end(self, committed: bool, error: BaseException | None = None) -> None:
        """End every span: the transaction committed, or not (then an error, with why)."""
        for sending in self._open.values():
            sending.span.set_attribute("messaging.batch.message_count", sending.count)
            if not committed:
                sending.span.set_status(StatusCode.ERROR,
                                        repr(error)[:200] if error else "transaction not committed")
            sending.span.end()
        self._open.clear()
