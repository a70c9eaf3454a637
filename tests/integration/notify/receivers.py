"""Real HTTP receivers for notify's webhooks: Slack and Teams stand-ins that check every body as the real ones do.

One threaded HTTP/1.1 server from the standard library (as the project's other stand-ins, e.g.
tests/integration/test_webhook_subscriber.py) on a free loopback port (tests/ports.py), serving three kinds of
path:

- ``/slack/...``: an incoming webhook. The body must be a Slack message: non-empty ``text`` and ``blocks``
  that are valid against the Block Kit schema generated from Slack's types, with Slack's documented limits
  (at most 50 blocks, lengths and counts: tests/schemas/block_kit.py). Taken: 200 ``ok``, as Slack answers;
  refused: 400 ``invalid_blocks`` and the reasons, one a line (Slack says ``invalid_blocks`` alone).
- ``/teams/...``: a Teams Workflows webhook. The body must be the envelope
  ``{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
  "content": card}]}`` and the card valid against the published Adaptive Card schema
  (tests/unit/services/notify/adaptive_card_schema.py). Taken: 202 Accepted, as a Workflows trigger answers;
  refused: 400 with the reason.
- anything else: any JSON body, 200 (a tenant's own receiver).

Every POST is recorded (`Receivers.received`: path, headers, the JSON body, the answer, the reasons it was
refused), valid or not. `script` answers the next requests to a path prefix from a list instead, e.g.
`rate_limited("/slack/", 2)`: the first two get 429 with ``Retry-After: 1``; a scripted answer is given
whatever the body (a busy receiver does not read it), and the body is still checked and recorded.

Both schemas are loaded when the server starts: without them (no npm, no registry) it does not start, and the
test fails saying why.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jsonschema

from tests.ports import HOST, free_ports
from tests.schemas import block_kit
from tests.unit.services.notify import adaptive_card_schema

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Received:
    """One POST: what came, what it was answered, and why it was refused (`errors`, empty when valid)."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    raw: bytes
    body: Any  # the parsed JSON, None when it was not JSON
    status: int
    errors: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def channel(self) -> str:
        return self.path.split("/")[1] if self.path.count("/") > 1 else ""


@dataclass
class Receivers:
    """The receiver, started by ``with Receivers() as hooks:`` (or `start`/`stop`); `url("/slack/T1")` is
    where to post."""

    script: dict[str, list[Answer]] = field(default_factory=dict)  # path prefix -> the next answers there
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _blocks: jsonschema.Draft7Validator | None = None
    _cards: jsonschema.Draft6Validator | None = None

    def __enter__(self) -> Receivers:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Receivers:
        self._blocks = block_kit.validator()
        self._cards = jsonschema.Draft6Validator(adaptive_card_schema.load())
        (self.port,) = free_ports(1)
        self._server = ThreadingHTTPServer((HOST, self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"receivers-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def answer(self, prefix: str, *answers: Answer) -> None:
        """The next requests to a path under `prefix` get `answers`, in order (before any check)."""
        with self._lock:
            self.script.setdefault(prefix, []).extend(answers)

    def rate_limited(self, prefix: str, times: int, retry_after: int = 1) -> None:
        """The next `times` requests under `prefix` get 429 Too Many Requests with ``Retry-After``."""
        self.answer(prefix, *[(429, {"Retry-After": str(retry_after)}, b"rate_limited")] * times)

    def posts(self, prefix: str = "/") -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def invalid(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if not r.valid]

    async def until(self, count: int, prefix: str = "/", timeout: float = 30) -> list[Received]:  # noqa: ASYNC109
        """The posts under `prefix`, once there are `count` at least; an AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while len(posts := self.posts(prefix)) < count:
            assert time.monotonic() < deadline, f"{len(posts)} of {count} posts under {prefix} after {timeout} s"
            await asyncio.sleep(0.05)
        return posts

    # what the handler calls, on the server's thread

    def take(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        body, errors = self._check(path, headers, raw)
        with self._lock:
            scripted = next((answers for prefix, answers in self.script.items() if path.startswith(prefix) and answers),
                            None)
            status, answer_headers, answer = scripted.pop(0) if scripted else _verdict(path, errors)
            self.received.append(Received(method, path, headers, raw, body, status, tuple(errors)))
        return status, answer_headers, answer

    def _check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, list[str]]:
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None, [f"content-type {headers.get('content-type')!r}, not application/json"]
        try:
            body = json.loads(raw)
        except ValueError as err:
            return None, [f"not JSON: {err}"]
        if path.startswith("/slack/"):
            assert self._blocks is not None
            return body, list(block_kit.message_errors(body, self._blocks))
        if path.startswith("/teams/"):
            return body, self._teams_errors(body)
        return body, []

    def _teams_errors(self, envelope: Any) -> list[str]:
        if not isinstance(envelope, dict) or envelope.get("type") != "message":
            return ['the body is not a Workflows envelope: {"type": "message", "attachments": [...]}']
        attachments = envelope.get("attachments")
        if not isinstance(attachments, list) or len(attachments) != 1 or not isinstance(attachments[0], dict):
            return ["attachments: exactly one attachment, the card"]
        attachment = attachments[0]
        if attachment.get("contentType") != ADAPTIVE_CARD:
            return [f"attachments[0].contentType: {attachment.get('contentType')!r}, not {ADAPTIVE_CARD}"]
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return ["attachments[0].content: not an AdaptiveCard"]
        assert self._cards is not None
        return [block_kit.describe(error, self._cards.schema, "attachments[0].content")
                for error in sorted(self._cards.iter_errors(card), key=lambda e: list(map(str, e.path)))]


def _verdict(path: str, errors: list[str]) -> Answer:
    text = {"content-type": "text/plain; charset=utf-8"}
    if errors:
        first = "invalid_blocks\n" if path.startswith("/slack/") else "invalid_payload\n"
        return 400, text, (first + "\n".join(errors)).encode()[:4000]
    if path.startswith("/teams/"):
        return 202, {}, b""
    return 200, text, b"ok"


def _handler(receivers: Receivers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects; every answer has a length

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._send((413, {}, b"too large"))
                return
            raw = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(receivers.take("POST", self.path, headers, raw))

        def do_GET(self) -> None:
            self._send((405, {"Allow": "POST"}, b"POST only"))

        def _send(self, answer: Answer) -> None:
            status, headers, body = answer
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            self.send_response(status, phrase)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads `received`."""

    return Handler

