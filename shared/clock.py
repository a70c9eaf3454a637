"""Where services get "now": the real clock, a fixed one for tests, a scaled one for replays.

Every clock returns timezone-aware datetimes in UTC. Services take a ``Clock`` instead of
calling ``datetime.now`` so tests and demos can control time. ``clock_from_spec`` builds
one from a configuration string:

- ``system`` (or empty): the real clock;
- ``fixed:<RFC 3339 instant>``: time stands still, e.g. ``fixed:2026-11-05T09:00:00Z``;
- ``scaled:<RFC 3339 start>@<rate>``: time starts at ``start`` and runs ``rate`` times as
  fast as real time, e.g. ``scaled:2026-11-01T00:00:00Z@60`` (one hour per real minute).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol

__all__ = ["Clock", "FixedClock", "ScaledClock", "SystemClock", "clock_from_spec"]

_MICROSECOND = timedelta(microseconds=1)


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return the real current instant in UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self._at = _utc(at, "at")

    def now(self) -> datetime:
        """Return the instant the clock is set to."""
        return self._at

    def advance(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (negative moves it back)."""
        self._at += delta

    def set(self, at: datetime) -> None:
        """Set the clock to the aware instant ``at``."""
        self._at = _utc(at, "at")


class ScaledClock:
    """A clock that starts at ``start`` and runs ``rate`` times as fast as ``real``; with ``until``,
    it stops there and stays."""

    def __init__(
        self,
        start: datetime,
        rate: Decimal | float,
        real: Clock | None = None,
        until: datetime | None = None,
    ) -> None:
        self.start = _utc(start, "start")
        self.rate = rate if isinstance(rate, Decimal) else Decimal(str(rate))
        if not self.rate.is_finite() or self.rate <= 0:
            raise ValueError(f"rate must be a finite number above 0, got {rate!r}")
        self.until = None if until is None else _utc(until, "until")
        if self.until is not None and self.until < self.start:
            raise ValueError(
                f"until {self.until.isoformat()} is before start {self.start.isoformat()}"
            )
        self._real = real if real is not None else SystemClock()
        self._real_start = self._real.now()

    def now(self) -> datetime:
        """Return ``start`` plus the real time elapsed since creation, times ``rate``
        (at most ``until``)."""
        real_elapsed = (self._real.now() - self._real_start) // _MICROSECOND
        moment = self.start + int(real_elapsed * self.rate) * _MICROSECOND
        return moment if self.until is None else min(moment, self.until)


def clock_from_spec(spec: str) -> Clock:
    """Build a clock from ``system`` (or ``""``), ``fixed:<instant>``,
    ``scaled:<start>@<rate>`` or ``scaled:<start>/<until>@<rate>``; instants are RFC 3339
    with an offset.

    Raises ValueError saying what is wrong with the spec.
    """
    text = spec.strip()
    name, _, argument = text.partition(":")
    if text in ("", "system"):
        return SystemClock()
    if name == "fixed":
        return FixedClock(_instant(argument, spec))
    if name == "scaled":
        interval, at, rate = argument.rpartition("@")
        if not at:
            raise ValueError(
                f"clock spec {spec!r}: expected scaled:<start>@<rate> or scaled:<start>/<until>@<rate>"
            )
        start, slash, until = interval.partition("/")
        try:
            factor = Decimal(rate)
        except InvalidOperation:
            factor = Decimal("NaN")
        if not factor.is_finite() or factor <= 0:
            raise ValueError(
                f"clock spec {spec!r}: rate {rate!r} must be a number above 0"
            )
        try:
            return ScaledClock(
                _instant(start, spec), factor, until=_instant(until, spec) if slash else None
            )
        except ValueError as err:
            if str(err).startswith("clock spec"):
                raise
            raise ValueError(f"clock spec {spec!r}: {err}") from None
    raise ValueError(
        f"clock spec {spec!r}: expected 'system', 'fixed:<instant>' "
        "or 'scaled:<start>@<rate>' (or 'scaled:<start>/<until>@<rate>')"
    )


def _instant(text: str, spec: str) -> datetime:
    """Parse an RFC 3339 instant of a clock spec; it must carry a UTC offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"clock spec {spec!r}: {text!r} is not an RFC 3339 instant "
            "such as 2026-11-05T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"clock spec {spec!r}: instant {text!r} needs a UTC offset such as Z or +01:00"
        )
    return moment.astimezone(UTC)


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got naive {moment.isoformat()}"
        )
    return moment.astimezone(UTC)
