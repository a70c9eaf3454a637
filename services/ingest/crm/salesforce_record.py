"""The fields of one Salesforce record, read alike from an Outbound Message (SOAP text) and a change event (JSON).

Used by `salesforce_outbound.py` and `salesforce_cdc.py`; the rules are `values.py`'s, the wording Salesforce's
own: "Notification 04l5g00000BmTz9AAF: Amount is not a number: 'abc'". A field that is absent or null reads as
None, "not in this delivery". JSON numbers for date-times are epoch milliseconds and for dates epoch days (Pub/Sub
API relays decode Avro that way); SOAP and CometD relays send text.

The forecast of an Opportunity: `CloseDate` is read as before into `close_date` (for an open opportunity it is the
date it is expected to close, which the mapping makes its `expected_close_at`: mapping.CLOSE_DATE_IS_EXPECTED);
`Probability` (a percentage, 0 to 100) divided by 100 is `probability`, rounded half-even to 4 places;
`ForecastCategoryName` Pipeline, Best Case, Commit and Omitted is `forecast_category` (pipeline, best_case, commit,
omitted), and Closed gives none (the forecast counts open deals only). A `Probability` or `ForecastCategoryName`
that cannot be read, is out of range or is unknown is left out and reported (`values.lenient`, into the `ignored`
list the caller passes): it never refuses the message, whose other fields and notifications still count.

The CRM properties the tenant chose to carry (`properties.py`) are the record's fields by API name (`LeadSource`,
`Segment__c`), of an Opportunity, a Task or an Event alike, as far as the delivery holds them (`carried`): SOAP sends
every value as text (`true`, `40.0`); a change event's JSON numbers and booleans are written as JSON writes them. A
value that cannot be carried (longer than 500 characters, a compound field's object) is left out and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, NoReturn, TypeVar

from services.ingest.crm import properties as chosen_properties
from services.ingest.crm import values
from services.ingest.crm.model import DealFields, Forecast, PayloadError

CRM: Final[Literal["salesforce"]] = "salesforce"
FORECAST_CATEGORIES: Final[dict[str, Forecast | None]] = {
    "Pipeline": "pipeline", "Best Case": "best_case", "Commit": "commit", "Omitted": "omitted", "Closed": None,
}  # fmt: skip

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Record:
    """Field values of one record or header, SOAP text or JSON values alike, read with errors naming the field."""

    fields: Mapping[str, object]
    where: str

    def fail(self, name: str, problem: str) -> NoReturn:
        raise PayloadError(f"{self.where}: {name} {problem}")

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"is not a string: {value!r}")
        return value.strip() or None

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            self.fail(name, "is missing")
        return value

    def currency(self, name: str) -> str | None:
        value = self.text(name)
        return None if value is None else self._read(name, value, values.currency, "is not an ISO 4217 code")

    def boolean(self, name: str) -> bool | None:
        value = self.fields.get(name)
        return None if value is None else self._read(name, value, values.boolean, "is not a boolean")

    def decimal(self, name: str) -> Decimal | None:
        value = self.fields.get(name)
        if value is None:
            return None
        amount = self._read(name, value, values.decimal, "is not a number")
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent > 0:  # SOAP doubles may come as 1.5E7: write 15000000
            try:
                amount = amount.quantize(Decimal(1))
            except InvalidOperation:
                self.fail(name, f"is out of range: {amount}")
        return amount

    def integer(self, name: str) -> int | None:
        value = self.fields.get(name)
        return None if value is None else self._read(name, value, values.integer, "is not an integer")

    def timestamp(self, name: str) -> datetime | None:
        value = self.fields.get(name)
        if value is None:
            return None
        try:
            return values.instant(value, name, unit=values.MILLISECOND, naive_is_utc=False)
        except values.NoUtcOffset:
            self.fail(name, f"has no UTC offset: {value!r}")
        except PayloadError:
            self.fail(name, f"is not a date-time: {value!r}")

    def day(self, name: str) -> date | None:
        value = self.fields.get(name)
        if value is None:
            return None
        return self._read(name, value, lambda day, where: values.day(day, where, epoch_days=True), "is not a date")

    def _read(self, name: str, value: object, read: Callable[[object, str], T], problem: str) -> T:
        try:
            return read(value, name)
        except PayloadError:
            self.fail(name, f"{problem}: {value!r}")


def carried(record: Record, names: Collection[str], ignored: list[str]) -> dict[str, str]:
    """The values of the fields `names` names that `record` holds, as text (module docstring)."""
    return chosen_properties.carried(record.fields, names, f"{record.where}: ", ignored)


def deal_fields(record: Record, ignored: list[str], chosen: Collection[str] = ()) -> DealFields:
    """An Opportunity's fields: `StageName` is both stage and label; `CloseDate` is a date. A forecast value left
    out is appended to `ignored` (module docstring); so is a value of the fields `chosen` names that cannot be
    carried."""
    stage = record.text("StageName")
    return DealFields(
        amount=record.decimal("Amount"),
        currency=record.currency("CurrencyIsoCode"),
        stage=stage,
        stage_label=stage,
        status=status(record.boolean("IsWon"), record.boolean("IsClosed")),
        owner=record.text("OwnerId"),
        close_date=record.day("CloseDate"),
        created_at=record.timestamp("CreatedDate"),
        name=record.text("Name"),
        probability=values.lenient(lambda: _probability(record), ignored),
        forecast_category=values.lenient(lambda: _forecast_category(record), ignored),
        properties=carried(record, chosen, ignored),
    )


def _probability(record: Record) -> Decimal | None:
    value = record.fields.get("Probability")
    return None if value is None else values.probability(value, f"{record.where}: Probability", percent=True)


def _forecast_category(record: Record) -> Forecast | None:
    value = record.text("ForecastCategoryName")
    return None if value is None else forecast_category(value, f"{record.where}: ForecastCategoryName")


def forecast_category(value: str, where: str) -> Forecast | None:
    """A `ForecastCategoryName` as the contract's category, None for Closed; PayloadError for one we do not know."""
    if value not in FORECAST_CATEGORIES:
        raise PayloadError(f"{where}: {value!r} is not a forecast category we map ({', '.join(FORECAST_CATEGORIES)})")
    return FORECAST_CATEGORIES[value]


def status(is_won: bool | None, is_closed: bool | None) -> Literal["open", "won", "lost"] | None:
    """Open, won or lost from an Opportunity's `IsWon` and `IsClosed`, or None when they do not say."""
    if is_closed is False:
        return "open"
    if is_closed and is_won is not None:
        return "won" if is_won else "lost"
    return "won" if is_won else None  # a won opportunity is closed; IsWon false alone may be open or lost
