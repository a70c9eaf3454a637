"""The sign-in page's `next=`: only a path of this site, whatever encoding or whitespace hides another site."""

from __future__ import annotations

import pytest

from services.kpi.dashboard.view import HOME, safe_next

OTHER_SITES = [
    "/\\evil.example",  # a browser reads "\" as "/": //evil.example
    "//evil.example",
    "https://evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%2F%2Fevil.example",
    "/%2Fevil.example",
    "/%255Cevil.example",  # decoded twice
    "%2F%2Fevil.example",
    "/\t/evil.example",  # browsers drop tabs and newlines: //evil.example
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/\\\\evil.example",
    "/reps/ana\\..\\..\\evil",
    "/reps/ana%0d%0aSet-Cookie:%20x=1",
    "evil.example",
    "",
    None,
    "/",
]


@pytest.mark.parametrize("value", OTHER_SITES, ids=repr)
def test_anything_but_a_path_of_this_site_goes_to_the_dashboard_home(value: str | None) -> None:
    assert safe_next(value) == HOME


@pytest.mark.parametrize("value", ["/reps/ana?period=2026-Q4", "/teams/north", "/leaderboard?metric=calls",
                                   "/reps/ana%20bo", "/reps/%C3%A9quipe", "/tv?every=20"])
def test_a_path_of_this_site_is_kept_as_given(value: str) -> None:
    assert safe_next(value) == value
