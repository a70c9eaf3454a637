"""The docs a newcomer follows: every shell block is run by a test or names the one that runs it,
every link between the pages lands on a page (and a heading) that exists, and the README stays a
landing page. tests/integration/test_docs.py runs the blocks marked `run`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs_blocks import NOT_RUN_REASONS, ROOT, Block, blocks, pages, shell_blocks

README_MAX_LINES = 120
LINK = re.compile(r"(?<!!)\[[^\]]+\]\((?P<target>[^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    in_code, found = False, set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(_anchor(line.lstrip("#")))
        found.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return found


def _ids(items: list[Block]) -> list[str]:
    return [block.where for block in items]


def test_the_readme_is_a_landing_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


def test_there_are_runnable_blocks_to_follow() -> None:
    ran = [block for block in shell_blocks() if block.marker == "run"]
    pages_run = {block.page.relative_to(ROOT).as_posix() for block in ran}
    assert {"README.md", "docs/getting-started.md"} <= pages_run


@pytest.mark.parametrize("block", shell_blocks(), ids=_ids(shell_blocks()))
def test_every_shell_block_says_how_it_is_tested(block: Block) -> None:
    assert block.marker is not None, (
        f"{block.where}: a shell block without a doc-test marker on the line before it"
        " (<!-- doc-test: run -->, <!-- doc-test: elsewhere TEST ... -->, or <!-- doc-test: not run, REASON -->)")
    assert block.lang in {"sh", "bash", "shell", "console"}, f"{block.where}: name the language (```sh)"
    if block.marker == "elsewhere":
        named = [word for word in block.detail.split() if "/" in word or word.endswith(".py")]
        assert named, f"{block.where}: 'elsewhere' names no test"
        for path in named:
            assert (ROOT / path.split("::")[0]).exists(), f"{block.where}: {path} does not exist"
    if block.marker == "not run":
        assert block.detail.startswith(NOT_RUN_REASONS), (
            f"{block.where}: 'not run' only for what no test machine has: {', '.join(NOT_RUN_REASONS)}")
        checked = re.findall(r"[\w./-]+\.py", block.detail)
        assert checked and all((ROOT / path).exists() for path in checked), (
            f"{block.where}: a 'not run' block names the test that checks what it would use")


@pytest.mark.parametrize("page", pages(), ids=[str(p.relative_to(ROOT)) for p in pages()])
def test_links_between_pages_land(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code are code
    broken = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        landing = (page.parent / path).resolve() if path else page
        if not landing.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and landing.suffix == ".md" and anchor not in _anchors(landing):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_the_marker_parser_reads_each_kind(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- doc-test: run -->\n```sh\nmake up\n```\n\n```sh\nls\n```\n"
                    "<!-- doc-test: not run, needs a Docker engine (tests/x.py) -->\n```bash\ndocker ps\n```\n"
                    "```\nmake test\n```\n```json\n{}\n```\n")
    found = blocks(page)
    assert [(b.marker, b.lang, b.looks_like_shell()) for b in found] == [
        ("run", "sh", True), (None, "sh", True), ("not run", "bash", True), (None, "", True), (None, "json", False)]
    assert found[2].detail == "needs a Docker engine (tests/x.py)"
