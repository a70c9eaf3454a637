"""CRM_SECRET_KEYS (and notify's NOTIFY_SECRET_KEYS) for local runs: the demo, the tests, the chaos suite and the
benchmarks start ingest (and notify) with them.

ingest refuses to start without keys to encrypt the tenants' CRM secrets with (shared/secret_box.py).
A local run gets one Fernet key, made the first time into `.local/crm-secret-keys` (git-ignored, readable by its
owner only) and reused after, so that what one run stored, the next one can still read. It is never printed:
callers put it in a child's environment (`env()`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from deploy.local import secret_file
from deploy.local.procs import LOCAL

KEYS_FILE = LOCAL / "crm-secret-keys"
VARIABLE = "CRM_SECRET_KEYS"
NOTIFY_KEYS_FILE = "notify-secret-keys"  # beside KEYS_FILE: notify seals its webhook URLs and Slack token with it
NOTIFY_VARIABLE = "NOTIFY_SECRET_KEYS"


def crm_secret_keys(path: Path | None = None) -> str:
    """The local CRM_SECRET_KEYS value: the key in `path` (KEYS_FILE), made there first (mode 0600) when there is
    none. Runs starting together agree on one key: the file appears whole or not at all (a hard link of a finished
    temporary file), and the first to make it wins."""
    return secret_file.read_or_make(path or KEYS_FILE, lambda: Fernet.generate_key().decode())


def env(path: Path | None = None) -> dict[str, str]:
    """`{"CRM_SECRET_KEYS": <the local key>, "NOTIFY_SECRET_KEYS": <another>}`, to add to a child's environment:
    each service its own key, so neither can read what the other sealed."""
    notify = (path or KEYS_FILE).with_name(NOTIFY_KEYS_FILE)
    return {VARIABLE: crm_secret_keys(path), NOTIFY_VARIABLE: crm_secret_keys(notify)}
