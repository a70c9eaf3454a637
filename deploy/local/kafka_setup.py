"""What the local Kafka broker is and needs before it starts: its ports, its pinned version, java,
its jars (fetched by Maven), server.properties and formatted KRaft storage.

The version is pinned in deploy/local/kafka/pom.xml; the files live in .local/kafka (see the
docstring of deploy/local/stack.py). deploy/local/kafka.py runs the broker from what `prepare` made.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from deploy.local.procs import HOST, LOCAL, ROOT, StackError, apt_install, capture, say

DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J2_CONFIG = HERE / "kafka" / "log4j2.xml"
KAFKA_DIR = LOCAL / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_PROPS = KAFKA_DIR / "server.properties"
KAFKA_CLUSTER_ID = KAFKA_DIR / "cluster.id"


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


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        say("kafka: no java found, installing openjdk-17-jre-headless...")
        apt_install("openjdk-17-jre-headless")
        java = shutil.which("java")
        if java is None:
            raise StackError("java still missing after installing openjdk-17-jre-headless")
    out = capture([java, "-version"])
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0_392"
        major = int(match.group(2))
    if major < 17:
        raise StackError(f"Kafka 4 needs Java 17 or newer; {java} is Java {major or '?'} (set JAVA_HOME)")
    return java


def _ensure_libs() -> str:
    """Fetch the broker's runtime classpath into .local/kafka/libs once per pinned pom."""
    version = pinned_kafka_version()
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    marker = KAFKA_LIBS / f".complete-{version}-{digest}"
    if marker.exists():
        return version
    mvn = shutil.which("mvn")
    if mvn is None:
        say("kafka: no mvn found, installing maven...")
        apt_install("maven")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("mvn still missing after installing maven")
    say(f"kafka: downloading {version} jars (first run)...")
    started = time.monotonic()
    partial = KAFKA_DIR / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    out = capture(
        [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}"],
        cwd=POM.parent,
    )  # fmt: skip
    jars = list(partial.glob("*.jar")) if partial.exists() else []
    if out.returncode != 0 or not any(j.name.startswith(f"kafka_2.13-{version}") for j in jars):
        last = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise StackError(f"mvn could not fetch Kafka {version} (exit {out.returncode}):\n{last}")
    (partial / marker.name).write_text(f"{version}\n")
    shutil.rmtree(KAFKA_LIBS, ignore_errors=True)
    partial.rename(KAFKA_LIBS)
    say(f"kafka: fetched {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return version


def _cluster_id() -> str:
    """The cluster id of .local/kafka/data, else the one kept in cluster.id, else a new one."""
    meta = KAFKA_DATA / "meta.properties"
    if meta.exists():
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    if KAFKA_CLUSTER_ID.exists():
        return KAFKA_CLUSTER_ID.read_text().strip()
    cluster_id = new_cluster_id()
    KAFKA_CLUSTER_ID.write_text(cluster_id + "\n")
    return cluster_id


def new_cluster_id() -> str:
    """A new cluster id as Kafka's `Uuid.randomUuid()` prints one: 22 chars of URL-safe base64, never a leading
    "-" (kafka-storage's argument parser would read one as an option: a broker then fails to format one time
    in 64, as the secured test broker did in CI, December 2026)."""
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
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
    text = "# Generated by deploy/local/kafka_setup.py on every `up`; edit that file, not this one.\n"
    text += "".join(f"{key}={value}\n" for key, value in props.items())
    KAFKA_PROPS.write_text(text)


def jvm_args(java: str, heap: str | None = None, logs_dir: Path = KAFKA_DIR) -> list[str]:
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
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{KAFKA_LIBS}/*",
    ]


def _format_storage(java: str) -> None:
    if (KAFKA_DATA / "meta.properties").exists():
        return
    cluster_id = _cluster_id()
    format_storage(java, KAFKA_PROPS, cluster_id)
    say(f"kafka: formatted {KAFKA_DATA.relative_to(ROOT)} (cluster id {cluster_id})")


def toolchain() -> tuple[str, str]:
    """The java to run and the pinned Kafka version, its jars in KAFKA_LIBS (fetched once)."""
    return _java(), _ensure_libs()


def format_storage(java: str, props: Path, cluster_id: str, *extra: str) -> None:
    """`kafka-storage format` for the broker configured by `props`; `extra` adds options (e.g. --add-scram)."""
    out = capture(
        [*jvm_args(java, heap="-Xmx256m"), "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
         "--config", str(props), "--ignore-formatted", *extra],
        cwd=props.parent,
    )  # fmt: skip
    if out.returncode != 0:
        raise StackError(f"formatting for {props} failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")


def prepare(settings: KafkaSettings) -> tuple[str, str]:
    """Everything the broker needs to start on `settings`' ports; returns the java to run and the Kafka version."""
    java, version = toolchain()
    KAFKA_DATA.mkdir(parents=True, exist_ok=True)
    _write_server_properties(settings)
    _format_storage(java)
    return java, version
