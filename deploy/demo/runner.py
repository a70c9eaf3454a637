"""The processes the demo runs: the local stack, the tenant CLI and the five services.

Every child runs with the same interpreter, from the repository root, in a session of its own
(Ctrl-C in the terminal reaches only the demo, which then stops its children in order). Service
output goes to `.local/demo/<service>.log`. The demo stops only what it started: the services
always, the local stack only when Kafka or PostgreSQL was not answering before it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.demo.org import TENANT_COUNTRY, TENANT_SUBDIVISION
from deploy.local import crm_keys, registry_keys
from services.coaching.app import SPEC as COACHING
from services.kpi.app import SPEC as KPI
from services.notify.app import SPEC as NOTIFY
from services.recognition.app import SPEC as RECOGNITION

__all__ = [
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP",
    "LOG_DIR",
    "SERVICES",
    "DemoError",
    "Services",
    "SetupError",
    "Stack",
    "Tenant",
    "child_env",
    "create_tenant",
    "ingest_cli",
    "port_answers",
    "service_ports",
    "share_link",
    "start_groups_at_end",
    "tail",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / ".local" / "demo"
HOST = "127.0.0.1"
KAFKA_PORT, POSTGRES_PORT = 9092, 5432
KAFKA_BOOTSTRAP = f"{HOST}:{KAFKA_PORT}"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/attain"
SERVICES = (("ingest", 8001), ("kpi", 8002), ("coaching", 8003), ("recognition", 8004), ("notify", 8005))
PORT_BASE = SERVICES[0][1]


def service_ports(base: int = PORT_BASE) -> tuple[tuple[str, int], ...]:
    """The five services on `base`, `base + 1`, ... (ingest, kpi, coaching, recognition, notify)."""
    return tuple((name, base + i) for i, (name, _) in enumerate(SERVICES))
STACK_UP_TIMEOUT_S = 600.0  # the first run fetches Kafka's jars from Maven Central
STACK_DOWN_TIMEOUT_S = 120.0
TENANT_TIMEOUT_S = 60.0


class DemoError(Exception):
    """The demo cannot go on; the message says why (and where to look)."""


class SetupError(DemoError):
    """Something the demo needs could not be set up."""


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file (or a note that there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: ours, the local stack's addresses and (unless ours names keys) the
    local CRM_SECRET_KEYS, which ingest and its CLI refuse to start without, then `extra`."""
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DATABASE_URL)
    if not env.get(crm_keys.VARIABLE):
        env.update(crm_keys.env())
    if not env.get("REGISTRY_SIGNING_KEY") and not env.get("REGISTRY_SIGNING_KEY_FILE"):
        env.update(registry_keys.env())
    env["KAFKA_BOOTSTRAP_SERVERS"] = KAFKA_BOOTSTRAP
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


def _tethered(command: list[str]) -> list[str]:
    """`command`, stopped (SIGTERM) when this process dies, even by SIGKILL (`deploy.demo.tether`)."""
    return _module("deploy.demo.tether", str(os.getpid()), "--", *command)


