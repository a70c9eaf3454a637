"""Wait until a URL answers 200: `python -m deploy.local.wait URL [--timeout S] [--bearer-env VAR] [--expect TEXT]`.

For scripts and the docs' examples that start a service in the background and go on once it is
ready (its `/readyz`), or once an answer holds what they wait for (`--expect`: a figure kpi has
not counted yet answers without it). `--bearer-env TOKEN` sends the bearer token held in the
environment variable TOKEN (a token is never taken on the command line, nor printed). Exit 0 as
soon as it answers 200 (with TEXT in the body, when given); 1 after the timeout (default 60 s),
with the last status or error; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx


def wait(url: str, timeout_s: float, headers: dict[str, str] | None = None, expect: str | None = None) -> str | None:
    """None once `url` answers 200 (holding `expect`, when given) within `timeout_s`; else what it last said."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            answer = httpx.get(url, timeout=2.0, headers=headers)
            if answer.status_code == 200 and (expect is None or expect in answer.text):
                return None
            last = f"HTTP {answer.status_code}" + ("" if answer.status_code != 200 else f", without {expect!r}")
        except httpx.HTTPError as err:
            last = f"{type(err).__name__}: {err}"
        if time.monotonic() >= deadline:
            return last
        time.sleep(0.25)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.wait", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="e.g. http://127.0.0.1:8001/readyz")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds (60)")
    parser.add_argument("--bearer-env", metavar="VAR", help="send the bearer token of environment variable VAR")
    parser.add_argument("--expect", metavar="TEXT", help="wait until the body holds TEXT as well")
    args = parser.parse_args(argv)
    headers = {}
    if args.bearer_env:
        token = os.environ.get(args.bearer_env, "").strip()
        if not token:
            parser.error(f"--bearer-env {args.bearer_env}: that environment variable is empty or not set"
                         " (export it first)")
        headers["Authorization"] = f"Bearer {token}"
    problem = wait(args.url, args.timeout, headers, args.expect)
    if problem is not None:
        print(f"wait: {args.url} not ready after {args.timeout:g} s: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
