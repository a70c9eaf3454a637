"""A real OpenID provider for the single sign-on tests: npm's `oidc-provider` (panva's certified implementation),
run by idp.mjs beside this file.

Why not Dex, as issue 17 planned: the Go module proxy serves Dex only as `v0.6.1` and `v2.13.0+incompatible`
(2018). Every later tag's go.mod says `module github.com/dexidp/dex` while the tag is v2, so the proxy does not
list them, and it answers 403 "not available" to `@v2.45.1`, `@master` and a release commit alike.
`v2.13.0+incompatible` has no go.mod: `go get -tool` takes its dependencies at their newest versions, which it
does not compile against (grpc's balancer API, cockroach-go's ExecuteTx, go-sqlite3 without cgo).

npm is a registry every machine of the project reaches; the package installs (about 40 packages, in seconds) once
into the tools cache that deploy/local/tools.py uses, `ATTAIN_TOOL_OIDC_PROVIDER` naming another directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from deploy.local.tools import TOOLS_DIR

VERSION = "9.13.3"
HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "idp.mjs"


class IdpError(RuntimeError):
    """The provider could not be installed or started; the message says why."""


def installed() -> Path:
    """The directory holding node_modules/oidc-provider at VERSION, installed with npm on first use."""
    override = os.environ.get("ATTAIN_TOOL_OIDC_PROVIDER")
    if override:
        return Path(override)
    directory = TOOLS_DIR / f"oidc-provider-{VERSION}"
    marker = directory / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return directory
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise IdpError("the single sign-on tests run npm's oidc-provider: install Node.js and npm (apt-get install"
                       " nodejs npm)")
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix",
                                   str(directory), f"oidc-provider@{VERSION}"], capture_output=True, text=True,
                                  check=False, timeout=600)
            if done.returncode != 0 or not marker.exists():
                raise IdpError(f"npm install oidc-provider@{VERSION} failed:\n{done.stderr[-2000:]}")
    return directory


@contextlib.contextmanager
def running(port: int, clients: list[dict[str, Any]], accounts: dict[str, dict[str, Any]],
            log: Path) -> Iterator[str]:
    """The provider listening on 127.0.0.1:`port` with `clients` and `accounts` (login -> claims), ready (its
    discovery document served); its issuer URL. Stopped after."""
    issuer = f"http://127.0.0.1:{port}"
    directory = installed()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"issuer": issuer, "port": port, "clients": clients, "accounts": accounts}, config)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(["node", str(SCRIPT), config.name], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OIDC_PROVIDER_DIR": str(directory)})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise IdpError(f"oidc-provider exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise IdpError(f"oidc-provider not ready after 30 s; see {log}")
            time.sleep(0.2)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        Path(config.name).unlink(missing_ok=True)
