"""The operators' own CustomResourceDefinitions, pinned, fetched from the package registries, as kubeconform schemas.

`python -m deploy.local.crds [OPERATOR ...]` fetches the CRDs of the named operators (all when none is named) and
prints the directory of each. tests/unit/deploy/test_k8s.py validates every custom resource of deploy/k8s against
them with kubeconform, so an apiVersion the pinned operator does not serve, or a field its schema lacks, fails there
and not on a cluster.

Each operator's CRDs land in `.local/crds/<operator>-<version>/`: the CRDs themselves in `crds/`, and for every
version a CRD marks `served: true` its openAPIV3Schema as the JSON Schema kubeconform reads, at
`schemas/<group>/<kind>_<version>.json` (lower-cased; `SCHEMA_TEMPLATE`). Strict: an object schema with
`properties` rejects other fields, unless the CRD says `x-kubernetes-preserve-unknown-fields`. A directory is
built under a temporary name and renamed when whole, so a second run (and every run after) reads it offline; a
version bump fetches a new one beside the old. Nothing of the operators' is kept in the repository.

Where each comes from (the registries this machine and CI reach):
- Strimzi: Maven Central has no CRD YAML, so they are generated as Strimzi's own build does (api/pom.xml,
  `generate-crd-co-install-v1`): its `io.strimzi.crdgenerator.CrdGenerator` run on the classes of `io.strimzi:api`,
  both resolved with Maven. The generator needs Java 21 or newer.
- KEDA, prometheus-operator, Gateway API: the module zips on the Go module proxy (`go mod download`), which hold
  the CRDs of the release.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.procs import LOCAL, StackError, say

# PyYAML ships no type information and its stubs are no dependency of the project: typed as what it is to mypy.
yaml: Any = importlib.import_module("yaml")
CRDS_DIR = LOCAL / "crds"
# kubeconform's -schema-location for one operator's directory (its template fields, lower-cased kind).
SCHEMA_TEMPLATE = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
ATTEMPTS = 3
COMMAND_TIMEOUT_S = 600.0
MIN_JAVA = 21
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class CrdError(StackError):
    """The CRDs of an operator could not be fetched or converted (the message names the operator, the version and
    the step that failed)."""


@dataclass(frozen=True)
class Operator:
    name: str
    version: str
    source: str  # where the CRDs come from, for humans and the SOURCE file
    fetch: Callable[[Operator, Path], list[Path]]  # writes the CRD files into a folder, returns them

    @property
    def directory(self) -> Path:
        return CRDS_DIR / f"{self.name}-{self.version}"

    @property
    def schemas(self) -> Path:
        return self.directory / "schemas"

    @property
    def schema_location(self) -> str:
        """kubeconform's `-schema-location` for this operator's schemas."""
        return f"{self.schemas}/{SCHEMA_TEMPLATE}"


# --- running a command, with retries ---------------------------------------------------------------------------


def run(operator: Operator, step: str, cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """`cmd`'s standard output; tried `ATTEMPTS` times with a growing pause (a registry may hiccup), then a
    `CrdError` naming the operator, the step and the command's last words."""
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
        except FileNotFoundError as err:
            raise CrdError(f"{operator.name} {operator.version}: {step}: {cmd[0]} is not installed") from err
        except subprocess.TimeoutExpired:
            problem = f"timed out after {COMMAND_TIMEOUT_S:.0f} s"
        else:
            if done.returncode == 0:
                return done.stdout
            problem = f"exit {done.returncode}:\n{(done.stderr or done.stdout)[-2000:]}"
        if attempt < ATTEMPTS:
            say(f"crds: {operator.name} {operator.version}: {step} failed (attempt {attempt}), retrying")
            time.sleep(2.0 * attempt)
    raise CrdError(f"{operator.name} {operator.version}: {step} failed {ATTEMPTS} times: {' '.join(cmd)}\n{problem}")


# --- the Go module proxy ------------------------------------------------------------------------------------------


