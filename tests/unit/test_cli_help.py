"""Every command line of the project: `--help` prints a usage and exits 0, starting nothing and reading no setting;
an unknown argument is a usage error (exit status 2) that starts nothing either; no option takes a secret's value.

One child process runs every entry point in turn (`runpy`, as `python -m` does), with an empty environment and
with the socket calls, the event loop and subprocesses replaced by a trap: an entry point that would listen,
connect, run a loop or start a process fails instead. One process, so the imports are paid once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import runpy
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.ingest import sso_cli

ROOT = Path(__file__).resolve().parents[2]

# (module run by `python -m`, arguments before --help)
ENTRY_POINTS: list[tuple[str, list[str]]] = [
    ("services.ingest", []),
    ("services.ingest", ["serve"]),
    ("services.ingest", ["tenants"]),
    *[("services.ingest", ["tenants", command]) for command in (
        "create", "set-secret", "set-api-token", "set-rate", "locale", "holidays", "revoke", "set-sso",
        "reannounce", "rotate-secrets")],
    ("services.ingest", ["tokens"]),
    *[("services.ingest", ["tokens", command]) for command in ("create", "share", "list", "revoke", "rotate")],
    ("services.ingest", ["keys"]),
    ("services.ingest", ["keys", "registry"]),
    ("services.ingest", ["import"]),
    ("services.ingest.importer", []),
    ("services.kpi", []),
    ("services.kpi", ["serve"]),
    ("services.kpi", ["rebuild"]),
    ("services.kpi.rebuild", []),
    ("services.coaching", []),
    ("services.coaching", ["serve"]),
    ("services.recognition", []),
    ("services.recognition", ["serve"]),
    ("services.notify", []),
    ("services.notify", ["serve"]),
    ("services.privacy", []),
    ("services.privacy", ["export"]),
    ("services.privacy", ["erase"]),
    ("shared.migrate", []),
    ("shared.docs", []),
    ("shared.offsets", []),
    ("deploy.local.stack", []),
    ("deploy.local.wait", []),
    ("deploy.local.browser", []),
    ("deploy.local.crds", []),
    ("deploy.local.env", []),
    ("deploy.local.jaeger", []),
    ("deploy.local.tools", []),
    ("deploy.helm_chart", []),
    ("shared.schema_wait", []),
    ("deploy.demo", []),
    ("deploy.demo.replay", []),
    ("deploy.demo.tether", []),
    ("deploy.kafka_users", []),
    ("tests.chaos", []),
    ("tests.chaos.soak", []),
    ("examples.webhook_subscriber", []),
    *[(f"benchmarks.{name}", []) for name in (
        "decode", "demo_terminal", "ingest_throughput", "kafka_baseline", "kpi_raw", "kpi_throughput", "latency",
        "outbox_relay")],
    # benchmarks.kpi_quix needs the `bench` extra (Quix Streams), which the dev venv does not hold.
]

# (module, arguments): each must be refused with exit status 2, before anything starts.
MISUSED: list[tuple[str, list[str]]] = [
    ("services.ingest", ["--port", "8001"]),
    ("services.ingest", ["serve", "now"]),
    ("services.kpi", ["--bogus"]),
    ("services.kpi", ["rebuld"]),
    ("services.coaching", ["--bogus"]),
    ("services.recognition", ["serve", "--bogus"]),
    ("services.notify", ["--bogus"]),
    ("services.privacy", ["--bogus"]),
    ("shared.migrate", ["--bogus"]),
    ("shared.docs", ["a", "b"]),
    ("deploy.local.stack", ["--bogus"]),
    ("deploy.kafka_users", ["--bogus"]),
    ("deploy.demo.tether", ["--bogus"]),
]

# The child: runs each case with the traps set, answers one JSON object per case.
CHILD = r'''
import asyncio, contextlib, io, json, runpy, socket, subprocess, sys, warnings, importlib

class Started(Exception):
    pass

def trap(what):
    def refuse(*args, **kwargs):
        raise Started(what)
    return refuse

# binding alone only probes for a free port (the integration tests' helpers do, at import: deploy.local.procs
# binds candidate ports below the ephemeral range and lets them go); listening or connecting is starting
socket.socket.listen = trap("listened on a socket")
socket.socket.connect = trap("connected a socket")
socket.create_connection = trap("connected a socket")
asyncio.run = trap("ran an event loop")
asyncio.base_events.BaseEventLoop.run_until_complete = trap("ran an event loop")
subprocess.Popen.__init__ = trap("started a process")
warnings.simplefilter("ignore")

def one(case):
    out, err = io.StringIO(), io.StringIO()
    code, started = None, None
    argv0, target = case["argv0"], case["target"]
    sys.argv = [argv0, *case["args"]]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if ":" in target:
                module, _, function = target.partition(":")
                code = getattr(importlib.import_module(module), function)()
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Started as what:
        started = str(what)
    except BaseException as exc:
        started = f"raised {exc!r}"
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "started": started}

cases = json.load(sys.stdin)
print(json.dumps([one(case) for case in cases]))
'''


def scripts() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file)["project"]["scripts"])


def run_all(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "COLUMNS": "100",
           "PYTHONDONTWRITEBYTECODE": "1"}  # no DATABASE_URL, no CRM_SECRET_KEYS, no KAFKA_*: no setting at all
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, input=json.dumps(cases),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return answers


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case's answer, by its label; one child process for all of them."""
    cases: dict[str, dict[str, Any]] = {}
    for module, args in ENTRY_POINTS:
        for flag in ("--help", "-h") if not args else ("--help",):
            cases[label(module, [*args, flag])] = {"argv0": "-m", "target": module, "args": [*args, flag]}
    for module, args in MISUSED:
        cases[label(module, args)] = {"argv0": "-m", "target": module, "args": args}
    for name, target in scripts().items():
        cases[name] = {"argv0": f"/usr/local/bin/{name}", "target": target, "args": ["--help"]}
    results = run_all(list(cases.values()), tmp_path_factory.mktemp("home"))
    return dict(zip(cases, results, strict=True))


