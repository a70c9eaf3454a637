"""deploy/local/crm_keys.py: a local run's CRM_SECRET_KEYS, made once into a file only its owner reads, then reused."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.local import crm_keys
from shared.secret_box import SecretBox


def test_the_key_is_made_once_into_a_file_only_its_owner_reads_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "crm-secret-keys"
    key = crm_keys.crm_secret_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crm_keys.crm_secret_keys(path) == key
    assert SecretBox.from_setting(key).unseal(SecretBox.from_setting(key).seal("s")) == "s"
    local = crm_keys.env(path)
    assert local["CRM_SECRET_KEYS"] == key
    assert local["NOTIFY_SECRET_KEYS"] != key  # notify's own key, beside it
    assert (path.parent / crm_keys.NOTIFY_KEYS_FILE).read_text().strip() == local["NOTIFY_SECRET_KEYS"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["crm-secret-keys", "notify-secret-keys"]  # no temp file


def test_runs_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "crm-secret-keys"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: crm_keys.crm_secret_keys(path), range(32)))
    assert len(keys) == 1


def test_a_key_file_others_could_read_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "crm-secret-keys"
    key = crm_keys.crm_secret_keys(path)
    path.chmod(0o644)
    assert crm_keys.crm_secret_keys(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
