"""Locales for display text: one lenient reading of a tenant's locale setting, shared by every service.

A tenant's locale is free text from its settings ("de_DE", "de-DE", "fr"). Display must never fail
on it, so anything Babel cannot read becomes English: a typo shows English numbers, not an error page
or a lost celebration.
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

__all__ = ["FALLBACK_LOCALE", "locale_of"]

FALLBACK_LOCALE = "en"


def locale_of(name: str | None) -> Locale:
    """The Babel locale named ``name``: ``de_DE`` and ``de-DE`` alike, or a bare language such as ``fr``.

    None, empty, malformed or unknown names (``xx_YY``, ``not a locale``) give English (``en``).
    """
    if name is None:
        return Locale.parse(FALLBACK_LOCALE)
    try:
        return Locale.parse(name.replace("-", "_"))
    except (ValueError, UnknownLocaleError, TypeError):
        return Locale.parse(FALLBACK_LOCALE)
