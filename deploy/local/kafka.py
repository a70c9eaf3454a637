"""The local Kafka broker's process: start it detached, wait for it to answer, stop it.

`launch` starts the JVM without waiting, so that PostgreSQL can come up meanwhile (what it
needs on disk comes from deploy/local/kafka_setup.py); `wait_until_up` then waits for it to
answer; `stop` ends it. A broker this script did not start is used, never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.kafka_setup import KAFKA_DIR, KAFKA_PROPS, KafkaSettings, jvm_args, pinned_kafka_version, prepare
from deploy.local.procs import HOST, ROOT, StackError, port_open, runs_with, say, size, tail

KAFKA_READY_TIMEOUT_S = 90.0

KAFKA_LOG = KAFKA_DIR / "kafka.log"
KAFKA_OUT = KAFKA_DIR / "kafka.out"
KAFKA_PID = KAFKA_DIR / "kafka.pid"
KAFKA_STATE = KAFKA_DIR / "broker.json"

# Keeps the broker's Popen object alive: collecting it would warn "still running".
_CHILDREN: list[subprocess.Popen[bytes]] = []


def _broker_alive(pid: int) -> bool:
    """Whether `pid` is this checkout's broker (its command line names our server.properties)."""
    return runs_with(pid, str(KAFKA_PROPS))