def _kill_group(process: subprocess.Popen[bytes] | asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # its own session: the group is the child and its children


async def _run_logged(args: list[str], log: Path, within_s: float) -> int:
    """Run a command to completion with its output appended to `log`; stop it if cancelled."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=REPO_ROOT, env=child_env(), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            return await asyncio.wait_for(process.wait(), within_s)
        except (TimeoutError, asyncio.CancelledError):
            _kill_group(process, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), 30)
            if process.returncode is None:
                _kill_group(process, signal.SIGKILL)
            raise


class Stack:
    """`python -m deploy.local.stack up|down`, and whether the demo is the one to take it down."""

    def __init__(self, log: Path = LOG_DIR / "stack.log") -> None:
        self.log = log
        self.started = False

    async def up(self) -> None:
        """Run `up` (it starts what is missing and creates the topics)."""
        already = port_answers(KAFKA_PORT) and port_answers(POSTGRES_PORT)
        self.started = not already  # set before `up` runs, so a half-done `up` is undone too
        try:
            code = await _run_logged(_module("deploy.local.stack", "up"), self.log, STACK_UP_TIMEOUT_S)
        except TimeoutError:
            raise SetupError(f"the local stack did not come up in {STACK_UP_TIMEOUT_S:.0f}s; see {self.log}") from None
        if code != 0:
            raise SetupError(f"`python -m deploy.local.stack up` failed (exit {code}):\n{tail(self.log)}")

    def down(self) -> str | None:
        """Run `down` if the demo started the stack; returns what happened (None: left alone)."""
        if not self.started:
            return None
        self.started = False
        with self.log.open("ab") as out:
            try:
                done = subprocess.run(
                    _module("deploy.local.stack", "down"), cwd=REPO_ROOT, env=child_env(),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    timeout=STACK_DOWN_TIMEOUT_S, check=False, start_new_session=True,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                return f"`stack down` did not finish in {STACK_DOWN_TIMEOUT_S:.0f}s; see {self.log}"
        return "local stack stopped" if done.returncode == 0 else f"`stack down` failed; see {self.log}"


@dataclass(frozen=True, slots=True)
class Tenant:
    slug: str
    token: str


# Which topics each service's consumer group reads (shared/topics.py; the apps' subscriptions).
# every consumer group of the services and the topics it reads, from the services' own specs
GROUP_TOPICS = {sub.group: tuple(sub.topics) for spec in (KPI, COACHING, RECOGNITION, NOTIFY)
                for sub in spec.subscriptions}


async def start_groups_at_end(prefix: str) -> None:
    """Commit the consumer groups `<prefix>-<service>` at the current end of their topics, before any
    member joins: a demo run reads what happens from its start on, not what the broker holds from
    earlier runs or test suites (hundreds of thousands of attainment updates on a developer's machine)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        ends = {name: await consumer.end_offsets([TopicPartition(name, p) for p in
                                                   metadata.partitions_for_topic(name) or ()])
                for name in {t for names in GROUP_TOPICS.values() for t in names}}
    finally:
        await consumer.stop()
    for service, names in GROUP_TOPICS.items():
        group = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, group_id=f"{prefix}-{service}",
                                 enable_auto_commit=False)
        await group.start()
        try:
            positions = {tp: offset for name in names for tp, offset in ends[name].items()}
            group.assign(list(positions))
            await group.commit(positions)
        finally:
            await group.stop()


async def ingest_cli(what: str, *args: str) -> list[dict[str, Any]]:
    """`python -m services.ingest <args>` (the tenant and token CLI): the JSON objects it printed, one per line.
    `what` names the step in the error when it fails."""
    process = await asyncio.create_subprocess_exec(
        *_module("services.ingest", *args), cwd=REPO_ROOT, env=child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), TENANT_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError):
        _kill_group(process, signal.SIGKILL)
        raise
    if process.returncode != 0:
        raise SetupError(f"{what} failed (exit {process.returncode}):\n{err.decode(errors='replace')}")
    answers = []
    for line in out.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            answer = json.loads(line)
            if isinstance(answer, dict):
                answers.append(answer)
    return answers


async def create_tenant(slug: str, timezone: str, currency: str, days_off: Mapping[date, str] | None = None) -> Tenant:
    """`python -m services.ingest tenants create`: a new tenant in Berlin's holiday calendar (and the company's
    own `days_off`, `tenants holidays --add`), and its bearer token."""
    answers = await ingest_cli(f"creating tenant {slug}", "tenants", "create", slug, "--timezone", timezone,
                               "--currency", currency, "--country", TENANT_COUNTRY, "--subdivision", TENANT_SUBDIVISION)
    made = next((a for a in reversed(answers) if a.get("token")), None)
    if made is None:
        raise SetupError(f"creating tenant {slug} printed no {{'tenant', 'token'}} JSON line")
    tenant = Tenant(str(made.get("tenant") or slug), str(made["token"]))
    if days_off:
        added = [arg for day, name in sorted(days_off.items()) for arg in ("--add", f"{day.isoformat()}={name}")]
        await ingest_cli(f"adding the company's days off to {slug}", "tenants", "holidays", tenant.slug, *added)
    return tenant


async def share_link(slug: str, name: str = "Demo TV") -> str:
    """`python -m services.ingest tokens share`: the path of a read-only TV link (`/tv/share/...`)."""
    answers = await ingest_cli(f"making a TV link for {slug}", "tokens", "share", slug, "--name", name)
    path = next((str(a["path"]) for a in answers if a.get("path")), None)
    if path is None:
        raise SetupError(f"`tokens share {slug}` printed no path")
    return path


