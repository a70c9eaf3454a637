"""The local stack for development and CI: one Kafka 4.x broker (KRaft) and PostgreSQL.

    .venv/bin/python -m deploy.local.stack up      # start what is missing, create the topics
    .venv/bin/python -m deploy.local.stack status  # one line per part; exit 1 if a part is down
    .venv/bin/python -m deploy.local.stack down    # stop what this script started

No Docker: the broker runs from jars fetched once from Maven Central (the version is pinned
in deploy/local/kafka/pom.xml) and PostgreSQL from Debian's package (installed with apt-get
when missing). Everything the stack keeps lives in the git-ignored `.local/`:

    .local/kafka/libs/        the broker's classpath (reused; refetched when the pom changes)
    .local/kafka/data/        the KRaft log dirs (formatted once, cluster id in cluster.id)
    .local/kafka/kafka.log    the broker's log4j2 log (kafka.out: the JVM's own stdout/stderr)
    .local/pg/data/           the PostgreSQL cluster, when this script has to run one
    .local/pg/postgres.log    its log

PostgreSQL: $DATABASE_URL when a server answers there (the database is created if missing),
else postgresql://postgres@127.0.0.1:5432/attain; when nothing answers on that address, a
cluster of our own in .local/pg is started on it. `down` only ever stops that cluster and
the broker this script started, never a server it found running.

Environment: DATABASE_URL, ATTAIN_KAFKA_PORT (9092), ATTAIN_KAFKA_CONTROLLER_PORT (9093),
KAFKA_HEAP_OPTS (-Xms128m -Xmx512m), JAVA_HOME. Importable: `up()`, `down()`, `status()`
(sync; safe to call from inside a running event loop) and their `*_async` twins.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import for_code

from shared.topics import all_with_dlq

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCAL = ROOT / ".local"

HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/attain"
KAFKA_READY_TIMEOUT_S = 90.0
PG_READY_TIMEOUT_S = 60

POM = HERE / "kafka" / "pom.xml"
LOG4J2_CONFIG = HERE / "kafka" / "log4j2.xml"
KAFKA_DIR = LOCAL / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_LOG = KAFKA_DIR / "kafka.log"
KAFKA_OUT = KAFKA_DIR / "kafka.out"
KAFKA_PID = KAFKA_DIR / "kafka.pid"
KAFKA_STATE = KAFKA_DIR / "broker.json"
KAFKA_PROPS = KAFKA_DIR / "server.properties"
KAFKA_CLUSTER_ID = KAFKA_DIR / "cluster.id"
PG_DIR = LOCAL / "pg"
PG_DATA = PG_DIR / "data"
PG_LOG = PG_DIR / "postgres.log"
PG_RUN = PG_DIR / "run"
PG_CONF_NAME = "attain.conf"

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_T = TypeVar("_T")
# Keeps the broker's Popen object alive: collecting it would warn "still running".
_CHILDREN: list[subprocess.Popen[bytes]] = []


class StackError(RuntimeError):
    """A part of the stack could not be brought up (the message says what and where to look)."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, lines: int = 25, since: int = 0) -> str:
    """The last `lines` lines of `path` written after byte `since`, indented, each cut short."""
    try:
        with open(path, "rb") as handle:
            handle.seek(since if since <= _size(path) else 0)
            text = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    text = [line for line in text if line.strip()]
    cut = [line if len(line) <= 240 else line[:240] + " ..." for line in text[-lines:]]
    return "\n".join("    " + line for line in cut)


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise concurrent `up`/`down` runs (two test sessions, a dev and a script)."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    with open(LOCAL / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR while a broker boots: not news here."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_root() -> bool:
    return os.geteuid() == 0


# --------------------------------------------------------------------------- apt-get


_apt_done: set[str] = set()  # "update" once apt-get update ran in this process


def _apt_install(*packages: str) -> None:
    if not _is_root():
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
                raise StackError(f"`{' '.join(cmd)}` failed (exit {rc}); see {log}:\n{_tail(log)}")
            if cmd[1] == "update":
                _apt_done.add("update")


