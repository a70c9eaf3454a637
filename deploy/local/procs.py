"""What the parts of the local stack share: its paths, its error, its log lines, processes, ports, apt-get."""

from __future__ import annotations

import contextlib
import fcntl
import os
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


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports nobody listens on now on HOST (all bound at once, so the kernel never repeats one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
