"""What the parts of the local stack share: its paths, its error, its log lines, processes, ports, apt-get."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A part of the stack could not be brought up (the message says what and where to look)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail(path: Path, lines: int = 25, since: int = 0) -> str:
    """The last `lines` lines of `path` written after byte `since`, indented, each cut short."""
    try:
        with open(path, "rb") as handle:
            handle.seek(since if since <= size(path) else 0)
            text = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    text = [line for line in text if line.strip()]
    cut = [line if len(line) <= 240 else line[:240] + " ..." for line in text[-lines:]]
    return "\n".join("    " + line for line in cut)


def capture(
    cmd: Sequence[str],
    *,
    cwd: Path | str | None = None,
    timeout: float | None = None,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` to its end with no stdin, its output captured as text; never raises on its exit code."""
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd,
        timeout=timeout, start_new_session=new_session,
    )  # fmt: skip


@contextlib.contextmanager
def lock() -> Iterator[None]:
    """Serialise concurrent `up`/`down` runs (two test sessions, a dev and a script)."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    with open(LOCAL / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_root() -> bool:
    return os.geteuid() == 0


def runs_with(pid: int, marker: str) -> bool:
    """Whether process `pid` is alive (not a zombie) and `marker` is in its command line."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in {"Z", "X"} and marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


_apt_done: set[str] = set()  # "update" once apt-get update ran in this process


def apt_install(*packages: str) -> None:
    if not is_root():
        raise StackError(
            f"{', '.join(packages)} missing and not root: install it with "
            f"`sudo apt-get install -y {' '.join(packages)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = LOCAL / "apt.log"
    LOCAL.mkdir(parents=True, exist_ok=True)
    steps: list[list[str]] = []
    if "update" not in _apt_done:
        steps.append(["apt-get", "update"])
    steps.append(["apt-get", "install", "-y", "--no-install-recommends", *packages])
    with open(log, "ab") as out:
        for cmd in steps:
            rc = subprocess.run(
                cmd,
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            ).returncode
            if rc != 0:
                raise StackError(f"`{' '.join(cmd)}` failed (exit {rc}); see {log}:\n{tail(log)}")
            if cmd[1] == "update":
                _apt_done.add("update")


# Ports handed out for services a test or the demo starts come from below the kernel's ephemeral range: a port
# in that range may be given to an outgoing connection (a starting service's own connections to Kafka and
# PostgreSQL, opened before it binds its HTTP port) between the moment a port is found free and the moment the
# service binds it, and the service then dies with EADDRINUSE.
PORT_FLOOR = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low() -> int | None:
    """The first port of the kernel's ephemeral range (Linux); None where it cannot be read."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_block(size: int = 1, attempts: int = 200) -> int:
    """The first of `size` consecutive TCP ports nobody uses now on HOST, below the ephemeral range where the
    kernel says where it starts (random, checked by binding each); elsewhere, from the kernel's choice."""
    low = ephemeral_low()
    top = low - size if low is not None and low - size > PORT_FLOOR + 1000 else None  # None: the kernel picks
    picker = random.SystemRandom()
    for _ in range(attempts):
        if top is not None:
            base = picker.randrange(PORT_FLOOR, top)
        else:
            with socket.socket() as probe:
                probe.bind((HOST, 0))
                base = int(probe.getsockname()[1])
            if base + size > 65536:
                continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + size):
                    held.enter_context(socket.socket()).bind((HOST, port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no block of {size} free ports on {HOST} after {attempts} attempts")


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports nobody uses now on HOST, below the ephemeral range (see `free_block`)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_block(1)
        if port not in ports:
            ports.append(port)
    return ports