def broker_pid() -> int | None:
    """The pid of the broker this script started, when it is still alive."""
    try:
        pid = int(KAFKA_PID.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _broker_alive(pid) else None


def broker_state() -> dict[str, Any]:
    """What `launch` recorded in .local/kafka/broker.json (pid, ports, version), or {}."""
    try:
        return dict(json.loads(KAFKA_STATE.read_text()))
    except (OSError, ValueError):
        return {}


class _Kept(logging.Handler):
    """Keeps what aiokafka said instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[list[str]]:
    """aiokafka logs every refused connection at ERROR while a broker boots: not news here. Its messages
    are kept, though: a failed SASL authentication or TLS handshake is only said there."""
    logger = logging.getLogger("aiokafka")
    level, propagate, kept = logger.level, logger.propagate, _Kept()
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.addHandler(kept)
    try:
        yield kept.messages
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)
        logger.propagate = propagate


async def kafka_answers(bootstrap: str, within_s: float = 5.0,
                        security: Mapping[str, object] | None = None) -> list[str] | None:
    """The topic names when a Kafka broker answers a Metadata request at `bootstrap`, else None."""
    names, _ = await kafka_probe(bootstrap, within_s, security)
    return names


async def kafka_probe(bootstrap: str, within_s: float = 5.0,
                      security: Mapping[str, object] | None = None) -> tuple[list[str] | None, str]:
    """(topic names, "") when a broker answers at `bootstrap`; (None, why not) otherwise. `security`:
    the SASL/TLS options of `shared.kafka.client_kwargs`, for a secured listener."""
    admin = AIOKafkaAdminClient(**{**(security or {}), "bootstrap_servers": bootstrap},
                                request_timeout_ms=int(within_s * 1000))
    with _quiet_aiokafka() as said:
        try:
            await asyncio.wait_for(admin.start(), within_s)
            return await asyncio.wait_for(admin.list_topics(), within_s), ""
        except Exception as err:  # any failure means "not answering (yet)"
            return None, f"{err!r}" + (f"; {said[-1]}" if said else "")
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


@dataclass
class Launch:
    settings: KafkaSettings
    proc: subprocess.Popen[bytes] | None  # None: already running, nothing to wait for
    started: float
    version: str
    log_from: int = 0  # sizes of kafka.log and kafka.out at launch: show only this run's lines
    out_from: int = 0

    def logs(self) -> str:
        out = tail(KAFKA_OUT, 10, self.out_from)
        log = tail(KAFKA_LOG, 20, self.log_from)
        return (
            f"see {KAFKA_LOG} (JVM output: {KAFKA_OUT})"
            + (f"\n  {KAFKA_OUT.name}:\n{out}" if out.strip() else "")
            + (f"\n  {KAFKA_LOG.name}:\n{log}" if log.strip() else "")
        )


def launch(settings: KafkaSettings) -> Launch:
    """Start the broker detached (or find it running); does not wait for it to answer."""
    pid = broker_pid()
    if pid is not None:
        state = broker_state()
        if state.get("port") not in (None, settings.port):
            raise StackError(
                f"the local broker (pid {pid}) listens on port {state['port']}, not {settings.port}: "
                "run `down` first to change ports"
            )
        version = str(state.get("version", "?"))
        pinned = pinned_kafka_version()
        if version != pinned:
            say(f"kafka: note: running {version} but {pinned} is pinned; `down` then `up` to switch")
        return Launch(settings, None, time.monotonic(), version)
    if port_open(HOST, settings.port):
        # Not ours: a broker someone else runs (CI service, another checkout) is fine to use.
        return Launch(settings, None, time.monotonic(), "external")

    java, version = prepare(settings)
    if port_open(HOST, settings.controller_port):
        raise StackError(f"port {settings.controller_port} (the controller listener) is taken by another process")
    log_from, out_from = size(KAFKA_LOG), size(KAFKA_OUT)
    with open(KAFKA_OUT, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka {version}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [*jvm_args(java), "kafka.Kafka", str(KAFKA_PROPS)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=KAFKA_DIR,
            start_new_session=True,  # own session: survives this script and its terminal
            close_fds=True,
        )
    _CHILDREN.append(proc)
    KAFKA_PID.write_text(f"{proc.pid}\n")
    state = {
        "pid": proc.pid,
        "port": settings.port,
        "controller_port": settings.controller_port,
        "version": version,
        "started_at": time.time(),
    }
    KAFKA_STATE.write_text(json.dumps(state))
    say(f"kafka: starting {version} (pid {proc.pid}), log {KAFKA_LOG.relative_to(ROOT)}")
    return Launch(settings, proc, time.monotonic(), version, log_from, out_from)


async def wait_until_up(launched: Launch, within_s: float) -> None:
    """Return once the launched (or found) broker answers; stop it and raise when it does not in time."""
    bootstrap = launched.settings.bootstrap
    if launched.proc is None:
        if await kafka_answers(bootstrap) is not None:
            if launched.version == "external":
                say(f"kafka: using the broker already answering on {bootstrap} (not started here)")
            else:
                say(f"kafka: already up on {bootstrap} (pid {broker_pid()}, Kafka {launched.version})")
            return
        if launched.version == "external":
            raise StackError(f"port {launched.settings.port} is taken by something that does not answer as Kafka")
    deadline = launched.started + within_s
    while True:
        if launched.proc is not None and launched.proc.poll() is not None:
            raise StackError(
                f"the Kafka broker exited with code {launched.proc.returncode} while starting; " + launched.logs()
            )
        if launched.proc is None and broker_pid() is None:
            raise StackError("the Kafka broker died while starting; " + launched.logs())
        if port_open(HOST, launched.settings.port) and await kafka_answers(bootstrap, within_s=3.0) is not None:
            say(f"kafka: up on {bootstrap} in {time.monotonic() - launched.started:.1f}s")
            return
        if time.monotonic() > deadline:
            pid = launched.proc.pid if launched.proc is not None else broker_pid()
            if pid is not None:
                _stop_pid(pid, grace=10.0)
            raise StackError(
                f"the Kafka broker did not answer on {bootstrap} within {within_s:.0f}s (stopped it); "
                + launched.logs()
            )
        await asyncio.sleep(0.5)


def _stop_pid(pid: int, grace: float = 30.0) -> str:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns how it ended."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    how = "stopped"
    while _broker_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            how = "killed"
            time.sleep(0.2)
            if not _broker_alive(pid):
                break
        time.sleep(0.1)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent (up and down in one process)
    return how


def stop() -> None:
    """Stop the broker this script started, if it runs (a broker found running is left alone)."""
    pid = broker_pid()
    if pid is None:
        KAFKA_PID.unlink(missing_ok=True)
        say("kafka: not running")
        return
    started = time.monotonic()
    how = _stop_pid(pid)
    KAFKA_PID.unlink(missing_ok=True)
    say(f"kafka: {how} (pid {pid}) in {time.monotonic() - started:.1f}s")