def go_module(module: str, folder: str) -> Callable[[Operator, Path], list[Path]]:
    """Copy the CRDs in `folder` of Go module `module`, at the operator's version, from the module proxy."""

    def fetch(operator: Operator, into: Path) -> list[Path]:
        go = shutil.which("go")
        if go is None:
            raise CrdError(f"{operator.name} {operator.version}: the Go toolchain is needed to download"
                           f" {module}@{operator.version} from the module proxy (no `go` on PATH)")
        env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
        # Outside any module, so no go.mod or go.work of the caller's decides anything.
        out = run(operator, "go mod download", [go, "mod", "download", "-json", f"{module}@{operator.version}"],
                  cwd=into, env=env)
        answer = json.loads(out)
        if answer.get("Error") or not answer.get("Dir"):
            raise CrdError(f"{operator.name} {operator.version}: go mod download {module}@{operator.version}:"
                           f" {answer.get('Error', 'no Dir in the answer')}")
        source = Path(answer["Dir"]) / folder
        copied = []
        for path in sorted(source.glob("*.yaml")):
            target = into / path.name
            shutil.copyfile(path, target)  # the module cache is read-only; the copy is ours
            copied.append(target)
        if not copied:
            raise CrdError(f"{operator.name} {operator.version}: no CRD files in {module}@{operator.version}/{folder}")
        return copied

    return fetch


# --- Strimzi: generated from its Maven artifacts --------------------------------------------------------------


# What Strimzi's api/pom.xml passes the generator (execution `generate-crd-co-install-v1`, release 1.2.0), for
# the kinds deploy/k8s uses.
STRIMZI_GENERATOR_ARGS = ["--label", "app:strimzi", "--label", "strimzi.io/crd-install:true",
                          "--target-kube", "1.16+", "--crd-api-version", "v1",
                          "--api-versions", "v1", "--storage-version", "v1", "--yaml"]
STRIMZI_KINDS = {
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "043-Crd-kafkatopic.yaml",
    "io.strimzi.api.kafka.model.user.KafkaUser": "044-Crd-kafkauser.yaml",
}


def java_major(java: str) -> int:
    """The major version of the `java` at that path (0 when it cannot say)."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr)
    if found is None:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_java() -> str | None:
    """A `java` of version `MIN_JAVA` or newer: JAVA_HOME's, the one on PATH, or any JDK in /usr/lib/jvm (the
    machine's second JDK), the newest first."""
    candidates = []
    if home := os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(home) / "bin" / "java"))
    if on_path := shutil.which("java"):
        candidates.append(on_path)
    candidates += [str(p) for p in sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)]
    return next((java for java in candidates if Path(java).exists() and java_major(java) >= MIN_JAVA), None)


def strimzi(operator: Operator, into: Path) -> list[Path]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CrdError(f"{operator.name} {operator.version}: Maven is needed to resolve io.strimzi:api and"
                       " io.strimzi:crd-generator from Maven Central (no `mvn` on PATH)")
    java = find_java()
    if java is None:
        raise CrdError(f"{operator.name} {operator.version}: Strimzi's CRD generator needs Java {MIN_JAVA} or"
                       " newer; none found (JAVA_HOME, PATH, /usr/lib/jvm)")
    jars = into / "jars"
    jars.mkdir()
    # crd-generator is a shaded jar (fabric8, Jackson): with the api classes it is the whole classpath, as in
    # Strimzi's build.
    for artifact in ("api", "crd-generator"):
        run(operator, f"mvn dependency:copy io.strimzi:{artifact}:{operator.version}",
            [mvn, "-B", "-q", MAVEN_DEPENDENCY_PLUGIN + ":copy", f"-Dartifact=io.strimzi:{artifact}:{operator.version}",
             f"-DoutputDirectory={jars}"], cwd=into)
    classpath = os.pathsep.join(str(jars / f"{name}-{operator.version}.jar") for name in ("api", "crd-generator"))
    outputs = [into / name for name in STRIMZI_KINDS.values()]
    run(operator, "io.strimzi.crdgenerator.CrdGenerator",
        [java, "-cp", classpath, "io.strimzi.crdgenerator.CrdGenerator", *STRIMZI_GENERATOR_ARGS,
         *(f"{cls}={out}" for cls, out in zip(STRIMZI_KINDS, outputs, strict=True))], cwd=into)
    shutil.rmtree(jars)
    missing = [out.name for out in outputs if not out.exists()]
    if missing:
        raise CrdError(f"{operator.name} {operator.version}: the generator wrote no {', '.join(missing)}")
    return outputs


# The pins. Each is what the cluster must run at least (deploy/k8s/README.md, "What the cluster needs").
OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("strimzi", "1.2.0", "Maven Central io.strimzi:api + io.strimzi:crd-generator (generated)", strimzi),
        # v2.21.x asks for go >= 1.27.4 in its go.mod, which `go mod download` refuses with an older toolchain.
        Operator("keda", "v2.20.2", "Go module proxy github.com/kedacore/keda/v2 config/crd/bases",
                 go_module("github.com/kedacore/keda/v2", "config/crd/bases")),
        Operator("prometheus-operator", "v0.85.0",
                 "Go module proxy github.com/prometheus-operator/prometheus-operator example/prometheus-operator-crd",
                 go_module("github.com/prometheus-operator/prometheus-operator", "example/prometheus-operator-crd")),
        Operator("gateway-api", "v1.6.3", "Go module proxy sigs.k8s.io/gateway-api config/crd/standard",
                 go_module("sigs.k8s.io/gateway-api", "config/crd/standard")),
    )
}


