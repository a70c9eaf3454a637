"""The browser the dashboard's tests drive: Debian's chromium, installed when missing.

`python -m deploy.local.browser` prints its path (installing it first with apt when needed);
`ATTAIN_CHROMIUM` points at another Chromium. Playwright drives it by its executable path, so no
browser is downloaded from Playwright's servers (this machine reaches Debian's mirror only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from deploy.local.procs import StackError, apt_install, say

# Chromium as a root process in a container, on a machine without the outside network: no sandbox (it
# needs user namespaces), no GPU, and none of the background calls home (refused here, many at a time).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium() -> str:
    """The path of a Chromium to drive, installing Debian's package when there is none."""
    found = os.environ.get("ATTAIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    say("browser: no chromium found, installing Debian's chromium (first run)...")
    apt_install("chromium")
    found = shutil.which("chromium")
    if found is None:
        raise StackError("chromium still missing after installing it")
    return found


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m deploy.local.browser",
                            description="Print the path of the Chromium the browser tests drive, installing Debian's"
                                        " chromium with apt-get when there is none ($ATTAIN_CHROMIUM: another one).",
                            ).parse_args(argv)
    try:
        print(chromium())
    except StackError as err:
        print(f"browser: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
