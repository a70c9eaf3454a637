"""deploy/local/registry_keys.py: a local run's registry key pair, made once into a file only its owner reads."""

from __future__ import annotations

import stat
from pathlib import Path

from deploy.local import registry_keys
from shared import registry_signing as rs


def test_the_local_pair_is_made_once_private_to_its_owner_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "registry-signing-key"
    env = registry_keys.env(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert registry_keys.env(path) == env
    signer = rs.RegistrySigner(rs.parse_private_key(env["REGISTRY_SIGNING_KEY"]))
    assert rs.RegistryVerifier(rs.parse_public_keys(env["REGISTRY_VERIFY_KEYS"])).key_ids == [signer.key_id]
