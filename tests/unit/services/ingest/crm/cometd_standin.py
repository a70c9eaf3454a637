"""A local stand-in for Salesforce's Streaming API (CometD): enough of Bayeux 1.0 to test a subscriber.

Built from the Bayeux 1.0 specification (https://docs.cometd.org/current/reference/#_bayeux: /meta/handshake,
/meta/connect, /meta/subscribe, /meta/unsubscribe, /meta/disconnect, clientId, advice) and Salesforce's Streaming
API Developer Guide (https://developer.salesforce.com/docs/atlas.en-us.api_streaming.meta/api_streaming/):
"Clients and Timeouts" (the first connect answers at once with advice `{"reconnect": "retry", "interval": 0,
"timeout": ...}`, later ones are held until events come or the timeout passes), "Message Durability" (every event
keeps a replay id; a subscription's `ext.replay` resumes after an id, -1 new events, -2 every retained one), "Streaming
API Error Codes" (`400::The replayId {x} you provided was invalid...`, `400::The channel you requested to subscribe
to does not exist {channel}`) and "Handling Streaming API Errors" (`401::Authentication invalid` with advice none,
`403::Handshake denied` carrying `ext.sfdc.failureReason`, `403::Unknown client` with advice handshake). Change
events come as Salesforce sends them: `{"data": {"schema", "payload", "event": {"replayId"}}, "channel"}`.

The real endpoint exists only in Salesforce's cloud. This one is a stdlib ThreadingHTTPServer on 127.0.0.1 (a free
port), run in a thread of its own, so it works under any event loop and from integration tests alike:

    with CometdStandin(token="t1", poll_s=0.1) as salesforce:
        replay_id = salesforce.publish("/data/OpportunityChangeEvent", payload)
        ... SalesforceStream(StreamConfig(instance_url=salesforce.url), "t1", ...) ...

Test levers: `publish` (returns the replay id), `retention` (how many events are kept; older ones expire),
`drop_clients()` (the next request of every session is answered 403::Unknown client), `forget_connects` (so many
connects to come are answered 403::Unknown client, each forgetting its session), `token` (set a new one and the
old is refused: 401). What it saw: `handshakes`, `subscriptions` ((channel, replay asked) in order),
`disconnects`. Not modelled: several channels' shared event bus, cookies' stickiness, quotas, PushTopic queries.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

SCHEMA_ID = "IeRuaY6cbI_HsV8Rv1Mc5g"  # an event schema id as Salesforce shows them (opaque to subscribers)
Message = dict[str, Any]


@dataclass
class _Client:
    cursors: dict[str, int] = field(default_factory=dict)  # channel -> the last replay id delivered
    connected: bool = False


@dataclass(frozen=True)
class _Event:
    channel: str
    replay_id: int
    payload: Message


class CometdStandin:
    """Salesforce's /cometd/<version> endpoint on 127.0.0.1, with a replay buffer; start on entering."""

    def __init__(self, *, token: str = "token-1", poll_s: float = 0.2, retention: int = 1000,
                 version: str = "61.0", first_replay_id: int = 1000) -> None:  # fmt: skip
        self.token = token
        self.poll_s = poll_s
        self.retention = retention
        self.path = f"/cometd/{version}"
        self.handshakes = 0
        self.disconnects = 0
        self.subscriptions: list[tuple[str, int]] = []
        self.forget_connects = 0  # the next connects of any session answer 403::Unknown client
        self._next_replay = first_replay_id
        self._events: list[_Event] = []
        self._clients: dict[str, _Client] = {}
        self._changed = threading.Condition()
        self._closing = False
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="cometd-standin",
                                        daemon=True)  # polls for shutdown every 20 ms

    @property
    def url(self) -> str:
        """The instance URL a client is given (`<url>/cometd/<version>` is the endpoint)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> CometdStandin:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- levers ---------------------------------------------------------------------------------------------------

    def publish(self, channel: str, payload: Message) -> int:
        """Add a change event to the channel; wakes waiting connects. Returns its replay id."""
        with self._changed:
            replay_id = self._next_replay
            self._next_replay += 1
            self._events.append(_Event(channel, replay_id, payload))
            del self._events[: max(0, len(self._events) - self.retention)]
            self._changed.notify_all()
            return replay_id

    def drop_clients(self) -> None:
        """Forget every session, as Salesforce does after a while: next answers are 403::Unknown client."""
        with self._changed:
            self._clients.clear()
            self._changed.notify_all()

    @property
    def clients(self) -> int:
        with self._changed:
            return len(self._clients)

    # --- protocol ---------------------------------------------------------------------------------------------------

    def answer(self, message: Message, bearer: str | None) -> list[Message]:
        """The messages answering one request message (its reply last, events before it)."""
        channel = message.get("channel")
        base: Message = {"channel": channel, "id": message.get("id")}
        authorized = bearer == self.token
        if channel == "/meta/handshake":
            return [self._handshake(message, base, authorized)]
        client_id = message.get("clientId")
        base["clientId"] = client_id
        if not authorized:
            return [base | {"successful": False, "error": "401::Authentication invalid",
                            "advice": {"reconnect": "none", "interval": 0}}]  # fmt: skip
        with self._changed:
            client = self._clients.get(client_id) if isinstance(client_id, str) else None
            if client is None:
                return [_unknown(base)]
            if channel == "/meta/subscribe":
                return [self._subscribe(client, message, base)]
            if channel == "/meta/unsubscribe":
                client.cursors.pop(str(message.get("subscription")), None)
                return [base | {"successful": True, "subscription": message.get("subscription")}]
            if channel == "/meta/disconnect":
                self.disconnects += 1
                del self._clients[str(client_id)]
                return [base | {"successful": True}]
            if channel == "/meta/connect":
                return self._connect(str(client_id), client, base)
        return [base | {"successful": False, "error": f"400::Unknown channel {channel}"}]

    def _handshake(self, message: Message, base: Message, authorized: bool) -> Message:
        if not authorized:
            return base | {"successful": False, "error": "403::Handshake denied", "advice": {"reconnect": "none"},
                           "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}}}  # fmt: skip
        if "long-polling" not in (message.get("supportedConnectionTypes") or []):
            return base | {"successful": False, "error": "400::Invalid connection type"}
        client_id = secrets.token_hex(14)
        with self._changed:
            self.handshakes += 1
            self._clients[client_id] = _Client()
        return base | {"successful": True, "clientId": client_id, "version": "1.0", "minimumVersion": "1.0",
                       "supportedConnectionTypes": ["long-polling"], "ext": {"replay": True, "payload.format": True}}

    def _subscribe(self, client: _Client, message: Message, base: Message) -> Message:
        channel = message.get("subscription")
        base["subscription"] = channel
        if not isinstance(channel, str) or not channel.startswith(("/data/", "/event/", "/topic/")):
            return base | {"successful": False,
                           "error": f"400::The channel you requested to subscribe to does not exist {channel}"}
        replay = ((message.get("ext") or {}).get("replay") or {}).get(channel, -1)
        self.subscriptions.append((channel, replay))
        held = [event.replay_id for event in self._events if event.channel == channel]
        tip = self._next_replay - 1
        if replay == -1:
            cursor = tip
        elif replay == -2:
            cursor = held[0] - 1 if held else tip
        elif isinstance(replay, int) and (held[0] - 1 if held else tip) <= replay <= tip:
            cursor = replay  # the events after it are all still held
        else:
            return base | {"successful": False,
                           "error": f"400::The replayId {{{replay}}} you provided was invalid.  Please provide a"
                                    " valid ID, -2 to replay all events, or -1 to replay only new events."}  # fmt: skip
        client.cursors[channel] = cursor
        return base | {"successful": True}

    def _connect(self, client_id: str, client: _Client, base: Message) -> list[Message]:
        advice = {"reconnect": "retry", "interval": 0, "timeout": round(self.poll_s * 1000)}
        if self.forget_connects > 0:  # Salesforce's stickiness loop: a fresh session forgotten at once
            self.forget_connects -= 1
            del self._clients[client_id]
            return [_unknown(base)]
        if not client.connected:
            client.connected = True
            return [base | {"successful": True, "advice": advice}]
        self._changed.wait_for(lambda: self._closing or client_id not in self._clients or bool(self._due(client)),
                               timeout=self.poll_s)  # fmt: skip
        if client_id not in self._clients:
            return [_unknown(base)]
        due = self._due(client)
        for event in due:
            client.cursors[event.channel] = event.replay_id
        events = [{"channel": event.channel, "data": {"schema": SCHEMA_ID, "payload": event.payload,
                                                      "event": {"replayId": event.replay_id}}} for event in due]
        return [*events, base | {"successful": True}]

    def _due(self, client: _Client) -> list[_Event]:
        return [event for event in self._events
                if event.channel in client.cursors and event.replay_id > client.cursors[event.channel]]


def _unknown(base: Message) -> Message:
    return base | {"successful": False, "error": "403::Unknown client", "advice": {"reconnect": "handshake",
                                                                                  "interval": 0}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: CometdStandin) -> None:
        super().__init__(address, handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid long-poll (cancelled) is no error worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        standin = self.server.standin
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != standin.path:
            self._send(400, {"error": "400::API version in the URI is mandatory. URI format: '/cometd/61.0'"})
            return
        authorization = self.headers.get("Authorization") or ""
        if not authorization.startswith("Bearer "):
            self._send(401, [{"error": "401::Authentication invalid", "successful": False}])
            return
        try:
            messages = json.loads(body)
        except ValueError:
            self._send(400, [{"error": "400::Invalid JSON", "successful": False}])
            return
        messages = messages if isinstance(messages, list) else [messages]
        self._send(200, [answer for message in messages
                         for answer in standin.answer(message, authorization.removeprefix("Bearer "))])  # fmt: skip

    def _send(self, status: int, content: object) -> None:
        data = json.dumps(content).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what the stand-in saw from its counters."""
