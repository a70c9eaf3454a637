"""Free ports for the services a test or the demo starts: below the kernel's ephemeral range, so that a starting
service's own outgoing connections can never take the port it is about to bind (`deploy.local.procs`)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from deploy.local import procs


def test_ports_come_from_below_the_ephemeral_range_distinct_and_free() -> None:
    low = procs.ephemeral_low()
    ports = procs.free_ports(12)
    assert len(set(ports)) == 12
    if low is not None:
        assert all(procs.PORT_FLOOR <= port < low for port in ports), (low, ports)
    base = procs.free_block(4)
    with contextlib.ExitStack() as held:  # all four bind: the block is free
        for port in range(base, base + 4):
            held.enter_context(socket.socket()).bind((procs.HOST, port))
    if low is not None:
        assert base + 4 <= low


def test_a_taken_port_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The picker offers a taken port twice, then a free one: the free one comes back."""
    with socket.socket() as taken, socket.socket() as spare:
        taken.bind((procs.HOST, 0))
        spare.bind((procs.HOST, 0))
        port, free = taken.getsockname()[1], spare.getsockname()[1]
        spare.close()
        offers = iter([port, port, free])

        class Picker:
            def randrange(self, _start: int, _stop: int) -> int:
                return next(offers)

        monkeypatch.setattr(procs.random, "SystemRandom", Picker)
        monkeypatch.setattr(procs, "ephemeral_low", lambda: 65_000)
        monkeypatch.setattr(procs, "PORT_FLOOR", 1024)
        assert procs.free_block(1) == free


def test_without_a_readable_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(procs, "EPHEMERAL_RANGE", tmp_path / "missing")
    assert procs.ephemeral_low() is None
    assert len(set(procs.free_ports(3))) == 3
