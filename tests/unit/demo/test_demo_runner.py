"""The demo's processes: port checks, the children's environment, start-ready-stop of services.

The service tests run a tiny stand-in (an HTTP server answering /healthz and /readyz) instead
of the real services, so they need neither Kafka nor PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.demo import runner, tether
from deploy.demo.__main__ import parse_args
from deploy.demo.runner import Services, SetupError, child_env, port_answers, tail
from deploy.local import crm_keys, registry_keys
from deploy.local.procs import free_block

STAND_IN = textwrap.dedent("""
    import http.server, os, signal, sys, time
    if os.environ.get("FAIL"):
        print("cannot start: no database", flush=True)
        sys.exit(3)
    time.sleep(float(os.environ.get("STARTUP_S", "0")))
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/healthz", "/readyz") else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["HTTP_PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()
""")


def _free_port() -> int:
    return free_block(1)  # below the ephemeral range: no stand-in's neighbour connection takes it meanwhile


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def stand_in(tmp_path: Path) -> list[str]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    return [sys.executable, str(script)]


def test_port_answers_tells_a_listening_port_from_a_closed_one(listening: int) -> None:
    assert port_answers(listening)
    assert not port_answers(_free_port())


def test_children_get_the_local_stack_and_keep_the_callers_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://me@db.example/attain")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    env = child_env({"LOG_LEVEL": "WARNING"})
    assert env["DATABASE_URL"] == "postgresql://me@db.example/attain"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert (env["LOG_LEVEL"], env["PYTHONUNBUFFERED"]) == ("WARNING", "1")
    monkeypatch.delenv("DATABASE_URL")
    assert child_env()["DATABASE_URL"] == runner.DATABASE_URL


@pytest.fixture(autouse=True)
def local_registry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """child_env makes the local registry key pair when the caller names none: in this test's directory."""
    monkeypatch.setattr(registry_keys, "KEY_FILE", tmp_path / "registry-signing-key")
    for name in ("REGISTRY_SIGNING_KEY", "REGISTRY_SIGNING_KEY_FILE", "REGISTRY_VERIFY_KEYS"):
        monkeypatch.delenv(name, raising=False)


def test_children_get_the_local_registry_key_pair_unless_the_caller_names_a_signing_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = child_env()
    assert env["REGISTRY_SIGNING_KEY"] == (tmp_path / "registry-signing-key").read_text().strip()
    assert env["REGISTRY_VERIFY_KEYS"] == registry_keys.verify_keys(tmp_path / "registry-signing-key")
    monkeypatch.setenv("REGISTRY_SIGNING_KEY_FILE", "/run/secrets/registry")
    assert "REGISTRY_SIGNING_KEY" not in child_env()


def test_children_get_the_local_crm_secret_key_unless_the_caller_names_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crm_keys, "KEYS_FILE", tmp_path / "crm-secret-keys")
    monkeypatch.delenv("CRM_SECRET_KEYS", raising=False)
    local = child_env()["CRM_SECRET_KEYS"]
    assert local == (tmp_path / "crm-secret-keys").read_text().strip()  # made once, kept for the next run
    assert child_env()["CRM_SECRET_KEYS"] == local
    monkeypatch.setenv("CRM_SECRET_KEYS", "the-operators-own")
    assert child_env()["CRM_SECRET_KEYS"] == "the-operators-own"


def test_tail_gives_the_last_lines_or_says_there_is_no_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert tail(log, 2) == "line 98\nline 99"
    assert "no log" in tail(tmp_path / "missing.log")


def test_services_are_not_started_on_ports_already_taken(tmp_path: Path, listening: int) -> None:
    services = Services(tmp_path, specs=[("ingest", _free_port()), ("kpi", listening)])
    with pytest.raises(SetupError, match=rf"port\(s\) {listening} \(kpi\) already answer"):
        services.check_ports_free()


async def test_services_start_get_ready_and_stop_cleanly(tmp_path: Path, stand_in: list[str]) -> None:
    services = Services(tmp_path, specs=[("one", _free_port()), ("two", _free_port())], command=lambda _: stand_in)
    services.start(child_env({"STARTUP_S": "0.3"}))
    try:
        anchor = await services.wait_ready(within_s=20)
        assert all(s.ready and s.up_at is not None and s.up_at <= anchor for s in services.all)
        assert anchor == max(s.up_at for s in services.all if s.up_at is not None)
        assert services.dead() == []
    finally:
        outcome = services.stop(grace=5)
    assert outcome == {"one": "stopped", "two": "stopped"}


async def test_a_service_that_dies_on_start_fails_setup_with_its_log(tmp_path: Path, stand_in: list[str]) -> None:
    services = Services(tmp_path, specs=[("broken", _free_port())], command=lambda _: stand_in)
    services.start(child_env({"FAIL": "1"}))
    try:
        with pytest.raises(SetupError, match=r"(?s)broken exited with code 3.*cannot start: no database"):
            await services.wait_ready(within_s=20)
    finally:
        assert services.stop(grace=1) == {"broken": "had exited with code 3"}


def test_options_have_the_documented_defaults_and_limits(capsys: pytest.CaptureFixture[str]) -> None:
    options = parse_args([])
    assert (options.seed, options.duration, options.reps, options.teams) == (1, 100.0, 24, 4)
    assert not options.keep_running
    assert parse_args(["--duration", "120", "--seed", "9", "--keep-running"]).duration == 120.0
    for bad in (["--duration", "121"], ["--reps", "19"], ["--teams", "2"], ["--teams", "9"], ["--seed", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert "outside" in capsys.readouterr().err


# --- the tether: no service outlives the demo (a SIGKILLed demo used to leave four behind) ------------------

DEMO_STAND_IN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from deploy.demo.runner import Services, _tethered, child_env
    log_dir, port, *service = sys.argv[1:]
    services = Services(Path(log_dir), specs=[("one", int(port))], command=lambda _: _tethered(service))
    services.start(child_env())
    print("started", flush=True)
    time.sleep(600)
""")


def test_the_services_are_tethered_and_stop_when_the_demo_is_killed(tmp_path: Path, stand_in: list[str]) -> None:
    assert Services(tmp_path)._command("kpi")[:5] == [sys.executable, "-m", "deploy.demo.tether", str(os.getpid()),
                                                        "--"]
    port = _free_port()
    demo = subprocess.Popen([sys.executable, "-c", DEMO_STAND_IN, str(tmp_path), str(port), *stand_in],
                            cwd=runner.REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None and demo.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 20
        while not port_answers(port):
            assert time.monotonic() < deadline, "the tethered service never answered"
            time.sleep(0.05)
    finally:
        demo.kill()  # SIGKILL: the demo runs no cleanup at all
        demo.wait()
    deadline = time.monotonic() + 10
    while port_answers(port):
        assert time.monotonic() < deadline, "the service outlived the demo"
        time.sleep(0.05)


def test_a_tether_whose_parent_is_already_gone_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    gone = os.getppid() + 1 if os.getppid() != 1 else 2  # not our parent
    assert tether.main([str(gone), "--", "true"]) == 1
    assert f"parent {gone} is gone; not starting true" in capsys.readouterr().err
    for misuse in (["x", "--", "true"], ["1", "--"], ["1"]):
        with pytest.raises(SystemExit) as refused:
            tether.main(misuse)
        assert refused.value.code == 2
