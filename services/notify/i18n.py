"""Words and numbers in the tenant's language: gettext catalogues through Babel, and Babel's formats.

The catalogues are the ``.po`` files under ``locale/<lang>/LC_MESSAGES/notify.po``, compiled in memory
with `babel.messages` the first time a language is asked for: no binary ``.mo`` is kept in the
repository (it would drift from its ``.po``), and no build step is needed to run from a checkout. A
language without a catalogue reads English (the message ids are English), so a tenant whose locale
Attain does not translate yet still gets every message, with numbers and dates in its own locale.

After changing a message in ``messages.py``, refresh the catalogues (then translate what is new)::

    pybabel extract -k N_ -k ngettext:1,2 --no-location -o /tmp/notify.pot services/notify/messages.py
    pybabel update -i /tmp/notify.pot -d services/notify/locale -D notify --no-location

Amounts are `Decimal` and formatted by Babel: ``de_DE`` reads ``1.234,50 €``, ``en_US`` ``€1,234.50``.
"""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

from shared.formatting import locale_of

__all__ = ["DOMAIN", "LOCALE_DIR", "Words", "translations"]

DOMAIN = "notify"
LOCALE_DIR = Path(__file__).with_name("locale")

# Metrics whose values are money (in the tenant's base currency) or a ratio; the rest are counts.
_MONEY_METRICS = frozenset({"won_revenue", "pipeline_created", "avg_deal_size"})
_RATIO_METRICS = frozenset({"win_rate"})


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (``de``), or English's identity when there is none."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class Words:
    """One recipient's language and formats: ``words.gettext("...")``, ``words.money(Decimal("1234.5"))``."""

    def __init__(self, locale: str | None, currency: str, timezone: str) -> None:
        self.locale: Locale = locale_of(locale)
        self.currency = currency
        self.zone = ZoneInfo(timezone)
        self._catalogue = translations(self.locale.language)

    def gettext(self, message: str) -> str:
        return self._catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._catalogue.ngettext(singular, plural, n)

    def money(self, amount: Decimal) -> str:
        return format_currency(amount, self.currency, locale=self.locale)

    def number(self, value: Decimal | int) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, ratio: Decimal) -> str:
        """Whole percent rounded down, as recognition does: 99.6 % never reads 100 %."""
        return format_percent(ratio.quantize(Decimal("0.01"), rounding=ROUND_DOWN), locale=self.locale)

    def date(self, moment: datetime) -> str:
        """The local date of `moment` in the recipient's zone, medium style (``7 Dec 2026``, ``07.12.2026``)."""
        return format_date(moment.astimezone(self.zone).date(), format="medium", locale=self.locale)

    def moment(self, moment: datetime) -> str:
        return format_datetime(moment, format="short", tzinfo=self.zone, locale=self.locale)

    def metric_value(self, metric: str, value: Decimal) -> str:
        """A metric's value as its kind reads: money, a share, or a count."""
        if metric in _MONEY_METRICS:
            return self.money(value)
        if metric in _RATIO_METRICS:
            return self.percent(value)
        return self.number(value)
