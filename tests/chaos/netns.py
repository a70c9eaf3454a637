"""A replica in a network namespace of its own, joined to the host only through relays this process runs,
so that a fault can cut one service off from PostgreSQL, or from Kafka, while everything else keeps running.

The namespace (`ip netns add`) has nothing but its loopback. The replica is started in it (`ip netns exec`,
which execs: the replica's pid is the one the fleet signals) with the same configuration as every other one:
`127.0.0.1:<port>` of Kafka (the address the broker advertises) and of PostgreSQL. Inside the namespace those
ports are relays of this process: a relay's listening socket is made inside the namespace (`setns(2)` on
this thread for the moment it takes to create it), its upstream socket on the host. The replica's own HTTP
port is relayed the other way, so the fleet reaches `/metrics` and `/readyz` at the usual address.

`cut` is a partition, not a refusal: a relay stops moving bytes in both directions and holds new connections
without answering them; nothing is closed, nothing is reset. What the replica sent sits in the kernel's
buffers until they fill, what it waits for never comes: its own timeouts (asyncpg's, aiokafka's, the group's
session) are what notice. `heal` lets the bytes flow again, over the same connections where they survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import subprocess
from collections.abc import Iterator

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_CHUNK = 256 * 1024


@contextlib.contextmanager
def inside(namespace: str | None) -> Iterator[None]:
    """This thread in network namespace `namespace` (a name under /run/netns; None: stay) for the block."""
    if namespace is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(there, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to this process's namespace")
    finally:
        os.close(own)
        os.close(there)


def _socket(namespace: str | None) -> socket.socket:
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


class Relay:
    """`127.0.0.1:port` in namespace `listen_in` forwarded to `127.0.0.1:port` in `connect_in` (None: the
    host's), until `cut`."""

    def __init__(self, port: int, listen_in: str | None, connect_in: str | None) -> None:
        self.port, self.listen_in, self.connect_in = port, listen_in, connect_in
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = _socket(self.listen_in)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        self._server = await asyncio.start_server(self._serve, sock=sock)

    def cut(self) -> None:
        self.flowing.clear()

    def heal(self) -> None:
        self.flowing.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.flowing.wait()  # a connection made during a partition is held, unanswered
            upstream = _socket(self.connect_in)
            try:
                await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", self.port))
            except OSError:
                upstream.close()
                return
            up_reader, up_writer = await asyncio.open_connection(sock=upstream)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # `stop`: end quietly (asyncio's stream callback reports a cancelled task)
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(_CHUNK):
                await self.flowing.wait()  # cut: what was read is held, nothing more is read
                sink.write(data)
                await sink.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.write_eof()


class Namespace:
    """One replica's namespace and its relays: `kafka` and `postgres` out of it, `http` into it."""

    def __init__(self, name: str, kafka_port: int, postgres_port: int, http_port: int) -> None:
        self.name = name
        self.kafka = Relay(kafka_port, name, None)
        self.postgres = Relay(postgres_port, name, None)
        self.http = Relay(http_port, None, name)

    @property
    def command(self) -> list[str]:
        """What the replica's own command is run under."""
        return ["ip", "netns", "exec", self.name]

    async def create(self) -> None:
        await asyncio.to_thread(_ip, "netns", "add", self.name)
        await asyncio.to_thread(_ip, "-n", self.name, "link", "set", "lo", "up")
        for relay in (self.kafka, self.postgres, self.http):
            await relay.start()

    async def delete(self) -> None:
        for relay in (self.kafka, self.postgres, self.http):
            await relay.stop()
        await asyncio.to_thread(_ip, "netns", "delete", self.name)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def available() -> str | None:
    """None when namespaces can be made here (root, `ip`), else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        return "no `ip` command (iproute2)"
    return None
