"""The whole suite's order: tests that need a tool built from the Go module proxy go last.

`make test` starts building those tools (deploy/local/tools.py: kubeconform, helm, jaeger) in the
background, at the lowest CPU priority, before pytest starts; a module that needs one is marked
`pytestmark = pytest.mark.tools` and runs after everything else, so the build overlaps the rest of
the suite instead of adding to it (on a machine that has built them once, they are simply there).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tools: needs a tool built from the Go module proxy (run last)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("tools") is not None)  # stable: the rest keeps its order
