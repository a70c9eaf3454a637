"""Salesforce Change Data Capture without a relay: the Streaming API (CometD, Bayeux 1.0 over long-polling).

Which protocol, and why. Salesforce offers change events through the Pub/Sub API (gRPC, Avro) and the Streaming
API (CometD). This client speaks CometD, because it can be exercised here against a local server built from the
documented protocol (tests/unit/services/ingest/crm/cometd_standin.py), with nothing new in the image:
- it needs only httpx, already a dependency; Pub/Sub needs grpcio and protobuf (new to the image, which so far
  chose OTLP over HTTP to stay free of grpcio), stubs generated from Salesforce's pubsub_api.proto, an Avro reader
  (fastavro is in the development venv, not a dependency) and a GetSchema cache;
- its events arrive as JSON in the envelope salesforce_cdc.py already reads (`data.payload`, `data.event.replayId`);
  Pub/Sub events are Avro records whose `changedFields` are bitmaps over the schema, a second parser of its own;
- a Bayeux server is a few hundred lines of standard library; a Pub/Sub stand-in is a bidirectional gRPC stream
  (FetchRequest/FetchResponse flow control, replay presets, GetSchema) and Avro encoding of our own, which would
  test our reading of Salesforce against our writing of it.
The price: Salesforce recommends Pub/Sub for new work, and CometD has no "replay tightening" (Salesforce help
article 005321562: after a bulk load a subscriber may receive nothing until its replay id falls out of retention).
The invalid-replay fallback below reports that as a gap for reconciliation to cover. StreamEvent and the callbacks
do not depend on the protocol: a Pub/Sub client could replace this module without touching its callers.

Written from the Bayeux 1.0 specification (https://docs.cometd.org/current/reference/#_bayeux), the Streaming API
Developer Guide (https://developer.salesforce.com/docs/atlas.en-us.api_streaming.meta/api_streaming/): "Clients and
Timeouts", "Message Durability", "Handling Streaming API Errors", "Streaming API Error Codes"; and the Change Data
Capture Developer Guide (https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/
change_data_capture/), on subscribing with CometD and the channels `/data/<Entity>ChangeEvent`, `/data/ChangeEvents`.

Decisions:
- The endpoint is `<instance_url>/cometd/<version>`; every request carries `Authorization: Bearer <token>` and the
  cookies Salesforce sets (httpx keeps them). The client handshakes (long-polling only), subscribes to each channel
  with the replay extension (`ext.replay = {channel: replay id}`: an id resumes after that event, -1 new events
  only, -2 every retained event), then loops on /meta/connect, honouring `advice` (reconnect retry / handshake /
  none, interval, timeout: the HTTP read timeout is the advised long-poll plus `poll_margin_s`).
- Position and effect in one transaction (STYLE.md, rule 4): each event carries its replay id, and `on_events`
  stores the events' effect and the last replay id of each channel together, so there is no separate
  `save_replay` callback that could commit apart from them. The client advances its own position only after
  `on_events` returned; if it raises, `run` ends with that error and the events come again on the next start.
  `load_replay` is asked once per channel at the start of `run`; after a rehandshake the client resubscribes from
  the position it reached, which is what `on_events` stored.
- `403::Unknown client` (Salesforce forgot the session) or advice `handshake`: handshake again and resubscribe
  from the last stored replay id. 401 (HTTP status, `401::` on a channel, or a handshake denied for `401::`):
  the token expired: `refresh_token()` gives a new one and the client handshakes again; a second refusal before
  any successful handshake raises StreamAuthError.
- `400::The replayId {x} you provided was invalid` (the saved id is past the retention window): resubscribe from
  `on_expired` (-2 every retained event, or -1 new events only) and report a Gap: events may have been missed,
  and reconciliation must cover the time since the last stored event.
- Network failures, 5xx, answers that are not Bayeux and a failed connect advised to retry are transient: wait
  (doubling from `backoff_s[0]` up to `backoff_s[1]`), handshake again and resume from the stored position;
  `on_error` hears each one. A session forgotten again before its first successful connect waits the same way (a
  known Salesforce loop: handshake, 403::Unknown client, handshake...). Advice `none`, or a subscription refused
  for another reason (no such channel, no permission), raises StreamClosed.
- A data message without a payload object or an integer replay id is logged and skipped: it has no position to
  store. Whether a payload is a change event is `changes`'s (salesforce_cdc.py's) to say, in the caller.
- Cancelling `run` sends /meta/disconnect (best effort, `request_timeout_s`) and lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

import httpx

from services.ingest.crm import salesforce_cdc, values
from services.ingest.crm.model import Change

log = logging.getLogger(__name__)

OPPORTUNITY_CHANGES: Final = "/data/OpportunityChangeEvent"
ALL_CHANGES: Final = "/data/ChangeEvents"  # every entity selected for Change Data Capture
API_VERSION: Final = "61.0"
NEW_ONLY: Final = -1
ALL_RETAINED: Final = -2
Preset = Literal[-1, -2]

_INVALID_REPLAY: Final = re.compile(r"^400::The replayId \{?(-?\d+)\}? you provided was invalid")
_WHITESPACE: Final = re.compile(r"\s*")
_SALESFORCE_LONG_POLL_MS: Final = 110_000  # "Clients and Timeouts": until the server advises otherwise


def _decimal(literal: str) -> Decimal:
    try:
        return Decimal(literal)
    except InvalidOperation:
        raise ValueError(f"{literal} is out of range") from None


_DECODER: Final = json.JSONDecoder(parse_float=_decimal, parse_constant=values.reject_constant)


class StreamError(Exception):
    """Base of what the stream client raises."""


class StreamClosed(StreamError):
    """Salesforce advised not to reconnect, or refused a subscription for a reason a retry cannot mend."""


class StreamAuthError(StreamError):
    """Salesforce refused the access token even after `refresh_token()` gave a new one."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One change event as delivered: its channel, replay id, the CDC payload, and the message as sent."""

    channel: str
    replay_id: int
    payload: Mapping[str, object]  # `data.payload`: the ChangeEventHeader and the record's (changed) fields
    raw: bytes  # the whole CometD message as Salesforce wrote it (numbers exact), read by `changes`