# --------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class KafkaSettings:
    port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT

    @classmethod
    def from_env(cls, port: int | None = None, controller_port: int | None = None) -> KafkaSettings:
        return cls(
            port=port or int(os.environ.get("ATTAIN_KAFKA_PORT") or DEFAULT_KAFKA_PORT),
            controller_port=controller_port
            or int(os.environ.get("ATTAIN_KAFKA_CONTROLLER_PORT") or DEFAULT_CONTROLLER_PORT),
        )

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def pinned_kafka_version() -> str:
    """The broker version pinned in deploy/local/kafka/pom.xml (its `kafka.version` property)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(POM).getroot()  # noqa: S314 - our own pom, not untrusted input
    node = root.find("m:properties/m:kafka.version", ns)
    version = (node.text or "").strip() if node is not None else ""
    if not version:
        raise StackError(f"{POM} has no <kafka.version> property")
    return version


def _libs_marker(version: str) -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return KAFKA_LIBS / f".complete-{version}-{digest}"


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        _say("kafka: no java found, installing openjdk-17-jre-headless...")
        _apt_install("openjdk-17-jre-headless")
        java = shutil.which("java")
        if java is None:
            raise StackError("java still missing after installing openjdk-17-jre-headless")
    out = subprocess.run(
        [java, "-version"],
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0_392"
        major = int(match.group(2))
    if major < 17:
        raise StackError(f"Kafka 4 needs Java 17 or newer; {java} is Java {major or '?'} (set JAVA_HOME)")
    return java


def _ensure_kafka_libs() -> str:
    """Fetch the broker's runtime classpath into .local/kafka/libs once per pinned pom."""
    version = pinned_kafka_version()
    marker = _libs_marker(version)
    if marker.exists():
        return version
    mvn = shutil.which("mvn")
    if mvn is None:
        _say("kafka: no mvn found, installing maven...")
        _apt_install("maven")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("mvn still missing after installing maven")
    _say(f"kafka: downloading {version} jars (first run)...")
    started = time.monotonic()
    partial = KAFKA_DIR / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=POM.parent,
    )
    jars = list(partial.glob("*.jar")) if partial.exists() else []
    if out.returncode != 0 or not any(j.name.startswith(f"kafka_2.13-{version}") for j in jars):
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise StackError(f"mvn could not fetch Kafka {version} (exit {out.returncode}):\n{tail}")
    (partial / marker.name).write_text(f"{version}\n")
    shutil.rmtree(KAFKA_LIBS, ignore_errors=True)
    partial.rename(KAFKA_LIBS)
    _say(f"kafka: fetched {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return version


def _new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's `Uuid.randomUuid()` prints it (22 chars, URL-safe base64)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _cluster_id() -> str:
    meta = KAFKA_DATA / "meta.properties"
    if meta.exists():
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    if KAFKA_CLUSTER_ID.exists():
        return KAFKA_CLUSTER_ID.read_text().strip()
    cluster_id = _new_cluster_id()
    KAFKA_CLUSTER_ID.write_text(cluster_id + "\n")
    return cluster_id


def _write_server_properties(settings: KafkaSettings) -> None:
    props = {
        # single node, KRaft, combined broker + controller, static quorum of one
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{settings.controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{settings.port},CONTROLLER://{HOST}:{settings.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{settings.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(KAFKA_DATA),
        # one replica of everything, the internal topics included
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # fast test runs: no join delay; topics only as shared/topics.py declares them
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    text = "# Generated by deploy/local/stack.py on every `up`; edit that file, not this one.\n"
    text += "".join(f"{key}={value}\n" for key, value in props.items())
    KAFKA_PROPS.write_text(text)


def _jvm_args(java: str, heap: str | None = None) -> list[str]:
    heap_opts = (heap or os.environ.get("KAFKA_HEAP_OPTS") or "-Xms128m -Xmx512m").split()
    return [
        java,
        *heap_opts,
        "-server",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        f"-Dkafka.logs.dir={KAFKA_DIR}",
        "-cp",
        f"{KAFKA_LIBS}/*",
    ]


def _format_storage(java: str) -> None:
    if (KAFKA_DATA / "meta.properties").exists():
        return
    cluster_id = _cluster_id()
    cmd = [
        *_jvm_args(java, heap="-Xmx256m"),
        "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
        "--config", str(KAFKA_PROPS), "--ignore-formatted",
    ]  # fmt: skip
    out = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=KAFKA_DIR,
    )
    if out.returncode != 0:
        raise StackError(f"formatting {KAFKA_DATA} failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")
    _say(f"kafka: formatted {KAFKA_DATA.relative_to(ROOT)} (cluster id {cluster_id})")


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc (None: no such process)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[0]


def _broker_alive(pid: int) -> bool:
    """Whether `pid` is this checkout's broker (its command line names our server.properties)."""
    return _runs_with(pid, str(KAFKA_PROPS))


def _broker_pid() -> int | None:
    """The pid of the broker this script started, when it is still alive."""
    try:
        pid = int(KAFKA_PID.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _broker_alive(pid) else None


def _broker_state() -> dict[str, Any]:
    try:
        return dict(json.loads(KAFKA_STATE.read_text()))
    except (OSError, ValueError):
        return {}


async def _kafka_answers(bootstrap: str, within_s: float = 5.0) -> list[str] | None:
    """The topic names when a Kafka broker answers a Metadata request at `bootstrap`, else None."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(within_s * 1000))
    with _quiet_aiokafka():
        try:
            await asyncio.wait_for(admin.start(), within_s)
            return await asyncio.wait_for(admin.list_topics(), within_s)
        except Exception:  # any failure means "not answering (yet)"
            return None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


@dataclass
class _Launch:
    settings: KafkaSettings
    proc: subprocess.Popen[bytes] | None  # None: already running, nothing to wait for
    started: float
    version: str
    log_from: int = 0  # sizes of kafka.log and kafka.out at launch: show only this run's lines
    out_from: int = 0

    def logs(self) -> str:
        out = _tail(KAFKA_OUT, 10, self.out_from)
        log = _tail(KAFKA_LOG, 20, self.log_from)
        return (
            f"see {KAFKA_LOG} (JVM output: {KAFKA_OUT})"
            + (f"\n  {KAFKA_OUT.name}:\n{out}" if out.strip() else "")
            + (f"\n  {KAFKA_LOG.name}:\n{log}" if log.strip() else "")
        )


def _kafka_launch(settings: KafkaSettings) -> _Launch:
    """Start the broker detached (or find it running); does not wait for it to answer."""
    pid = _broker_pid()
    if pid is not None:
        state = _broker_state()
        if state.get("port") not in (None, settings.port):
            raise StackError(
                f"the local broker (pid {pid}) listens on port {state['port']}, not {settings.port}: "
                "run `down` first to change ports"
            )
        version = str(state.get("version", "?"))
        pinned = pinned_kafka_version()
        if version != pinned:
            _say(f"kafka: note: running {version} but {pinned} is pinned; `down` then `up` to switch")
        return _Launch(settings, None, time.monotonic(), version)
    if _port_open(HOST, settings.port):
        # Not ours: a broker someone else runs (CI service, another checkout) is fine to use.
        return _Launch(settings, None, time.monotonic(), "external")

    java = _java()
    version = _ensure_kafka_libs()
    KAFKA_DATA.mkdir(parents=True, exist_ok=True)
    _write_server_properties(settings)
    _format_storage(java)
    for busy in (settings.controller_port,):
        if _port_open(HOST, busy):
            raise StackError(f"port {busy} (the controller listener) is taken by another process")
    log_from, out_from = _size(KAFKA_LOG), _size(KAFKA_OUT)
    with open(KAFKA_OUT, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka {version}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [*_jvm_args(java), "kafka.Kafka", str(KAFKA_PROPS)],
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
    _say(f"kafka: starting {version} (pid {proc.pid}), log {KAFKA_LOG.relative_to(ROOT)}")
    return _Launch(settings, proc, time.monotonic(), version, log_from, out_from)


async def _kafka_wait(launch: _Launch, within_s: float) -> None:
    bootstrap = launch.settings.bootstrap
    if launch.proc is None:
        if await _kafka_answers(bootstrap) is not None:
            if launch.version == "external":
                _say(f"kafka: using the broker already answering on {bootstrap} (not started here)")
            else:
                _say(f"kafka: already up on {bootstrap} (pid {_broker_pid()}, Kafka {launch.version})")
            return
        if launch.version == "external":
            raise StackError(f"port {launch.settings.port} is taken by something that does not answer as Kafka")
    deadline = launch.started + within_s
    while True:
        if launch.proc is not None and launch.proc.poll() is not None:
            raise StackError(
                f"the Kafka broker exited with code {launch.proc.returncode} while starting; " + launch.logs()
            )
        if launch.proc is None and _broker_pid() is None:
            raise StackError("the Kafka broker died while starting; " + launch.logs())
        if _port_open(HOST, launch.settings.port) and await _kafka_answers(bootstrap, within_s=3.0) is not None:
            _say(f"kafka: up on {bootstrap} in {time.monotonic() - launch.started:.1f}s")
            return
        if time.monotonic() > deadline:
            pid = launch.proc.pid if launch.proc is not None else _broker_pid()
            if pid is not None:
                _stop_pid(pid, grace=10.0)
            raise StackError(
                f"the Kafka broker did not answer on {bootstrap} within {within_s:.0f}s (stopped it); " + launch.logs()
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


def _kafka_down() -> None:
    pid = _broker_pid()
    if pid is None:
        KAFKA_PID.unlink(missing_ok=True)
        _say("kafka: not running")
        return
    started = time.monotonic()
    how = _stop_pid(pid)
    KAFKA_PID.unlink(missing_ok=True)
    _say(f"kafka: {how} (pid {pid}) in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------- topics


def _contract_topics() -> list[Any]:
    return list(all_with_dlq())


async def _ensure_topics(bootstrap: str, within_s: float = 30.0) -> int:
    """Create every topic of shared/topics.py that is missing; grow any with too few partitions."""
    wanted = {topic.name: topic for topic in _contract_topics()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(within_s * 1000))
    try:
        await admin.start()
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if not t["error_code"]}
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        t.name,
                        t.partitions,
                        1,
                        topic_configs={"cleanup.policy": t.cleanup},
                    )
                    for t in missing
                ],
                timeout_ms=int(within_s * 1000),
            )
            for row in response.topic_errors:
                name, code = row[0], row[1]
                if code and for_code(code).__name__ != "TopicAlreadyExistsError":
                    raise StackError(f"creating topic {name} failed: {for_code(code).__name__} {row[2:]}")
            everything = len(missing) == len(wanted)
            names = ", ".join(t.name for t in missing)
            _say(f"topics: created {len(missing)} ({'all' if everything else names})")
        short = {n: NewPartitions(t.partitions) for n, t in wanted.items() if 0 < existing.get(n, 0) < t.partitions}
        if short:
            await admin.create_partitions(short, timeout_ms=int(within_s * 1000))
            _say(f"topics: grew partitions of {', '.join(short)}")
        # Wait until every partition has a leader, so the first producer does not see
        # LEADER_NOT_AVAILABLE right after a fresh start.
        deadline = time.monotonic() + within_s
        while True:
            described = await admin.describe_topics(list(wanted))
            leaderless = [
                t["topic"] for t in described if t["error_code"] or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not leaderless:
                break
            if time.monotonic() > deadline:
                raise StackError(f"topics without a leader after {within_s:.0f}s: {', '.join(leaderless)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return len(wanted)


async def _topic_status(bootstrap: str) -> tuple[int, list[str]]:
    names = await _kafka_answers(bootstrap)
    if names is None:
        return 0, []
    wanted = [t.name for t in _contract_topics()]
    return sum(1 for n in wanted if n in names), [n for n in wanted if n not in names]


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class _Url:
    raw: str
    user: str
    password: str | None
    host: str
    port: int
    database: str

    @classmethod
    def parse(cls, url: str) -> _Url:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]  # "postgresql+asyncpg" and friends
        if scheme not in {"postgres", "postgresql"}:
            raise StackError(f"not a PostgreSQL URL: {url!r}")
        raw = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))
        return cls(
            raw=raw,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname or HOST,
            port=parts.port or 5432,
            database=unquote(parts.path.lstrip("/")) or unquote(parts.username or "postgres"),
        )

    def with_database(self, database: str, user: str | None = None) -> str:
        """This server, another database (and user: then without a password; trust auth)."""
        password = self.password if user in (None, self.user) else None
        auth = quote(user or self.user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{quote(database, safe='')}"

    @property
    def display(self) -> str:
        """The URL with its password masked."""
        if self.password is None:
            return self.raw
        return self.raw.replace(":" + quote(self.password, safe="") + "@", ":***@", 1)

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK


async def _pg_probe(url: _Url) -> str:
    """'ok', 'no-database', 'down' (nothing listens) or 'refused: <why>' (a server said no)."""
    if not _port_open(url.host, url.port, timeout=1.0):
        return "down"
    try:
        conn = await asyncpg.connect(url.raw, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        return "no-database"
    except (TimeoutError, OSError) as exc:
        return f"refused: {exc!r}"
    except asyncpg.CannotConnectNowError:
        return "starting"
    except Exception as exc:  # auth failures and the like
        return f"refused: {type(exc).__name__}: {exc}"
    await conn.close()
    return "ok"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _ensure_database(url: _Url, admin_url: str | None = None) -> None:
    """Create url's database (and, on our own cluster, its role) when missing."""
    conn = await asyncpg.connect(admin_url or url.with_database("postgres"), timeout=10)
    try:
        role_missing = admin_url is not None and url.user != "postgres"
        role_missing = role_missing and not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", url.user)
        if role_missing:
            secret = url.password
            password = "" if secret is None else " PASSWORD " + _quote_literal(secret)
            role = _quote_ident(url.user)
            await conn.execute(f"CREATE ROLE {role} LOGIN CREATEDB{password}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database):
            try:
                await conn.execute(f"CREATE DATABASE {_quote_ident(url.database)} OWNER {_quote_ident(url.user)}")
                _say(f"postgres: created database {url.database}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def _pg_version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def _pg_bindir() -> Path | None:
    """The bin dir of the PostgreSQL that fits .local/pg/data (the newest one for a new cluster)."""
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
        key=lambda b: _pg_version_key(b / "pg_ctl"),
        reverse=True,
    )
    found = [b for b in found if (b / "initdb").exists()]
    version_file = PG_DATA / "PG_VERSION"
    if version_file.exists():
        want = version_file.read_text().strip()
        for bindir in found:
            if bindir.parent.name == want:
                return bindir
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl:
            out = subprocess.run([pg_ctl, "--version"], check=False, capture_output=True, text=True)
            if re.search(rf"\b{re.escape(want)}(\.|\b)", out.stdout):
                return Path(pg_ctl).resolve().parent
        raise StackError(
            f"{PG_DATA} was made by PostgreSQL {want}, which is not installed: "
            f"install postgresql-{want} or delete {PG_DIR} to start afresh"
        )
    if found:
        return found[0]
    pg_ctl, initdb = shutil.which("pg_ctl"), shutil.which("initdb")
    if pg_ctl and initdb:
        return Path(pg_ctl).resolve().parent
    return None


def _as_postgres() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as an OS user it accepts (never root)."""
    return ["runuser", "-u", "postgres", "--"] if _is_root() else []


def _pg_owner() -> tuple[int, int]:
    """uid and gid that own .local/pg/data: `postgres` when root (created if missing), else ours."""
    if not _is_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql", "--no-create-home",
             "--shell", "/bin/bash", "postgres"],
            check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let the postgres OS user reach `path` (o+x on each ancestor that lacks it; nothing else)."""
    if not _is_root():
        return
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            _say(f"postgres: allowed others to traverse {folder} (o+x) so the postgres user reaches {PG_DIR}")


def _pg_run(cmd: Sequence[str], what: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [*_as_postgres(), *cmd], check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/",
        timeout=timeout, start_new_session=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise StackError(
            f"{what} failed (exit {out.returncode}): {(out.stdout + out.stderr).strip()}\n"
            f"log {PG_LOG}:\n{_tail(PG_LOG)}"
        )
    return out.stdout


def _stop_clusters_started_by_install(port: int) -> None:
    """apt-get may start Debian's `main` cluster on `port`; it is ours to stop, having started it."""
    if not shutil.which("pg_lsclusters"):
        return
    out = subprocess.run(["pg_lsclusters", "--no-header"], check=False, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(port) and fields[3].startswith("online"):
            _say(f"postgres: stopping Debian's cluster {fields[0]}/{fields[1]} that the install started on {port}")
            subprocess.run(
                ["pg_ctlcluster", fields[0], fields[1], "stop"],
                check=False,
                stdin=subprocess.DEVNULL,
            )


def _runs_with(pid: int, marker: str) -> bool:
    """Whether process `pid` is alive (not a zombie) and `marker` is in its command line."""
    state = _proc_state(pid)
    if state is None or state in {"Z", "X"}:
        return False
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _local_pg_pid() -> int | None:
    """The postmaster of .local/pg/data, when it runs."""
    try:
        pid = int((PG_DATA / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _runs_with(pid, str(PG_DATA)) else None


def _clear_stale_pg_locks() -> None:
    """Lock files left by a postmaster that was killed: their pid may now be another process's,
    which would make the new postmaster refuse to start ("lock file already exists")."""
    if _local_pg_pid() is None:
        for lock in [PG_DATA / "postmaster.pid", *PG_RUN.glob(".s.PGSQL.*.lock")]:
            lock.unlink(missing_ok=True)


def _write_pg_config(port: int) -> None:
    uid, gid = _pg_owner()
    # A unix socket path is capped at 107 bytes: no socket (TCP only) for a deep checkout.
    sockets = str(PG_RUN) if len(str(PG_RUN)) < 90 else ""
    files = {
        PG_DATA / PG_CONF_NAME: (
            "# Written by deploy/local/stack.py on every `up` (included from postgresql.conf).\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "max_connections = 200\n"
            "fsync = on\n"
            "shared_buffers = 128MB\n"
            "log_min_messages = warning\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
        ),
        PG_DATA / "pg_hba.conf": (
            "# Written by deploy/local/stack.py: a local dev/test cluster, reachable from this machine only.\n"
            "local   all  all                trust\n"
            "host    all  all  127.0.0.1/32  trust\n"
            "host    all  all  ::1/128       trust\n"
        ),
    }
    for path, text in files.items():
        path.write_text(text)
        os.chown(path, uid, gid)
    main_conf = PG_DATA / "postgresql.conf"
    if f"include_if_exists = '{PG_CONF_NAME}'" not in main_conf.read_text():
        with open(main_conf, "a") as handle:
            handle.write(f"\ninclude_if_exists = '{PG_CONF_NAME}'\n")


async def _wait_pg(url: _Url, deadline: float) -> None:
    while (probe := await _pg_probe(url)) != "ok":
        if time.monotonic() > deadline:
            raise StackError(f"PostgreSQL did not answer at {url.display} ({probe}); see {PG_LOG}:\n{_tail(PG_LOG)}")
        await asyncio.sleep(0.2)


async def _local_cluster_up(url: _Url) -> None:
    """Start (creating it first if need be) the cluster in .local/pg on url's port."""
    started = time.monotonic()
    admin = url.with_database("postgres", user="postgres")
    pid = _local_pg_pid()
    if pid is not None:
        # ours, but it did not answer on url: still starting, or running on another port
        await _wait_pg(_Url.parse(admin), deadline=started + PG_READY_TIMEOUT_S)
        await _ensure_database(url, admin_url=admin)
        _say(f"postgres: already up on {HOST}:{url.port} (local cluster, pid {pid})")
        return
    bindir = _pg_bindir()
    if bindir is None:
        _say("postgres: no initdb/pg_ctl found, installing Debian's postgresql (apt-get)...")
        _apt_install("postgresql")
        if _port_open(HOST, url.port):
            _stop_clusters_started_by_install(url.port)
        bindir = _pg_bindir()
        if bindir is None:
            raise StackError("initdb/pg_ctl still missing after `apt-get install postgresql`")
    uid, gid = _pg_owner()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    _make_traversable(PG_DIR)
    for folder in (PG_DATA, PG_RUN):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, uid, gid)
    PG_DATA.chmod(0o700)
    PG_LOG.touch(exist_ok=True)
    os.chown(PG_LOG, uid, gid)
    if not (PG_DATA / "PG_VERSION").exists():
        _say(f"postgres: creating a cluster in {PG_DATA.relative_to(ROOT)} ({bindir.parent.name})...")
        _pg_run(
            [str(bindir / "initdb"), "-D", str(PG_DATA), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-locale"],
            "initdb",
        )  # fmt: skip
    _write_pg_config(url.port)
    _clear_stale_pg_locks()
    _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(PG_DATA), "-l", str(PG_LOG), "-w", "-t", str(PG_READY_TIMEOUT_S), "-s",
         "start"],
        f"starting PostgreSQL (pg_ctl, log {PG_LOG})",
        timeout=PG_READY_TIMEOUT_S + 30,
    )  # fmt: skip
    await _wait_pg(_Url.parse(admin), deadline=time.monotonic() + PG_READY_TIMEOUT_S)
    await _ensure_database(url, admin_url=admin)
    _say(
        f"postgres: up on {HOST}:{url.port} in {time.monotonic() - started:.1f}s (cluster {PG_DATA.relative_to(ROOT)})"
    )


def _whose(url: _Url) -> str:
    """Who runs the server at url: our cluster in .local/pg, or someone else."""
    pid = _local_pg_pid()
    conf = PG_DATA / PG_CONF_NAME
    ours = pid and url.loopback and conf.exists() and f"port = {url.port}\n" in conf.read_text()
    return f"local cluster, pid {pid}" if ours else "a server not started here"


async def _pg_up() -> str:
    env_url = os.environ.get("DATABASE_URL", "").strip()
    if env_url:
        url = _Url.parse(env_url)
        probe = await _pg_probe(url)
        if probe in {"ok", "no-database"}:
            await _ensure_database(url)
            _say(f"postgres: using DATABASE_URL {url.display} ({_whose(url)})")
            return url.raw
        if probe.startswith("refused"):
            raise StackError(
                f"the server at DATABASE_URL {url.display} answers but refuses the connection: {probe[9:]}"
            )
        if url.loopback:
            await _local_cluster_up(url)
            return url.raw
        _say(f"postgres: DATABASE_URL {url.display} does not answer; using {DEFAULT_DATABASE_URL} instead")
    url = _Url.parse(DEFAULT_DATABASE_URL)
    probe = await _pg_probe(url)
    if probe in {"ok", "no-database"}:
        await _ensure_database(url)
        _say(f"postgres: already up at {url.display} ({_whose(url)})")
        return url.raw
    if probe.startswith("refused"):
        raise StackError(
            f"a server answers on {HOST}:{url.port} but refuses {url.display}: {probe[9:]}. "
            "If it is Debian's own cluster (see `pg_lsclusters`), set DATABASE_URL to a URL it accepts, "
            "or stop it (`pg_ctlcluster <version> main stop`) so that `up` runs its own"
        )
    await _local_cluster_up(url)
    return url.raw


def _pg_down() -> None:
    pid = _local_pg_pid()
    if pid is None:
        _say("postgres: local cluster not running (any other server is left alone)")
        return
    bindir = _pg_bindir()
    if bindir is None:
        raise StackError(f"cannot find pg_ctl to stop the cluster in {PG_DATA} (pid {pid})")
    started = time.monotonic()
    stop = [str(bindir / "pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "-t", "60", "-s", "stop"]
    _pg_run(stop, "pg_ctl stop")
    _say(f"postgres: stopped the local cluster (pid {pid}) in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------- the commands


async def up_async(
    *,
    kafka_port: int | None = None,
    controller_port: int | None = None,
    wait_s: float = KAFKA_READY_TIMEOUT_S,
) -> dict[str, str]:
    """Bring the stack up (idempotent); returns the KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to use."""
    settings = KafkaSettings.from_env(kafka_port, controller_port)
    started = time.monotonic()
    with _lock():
        launch = _kafka_launch(settings)  # the JVM boots while PostgreSQL comes up
        database_url = await _pg_up()
        await _kafka_wait(launch, wait_s)
        count = await _ensure_topics(settings.bootstrap)
    _say(f"stack: up in {time.monotonic() - started:.1f}s ({count} topics); "
         f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap} DATABASE_URL={_Url.parse(database_url).display}")  # fmt: skip
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap, "DATABASE_URL": database_url}


async def down_async() -> None:
    """Stop the broker and the PostgreSQL cluster that this script started (nothing else)."""
    with _lock():
        _kafka_down()
        _pg_down()


async def status_async(*, kafka_port: int | None = None) -> dict[str, Any]:
    """Print one line per part; returns what it found (`ok` is true when every part answers)."""
    settings = KafkaSettings.from_env(kafka_port)
    pid = _broker_pid()
    state = _broker_state()
    bootstrap = f"{HOST}:{state.get('port', settings.port)}" if pid else settings.bootstrap
    answers = await _kafka_answers(bootstrap) is not None
    if pid:
        health = "answering" if answers else "NOT answering"
        print(f"kafka: running pid {pid} on {bootstrap}, Kafka {state.get('version', '?')}, {health} (log {KAFKA_LOG})")
    elif answers:
        print(f"kafka: a broker not started here answers on {bootstrap}")
    else:
        print(f"kafka: stopped (pinned {pinned_kafka_version()})")

    env_url = os.environ.get("DATABASE_URL", "").strip()
    url = _Url.parse(env_url or DEFAULT_DATABASE_URL)
    probe = await _pg_probe(url)
    if env_url and not url.loopback and probe == "down":  # `up` falls back to the default then
        url = _Url.parse(DEFAULT_DATABASE_URL)
        probe = await _pg_probe(url)
    pg_pid = _local_pg_pid()
    owner = f"local cluster pid {pg_pid}, {PG_DATA}" if pg_pid else "not started here"
    pg_state = {
        "ok": f"up ({owner})",
        "no-database": f"up but database missing ({owner})",
        "down": "stopped",
    }
    print(f"postgres: {url.display} {pg_state.get(probe, probe)}")

    present, missing = await _topic_status(bootstrap) if answers else (0, [])
    total = len(_contract_topics())
    if not answers:
        print(f"topics: unknown (kafka down), {total} expected")
    elif missing:
        print(f"topics: {present}/{total} present, missing {', '.join(missing)}")
    else:
        print(f"topics: {present}/{total} present")
    ok = answers and probe == "ok" and not missing
    return {
        "ok": ok,
        "kafka": {
            "pid": pid,
            "bootstrap": bootstrap,
            "answers": answers,
            "version": state.get("version"),
        },
        "postgres": {"url": url.raw, "state": probe, "local_pid": pg_pid},
        "topics": {"present": present, "expected": total, "missing": missing},
    }


def up(
    *,
    kafka_port: int | None = None,
    controller_port: int | None = None,
    wait_s: float = KAFKA_READY_TIMEOUT_S,
) -> dict[str, str]:
    """Sync `up_async` (works inside a running event loop too)."""
    return _run_sync(up_async(kafka_port=kafka_port, controller_port=controller_port, wait_s=wait_s))


def down() -> None:
    """Sync `down_async`."""
    _run_sync(down_async())


def status(*, kafka_port: int | None = None) -> dict[str, Any]:
    """Sync `status_async`."""
    return _run_sync(status_async(kafka_port=kafka_port))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--kafka-port",
        type=int,
        help=f"broker port (env ATTAIN_KAFKA_PORT, default {DEFAULT_KAFKA_PORT})",
    )
    parser.add_argument(
        "--controller-port",
        type=int,
        help=f"KRaft controller port (default {DEFAULT_CONTROLLER_PORT})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=KAFKA_READY_TIMEOUT_S,
        help="seconds to wait for the broker",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(
                kafka_port=args.kafka_port,
                controller_port=args.controller_port,
                wait_s=args.timeout,
            )
        elif args.command == "down":
            down()
        else:
            return 0 if status(kafka_port=args.kafka_port)["ok"] else 1
    except StackError as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
