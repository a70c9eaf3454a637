"""The docs' runnable blocks, run as a newcomer would type them (tests/docs_blocks.py says how they
are marked).

Each page's `run` blocks go, in order, into one bash session (`set -euo pipefail`, so the first
failing command fails the test), in a scratch directory that sees the checkout through symlinks
(`make`, `.venv/bin/...` and `python -m` work as in the checkout; the files a page writes land in
the scratch directory). Three things differ from a newcomer's machine, so that the test never
depends on a fixed port, another test's data or its leftovers: the services' ports 8001-8004 become
free ones (every `127.0.0.1:800N` and the `HTTP_PORT` of each `attain-<service>` started in the
background), the tenant slug `acme` becomes a unique one, and the session's `DATABASE_URL` names a
fresh database and `KAFKA_CONSUMER_GROUP_PREFIX` a group prefix of its own. Background jobs the
page leaves are ended with the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, pages, runnable
from tests.integration.conftest import fresh_database
from tests.ports import free_ports

SERVICES = ("ingest", "kpi", "coaching", "recognition")
DEFAULT_PORTS = {"ingest": 8001, "kpi": 8002, "coaching": 8003, "recognition": 8004}
PAGES = [page for page in pages() if runnable(page)]
# Each page starts services that read every topic from its start: run before the rest of the suite fills them.
pytestmark = pytest.mark.early
# What each page's output must show, besides every command succeeding.
EXPECTED = {
    "README.md": [r'"accepted":\s*1'],
    "docs/getting-started.md": [r'"accepted":\s*4', r'"52000', r'"attainment":\s*"1.0400"', r'"role":\s*"rep"'],
}


def script(page: Path, slug: str, ports: dict[str, int]) -> str:
    """The page's runnable blocks as one bash script, ports and slug swapped (see the module's doc)."""
    text = "\n".join(block.text for block in runnable(page))
    for name, default in DEFAULT_PORTS.items():
        text = re.sub(rf"\b{default}\b", str(ports[name]), text)
        text = re.sub(rf"^(\s*)attain-{name} >", rf"\1HTTP_PORT={ports[name]} attain-{name} >", text, flags=re.M)
    text = re.sub(r"\bacme\b", slug, text)
    return "set -euo pipefail\n" + text


def test_the_swaps_reach_every_port_and_slug() -> None:
    ports = dict(zip(SERVICES, (50001, 50002, 50003, 50004), strict=True))
    swapped = script(ROOT / "docs" / "getting-started.md", "acme-x1", ports)
    assert not re.search(r"\b800[1-4]\b", swapped)
    assert "HTTP_PORT=50002 attain-kpi >" in swapped
    assert not re.search(r"\bacme\b", swapped.replace("acme-x1", ""))


@dataclass
class Run:
    """One page's session, started with every other page's at once (they share nothing: own database, ports,
    slug and groups), so that the pages' waits overlap."""

    name: str
    process: subprocess.Popen[str]
    scratch: Path

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        try:
            output, _ = self.process.communicate(timeout=timeout_s)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever the page left running in the background
                os.killpg(self.process.pid, signal.SIGTERM)
        logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.scratch.glob("*.log"))
                       if not log.is_symlink())
        return self.process.returncode, output, logs


def _start(page: Path, scratch: Path) -> Run:
    tag = uuid.uuid4().hex[:8]
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    database = asyncio.run(fresh_database(f"attain_docs_{tag}"))
    scratch.mkdir(parents=True)
    for entry in ROOT.iterdir():  # the checkout, seen from a scratch directory
        if entry.name != ".git":
            (scratch / entry.name).symlink_to(entry)
    env = {**os.environ, "DATABASE_URL": database, "KAFKA_CONSUMER_GROUP_PREFIX": f"attain-docs-{tag}",
           "LOG_FORMAT": "json", "OUTBOX_POLL_INTERVAL_S": "0.5"}
    for inherited in ("HTTP_PORT", "CRM_SECRET_KEYS", "REGISTRY_SIGNING_KEY", "REGISTRY_SIGNING_KEY_FILE",
                      "REGISTRY_VERIFY_KEYS"):  # a newcomer's shell has none of the suite's settings
        env.pop(inherited, None)
    process = subprocess.Popen(["bash", "-c", script(page, f"acme-{tag}", ports)], cwd=scratch, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return Run(page.relative_to(ROOT).as_posix(), process, scratch)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    started = {run.name: run for run in (_start(page, tmp_path_factory.mktemp("docs") / "page") for page in PAGES)}
    yield started
    for run in started.values():
        if run.process.poll() is None:
            run.finish(1)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_runnable_blocks_run(page: Path, runs: dict[str, Run]) -> None:
    name = page.relative_to(ROOT).as_posix()
    returncode, output, logs = runs[name].finish(timeout_s=240)
    assert returncode == 0, f"{name}: a command failed (exit {returncode}):\n{output}{logs}"
    for pattern in EXPECTED.get(name, []):
        assert re.search(pattern, output), f"{name}: the output lacks {pattern!r}:\n{output}"
