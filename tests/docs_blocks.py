"""The shell blocks of the project's Markdown pages, and what each says about how it is tested.

Every fenced block of shell (```sh, bash, shell or console) carries a marker on the line before it:

- `<!-- doc-test: run -->`: tests/integration/test_docs.py runs it, with the page's other runnable
  blocks in order, in one bash session (`set -euo pipefail`), against the local stack;
- `<!-- doc-test: elsewhere PATH [PATH ...] -->`: the named tests run what it shows (a command
  that is the suite itself, or that takes minutes, such as `make demo`);
- `<!-- doc-test: not run, REASON -->`: it needs what no test machine has (a Docker engine, a
  Kubernetes cluster, a CRM account); REASON says which, and names the test that checks the files
  the command would use.

tests/unit/test_docs_pages.py holds every block to one of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL = frozenset({"sh", "bash", "shell", "console"})
MARKER = re.compile(r"^<!--\s*doc-test:\s*(?P<kind>run|elsewhere|not run)\b[,:]?\s*(?P<rest>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
# What no test machine here has; a `not run` marker must name one of these.
NOT_RUN_REASONS = ("needs a Docker engine", "needs a Kubernetes cluster", "needs a CRM account")
# Bare blocks (no language) whose first word is one of these are shell too, and must say so.
COMMAND_WORDS = ("make", "python", ".venv/", "kubectl", "helm", "docker", "curl", "attain-", "export", "eval")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # "run", "elsewhere", "not run" or None
    detail: str  # the rest of the marker: paths for "elsewhere", the reason for "not run"

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def looks_like_shell(self) -> bool:
        if self.lang in SHELL:
            return True
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        return self.lang == "" and first.startswith(COMMAND_WORDS)


def pages() -> list[Path]:
    """The Markdown pages a user follows: the README, docs/, and the READMEs of deploy/ and examples/.
    benchmarks/README.md is left out: its commands are measurements that take minutes each, run by hand on a
    quiet machine (their `--help` is tested with every entry point's, tests/unit/test_cli_help.py)."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for folder in ("deploy", "examples"):
        found += sorted((ROOT / folder).rglob("*.md"))
    return [page for page in found if page.is_file()]


def blocks(page: Path) -> list[Block]:
    """Every fenced code block of `page`, with the doc-test marker of the line before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marked = MARKER.match(previous)
        found.append(Block(page, index + 1, opening["lang"].lower(), "\n".join(body) + "\n",
                           marked["kind"] if marked else None, marked["rest"] if marked else ""))
        index = end + 1
    return found


def shell_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page) if block.looks_like_shell()]


def runnable(page: Path) -> list[Block]:
    return [block for block in blocks(page) if block.looks_like_shell() and block.marker == "run"]
