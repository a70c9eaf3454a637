"""The environment a shell needs to run Attain's services and CLIs against the local stack.

    eval "$(.venv/bin/python -m deploy.local.env)"

prints `export NAME=value` lines for a POSIX shell: where the local broker and database are
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, unless already set), the local CRM secret key, the
registry's signing key (by file: `REGISTRY_SIGNING_KEY_FILE`) and its public key, and the venv's
`bin` first on `PATH` (so `attain-ingest` and the other commands are found). The keys are made the
first time, in the git-ignored `.local/` (readable by their owner only), and reused after; they are
the same ones `make demo` and the tests use, so a tenant one of them created stays readable.

These are development keys for this checkout. A real deployment keeps its own in a secret store
(docs/configuration.md).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from deploy.local import crm_keys, registry_keys
from deploy.local.procs import ROOT

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/attain"


def variables() -> dict[str, str]:
    """The variables `main` prints, in order."""
    registry_keys.signing_key()  # made first, so that the file named below exists
    return {
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA),
        "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE),
        crm_keys.VARIABLE: crm_keys.crm_secret_keys(),
        "REGISTRY_SIGNING_KEY_FILE": str(registry_keys.KEY_FILE),
        "REGISTRY_VERIFY_KEYS": registry_keys.verify_keys(),
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m deploy.local.env", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print("unset REGISTRY_SIGNING_KEY")  # ingest takes the key or its file, not both: the file, below
    for name, value in variables().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
