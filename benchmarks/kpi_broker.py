"""A Kafka broker of the benchmark's own, on ports of its own, with its own data.

The local stack's broker is shared by whatever runs on the machine: test suites and services of
any checkout produce to the sales topics and consume them with groups that resume where they
stopped. A million benchmark records there would queue in front of every later test run's events
(a kpi under test would work through them first), and the records others write during the run
would be mixed into the figures. `deploy.local.stack` keeps its broker under the checkout's
`.local/kafka`, so a copy of `deploy/` and `shared/` under `.local/bench/broker/` runs a second
one with the same version and settings, reusing the jars the checkout already fetched.

Its ports are picked free at start, never a well-known one: the stack uses a broker it finds
answering on its port, so a fixed port could lend this broker (and its million records) to
someone else's test run, and take it away from them when the benchmark ends. PostgreSQL is not
duplicated: the benchmark uses a database of its own. `down()` stops the broker and deletes its data.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from benchmarks.workload import free_port

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".local" / "bench" / "broker"  # the kpi benchmark's; another benchmark passes a home of its own


def _state(home: Path) -> Path:
    return home / ".local" / "kafka" / "broker.json"


def _stack(command: str, env: dict[str, str], home: Path) -> None:
    # cwd first on sys.path: `deploy` resolves to the copy, whose `.local/` is home/.local
    subprocess.run([sys.executable, "-m", "deploy.local.stack", command], cwd=home, env=env, check=True)  # noqa: S603


def running_port(home: Path = HOME) -> int | None:
    """The port of the broker kept under `home` if one is running (kept by --keep-broker)."""
    pid = running_pid(home)
    return None if pid is None else int(json.loads(_state(home).read_text())["port"])


def running_pid(home: Path = HOME) -> int | None:
    """The pid of the broker kept under `home` if one is running: its JVM, whose CPU the benchmarks read."""
    try:
        state = json.loads(_state(home).read_text())
        cmdline = Path(f"/proc/{int(state['pid'])}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    return int(state["pid"]) if str(home).encode() in cmdline else None


def up(env: dict[str, str], port: int = 0, home: Path = HOME) -> str:
    """Start the benchmark's broker under `home` (or find it running) with the contract's topics; its bootstrap.

    `port` 0 picks free ports; a port that something else answers on is refused."""
    found = running_port(home)
    if found is not None and port not in (0, found):
        raise SystemExit(f"the benchmark's broker already runs on {found}; stop it or pass --broker-port {found}")
    if found is None:
        if port and _answers(port):
            raise SystemExit(f"port {port} is taken by something else: the benchmark wants a broker of its own")
        port = port or free_port()
        controller = free_port()
    else:
        port, controller = found, found + 1  # unused: the stack finds the broker answering
    for package in ("deploy", "shared"):
        shutil.copytree(ROOT / package, home / package, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    libs, fetched = home / ".local" / "kafka" / "libs", ROOT / ".local" / "kafka" / "libs"
    if not libs.exists() and fetched.is_dir():
        libs.parent.mkdir(parents=True, exist_ok=True)
        libs.symlink_to(fetched, target_is_directory=True)
    bootstrap = f"127.0.0.1:{port}"
    _stack("up", {**env, "ATTAIN_KAFKA_PORT": str(port), "ATTAIN_KAFKA_CONTROLLER_PORT": str(controller),
                  "KAFKA_BOOTSTRAP_SERVERS": bootstrap}, home)
    if running_port(home) != port:
        raise SystemExit(f"the broker on {bootstrap} is not the benchmark's own")
    return bootstrap


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def down(env: dict[str, str], home: Path = HOME) -> None:
    """Stop the benchmark's broker (only it: PostgreSQL was found running, not started) and drop its data."""
    if running_port(home) is None:
        return
    _stack("down", env, home)
    shutil.rmtree(home / ".local" / "kafka" / "data", ignore_errors=True)
