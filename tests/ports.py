"""Free TCP ports for the services a test starts: the kernel's choice, never a fixed number that another run
(or anything else on the machine) may hold."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nobody listens on now (all bound at once, so the kernel never repeats one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