def label(module: str, args: list[str]) -> str:
    return " ".join(["python -m", module, *args])


def helps() -> Iterator[Any]:
    for module, args in ENTRY_POINTS:
        yield label(module, [*args, "--help"])
        if not args:
            yield label(module, [*args, "-h"])


@pytest.mark.parametrize("case", list(helps()))
def test_help_prints_a_usage_and_exits_0_starting_nothing(case: str, answers: dict[str, dict[str, Any]]) -> None:
    answer = answers[case]
    assert answer["started"] is None, f"{case} {answer['started']}: {answer['err'][-1500:]}"
    assert answer["code"] == 0, answer["err"][-1500:]
    assert answer["out"].startswith("usage: "), answer["out"][:500]


@pytest.mark.parametrize("case", [label(module, args) for module, args in MISUSED])
def test_an_unknown_argument_is_a_usage_error_and_starts_nothing(case: str,
                                                                  answers: dict[str, dict[str, Any]]) -> None:
    answer = answers[case]
    assert answer["started"] is None, f"{case} {answer['started']}"
    assert answer["code"] == 2, answer
    assert "usage: " in answer["err"] and "error: " in answer["err"], answer["err"]


@pytest.mark.parametrize("name", sorted(scripts()))
def test_each_console_script_answers_help_under_its_own_name(name: str, answers: dict[str, dict[str, Any]]) -> None:
    answer = answers[name]
    assert answer["started"] is None, answer
    assert answer["code"] == 0, answer["err"][-1500:]
    assert answer["out"].startswith(f"usage: {name}"), answer["out"][:300]


