"""A Jaeger of its own for a test or a developer: the v2 binary (OpenTelemetry Collector based) pinned in
deploy/local/tools.py, in-memory storage, every port a free one chosen now (never a well-known port another
Jaeger or collector on the machine may hold).

    with running() as jaeger:        # started, ready
        env = jaeger.otel_env()      # OTEL_EXPORTER_OTLP_ENDPOINT=... for the services
        jaeger.trace(trace_id)       # what the query API holds of one trace (None while it holds nothing)

`python -m deploy.local.jaeger` starts one in the foreground and prints its addresses (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.procs import HOST, LOCAL, StackError, free_ports, say, tail
from deploy.local.tools import ensure

READY_TIMEOUT_S = 30.0

# The collector's own metrics are off ("none"): their default reader listens on a fixed port (8888); so is the
# query service's tracing of itself, which would export to a fixed port (4317).
CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: {host}:{query}
    grpc:
      endpoint: {host}:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: {host}:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


@dataclass
class Jaeger:
    """A running Jaeger: where it takes OTLP over HTTP, and its query API."""

    process: subprocess.Popen[bytes]
    otlp_port: int
    query_port: int
    log: Path

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{HOST}:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://{HOST}:{self.query_port}"

    def otel_env(self) -> dict[str, str]:
        """The environment that sends a service's traces here, exported within a fraction of a second."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}

    def get(self, path: str) -> Any:
        """The query API's JSON answer for `path` (HTTPError for a 4xx/5xx)."""
        with urllib.request.urlopen(f"{self.query_url}{path}", timeout=5) as answer:  # noqa: S310 - our own URL
            return json.load(answer)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace `trace_id` as the query API has it now (spans, processes), None while it has none."""
        try:
            found = self.get(f"/api/traces/{trace_id}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        traces = found.get("data") or []
        return traces[0] if traces else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def start(timeout_s: float = READY_TIMEOUT_S) -> Jaeger:
    """Start Jaeger (built first if this checkout has none yet) and wait until it takes spans and answers
    queries. Raises StackError, with the end of its log, when it does not within `timeout_s`."""
    binary = ensure("jaeger")
    otlp, query, query_grpc = free_ports(3)
    directory = LOCAL / "jaeger"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"config-{otlp}.yaml"
    config.write_text(CONFIG.format(host=HOST, otlp=otlp, query=query, query_grpc=query_grpc))
    log = directory / f"jaeger-{otlp}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary), "--config", f"file:{config}"], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    jaeger = Jaeger(process, otlp, query, log)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise StackError(f"jaeger exited with {process.returncode}; its log ({log}):\n{tail(log)}")
        if _open(otlp) and _ready(jaeger):
            return jaeger
        if time.monotonic() > deadline:
            jaeger.stop()
            raise StackError(f"jaeger not ready after {timeout_s:.0f} s; its log ({log}):\n{tail(log)}")
        time.sleep(0.1)


def _ready(jaeger: Jaeger) -> bool:
    try:
        jaeger.get("/api/services")
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors; a half-written answer a ValueError
        return False
    return True


@contextlib.contextmanager
def running(timeout_s: float = READY_TIMEOUT_S) -> Iterator[Jaeger]:
    """A Jaeger for the length of the block, stopped after it."""
    jaeger = start(timeout_s)
    try:
        yield jaeger
    finally:
        jaeger.stop()


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m deploy.local.jaeger",
                            description="Run the pinned Jaeger (built from the Go module proxy on first use) on free"
                                        " ports, in memory, until Ctrl-C; prints its OTLP and query addresses.",
                            ).parse_args(argv)
    with running() as jaeger:
        say(f"jaeger: OTLP/HTTP {jaeger.otlp_endpoint}, query API {jaeger.query_url}/api/traces/<trace id>"
            " (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            jaeger.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