@dataclass(frozen=True, slots=True)
class Gap:
    """Salesforce no longer holds the events after `refused`: some may have been missed."""

    channel: str
    refused: int  # the stored replay id that is past the retention window
    resumed_from: Preset  # ALL_RETAINED or NEW_ONLY
    error: str  # Salesforce's words


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Where to subscribe and how patiently; defaults are Salesforce's production values."""

    instance_url: str  # https://<domain>.my.salesforce.com, from the OAuth token response
    channels: tuple[str, ...] = (OPPORTUNITY_CHANGES,)
    api_version: str = API_VERSION
    first_replay: Preset = ALL_RETAINED  # where a channel with no stored replay id starts
    on_expired: Preset = ALL_RETAINED  # where to resume when the stored replay id is past retention
    poll_margin_s: float = 10.0  # the HTTP read timeout beyond the advised long-poll
    request_timeout_s: float = 30.0  # handshake, subscribe, disconnect
    backoff_s: tuple[float, float] = (1.0, 60.0)  # the first and the longest wait after a transient failure


def changes(event: StreamEvent, chosen: Collection[str] = ()) -> list[Change]:
    """The deal changes one delivered event carries, read by salesforce_cdc.py with the tenant's `chosen`
    properties; PayloadError when it is not a change event as Salesforce documents it."""
    return salesforce_cdc.changes(salesforce_cdc.events(event.raw), tuple(chosen))


def bayeux_messages(body: bytes) -> list[tuple[Mapping[str, object], bytes]]:
    """Each message of a Bayeux answer (a JSON array, or one object) with its own exact JSON text.

    Raises ValueError when the body is not JSON objects (numbers are Decimals, NaN refused)."""
    text = body.decode()
    at = _skip(text, 0)
    if not text.startswith("[", at):
        value, end = _DECODER.raw_decode(text, at)
        found = [(value, text[at:end])]
        at = end
    else:
        found, at = [], _skip(text, at + 1)
        while not text.startswith("]", at):
            value, end = _DECODER.raw_decode(text, at)
            found.append((value, text[at:end]))
            at = _skip(text, end)
            if text.startswith(",", at):
                at = _skip(text, at + 1)
            elif not text.startswith("]", at):
                raise ValueError(f"expected ',' or ']' at {at}")
        at += 1
    if _skip(text, at) != len(text):
        raise ValueError(f"extra data at {at}")
    if not all(isinstance(value, dict) for value, _ in found):
        raise ValueError("a Bayeux message is not an object")
    return [(value, raw.encode()) for value, raw in found]


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    return match.end() if match else at


class _Rehandshake(Exception):
    """Salesforce forgot the client, or advised a handshake."""


class _Unauthorized(Exception):
    """The access token is no longer accepted."""


class _Transient(Exception):
    """The network, a 5xx, or an answer that is not Bayeux: wait and start again."""


