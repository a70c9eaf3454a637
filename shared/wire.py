"""Internal Kafka records decoded once, in C: msgspec Structs that mirror the consumed models of `shared.events`.

Every record on an internal topic was validated by its producer (ingest, kpi, the tenant registry), so a
consumer only needs the same checks at a fraction of the cost. Each Struct below mirrors one pydantic model
with the SAME checks: required fields, types, enums, lengths and patterns in the Struct's annotations;
what msgspec cannot say there (NUL-free text, Decimal digits and places, finite numbers, the countable years
of a `Moment`, IANA zones, period labels, cross-field rules) in its ``__post_init__``, which msgspec runs
while decoding. `tests/unit/shared/test_wire.py` feeds both decoders the same corpus and proves they accept
and reject the same payloads and build equal models.

`decode(model, value)` returns the pydantic instance the handlers expect, built from the Struct's already
typed values without a second validation. It takes only the canonical spelling its producers write
(decimals as JSON strings, RFC 3339 times with at most microseconds, plain JSON types, no ``\\u00XX``
escapes); anything else raises `Unsure`, and the caller takes the exact pydantic path
(`TransactionalConsumer._decode`): a payload that pydantic's lax mode coerces ("3" for an int, a number for
a Decimal) is accepted as today, and an invalid one is dead-lettered with today's message, naming the field.
The fast path is a shortcut that must never change an answer: it refuses whatever pydantic refuses (and then
some), and what it accepts it builds equal to pydantic's model. The tests check both, case by case and with
generated payloads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec
from pydantic import BaseModel

from shared import events as ev
from shared.errors import AttainError
from shared.periods import MAX_YEAR, MIN_YEAR, parse_period, validate_timezone

__all__ = ["STRUCTS", "Unsure", "decode", "decoder_for"]

M = TypeVar("M", bound=BaseModel)


class Unsure(AttainError):
    """The fast path cannot vouch for this value; `reason` says why (the first failed check, naming the
    field, when there is one). The caller validates it the exact way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- field types (the annotations of shared/events.py, spelled for msgspec) -------------------------------

# `Id`: 1 to 200 characters, NUL-free (checked in __post_init__; msgspec itself refuses lone surrogates).
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name200 = Annotated[str, msgspec.Meta(max_length=200)]
# pydantic's patterns use Rust's regex, where `$` is the very end; Python's `$` would allow a final "\n".
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
# A JSON number is decoded as a float and refused by `_decimal`: pydantic turns a number into a Decimal through
# a float (1.10 -> Decimal("1.1")), and only the exact path reproduces that.
Dec = Decimal | float
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class _Wire(msgspec.Struct, gc=False):
    """Unknown fields are ignored, as the models' ``extra="ignore"``; every subclass says ``kw_only`` (a
    required field may follow an optional one, in the models' order)."""


# `events.MetricName` and `events.Properties`
MetricName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}\Z")]
PropertyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}\Z")]
Properties = Annotated[dict[PropertyName, Annotated[str, msgspec.Meta(max_length=500)]], msgspec.Meta(max_length=50)]


def _properties(value: dict[str, str] | None) -> None:
    """The NUL-free values of `events.Properties` (msgspec checks names, lengths and the count)."""
    if value and any("\x00" in v for v in value.values()):
        raise ValueError("properties: must not contain the NUL character (\\u0000)")


def _nul_free(struct: msgspec.Struct, *names: str) -> None:
    """`events._storable` for the text fields `names`: no NUL (msgspec already refuses invalid UTF-8 and lone
    surrogates). The frequent classes first ask whether all of them together hold one, which is cheaper."""
    for name in names:
        value = getattr(struct, name)
        if value is not None and "\x00" in value:
            raise ValueError(f"{name}: must not contain the NUL character (\\u0000)")


