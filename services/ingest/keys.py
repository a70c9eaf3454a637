"""`python -m services.ingest keys registry [--private-key-file PATH]`: make the key pair the registry is signed with.

The private key goes to the file named (created with mode 0600, never overwritten) for ingest's
`REGISTRY_SIGNING_KEY_FILE` or its Secret, or, without the option, to standard output; the public key, for
`REGISTRY_VERIFY_KEYS` of kpi, coaching and recognition, and its key id are printed as JSON. Nothing secret is
taken on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shared import registry_signing as rs
from shared.cli import program


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=f"{program('services.ingest')} keys", description="Make keys.")
    sub = top.add_subparsers(dest="command", required=True)
    registry = sub.add_parser("registry", help="an Ed25519 key pair for signing the tenant registry")
    registry.add_argument("--private-key-file", type=Path, metavar="PATH",
                          help="write the private key here (mode 0600; refused if the file exists) instead of to"
                          " standard output")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    private = rs.generate_private_key()
    public = private.public_key()
    out: dict[str, str] = {"key_id": rs.key_id(public), "public_key": rs.encode_public_key(public)}
    if args.private_key_file is None:
        out["private_key"] = rs.encode_private_key(private)
    else:
        try:
            fd = os.open(args.private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            print(f"error: cannot create {args.private_key_file}: {err.strerror}", file=sys.stderr)  # noqa: T201
            return 2
        with os.fdopen(fd, "w") as file:
            file.write(rs.encode_private_key(private) + "\n")
        out["private_key_file"] = str(args.private_key_file)
    print(json.dumps(out))  # noqa: T201 - the command's output
    return 0