# --- CRD -> kubeconform JSON Schema (pure) ---------------------------------------------------------------------


def _strict(node: Any) -> Any:
    """A copy of an OpenAPI v3 schema node as JSON Schema: closed objects, int-or-string and nullable spelt out."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def served_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`<group>/<kind>_<version>.json` (lower-cased) -> JSON Schema, for every version `crd` serves.

    >>> crd = {"kind": "CustomResourceDefinition", "spec": {"group": "g.io", "names": {"kind": "Thing"}, "versions": [
    ...     {"name": "v1", "served": True, "schema": {"openAPIV3Schema": {"type": "object", "properties": {}}}},
    ...     {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    >>> served_schemas(crd)
    {'g.io/thing_v1.json': {'type': 'object', 'properties': {}, 'additionalProperties': False}}
    """
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    found = {}
    for version in spec["versions"]:
        if not version.get("served"):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema") or spec.get("validation", {}).get("openAPIV3Schema")
        if schema is None:
            continue
        found[f"{group}/{kind}_{version['name']}.json".lower()] = _strict(copy.deepcopy(schema))
    return found


class _CrdLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # C or pure Python
    """YAML 1.1's safe loader, reading a bare `=` (an enum value in prometheus-operator's CRDs) as the string it is
    in YAML 1.2, where PyYAML would fail on its `value` tag."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def crds_in(path: Path) -> Iterator[dict[str, Any]]:
    """The CustomResourceDefinitions of a YAML file (other documents, e.g. admission policies, left out)."""
    with path.open() as handle:
        for doc in yaml.load_all(handle, Loader=_CrdLoader):  # a safe loader, the C one when present
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                yield doc


# --- fetching, atomically -------------------------------------------------------------------------------------


def ensure(name: str) -> Path:
    """The directory of operator `name`'s CRDs and schemas, fetching and converting them first when absent."""
    operator = OPERATORS[name]
    if operator.schemas.is_dir():
        return operator.directory
    CRDS_DIR.mkdir(parents=True, exist_ok=True)
    say(f"crds: fetching {operator.name} {operator.version} ({operator.source}), first run only...")
    with tempfile.TemporaryDirectory(prefix=f".{operator.name}-", dir=CRDS_DIR) as scratch:
        partial = Path(scratch) / "out"
        (partial / "crds").mkdir(parents=True)
        files = operator.fetch(operator, partial / "crds")
        written = 0
        for path in files:
            try:
                crds = list(crds_in(path))
            except yaml.YAMLError as err:
                raise CrdError(f"{operator.name} {operator.version}: {path.name} is not YAML: {err}") from err
            for crd in crds:
                for relative, schema in served_schemas(crd).items():
                    target = partial / "schemas" / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(json.dumps(schema, indent=1, sort_keys=True))
                    written += 1
        if not written:
            raise CrdError(f"{operator.name} {operator.version}: no served CRD version found in {len(files)} files")
        (partial / "SOURCE").write_text(f"{operator.name} {operator.version}: {operator.source}\n")
        try:
            partial.rename(operator.directory)  # atomic: the directory is either whole or absent
        except OSError:
            if not operator.schemas.is_dir():  # not another run's finished copy: a real failure
                raise
    return operator.directory


def ensure_all() -> dict[str, Path]:
    """Every pinned operator's directory, fetched when absent."""
    return {name: ensure(name) for name in OPERATORS}


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.local.crds [OPERATOR ...]`: the exit status (1 when a fetch failed, naming it)."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local.crds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="pinned: " + ", ".join(f"{o.name} {o.version}" for o in OPERATORS.values()))
    parser.add_argument("operators", nargs="*", metavar="OPERATOR", help=f"any of {', '.join(OPERATORS)}; default all")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.operators) - set(OPERATORS))
    if unknown:
        parser.error(f"no operator {', '.join(unknown)}; choose from {', '.join(OPERATORS)}")
    try:
        for name in args.operators or list(OPERATORS):
            print(ensure(name))
    except StackError as problem:
        print(f"crds: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
