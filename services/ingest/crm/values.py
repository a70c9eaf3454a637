"""Readers for the values CRM payloads carry, shared by the vendor modules and `fetch.py`.

Each reader returns a typed value or raises PayloadError whose message starts with `where`, the field as the
caller names it (`"current.value"`, `"meta.timestamp"`): `"current.value: 'lots' is not a number"`. The rules are
the same whichever CRM sent the value: amounts are exact Decimals (never through a float; NaN, Infinity and booleans
refused), date-times come back aware and in UTC, currency codes are three capital letters, a deal's probability is
0 to 1 with at most 4 places. A vendor module whose replies word an error its own way catches the PayloadError and
says it in its own words; `lenient` turns it into a note instead, for values a deal does not wait for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final, NoReturn, TypeGuard, TypeVar

from services.ingest.crm.model import PayloadError

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
SECOND: Final = timedelta(seconds=1)
MILLISECOND: Final = timedelta(milliseconds=1)
MICROSECOND: Final = timedelta(microseconds=1)

_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")  # no "1_000", "NaN", "1,5", "€1"
_INTEGER: Final = re.compile(r"[+-]?\d{1,18}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_PROBABILITY_PLACES: Final = Decimal("0.0001")  # shared.events.Probability: at most 4 decimal places

T = TypeVar("T")


class NoUtcOffset(PayloadError):
    """An ISO 8601 date-time without a UTC offset, where the caller does not read it as UTC."""


def reject_constant(name: str) -> NoReturn:
    """For `json.loads(..., parse_constant=reject_constant)`: NaN and ±Infinity are not JSON numbers.

    Raises ValueError, which `json.loads` callers already catch as "not JSON".
    """
    raise ValueError(f"{name} is not a number")


def load_json(raw: bytes) -> object:
    """`json.loads` with every non-integer number an exact Decimal and NaN/Infinity refused.

    Raises ValueError for anything that is not JSON (invalid UTF-8, a constant, an exponent no Decimal holds) and
    RecursionError for nesting deeper than the parser goes, as `json.loads` does.
    """
    return json.loads(raw, parse_float=_json_decimal, parse_constant=reject_constant)


def _json_decimal(literal: str) -> Decimal:
    try:
        return Decimal(literal)
    except InvalidOperation:  # a JSON number such as 1e99999999999999999999: json.loads would let it escape
        raise ValueError(f"{literal} is out of range") from None


def kind(value: object) -> str:
    """The JSON-ish name of a value's type, for messages: "null", "bool", "str", "list"..."""
    return "null" if value is None else type(value).__name__


def is_integer(value: object) -> TypeGuard[int]:
    """Whether `value` is a JSON integer: an int, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def text(value: object, where: str) -> str:
    """A non-empty string, as sent (not stripped)."""
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}: expected a non-empty string, got {kind(value)}")
    return value


def optional_text(value: object, where: str) -> str | None:
    """Like `text`, but None and "" (how some CRMs say "not set") are None."""
    return None if value is None or value == "" else text(value, where)


def identifier(value: object, where: str) -> str:
    """An id as a string: a JSON integer, or a non-blank string (stripped)."""
    if is_integer(value):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise PayloadError(f"{where}: expected an id (integer or string), got {kind(value)}")


def integer(value: object, where: str) -> int:
    """A JSON integer, or a string of up to 18 digits with an optional sign (SOAP sends numbers as text)."""
    if is_integer(value):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise PayloadError(f"{where}: {value!r} is not an integer")


def decimal(value: object, where: str) -> Decimal:
    """An exact, finite Decimal from a JSON integer, a Decimal (see `load_json`) or a plain decimal string
    ("1234.56", " 0.10", "1E+3"). Floats, booleans, NaN, Infinity, "1_000" and "12,50" are refused.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise PayloadError(f"{where}: expected a number, got {kind(value)}")
    amount = _decimal_text(value, where) if isinstance(value, str) else Decimal(value)
    if not amount.is_finite():
        raise PayloadError(f"{where}: {value!r} is not a finite number")
    return amount


