"""requirements/*.lock checked against pyproject.toml, and against what the image and the venv install.

The locks are compiled by `make lock` (uv, with hashes); these tests fail when pyproject.toml changed and the
locks were not compiled again. They read files only: no network, no resolver.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
STALE = "requirements/ is stale against pyproject.toml: run `make lock`"


@dataclass(frozen=True)
class Locked:
    version: str
    hashes: int


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def locked(path: Path) -> dict[str, Locked]:
    """Package name (canonical) -> its pinned version and how many `--hash=sha256:` lines follow it."""
    out: dict[str, Locked] = {}
    name = ""
    for line in path.read_text().splitlines():
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            assert name not in out, f"{path.name} pins {name} twice"
            out[name] = Locked(pin.group(2), 0)
        elif re.match(r"\s+--hash=sha256:[0-9a-f]{64}", line):
            assert name, f"{path.name}: a hash before any package"
            out[name] = Locked(out[name].version, out[name].hashes + 1)
    return out


def requirements(extra: str | None = None) -> list[Requirement]:
    """The project's direct requirements: its dependencies, or one extra's, with `attain[...]` expanded."""
    project = pyproject()["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    out: list[Requirement] = []
    for text in listed:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
            for inner in sorted(requirement.extras):
                out.extend(requirements(inner))
        else:
            out.append(requirement)
    return out


def assert_locked(wanted: list[Requirement], lock: dict[str, Locked], lock_name: str) -> None:
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in {lock_name}: {STALE}"
        assert requirement.specifier.contains(lock[name].version, prereleases=True), (
            f"{lock_name} has {name}=={lock[name].version}, pyproject.toml asks {requirement}: {STALE}"
        )


def test_every_dependency_of_the_image_is_in_the_runtime_lock_at_the_version_pyproject_pins() -> None:
    assert_locked(requirements(), locked(RUNTIME_LOCK), RUNTIME_LOCK.name)


def test_every_dependency_and_dev_tool_is_in_the_dev_lock_at_the_version_pyproject_pins() -> None:
    assert_locked(requirements() + requirements("dev"), locked(DEV_LOCK), DEV_LOCK.name)


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_locked_package_carries_its_hashes(path: Path) -> None:
    lock = locked(path)
    assert len(lock) > 10
    assert [name for name, pin in lock.items() if pin.hashes == 0] == []
    assert "make lock" in path.read_text().split("\n", 3)[1], "compiled by hand, not by `make lock`"


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, dev = locked(RUNTIME_LOCK), locked(DEV_LOCK)
    assert {name: pin.version for name, pin in runtime.items() if dev.get(name) != pin} == {}, STALE


def test_the_image_holds_no_tool_of_the_dev_extra_nor_the_document_generator() -> None:
    runtime = locked(RUNTIME_LOCK)
    for tool in ("pytest", "ruff", "mypy", "uv", "playwright", "schemathesis", "faststream"):
        assert tool not in runtime, f"{tool} is in the image"


def test_faststream_is_imported_by_the_document_generator_alone() -> None:
    """No module of the image imports FastStream, which the image does not install (it is the docs extra)."""
    importers = []
    for package in ("shared", "services", "deploy"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                if any(name.split(".")[0] == "faststream" for name in names):
                    importers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(importers)) == ["shared/docs.py"]
    assert "faststream" not in {canonicalize_name(r.name) for r in requirements()}
    assert "faststream" in {canonicalize_name(r.name) for r in requirements("docs")}


def test_make_installs_the_dev_lock_with_hashes_and_reinstalls_when_a_lock_changes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.M)
    assert stamp is not None
    prerequisites = stamp.group(1).split()
    assert "pyproject.toml" in prerequisites
    assert "$(LOCKS)" in prerequisites or {"requirements/runtime.lock", "requirements/dev.lock"} <= set(prerequisites)
    assert re.search(r"pip install .*--require-hashes -r requirements/dev\.lock", makefile)
    assert re.search(r"pip install .*--no-deps -e \.", makefile)
    assert re.search(r"^lock:", makefile, re.M)
