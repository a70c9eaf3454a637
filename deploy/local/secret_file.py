"""A local run's secret kept in a file under `.local/` (git-ignored, readable by its owner only): made the first
time, reused after. `crm_keys` and `registry_keys` keep theirs this way."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_make(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`, written there first from `make()` (mode 0600) when there is none. Runs starting
    together agree on one secret: the file appears whole or not at all (a hard link of a finished temporary
    file), and the first to make it wins. A file readable by others (copied in, say) is made private again."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
            with contextlib.suppress(FileExistsError):  # another run made it meanwhile: theirs is the secret
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return path.read_text().strip()
