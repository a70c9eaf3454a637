"""notify's Slack Web API channel (slack_sdk) against a local HTTP server answering as Slack documents
(https://api.slack.com/methods/users.lookupByEmail, /chat.postMessage): Slack's API exists only in Slack's
cloud, so its documented answers are served here, with the requests recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notify.channels import PermanentFailure, TransientFailure
from services.notify.channels.slack_api import SlackApi
from tests.ports import free_ports

USERS = {"ana@example.com": "U0ANA"}


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.busy = 0

    def answer(self, method: str, args: dict[str, Any], auth: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        self.calls.append((method, args, auth))
        if auth != "Bearer xoxb-good":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if self.busy:
            self.busy -= 1
            return 429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"}
        if method == "users.lookupByEmail":
            user = USERS.get(args.get("email", ""))
            return 200, {}, ({"ok": True, "user": {"id": user}} if user else {"ok": False, "error": "users_not_found"})
        if method == "chat.postMessage":
            if not args.get("blocks") or not args.get("text"):
                return 200, {}, {"ok": False, "error": "invalid_blocks"}
            return 200, {}, {"ok": True, "channel": args["channel"], "ts": "1700000000.000100"}
        return 404, {}, {"ok": False, "error": "unknown_method"}


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, args: dict[str, Any]) -> None:
            method = urlsplit(self.path).path.rsplit("/", 1)[1]
            status, headers, body = fake.answer(method, args, self.headers.get("Authorization", ""))
            raw = json.dumps(body).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._reply({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Type", "").startswith("application/json"):
                self._reply(json.loads(raw))
            else:  # form-encoded arguments (or none but the query's), as Slack's API also takes them
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                self._reply({**query, **{k: v[0] for k, v in parse_qs(raw.decode()).items()}})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()


MESSAGE = {"text": "Well done, Ana!", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Hi"}}]}


async def test_a_direct_message_finds_the_person_by_email_then_posts_to_their_user_id(slack: Any) -> None:
    fake, url = slack
    await SlackApi("xoxb-good", url).direct_message("ana@example.com", MESSAGE)
    assert [(m, a.get("email") or a.get("channel")) for m, a, _ in fake.calls] == [
        ("users.lookupByEmail", "ana@example.com"), ("chat.postMessage", "U0ANA")]
    assert fake.calls[1][1]["blocks"] == MESSAGE["blocks"]


async def test_slacks_refusals_are_permanent_with_its_error_code(slack: Any) -> None:
    _, url = slack
    with pytest.raises(PermanentFailure, match="users_not_found"):
        await SlackApi("xoxb-good", url).direct_message("nobody@example.com", MESSAGE)
    with pytest.raises(PermanentFailure, match="invalid_auth"):
        await SlackApi("xoxb-revoked", url).post("C0WINS", MESSAGE)


async def test_a_rate_limit_is_transient_with_slacks_retry_after(slack: Any) -> None:
    fake, url = slack
    fake.busy = 1
    with pytest.raises(TransientFailure) as caught:
        await SlackApi("xoxb-good", url).post("C0WINS", MESSAGE)
    assert caught.value.status == 429 and caught.value.retry_after == 7
    await SlackApi("xoxb-good", url).post("C0WINS", MESSAGE)  # one call each: slack_sdk's own retries are off
    assert [m for m, _, _ in fake.calls] == ["chat.postMessage", "chat.postMessage"]


async def test_an_unreachable_slack_is_transient() -> None:
    (closed,) = free_ports(1)  # a port nothing listens on now, not a well-known one that may be taken
    with pytest.raises(TransientFailure, match="unreachable"):
        await SlackApi("xoxb-good", f"http://127.0.0.1:{closed}/api/").post("C0WINS", MESSAGE)
