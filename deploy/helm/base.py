"""The Kustomize base as deploy/helm_chart.py reads it: the rendered objects, the generators' names and the
comments of the attain-config literals (they document the chart's `config` values)."""

from __future__ import annotations

import base64
import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# PyYAML has no type hints (and this project installs no stubs for it): typed as Any, explicitly.
yaml: Any = importlib.import_module("yaml")

BASE = Path(__file__).resolve().parents[1] / "k8s" / "base"


class ChartError(RuntimeError):
    """The base cannot be rendered, or holds something the chart cannot express (the message says what)."""



def render_base() -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/k8s/base` (or `kustomize build`) renders."""
    if tool := shutil.which("kustomize"):
        command = [tool, "build", str(BASE)]
    elif tool := shutil.which("kubectl"):
        command = [tool, "kustomize", str(BASE)]
    else:
        raise ChartError("neither kustomize nor kubectl is on PATH: the base cannot be rendered")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise ChartError(f"{' '.join(command)} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _generated_names() -> set[str]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return {g["name"] for key in ("configMapGenerator", "secretGenerator") for g in kustomization.get(key) or ()}


def config_comments() -> dict[str, str]:
    """The comments next to (and above) each `attain-config` literal in the base's kustomization.yaml."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in (BASE / "kustomization.yaml").read_text().splitlines():
        if comment := re.fullmatch(r"\s+#\s?(.*)", line):
            pending.append(comment.group(1))
        elif literal := re.fullmatch(r"\s+-\s+([A-Z][A-Z0-9_]*)=.*?(?:\s+#\s?(.*))?", line):
            comments.setdefault(literal.group(1), " ".join([*pending, literal.group(2) or ""]).strip())
            pending = []
        else:
            pending = []
    return comments


def canonical_names(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Kustomize's hashed generator names (attain-config-5h8k...) -> the name the chart gives them."""
    generated = _generated_names()
    renames = {}
    for obj in objects:
        name = obj["metadata"]["name"]
        stem, _, suffix = name.rpartition("-")
        if obj["kind"] in ("ConfigMap", "Secret") and stem in generated and re.fullmatch(r"[a-z0-9]{10}", suffix):
            renames[name] = stem
    return renames


def renamed(node: Any, renames: dict[str, str]) -> Any:
    """A copy of `node` with every string that `renames` maps replaced (the base's objects are not changed)."""
    if isinstance(node, dict):
        return {key: renamed(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [renamed(value, renames) for value in node]
    return renames.get(node, node) if isinstance(node, str) else node


def is_placeholder(secret: dict[str, Any]) -> bool:
    """A Secret of the base that holds CHANGE-ME: the operator's to create, in production."""
    return any(b"CHANGE-ME" in base64.b64decode(v) for v in (secret.get("data") or {}).values())
