from pathlib import Path

from shared.docs import render

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api"


def test_committed_api_documents_match_the_code() -> None:
    stale = [name for name, content in render().items()
             if not (DOCS / name).exists() or (DOCS / name).read_text() != content]
    assert stale == [], f"regenerate with `make docs`: {stale}"