def _digits(value: Decimal) -> tuple[int, int]:
    """(decimal places, digits) as pydantic-core counts them."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked before
    if exponent >= 0:
        return 0, len(digits) + exponent
    return -exponent, max(len(digits), -exponent)


def _decimal(name: str, value: Decimal | float | None, *, ge: int | None = None, gt: int | None = None,
             max_digits: int | None = None, places: int | None = None, le: int | None = None) -> None:
    """pydantic's Decimal checks: finite, bounds, and digits/places. A limit is broken only when both the
    value as written and its normalised form break it (pydantic-core's rule: "12.50000" has 4 places)."""
    if value is None:
        return
    if type(value) is not Decimal:
        raise ValueError(f"{name}: a JSON number, not a decimal string")  # Unsure: the exact path decides
    if not value.is_finite():
        raise ValueError(f"{name}: Input should be a finite number")
    if max_digits is not None and places is not None and not _plain_money(value, max_digits, places):
        written = _digits(value)
        if not _within(written, max_digits, places):
            try:
                normal = _digits(value.normalize())
            except ArithmeticError:  # normalize() overflowed: pydantic-core counts the value as written
                normal = written
            _check_digits(name, written, normal, max_digits, places)
    if ge is not None and not value >= ge:
        raise ValueError(f"{name}: Input should be greater than or equal to {ge}")
    if gt is not None and not value > gt:
        raise ValueError(f"{name}: Input should be greater than {gt}")
    if le is not None and not value <= le:
        raise ValueError(f"{name}: Input should be less than or equal to {le}")


def _plain_money(value: Decimal, max_digits: int, places: int) -> bool:
    """A quick yes for the usual amount ("12345.67"): at most `places` places and few enough whole digits,
    read from its exponent without counting digits (`_decimal` counts them for the rest)."""
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and -places <= exponent <= 0 and value.adjusted() < max_digits - places


def _finite(*values: Decimal | float | None) -> bool:
    """Whether each value is None or a finite Decimal (`_decimal` says what is wrong with the others)."""
    for value in values:  # noqa: SIM110 (a loop: all() over a generator costs twice as much, per record)
        if value is not None and (type(value) is not Decimal or not value.is_finite()):
            return False
    return True


def _within(counted: tuple[int, int], max_digits: int, places: int) -> bool:
    decimals, digits = counted
    return digits <= max_digits and decimals <= places and digits - decimals <= max_digits - places


def _check_digits(name: str, written: tuple[int, int], normal: tuple[int, int], max_digits: int,
                  places: int) -> None:
    (decimals, digits), (n_decimals, n_digits) = written, normal
    if digits > max_digits and n_digits > max_digits:
        raise ValueError(f"{name}: Decimal input should have no more than {max_digits} digits in total")
    if decimals > places and n_decimals > places:
        raise ValueError(f"{name}: Decimal input should have no more than {places} decimal places")
    whole = max_digits - places
    if digits - decimals > whole and n_digits - n_decimals > whole:
        raise ValueError(f"{name}: Decimal input should have no more than {whole} digits before the point")


_SAFE_YEARS = range(MIN_YEAR + 1, MAX_YEAR - 1)  # a UTC offset (< 24 h) cannot move these out of range


def _moment(name: str, value: datetime | None) -> None:
    """`events._countable`: a moment periods can be computed for (the year in UTC within the calendar's). Hot
    paths first ask whether the year is in `_SAFE_YEARS`, which is cheaper."""
    if value is None or value.year in _SAFE_YEARS:
        return
    try:
        year = value.astimezone(UTC).year
    except OverflowError as err:  # pydantic lets this escape unwrapped; the exact path says which field
        raise ValueError(f"{name}: date value out of range") from err
    if not MIN_YEAR <= year <= MAX_YEAR - 1:
        raise ValueError(f"{name}: must be a moment between {MIN_YEAR} and {MAX_YEAR - 1}")


@lru_cache(maxsize=4096)
def _zone(name: str) -> str:
    """`events._check_timezone`, remembered for the names that passed (a refusal raises, so is not cached)."""
    validate_timezone(name)
    return name


# --- the consumed models ---------------------------------------------------------------------------------


class DealUpserted(_Wire, kw_only=True):
    deal_id: Id
    rep_id: Id
    amount: Dec
    currency: Currency
    stage: ev.DealStage
    stage_label: Name200 | None = None
    created_at: AwareTime | None = None
    closed_at: AwareTime | None = None
    updated_at: AwareTime
    expected_close_at: AwareTime | None = None
    probability: Dec | None = None
    forecast_category: ev.ForecastCategory | None = None
    properties: Properties | None = None

    def __post_init__(self) -> None:
        if "\x00" in f"{self.deal_id}{self.rep_id}{self.stage_label}":
            _nul_free(self, "deal_id", "rep_id", "stage_label")
        _decimal("amount", self.amount, ge=0, max_digits=20, places=4)
        if self.probability is not None:
            _decimal("probability", self.probability, ge=0, le=1, max_digits=5, places=4)
        if self.expected_close_at is not None and self.expected_close_at.year not in _SAFE_YEARS:
            _moment("expected_close_at", self.expected_close_at)
        _properties(self.properties)
        created, closed, years = self.created_at, self.closed_at, _SAFE_YEARS
        if not ((created is None or created.year in years) and (closed is None or closed.year in years)
                and self.updated_at.year in years):
            _moment("created_at", self.created_at)
            _moment("closed_at", self.closed_at)
            _moment("updated_at", self.updated_at)
        if self.closed_at is None and self.stage is not ev.DealStage.OPEN:
            raise ValueError(f"closed_at: closed_at is required when stage is {self.stage.value}")


class DealDeleted(_Wire, kw_only=True):
    deal_id: Id
    updated_at: AwareTime

    def __post_init__(self) -> None:
        _nul_free(self, "deal_id")
        _moment("updated_at", self.updated_at)


class ActivityLogged(_Wire, kw_only=True):
    activity_id: Id
    rep_id: Id
    kind: ev.ActivityKind
    occurred_at: AwareTime
    deal_id: Id | None = None
    duration_s: NonNegativeInt | None = None
    properties: Properties | None = None

    def __post_init__(self) -> None:
        if "\x00" in f"{self.activity_id}{self.rep_id}{self.deal_id}":
            _nul_free(self, "activity_id", "rep_id", "deal_id")
        _properties(self.properties)
        if self.occurred_at.year not in _SAFE_YEARS:
            _moment("occurred_at", self.occurred_at)


class RepUpserted(_Wire, kw_only=True):
    rep_id: Id
    name: Id  # Text, 1 to 200 characters: the same constraints as an id
    team_id: Id
    manager_id: Id | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    timezone: str
    active: bool = True

    def __post_init__(self) -> None:
        _nul_free(self, "rep_id", "name", "team_id", "manager_id", "email")
        _zone(self.timezone)


class TeamUpserted(_Wire, kw_only=True):
    team_id: Id
    name: Name200 | None = None
    parent_team_id: Id | None = None

    def __post_init__(self) -> None:
        _nul_free(self, "team_id", "name", "parent_team_id")
        if self.parent_team_id == self.team_id:
            raise ValueError("parent_team_id: a team cannot be its own parent")


class TimeOffSet(_Wire, kw_only=True):
    time_off_id: Id
    rep_id: Id
    first_day: date
    last_day: date
    reason: Name200 | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        _nul_free(self, "time_off_id", "rep_id", "reason")
        if self.last_day < self.first_day:
            raise ValueError("last_day: must not be before first_day")
        if (self.last_day - self.first_day).days > 366:
            raise ValueError("last_day: a time off spans at most 367 days; send longer leave in parts")


class TargetSet(_Wire, kw_only=True):
    scope: ev.Scope
    scope_id: Id
    metric: MetricName
    period: str
    value: Dec

    def __post_init__(self) -> None:
        _nul_free(self, "scope_id")
        parse_period(self.period)  # PeriodError is a ValueError naming the text
        _decimal("value", self.value, ge=0, max_digits=20, places=4)


class ForecastDeal(_Wire, kw_only=True):
    deal_id: Id
    rep_id: Id
    amount: Dec
    probability: Dec
    basis: Literal["crm", "history"]
    forecast_category: ev.ForecastCategory
    expected_close_at: AwareTime

    def __post_init__(self) -> None:
        if "\x00" in f"{self.deal_id}{self.rep_id}":
            _nul_free(self, "deal_id", "rep_id")
        _decimal("amount", self.amount)
        _decimal("probability", self.probability)


class Forecast(_Wire, kw_only=True):
    closed: Dec
    commit: Dec
    best_case: Dec
    pipeline: Dec
    weighted: Dec
    gap: Dec
    probability: Dec | None = None
    method: Literal["certain", "exact", "monte_carlo"] | None = None
    error: Dec | None = None
    open_deals: Annotated[int, msgspec.Meta(ge=0)]
    estimated: Annotated[int, msgspec.Meta(ge=0)]
    undated: Annotated[int, msgspec.Meta(ge=0)] = 0
    deals: Annotated[list[ForecastDeal], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("closed", "commit", "best_case", "pipeline", "weighted", "gap", "probability", "error"):
            _decimal(name, getattr(self, name))


class AttainmentUpdated(_Wire, kw_only=True):
    scope: ev.Scope
    scope_id: Id
    period: str
    metric: MetricName
    actual: Dec
    target: Dec | None = None
    attainment: Dec | None = None
    expected: Dec | None = None
    pace: Dec | None = None
    projected: Dec | None = None
    as_of: AwareTime
    period_start: AwareTime | None = None
    period_end: AwareTime | None = None
    team_id: str | None = None
    manager_id: str | None = None
    name: str | None = None
    revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    source_time: AwareTime | None = None
    forecast: Forecast | None = None

    def __post_init__(self) -> None:
        if "\x00" in self.scope_id:
            _nul_free(self, "scope_id")
        if not _finite(self.actual, self.target, self.attainment, self.expected, self.pace, self.projected):
            for name in ("actual", "target", "attainment", "expected", "pace", "projected"):
                _decimal(name, getattr(self, name))


class ExchangeRate(_Wire, kw_only=True):
    currency: Currency
    valid_from: date
    rate: Dec

    def __post_init__(self) -> None:
        _decimal("rate", self.rate, gt=0, max_digits=24, places=12)


class TokenGrant(_Wire, kw_only=True):
    token_id: str
    token_sha256: str
    role: ev.Role
    rep_id: str | None = None
    manager_id: str | None = None
    expires_at: AwareTime | None = None


class Holiday(_Wire, kw_only=True):
    day: date
    name: str


class Holidays(_Wire, kw_only=True):
    country: str | None = None
    subdivision: str | None = None
    added: list[Holiday] = msgspec.field(default_factory=list)
    removed: list[date] = msgspec.field(default_factory=list)


class TenantUpserted(_Wire, kw_only=True):
    tenant: str
    timezone: str
    currency: str
    fiscal_start_month: int
    token_sha256: str
    active: bool
    rates: list[ExchangeRate] = msgspec.field(default_factory=list)
    locale: str = "en"
    tokens: list[TokenGrant] | None = None
    holidays: Holidays | None = None


# --- Struct -> pydantic model, without a second validation ------------------------------------------------

# The Struct that mirrors each consumed model.
STRUCTS: Final[dict[type[BaseModel], type[msgspec.Struct]]] = {
    ev.DealUpserted: DealUpserted, ev.DealDeleted: DealDeleted, ev.ActivityLogged: ActivityLogged,
    ev.RepUpserted: RepUpserted, ev.TeamUpserted: TeamUpserted, ev.TargetSet: TargetSet,
    ev.AttainmentUpdated: AttainmentUpdated, ev.ExchangeRate: ExchangeRate, ev.TenantUpserted: TenantUpserted,
    ev.TokenGrant: TokenGrant, ev.TimeOffSet: TimeOffSet, ev.Holidays: Holidays, ev.Holiday: Holiday,
    ev.Forecast: Forecast, ev.ForecastDeal: ForecastDeal,
}
_set = object.__setattr__


def _constructor(model: type[M], fields: Iterable[str]) -> Callable[[dict[str, Any]], M]:
    """What `model.model_construct(**values)` does when `values` holds every field, minus its per-call
    bookkeeping: a frozen instance whose ``__dict__`` is `values`, every field counted as set."""
    names = frozenset(fields)
    if names != set(model.model_fields) or model.__private_attributes__ or model.__pydantic_post_init__:
        raise TypeError(f"{model.__name__}: its Struct must mirror every field, and it must have no private"
                        " attributes or post-init (model_construct would set them up)")
    new = model.__new__

    def construct(values: dict[str, Any]) -> M:
        instance = new(model)
        _set(instance, "__dict__", values)
        _set(instance, "__pydantic_fields_set__", set(names))
        _set(instance, "__pydantic_extra__", None)
        _set(instance, "__pydantic_private__", None)
        return instance

    return construct


def _converter(model: type[BaseModel], struct: type[msgspec.Struct]) -> Callable[[Any], BaseModel]:
    construct = _constructor(model, struct.__struct_fields__)
    as_dict = msgspec.structs.asdict
    if model is ev.Holidays:  # nested: its days become pydantic models
        holiday = _converter(ev.Holiday, Holiday)

        def calendar(value: Any) -> BaseModel:
            values = as_dict(value)
            values["added"] = [holiday(h) for h in values["added"]]
            return construct(values)

        return calendar
    if model is ev.Forecast:  # nested: its deals become pydantic models
        deal = _converter(ev.ForecastDeal, ForecastDeal)

        def forecast(value: Any) -> BaseModel:
            values = as_dict(value)
            values["deals"] = [deal(d) for d in values["deals"]]
            return construct(values)

        return forecast
    if model is ev.AttainmentUpdated:  # nested: its forecast becomes a pydantic model
        outlook = _converter(ev.Forecast, Forecast)

        def figure(value: Any) -> BaseModel:
            values = as_dict(value)
            if values["forecast"] is not None:
                values["forecast"] = outlook(values["forecast"])
            return construct(values)

        return figure
    if model is ev.TenantUpserted:  # nested: its rates, tokens and holidays become pydantic models
        rate = _converter(ev.ExchangeRate, ExchangeRate)
        grant = _converter(ev.TokenGrant, TokenGrant)
        holidays = _converter(ev.Holidays, Holidays)

        def tenant(value: Any) -> BaseModel:
            values = as_dict(value)
            values["rates"] = [rate(r) for r in values["rates"]]
            if values["tokens"] is not None:
                values["tokens"] = [grant(t) for t in values["tokens"]]
            if values["holidays"] is not None:
                values["holidays"] = holidays(values["holidays"])
            return construct(values)

        return tenant
    return lambda value: construct(as_dict(value))


_TO_MODEL: Final = {model: _converter(model, struct) for model, struct in STRUCTS.items()}
_DECODERS: Final = {model: msgspec.json.Decoder(struct) for model, struct in STRUCTS.items()}


# pydantic truncates a time's fraction to microseconds, msgspec rounds it ("…59.9999999Z" would move to the next
# day, maybe the next quarter): leave such times, and escapes that could spell one ("\u002e", "\u0031"), to
# the exact path. Producers of internal topics write neither (pydantic's JSON has at most six digits). The
# cheap search finds seven digits after any point; only then is it asked whether they follow a time's seconds
# (an exchange rate may have twelve places).
_SEVEN_PLACES = re.compile(rb"\.[0-9]{7}").search
_SUB_MICROSECOND = re.compile(rb"[0-9]:[0-9]{2}\.[0-9]{7}").search
_ESCAPED_ASCII = b"\\u00"


def _unusual(value: bytes) -> bool:
    return _ESCAPED_ASCII in value or (_SEVEN_PLACES(value) is not None and _SUB_MICROSECOND(value) is not None)


def decoder_for(model: type[BaseModel]) -> Callable[[bytes], BaseModel] | None:
    """The fast decoder of `model`'s records, or None when this module has no Struct for it."""
    decoder, convert = _DECODERS.get(model), _TO_MODEL.get(model)
    if decoder is None or convert is None:
        return None
    decode_struct = decoder.decode

    def fast(value: bytes) -> BaseModel:
        if _unusual(value):
            raise Unsure("a time finer than microseconds, or an escaped ASCII character: validated exactly")
        try:
            struct = decode_struct(value)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise Unsure(str(err)) from None
        return convert(struct)

    return fast


_FAST: Final = {model: fast for model in STRUCTS if (fast := decoder_for(model)) is not None}


def decode(model: type[BaseModel], value: bytes | None) -> BaseModel:
    """`model`'s instance from a record value in canonical form; `Unsure` for anything else (see module
    docstring), including a model this module does not mirror."""
    fast = _FAST.get(model)
    if fast is None or not value:
        raise Unsure(f"no fast decoder for {model.__name__}" if fast is None else "empty value")
    return fast(value)
