"""Command-line argument types shared by the demo and the replay."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def within(convert: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: `convert` the text, and refuse values outside [low, high] with a clear message."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse
