"""The reference for the odds of reaching a target: every outcome of every open deal, counted (2^n of them),
in exact fractions. The forecast's property tests compare kpi's methods with it (issue 22)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from itertools import product


def exhaustive(gap: Decimal, deals: Iterable[tuple[Decimal, Decimal]]) -> Fraction:
    """P(the won amounts >= gap), each deal (amount, probability) won independently with its probability."""
    pairs = list(deals)
    total = Fraction(0)
    for outcome in product((False, True), repeat=len(pairs)):
        chance, won = Fraction(1), Decimal(0)
        for (amount, probability), is_won in zip(pairs, outcome, strict=True):
            p = Fraction(probability)
            chance *= p if is_won else 1 - p
            won += amount if is_won else 0
        if won >= gap:
            total += chance
    return total


def to_places(value: Fraction, places: str = "0.0001") -> Decimal:
    """A fraction as a decimal, rounded half to even to `places`."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(places))
