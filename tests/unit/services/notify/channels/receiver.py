"""A tiny HTTP/1.1 receiver on a free local port, for the webhook channel's tests: it records each POST
and answers from a script of (status, headers, body), then 200 ``ok`` once the script is spent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.ports import HOST, free_ports

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Receiver:
    script: list[Answer] = field(default_factory=list)
    check: Callable[[Request], None] | None = None  # raises to answer 400 (a body the receiver refuses)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        (port,) = free_ports(1)
        self._server = await asyncio.start_server(self._serve, HOST, port)
        self.url = f"http://{HOST}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await _read(reader):
                self.requests.append(request)
                status, headers, body = self.script.pop(0) if self.script else (200, {}, b"ok")
                if self.check is not None:
                    try:
                        self.check(request)
                    except Exception as err:
                        status, headers, body = 400, {}, f"invalid_payload: {err}".encode()[:500]
                head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n" + "".join(
                    f"{name}: {value}\r\n" for name, value in headers.items())
                writer.write(head.encode() + b"\r\n" + body)
                await writer.drain()
        finally:
            writer.close()


async def _read(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode().split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)