def _decimal_text(value: str, where: str) -> Decimal:
    number = value.strip()
    try:
        parsed: Decimal | None = Decimal(number)
    except InvalidOperation:  # not a number, or an exponent Decimal cannot hold
        parsed = None
    if parsed is not None and _DECIMAL.fullmatch(number):
        return parsed
    finite = parsed is None or parsed.is_finite()  # "Infinity" is a number, just not a finite one
    raise PayloadError(f"{where}: {value!r} {'is not a number' if finite else 'is not a finite number'}")


def probability(value: object, where: str, *, percent: bool = False) -> Decimal:
    """A deal's chance of being won as the contract holds it: 0 to 1, at most 4 decimal places.

    `percent`: the CRM writes 0 to 100 (Pipedrive, Salesforce), divided here by 100 exactly. More than 4 places
    are rounded half-even rather than refused, because a CRM may keep more than the contract does: Pipedrive's
    33.33333 % is 0.3333, HubSpot's "0.123456" is 0.1235. Raises PayloadError for what `decimal` refuses and for a
    number outside 0..1 (0..100 with `percent`): `"probability: 150 is not between 0 and 100"`.
    """
    number = decimal(value, where)
    highest = 100 if percent else 1
    if not 0 <= number <= highest:  # before scaling: 1E+999999999 / 100 would overflow
        raise PayloadError(f"{where}: {number} is not between 0 and {highest}")
    share = number.scaleb(-2) if percent else number
    exponent = share.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        share = share.quantize(_PROBABILITY_PLACES, rounding=ROUND_HALF_EVEN)
    return share.copy_abs()  # "-0" is 0


def lenient(read: Callable[[], T | None], ignored: list[str]) -> T | None:
    """`read()`, or None when it raises PayloadError, whose message is appended to `ignored`.

    For the values the contract makes optional and a deal's figures do not wait for (its expected close date,
    probability, forecast category): one that cannot be read or lies outside the contract is left out of the
    change, as if the delivery had not carried it, instead of refusing the whole delivery (which would lose its
    amount, stage and owner, and every other change in it). The caller reports `ignored` (the CRM pipeline logs
    and counts each one), so nothing is dropped silently.
    """
    try:
        return read()
    except PayloadError as err:
        ignored.append(str(err))
        return None


def currency(value: object, where: str) -> str:
    """An ISO 4217 code: three capital letters, surrounding blanks removed."""
    code = value.strip() if isinstance(value, str) else None
    if code is None or not _CURRENCY.fullmatch(code):
        raise PayloadError(f"{where}: {value!r} is not an ISO 4217 code")
    return code


def boolean(value: object, where: str) -> bool:
    """A JSON boolean, or its text form "true"/"false"/"1"/"0" (SOAP sends booleans as text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in ("true", "false", "1", "0"):
        return value.strip() in ("true", "1")
    raise PayloadError(f"{where}: {value!r} is not a boolean")


def instant(value: object, where: str, *, unit: timedelta = SECOND, naive_is_utc: bool = True) -> datetime:
    """An aware UTC datetime from an ISO 8601 / RFC 3339 string, or from a JSON integer counting `unit`s since
    1970-01-01 UTC. A string without an offset is UTC when `naive_is_utc`, else refused (NoUtcOffset).
    """
    if is_integer(value):
        try:
            return EPOCH + value * unit
        except OverflowError:
            raise PayloadError(f"{where}: {value} is out of range") from None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a date-time, got {kind(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(f"{where}: {value!r} is not a date-time") from None
    if moment.utcoffset() is None:
        if not naive_is_utc:
            raise NoUtcOffset(f"{where}: {value!r} has no UTC offset")
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def day(value: object, where: str, *, epoch_days: bool = False) -> date:
    """A calendar date from "YYYY-MM-DD", or, with `epoch_days`, from a JSON integer of days since 1970-01-01
    (how Avro encodes a date)."""
    if epoch_days and is_integer(value):
        try:
            return EPOCH.date() + timedelta(days=value)
        except OverflowError:
            raise PayloadError(f"{where}: {value} is out of range") from None
    written = text(value, where)
    try:
        if _DATE.fullmatch(written.strip()):
            return date.fromisoformat(written.strip())
    except ValueError:
        pass
    raise PayloadError(f"{where}: {value!r} is not a YYYY-MM-DD date")