@dataclass(slots=True)
class Service:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    up_at: float | None = None  # time.monotonic() of its first /healthz 200
    ready: bool = False
    last_readyz: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()


class Services:
    """The five services as child processes: start, wait until ready, watch, stop."""

    def __init__(
        self,
        log_dir: Path = LOG_DIR,
        specs: Sequence[tuple[str, int]] = SERVICES,
        command: Callable[[str], list[str]] = lambda name: _tethered(_module(f"services.{name}")),
    ) -> None:
        self.all = [Service(name, port, log_dir / f"{name}.log") for name, port in specs]
        self._command = command

    def check_ports_free(self) -> None:
        taken = [f"{s.port} ({s.name})" for s in self.all if port_answers(s.port)]
        if taken:
            raise SetupError(
                f"port(s) {', '.join(taken)} already answer: another Attain (or something else) is running "
                "there; stop it first, the demo starts its own services"
            )

    def start(self, env: Mapping[str, str]) -> None:
        """Start all five at once (their scaled clocks start when each has started up)."""
        for service in self.all:
            service.log.parent.mkdir(parents=True, exist_ok=True)
            with service.log.open("wb") as out:
                service.process = subprocess.Popen(
                    self._command(service.name), cwd=REPO_ROOT,
                    env={**env, "HTTP_PORT": str(service.port)}, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip

    async def wait_ready(self, within_s: float = 60.0) -> float:
        """Wait until every service answers `GET /readyz` with 200.

        Returns the monotonic time at which the last of them first answered `/healthz`: a
        service only answers HTTP once its startup (where its clock is made) is done, so from
        then on every service's simulated clock is at or ahead of one anchored there.
        """
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not all(s.ready for s in self.all):
                for service in self.all:
                    if service.exit_code is not None:
                        raise SetupError(
                            f"{service.name} exited with code {service.exit_code} before it was ready; "
                            f"last lines of {service.log}:\n{tail(service.log)}"
                        )
                if time.monotonic() > deadline:
                    waiting = [s for s in self.all if not s.ready]
                    raise SetupError("\n".join(
                        f"{s.name} was not ready after {within_s:.0f}s (/readyz: {s.last_readyz or 'no answer'}); "
                        f"last lines of {s.log}:\n{tail(s.log)}" for s in waiting
                    ))  # fmt: skip
                await asyncio.gather(*(self._probe(client, s) for s in self.all if not s.ready))
                await asyncio.sleep(0.1)
        return max(s.up_at or time.monotonic() for s in self.all)

    @staticmethod
    async def _probe(client: httpx.AsyncClient, service: Service) -> None:
        try:
            if service.up_at is None:
                if (await client.get(f"{service.url}/healthz")).status_code != 200:
                    return
                service.up_at = time.monotonic()
            response = await client.get(f"{service.url}/readyz")
        except httpx.HTTPError:
            return
        service.ready = response.status_code == 200
        service.last_readyz = f"{response.status_code} {response.text[:200]}"

    def dead(self) -> list[Service]:
        """Services that have exited (none should, while the demo runs)."""
        return [s for s in self.all if s.exit_code is not None]

    def stop(self, grace: float = 10.0) -> dict[str, str]:
        """SIGTERM all, wait up to `grace` seconds, then SIGKILL what is left; says how each ended."""
        running = [s for s in self.all if s.process is not None and s.exit_code is None]
        outcome = {s.name: f"had exited with code {s.exit_code}" for s in self.all if s.exit_code is not None}
        for service in running:
            assert service.process is not None
            _kill_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        try:
            while any(s.exit_code is None for s in running) and time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            pass
        for service in running:
            assert service.process is not None
            if service.exit_code is None:
                _kill_group(service.process, signal.SIGKILL)
                service.process.wait()
                outcome[service.name] = f"killed after {grace:.0f}s"
            else:
                # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly: -15 is fine
                clean = service.exit_code in (0, -signal.SIGTERM)
                outcome[service.name] = "stopped" if clean else f"exit code {service.exit_code}"
        return outcome