def test_every_service_has_a_console_script_and_every_main_module_is_checked() -> None:
    assert {"attain-ingest", "attain-kpi", "attain-coaching", "attain-recognition", "attain-notify",
            "attain-privacy", "attain-migrate"} <= set(scripts())
    checked = {module for module, _ in ENTRY_POINTS}
    mains = set()
    for folder in ("services", "shared", "deploy", "benchmarks", "examples", "tests/chaos"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "__main__.py":
                mains.add(".".join(path.relative_to(ROOT).parent.parts))
            elif re.search(r'^if __name__ == "__main__":', path.read_text(), re.M):
                mains.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    unchecked = mains - checked - {"benchmarks.kpi_quix"}
    assert unchecked == set(), f"entry points whose --help no test runs: {sorted(unchecked)}"


# --- secrets: never a value on the command line ------------------------------------------------------

SECRET_LIKE = re.compile(r"pass(word)?|secret|token|(^|[-_])key(s)?($|[-_])|credential|bearer", re.I)
# An option named like a secret may take a value only if the value names where the secret is: a file (`-file`;
# '-' for standard input) or an environment variable (`-env`).
WHERE = re.compile(r"-(file|env)$")
IDENTIFIER = re.compile(r"[-_]id$")  # a token's id names it: not a secret
# Suppressed spellings kept only to refuse a secret on the command line, each tried below.
REFUSED = {
    ("services.ingest", "tenants", "create", "--token"),
    ("services.ingest", "tenants", "set-secret", "secret_on_argv"),
    ("services.ingest", "tenants", "set-api-token", "token_on_argv"),
    ("services.ingest", "tenants", "set-sso", "--client-secret"),
    ("services.ingest", "import", "--token"),
    ("services.ingest.importer", "--token"),
}
# Outside services/, shared/ and deploy/, and to mend in their own change: the reference webhook subscriber's
# --secret (WEBHOOK_SECRET in the environment is the way its help recommends).
KNOWN = {("examples.webhook_subscriber", "--secret")}


class Parsed(Exception):
    """Raised instead of parsing: carries the parser an entry point built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def parsers_of(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser `python -m module *args` builds, caught when it starts parsing (nothing else can start: the
    process and event-loop calls fail)."""
    def capture(self: argparse.ArgumentParser, *_: Any, **__: Any) -> Any:
        raise Parsed(self)

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError(f"{module} started something before parsing its command line")

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        patch.setattr(sys, "argv", ["-m", *args])
        patch.setattr(subprocess.Popen, "__init__", refuse)
        patch.setattr(asyncio, "run", refuse)
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except Parsed as parsed:
            return parsed.parser
    raise AssertionError(f"{module} {args} parsed no command line")


def value_options(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path of command names and the option's first string or dest, action) of every action taking a value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from value_options(sub, (*path, name))
        elif action.nargs != 0 and not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield (*path, action.option_strings[0] if action.option_strings else action.dest), action


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_option_named_like_a_secret_takes_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    offending, refused = set(), set()
    walked = [(parsers_of(module, args, monkeypatch), (module, *args)) for module, args in ENTRY_POINTS
              if len(args) <= 1]  # the parser of `tenants create` is the parser of `tenants`, walked below
    # ... but `tenants set-sso` has a parser of its own (services/ingest/sso_cli.py), handed its arguments
    walked.append((sso_cli.parser(), ("services.ingest", "tenants", "set-sso")))
    for parser, path in walked:
        for where, action in value_options(parser, path):
            name = where[-1]
            if not SECRET_LIKE.search(name) or WHERE.search(name) or IDENTIFIER.search(name):
                continue
            if action.help == argparse.SUPPRESS:
                refused.add(where)
            elif where not in KNOWN:
                offending.add(where)
    assert offending == set(), "options that take a secret on the command line, where `ps` shows it"
    assert refused == REFUSED


@pytest.mark.parametrize(("module", "argv"), [
    ("services.ingest", ["tenants", "create", "acme", "--token", "atn_s3cret"]),
    ("services.ingest", ["tenants", "set-secret", "acme", "hubspot", "atn_s3cret"]),
    ("services.ingest", ["tenants", "set-api-token", "acme", "hubspot", "atn_s3cret", "--base-url", "https://x"]),
    ("services.ingest", ["import", "deals.csv", "--url", "http://x", "--token", "atn_s3cret"]),
])
def test_a_secret_given_the_old_way_is_refused_naming_the_new_way(module: str, argv: list[str],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from services.ingest.__main__ import main  # noqa: PLC0415 - the one module these cases run

    monkeypatch.delenv("CRM_SECRET_KEYS", raising=False)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "not taken on the command line" in captured.err
    assert "-file" in captured.err
    assert "atn_s3cret" not in captured.out + captured.err


def test_a_client_secret_on_the_command_line_of_set_sso_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`tenants set-sso --client-secret S`: refused (exit 2) naming the ways it is taken, S never repeated, nothing
    started. (set-sso reads its settings first: with a key unset it says that instead, also exit 2.)"""
    from deploy.local import crm_keys, registry_keys  # noqa: PLC0415 - the settings' keys, as the local stack's
    from services.ingest.__main__ import main  # noqa: PLC0415 - the one module these cases run

    monkeypatch.setenv("CRM_SECRET_KEYS", crm_keys.crm_secret_keys())
    monkeypatch.setenv("REGISTRY_SIGNING_KEY", registry_keys.signing_key())
    monkeypatch.setattr(asyncio, "run", lambda *_, **__: pytest.fail("set-sso started something"))
    assert main(["tenants", "set-sso", "acme", "--issuer", "https://login.example.com", "--client-id", "c",
                 "--client-secret", "atn_s3cret"]) == 2
    captured = capsys.readouterr()
    assert "not taken on the command line" in captured.err
    assert "--client-secret-file" in captured.err and "--client-secret-env" in captured.err
    assert "atn_s3cret" not in captured.out + captured.err
