"""Structured logs: one JSON object per line on stderr, with whatever `extra=` a call passes, and the
`trace_id` and `span_id` of the span active when it was written (shared/tracing.py), so that a log line
leads to its trace. `AccessLog` writes one line per HTTP request, with no secret in it."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.share_link import PREFIX as SHARE_LINK_PREFIX

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"], entry["span_id"] = f"{span.trace_id:032x}", f"{span.span_id:016x}"
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger's records to stderr, as JSON lines (or plain text for humans)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


# --- access log ----------------------------------------------------------------------------------------------

# A query parameter whose name says it holds a credential: its value is never written anywhere (access log,
# span attributes). Matched anywhere in the name, case-insensitively: `access_token`, `X-Amz-Signature`, `apiKey`.
SECRET_PARAMETER = re.compile(r"token|secret|sig|passw|pwd|key|auth|credential|session|code|cookie", re.IGNORECASE)
REDACTED = "REDACTED"
# Requests an orchestrator or a scraper makes every few seconds: logged at DEBUG unless they fail.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
access_log = logging.getLogger("attain.access")


def redact_query(query: str) -> str:
    """`query` with the value of every credential-like parameter replaced.

    >>> redact_query("limit=5&access_token=abc&Signature=x%2By")
    'limit=5&access_token=REDACTED&Signature=REDACTED'
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if SECRET_PARAMETER.search(k) else v) for k, v in pairs])


def redact_path(path: str) -> str:
    """`path` without the signed part of a TV's share link (a bearer credential of its own, shared/share_link.py).

    >>> redact_path("/tv/share/acme.0f1e2d3c4b5a.0123456789abcdef:sig"), redact_path("/v1/events")
    ('/tv/share/REDACTED', '/v1/events')
    """
    return SHARE_LINK_PREFIX + REDACTED if path.startswith(SHARE_LINK_PREFIX) else path


class StatusObserver:
    """ASGI middleware that calls `done(scope, status, seconds)` once each HTTP request was answered (500 when the
    app raised before answering). Plain ASGI: nothing is buffered. Subclasses: AccessLog, service.RequestMetrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.done(scope, status, time.perf_counter() - started)

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError


class AccessLog(StatusObserver):
    """One structured line per HTTP request (`attain.access`): method, path, redacted query, route, status,
    duration and, in JSON, the trace id. No header is ever written (so no Authorization, no cookie), nor any
    body."""

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in QUIET_PATHS and status < 500 else logging.INFO
        if access_log.isEnabledFor(level):
            entry: dict[str, Any] = {"method": scope.get("method"), "path": redact_path(path), "status": status,
                                     "duration_ms": round(seconds * 1000, 2)}
            if query := scope.get("query_string", b"").decode("latin-1"):
                entry["query"] = redact_query(query)
            if route := getattr(scope.get("route"), "path", None):
                entry["route"] = route
            access_log.log(level, "request", extra=entry)
