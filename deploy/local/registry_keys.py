"""The registry signing key pair for local runs: the demo, the tests, the chaos suite and the benchmarks start the
services with it, as they do with `crm_keys`.

ingest refuses to start without a key to sign the tenant registry with, kpi, coaching and recognition without the
public key to verify it (shared/registry_signing.py). A local run gets one Ed25519 key, made the first time into
`.local/registry-signing-key` (git-ignored, readable by its owner only) and reused after, so that what one run
signed, the next one still accepts. It is never printed: callers put it in a child's environment (`env()`).
"""

from __future__ import annotations

from pathlib import Path

from deploy.local import secret_file
from deploy.local.procs import LOCAL
from shared import registry_signing as rs

KEY_FILE = LOCAL / "registry-signing-key"


def signing_key(path: Path | None = None) -> str:
    """The local REGISTRY_SIGNING_KEY: the key in `path` (KEY_FILE), made there first (mode 0600) when there is none.
    Runs starting together agree on one key: the file appears whole or not at all, and the first to make it wins."""
    return secret_file.read_or_make(path or KEY_FILE, lambda: rs.encode_private_key(rs.generate_private_key()))


def verify_keys(path: Path | None = None) -> str:
    """The local REGISTRY_VERIFY_KEYS: the public key of `signing_key(path)`."""
    return rs.encode_public_key(rs.parse_private_key(signing_key(path)).public_key())


def env(path: Path | None = None) -> dict[str, str]:
    """Both settings, to add to a child's environment (each service reads the one it needs)."""
    return {"REGISTRY_SIGNING_KEY": signing_key(path), "REGISTRY_VERIFY_KEYS": verify_keys(path)}
