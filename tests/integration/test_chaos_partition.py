"""The chaos suite's partition (tests/chaos/netns.py), on its own: a process in a network namespace reaches a
server on the host only through the relay, a cut holds its bytes without closing anything, and a heal
delivers them over the same connection. Needs root and `ip` (what `make chaos` needs for it)."""

from __future__ import annotations

import asyncio
import sys
import uuid

from tests.chaos import netns
from tests.ports import free_ports

# In the namespace: connect to the relayed port, send a line, print what comes back and when (seconds
# after sending), then send again on the same connection.
CLIENT = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
for word in (b"one", b"two"):
    began = time.monotonic()
    s.sendall(word + b"\\n")
    print(s.recv(100).decode().strip(), round(time.monotonic() - began, 1), flush=True)
    sys.stdin.readline()
"""


async def test_a_cut_holds_the_bytes_and_a_heal_delivers_them_on_the_same_connection() -> None:
    port = free_ports(1)[0]
    connections = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while line := await reader.readline():
            writer.write(b"echo " + line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", port)
    space = netns.Namespace(f"attain-t{uuid.uuid4().hex[:6]}", port, free_ports(1)[0], free_ports(1)[0])
    await space.create()
    try:
        client = await asyncio.create_subprocess_exec(
            *space.command, sys.executable, "-c", CLIENT, str(port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert client.stdin is not None and client.stdout is not None
        first = (await asyncio.wait_for(client.stdout.readline(), 10)).decode().split()
        assert first[:2] == ["echo", "one"]

        space.kafka.cut()
        client.stdin.write(b"\n")
        answer = asyncio.ensure_future(client.stdout.readline())
        done, _ = await asyncio.wait({answer}, timeout=2)
        assert not done  # partitioned: no answer, and no error either
        space.kafka.heal()
        second = (await asyncio.wait_for(answer, 10)).decode().split()
        assert second[:2] == ["echo", "two"]
        assert float(second[2]) >= 2.0  # it waited out the partition
        assert connections == 1  # the same connection survived it
        client.stdin.write(b"\n")
        assert await asyncio.wait_for(client.wait(), 10) == 0
    finally:
        await space.delete()
        server.close()


async def test_nothing_outside_the_relays_is_reachable_from_the_namespace() -> None:
    port = free_ports(1)[0]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    space = netns.Namespace(f"attain-t{uuid.uuid4().hex[:6]}", free_ports(1)[0], free_ports(1)[0],
                            free_ports(1)[0])
    await space.create()
    try:
        probe = await asyncio.create_subprocess_exec(
            *space.command, sys.executable, "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)",
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(probe.communicate(), 10)
        assert probe.returncode != 0 and b"ConnectionRefused" in err
    finally:
        await space.delete()
        server.close()
