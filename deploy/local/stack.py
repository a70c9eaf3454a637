"""The local stack for development and CI: one Kafka 4.x broker (KRaft) and PostgreSQL.

    .venv/bin/python -m deploy.local.stack up      # start what is missing, create the topics
    .venv/bin/python -m deploy.local.stack status  # one line per part; exit 1 if a part is down
    .venv/bin/python -m deploy.local.stack down    # stop what this script started
    .venv/bin/python -m deploy.local.stack topics  # only create the topics on $KAFKA_BOOTSTRAP_SERVERS

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

`topics` starts nothing and writes nothing locally: it waits (up to 60 s, or --timeout) for
a broker to answer at $KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092) and creates the topics of
shared/topics.py that are missing, as docker-compose's one-shot init container. A secured
cluster is reached with the services' own KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_*.

This module is the command line and the order of things; the parts are its neighbours:
kafka.py runs the broker that kafka_setup.py prepares (java, jars, server.properties, storage),
postgres.py finds or starts the database server (pg_cluster.py: the cluster in .local/pg),
topics.py creates the contract's topics, and procs.py holds what they share.

Environment: DATABASE_URL, ATTAIN_KAFKA_PORT (9092), ATTAIN_KAFKA_CONTROLLER_PORT (9093),
KAFKA_HEAP_OPTS (-Xms128m -Xmx512m), JAVA_HOME; KAFKA_BOOTSTRAP_SERVERS (and the security settings) for `topics` only.
Importable: `up()`, `down()`, `status()`, `topics()` (sync; safe to call from inside a
running event loop) and their `*_async` twins.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from deploy.local import kafka, pg_cluster, postgres
from deploy.local.kafka import KAFKA_LOG, KAFKA_READY_TIMEOUT_S
from deploy.local.kafka_setup import DEFAULT_CONTROLLER_PORT, DEFAULT_KAFKA_PORT, KafkaSettings, pinned_kafka_version
from deploy.local.procs import HOST, StackError, lock, say
from deploy.local.topics import BROKER_WAIT_S, ensure_topics, expected, wait_for_broker
from shared.kafka import client_kwargs
from shared.settings import ServiceSettings

__all__ = [
    "KafkaSettings",
    "StackError",
    "down",
    "down_async",
    "main",
    "status",
    "status_async",
    "topics",
    "topics_async",
    "up",
    "up_async",
]

_T = TypeVar("_T")


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def up_async(
    *,
    kafka_port: int | None = None,
    controller_port: int | None = None,
    wait_s: float = KAFKA_READY_TIMEOUT_S,
) -> dict[str, str]:
    """Bring the stack up (idempotent); returns the KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to use."""
    settings = KafkaSettings.from_env(kafka_port, controller_port)
    started = time.monotonic()
    with lock():
        launched = kafka.launch(settings)  # the JVM boots while PostgreSQL comes up
        database_url = await postgres.up()
        await kafka.wait_until_up(launched, wait_s)
        count = await ensure_topics(settings.bootstrap)
    shown = postgres.Url.parse(database_url).display
    say(
        f"stack: up in {time.monotonic() - started:.1f}s ({count} topics); "
        f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap} DATABASE_URL={shown}"
    )
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap, "DATABASE_URL": database_url}


async def down_async() -> None:
    """Stop the broker and the PostgreSQL cluster that this script started (nothing else)."""
    with lock():
        kafka.stop()
        pg_cluster.stop()


async def status_async(*, kafka_port: int | None = None) -> dict[str, Any]:
    """Print one line per part; returns what it found (`ok` is true when every part answers)."""
    settings = KafkaSettings.from_env(kafka_port)
    pid = kafka.broker_pid()
    state = kafka.broker_state()
    bootstrap = f"{HOST}:{state.get('port', settings.port)}" if pid else settings.bootstrap
    names = await kafka.kafka_answers(bootstrap)
    answers = names is not None
    if pid:
        health = "answering" if answers else "NOT answering"
        print(f"kafka: running pid {pid} on {bootstrap}, Kafka {state.get('version', '?')}, {health} (log {KAFKA_LOG})")
    elif answers:
        print(f"kafka: a broker not started here answers on {bootstrap}")
    else:
        print(f"kafka: stopped (pinned {pinned_kafka_version()})")

    env_url = os.environ.get("DATABASE_URL", "").strip()
    url = postgres.Url.parse(env_url or postgres.DEFAULT_DATABASE_URL)
    probe = await postgres.probe(url)
    if env_url and not url.loopback and probe == "down":  # `up` falls back to the default then
        url = postgres.Url.parse(postgres.DEFAULT_DATABASE_URL)
        probe = await postgres.probe(url)
    pg_pid = pg_cluster.local_pid()
    owner = f"local cluster pid {pg_pid}, {pg_cluster.PG_DATA}" if pg_pid else "not started here"
    pg_state = {
        "ok": f"up ({owner})",
        "no-database": f"up but database missing ({owner})",
        "down": "stopped",
    }
    print(f"postgres: {url.display} {pg_state.get(probe, probe)}")

    wanted = expected()
    missing = [n for n in wanted if n not in names] if names is not None else []
    present = len(wanted) - len(missing) if names is not None else 0
    if not answers:
        print(f"topics: unknown (kafka down), {len(wanted)} expected")
    elif missing:
        print(f"topics: {present}/{len(wanted)} present, missing {', '.join(missing)}")
    else:
        print(f"topics: {present}/{len(wanted)} present")
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
        "topics": {"present": present, "expected": len(wanted), "missing": missing},
    }


async def topics_async(*, bootstrap: str | None = None, wait_s: float = BROKER_WAIT_S) -> int:
    """Wait for a broker at `bootstrap` (default $KAFKA_BOOTSTRAP_SERVERS, else the local one),
    create the contract's missing topics there; returns how many topics the contract has.
    A secured cluster is reached with the services' own settings (KAFKA_SECURITY_PROTOCOL, ...)."""
    bootstrap = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or f"{HOST}:{DEFAULT_KAFKA_PORT}"
    security = client_kwargs(ServiceSettings())
    await wait_for_broker(bootstrap, wait_s, security)
    count = await ensure_topics(bootstrap, security=security)
    say(f"topics: {count} present on {bootstrap}")
    return count


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


def topics(*, bootstrap: str | None = None, wait_s: float = BROKER_WAIT_S) -> int:
    """Sync `topics_async`."""
    return _run_sync(topics_async(bootstrap=bootstrap, wait_s=wait_s))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "topics"])
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
        help=f"seconds to wait for the broker (up: {KAFKA_READY_TIMEOUT_S:.0f}, topics: {BROKER_WAIT_S:.0f})",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(
                kafka_port=args.kafka_port,
                controller_port=args.controller_port,
                wait_s=KAFKA_READY_TIMEOUT_S if args.timeout is None else args.timeout,
            )
        elif args.command == "down":
            down()
        elif args.command == "topics":
            topics(wait_s=BROKER_WAIT_S if args.timeout is None else args.timeout)
        else:
            return 0 if status(kafka_port=args.kafka_port)["ok"] else 1
    except StackError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
