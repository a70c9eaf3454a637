"""Pinned command-line tools the tests drive, built from the Go module proxy on first use.

`python -m deploy.local.tools [NAME ...]` builds the named tools (all when none is named) and
prints their paths; `--background` starts that build detached, at the lowest CPU priority, and
returns at once (`make test` does, so the build overlaps the tests that need no tool; those that do
run last, and wait for it). Each is built once into `~/.cache/attain/tools/<name>-<version>/`
(`$XDG_CACHE_HOME` if set; `ATTAIN_TOOLS_DIR` to choose) and reused by every checkout on the
machine after that, as Maven's `~/.m2` keeps the broker's jars; a version bump builds a new one
beside the old. A lock per tool makes a second
caller wait for the build under way instead of starting another; the binary appears whole or not
at all. `ATTAIN_TOOL_<NAME>` (upper-case, `-` as `_`) points at a binary of your own instead.

Most build with `go install MODULE@VERSION`. A module whose go.mod has `replace` directives (Jaeger)
refuses that; it is built as a tool of a private module instead (`go get -tool`, then `go build`),
which takes its pinned dependencies as the module states them (go.sum's hashes checked).

Why the Go module proxy: it is the registry this machine and CI reach, and each of these projects
publishes its command there at a tagged version; the build is reproducible from go.sum's hashes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local.procs import StackError, say

TOOLS_DIR = Path(os.environ.get("ATTAIN_TOOLS_DIR")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "attain" / "tools")


@dataclass(frozen=True)
class Tool:
    name: str
    module: str  # the package path of the command, as `go install` takes it
    version: str
    as_tool: bool = False  # built with `go get -tool` in a private module (its go.mod has replace directives)

    @property
    def directory(self) -> Path:
        return TOOLS_DIR / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.directory / self.name


# The pins. A test that validates against these tools says which version it used.
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        # In build order: Jaeger first (the tracing test, mid-suite, needs it), then what the last tests need.
        Tool("jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", "v1.75.0", as_tool=True),
        Tool("kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", "v0.7.0"),
        Tool("helm", "helm.sh/helm/v4/cmd/helm", "v4.3.2"),
    )
}


@contextlib.contextmanager
def _locked(tool: Tool) -> Iterator[None]:
    tool.directory.mkdir(parents=True, exist_ok=True)
    with (tool.directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a build under way (another process, or the background one) finishes first
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{what}: {' '.join(args[1:])} failed:\n{result.stderr[-2000:]}")


def _build(tool: Tool, go: str) -> None:
    partial = tool.directory / ".build"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = {**os.environ, "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    built = partial / tool.name
    if tool.as_tool:
        _go([go, "mod", "init", f"attain.local/tools/{tool.name}"], partial, env, tool.name)
        _go([go, "get", "-tool", f"{tool.module}@{tool.version}"], partial, env, tool.name)
        _go([go, "build", "-trimpath", "-o", str(built), tool.module], partial, env, tool.name)
    else:
        _go([go, "install", "-trimpath", f"{tool.module}@{tool.version}"], partial, {**env, "GOBIN": str(partial)},
            tool.name)
    if not built.exists():
        raise StackError(f"{tool.name}: the build of {tool.module}@{tool.version} left no binary")
    built.replace(tool.binary)  # atomic: a binary is either whole or absent
    shutil.rmtree(partial, ignore_errors=True)


def ensure(name: str) -> Path:
    """The path of tool `name`, building it first when this checkout has not yet (or waiting for that build)."""
    override = os.environ.get(f"ATTAIN_TOOL_{name.upper().replace('-', '_')}")
    if override:
        return Path(override)
    tool = TOOLS[name]
    if tool.binary.exists():
        return tool.binary
    go = shutil.which("go")
    if go is None:
        raise StackError(f"{name}: the Go toolchain is needed to build {tool.module}@{tool.version} (no `go` on PATH)")
    with _locked(tool):
        if not tool.binary.exists():
            say(f"tools: building {name} {tool.version} from the Go module proxy (first run only)...")
            _build(tool, go)
    return tool.binary


def background(names: list[str]) -> None:
    """Build `names` (then fetch the operators' CRDs, deploy/local/crds.py) in a detached process at the lowest CPU
    priority; its output goes to build.log beside the tools."""
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    missing = [name for name in names if not TOOLS[name].binary.exists()]
    python = shlex.quote(sys.executable)
    steps = [f"{python} -m deploy.local.tools {' '.join(missing)}"] if missing else []
    steps.append(f"{python} -m deploy.local.crds")  # a fast no-op when fetched before
    with (TOOLS_DIR / "build.log").open("a") as log:
        subprocess.Popen(["nice", "-n", "19", "sh", "-c", "; ".join(steps)], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    if missing:
        say(f"tools: building {', '.join(missing)} in the background (log: {TOOLS_DIR / 'build.log'})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="tools: " + ", ".join(f"{t.name} {t.version}" for t in TOOLS.values()))
    parser.add_argument("names", nargs="*", metavar="NAME", choices=[[], *TOOLS], help="the tools (default: all)")
    parser.add_argument("--background", action="store_true", help="build detached, at the lowest CPU priority")
    args = parser.parse_args(argv)
    names = args.names or list(TOOLS)
    try:
        if args.background:
            background(names)
            return 0
        for name in names:
            print(ensure(name))
    except StackError as problem:
        print(f"tools: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
