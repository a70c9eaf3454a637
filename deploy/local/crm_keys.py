"""CRM_SECRET_KEYS for local runs: the demo, the tests, the chaos suite and the benchmarks start ingest with it.

ingest refuses to start without keys to encrypt the tenants' CRM secrets with (services/ingest/secret_box.py).
A local run gets one Fernet key, made the first time into `.local/crm-secret-keys` (git-ignored, readable by its
owner only) and reused after, so that what one run stored, the next one can still read. It is never printed:
callers put it in a child's environment (`env()`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from deploy.local.procs import LOCAL

KEYS_FILE = LOCAL / "crm-secret-keys"
VARIABLE = "CRM_SECRET_KEYS"


def crm_secret_keys(path: Path | None = None) -> str:
    """The local CRM_SECRET_KEYS value: the key in `path` (KEYS_FILE), made there first (mode 0600) when there is
    none. Runs starting together agree on one key: the file appears whole or not at all (a hard link of a finished
    temporary file), and the first to make it wins."""
    path = path or KEYS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".crm-secret-keys-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(Fernet.generate_key().decode() + "\n")
            with contextlib.suppress(FileExistsError):  # another run made it meanwhile: theirs is the key
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:  # readable by others (copied in, say): no longer
        path.chmod(0o600)
    return path.read_text().strip()


def env(path: Path | None = None) -> dict[str, str]:
    """`{"CRM_SECRET_KEYS": <the local key>}`, to add to a child's environment."""
    return {VARIABLE: crm_secret_keys(path)}