class SalesforceStream:
    """A CometD subscription to Salesforce change events for one tenant's org; `run` until cancelled.

    load_replay(channel): the replay id stored for the channel, None when there is none;
    on_events(events): store (and publish) what the events change and each channel's last replay id, in one
        transaction; the events are in delivery order, at least one;
    on_gap(gap): record that events may have been missed (the stored replay id expired);
    refresh_token(): a new access token, after Salesforce refused the current one;
    on_error(message): optional, hears each transient failure before the client retries.
    """

    def __init__(self, config: StreamConfig, access_token: str, *,
                 load_replay: Callable[[str], Awaitable[int | None]],
                 on_events: Callable[[list[StreamEvent]], Awaitable[None]],
                 on_gap: Callable[[Gap], Awaitable[None]],
                 refresh_token: Callable[[], Awaitable[str]],
                 on_error: Callable[[str], Awaitable[None]] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.config = config
        self._token = access_token
        self._load_replay, self._on_events, self._on_gap = load_replay, on_events, on_gap
        self._refresh_token, self._on_error, self._transport = refresh_token, on_error, transport
        self._replay: dict[str, int] = {}
        self._client_id: str | None = None
        self._message_id = 0
        self._connected = False  # whether a /meta/connect of the current session succeeded
        self._reconnect, self._interval_ms, self._timeout_ms = "retry", 0, _SALESFORCE_LONG_POLL_MS
        self._path = f"/cometd/{config.api_version}"

    @property
    def replay_ids(self) -> Mapping[str, int]:
        """Each channel's position: the last replay id `on_events` stored, or the preset it resumes from."""
        return dict(self._replay)

    async def run(self) -> None:
        """Subscribe and deliver events until cancelled; raises StreamClosed, StreamAuthError, or what a callback
        raised."""
        for channel in self.config.channels:
            stored = await self._load_replay(channel)
            self._replay[channel] = self.config.first_replay if stored is None else stored
        async with httpx.AsyncClient(base_url=self.config.instance_url.rstrip("/"), transport=self._transport,
                                     trust_env=False, follow_redirects=False) as http:  # fmt: skip
            try:
                await self._loop(http)
            finally:
                await self._disconnect(http)

    async def _loop(self, http: httpx.AsyncClient) -> None:
        failures, refreshed = 0, False
        while True:
            self._connected = False
            try:
                await self._handshake(http)
                refreshed = False
                await self._subscribe(http)
                await self._connect(http)
            except _Rehandshake:
                if self._connected:  # a session that worked for a while: Salesforce's advice is enough
                    failures = 0
                    await asyncio.sleep(self._interval_ms / 1000)
                else:  # forgotten again before any connect: do not hammer the handshake
                    failures += 1
                    await asyncio.sleep(self._backoff(failures))
            except _Unauthorized as err:
                if refreshed:
                    raise StreamAuthError(f"Salesforce refused the refreshed access token: {err}") from err
                log.info("salesforce stream: access token refused (%s); refreshing", err)
                self._token, refreshed = await self._refresh_token(), True
            except _Transient as err:
                failures = 1 if self._connected else failures + 1
                wait = self._backoff(failures)
                log.warning("salesforce stream: %s; handshaking again in %.3gs", err, wait)
                if self._on_error is not None:
                    await self._on_error(str(err))
                await asyncio.sleep(wait)
            self._client_id = None

    def _backoff(self, failures: int) -> float:
        first, longest = self.config.backoff_s
        return float(min(longest, first * 2 ** (failures - 1)))

    async def _handshake(self, http: httpx.AsyncClient) -> None:
        self._reconnect = "retry"  # advice to handshake is spent by handshaking; the answer may advise anew
        reply = await self._meta(http, {"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                                        "supportedConnectionTypes": ["long-polling"]})  # fmt: skip
        if reply.get("successful") is True and isinstance(reply.get("clientId"), str):
            self._client_id = str(reply["clientId"])
            return
        ext = reply.get("ext")
        sfdc = ext.get("sfdc") if isinstance(ext, dict) else None
        reason = sfdc.get("failureReason") if isinstance(sfdc, dict) else None
        error = f"{reply.get('error')}" + (f" ({reason})" if reason else "")
        if str(reason or reply.get("error") or "").startswith("401"):
            raise _Unauthorized(error)
        if self._reconnect == "none":
            raise StreamClosed(f"handshake refused: {error}")
        raise _Transient(f"handshake refused: {error}")

    async def _subscribe(self, http: httpx.AsyncClient) -> None:
        for channel in self.config.channels:
            while True:
                replay = self._replay[channel]
                reply = await self._meta(http, {"channel": "/meta/subscribe", "clientId": self._client_id,
                                                "subscription": channel, "ext": {"replay": {channel: replay}}})
                if reply.get("successful") is True:
                    break
                error = str(reply.get("error"))
                self._refusal(error)
                expired = _INVALID_REPLAY.match(error)
                if expired is None or replay < 0:
                    raise StreamClosed(f"subscription to {channel} refused: {error}")
                log.warning("salesforce stream: replay id %s of %s expired; resuming from %s", replay, channel,
                            self.config.on_expired)
                self._replay[channel] = self.config.on_expired
                await self._on_gap(Gap(channel, replay, self.config.on_expired, error))

    async def _connect(self, http: httpx.AsyncClient) -> None:
        while True:
            reply = await self._meta(http, {"channel": "/meta/connect", "clientId": self._client_id,
                                            "connectionType": "long-polling"},
                                     read_s=self._timeout_ms / 1000 + self.config.poll_margin_s)  # fmt: skip
            if reply.get("successful") is True:
                self._connected = True
            else:
                self._refusal(str(reply.get("error")))
                if self._reconnect == "retry":  # failed, yet advised to retry: after a backoff, not at once
                    raise _Transient(f"/meta/connect refused: {reply.get('error')}")
            if self._reconnect == "handshake":
                raise _Rehandshake
            if self._reconnect == "none":
                raise StreamClosed(f"Salesforce advised not to reconnect: {reply.get('error')}")
            await asyncio.sleep(self._interval_ms / 1000)

    def _refusal(self, error: str) -> None:
        """Raise what a refused meta message calls for, when it is about the session rather than the message."""
        if error.startswith("401"):
            raise _Unauthorized(error)
        if error.startswith("403::Unknown client"):
            raise _Rehandshake

    async def _meta(self, http: httpx.AsyncClient, message: dict[str, object],
                    read_s: float | None = None) -> Mapping[str, object]:
        """Send one meta message; deliver the events that came with the answer; return the meta reply."""
        self._message_id += 1
        message["id"] = str(self._message_id)
        try:
            response = await http.post(self._path, json=[message], headers={"Authorization": f"Bearer {self._token}"},
                                       timeout=read_s or self.config.request_timeout_s)  # fmt: skip
        except httpx.TransportError as err:
            raise _Transient(f"{message['channel']}: {type(err).__name__}: {err}") from err
        if response.status_code == 401:
            raise _Unauthorized(f"HTTP 401 on {message['channel']}")
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Transient(f"{message['channel']}: HTTP {response.status_code}")
        try:
            found = bayeux_messages(response.content)
        except (ValueError, RecursionError) as err:
            if response.status_code != 200:
                raise StreamClosed(f"{message['channel']}: HTTP {response.status_code}: {response.text[:200]}") from err
            raise _Transient(f"{message['channel']}: not a Bayeux answer: {err}") from err
        events = [event for reply, raw in found if (event := _event(reply, raw)) is not None]
        if events:
            await self._on_events(events)
            for event in events:
                self._replay[event.channel] = event.replay_id
        reply = next((reply for reply, _ in found if reply.get("channel") == message["channel"]), None)
        if reply is None:
            raise _Transient(f"{message['channel']}: no reply (HTTP {response.status_code})")
        self._advise(reply.get("advice"))
        return reply

    def _advise(self, advice: object) -> None:
        """Bayeux advice holds until the server gives new advice."""
        if not isinstance(advice, dict):
            return
        if advice.get("reconnect") in ("retry", "handshake", "none"):
            self._reconnect = advice["reconnect"]
        if values.is_integer(advice.get("interval")):
            self._interval_ms = max(0, advice["interval"])
        if values.is_integer(advice.get("timeout")):
            self._timeout_ms = max(0, advice["timeout"])

    async def _disconnect(self, http: httpx.AsyncClient) -> None:
        if self._client_id is None:
            return
        try:
            await http.post(self._path, json=[{"channel": "/meta/disconnect", "clientId": self._client_id}],
                            headers={"Authorization": f"Bearer {self._token}"}, timeout=self.config.request_timeout_s)
        except httpx.HTTPError as err:
            log.info("salesforce stream: disconnect not delivered: %s", err)
        self._client_id = None


def _event(message: Mapping[str, object], raw: bytes) -> StreamEvent | None:
    """The event a data message carries; None for a meta message, or (logged) for one without a position."""
    channel = message.get("channel")
    if not isinstance(channel, str) or channel.startswith("/meta/"):
        return None
    data = message.get("data")
    event = data.get("event") if isinstance(data, dict) else None
    replay_id = event.get("replayId") if isinstance(event, dict) else None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not values.is_integer(replay_id) or not isinstance(payload, dict):
        log.warning("salesforce stream: a message on %s without a payload or an integer replay id, skipped", channel)
        return None
    return StreamEvent(channel=channel, replay_id=replay_id, payload=payload, raw=raw)
