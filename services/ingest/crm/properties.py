"""The CRM properties a tenant chose to carry: their names, and their values as the contract's text. Pure.

A tenant chooses, per CRM, up to 50 of its CRM's property names (`PUT /v1/crm/{crm}/properties`): HubSpot's
internal property names, Pipedrive's field keys (a custom field's is its 40-character hash), Salesforce's field API
names. Each vendor module copies those properties' values from the records it reads (`carried`) into
`DealFields.properties` and `ActivityChange.properties`; the mapping puts the chosen ones into `deal.upserted` and
`activity.logged` (`properties`), where a KPI the tenant defines may filter on them.

A value becomes text: a string as sent, a number as its JSON text (`1200.50`, `3`), a boolean `true` or `false`.
Null and "" are "not in this record", as for every other field (a cleared value cannot be told from an unsent one,
so the last known value stands). A value the contract cannot carry (longer than 500 characters, an object or a
list, one holding a NUL or a lone surrogate) is left out, never cut, and its problem appended to `ignored`
(`values.lenient`): the pipeline logs and counts it, and the record's other fields still count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import Final

from services.ingest.crm import values
from services.ingest.crm.model import PayloadError

MAX_PROPERTIES: Final = 50  # shared.events.Properties
MAX_VALUE: Final = 500  # characters of one value (shared.events.Properties)
NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")  # shared.events.PropertyName


def invalid_names(names: Iterable[str]) -> list[str]:
    """The names a `deal.upserted` could not carry as property names, in order (shared.events.PropertyName).

    >>> invalid_names(["hs_lead_source", "Segment__c", "dcf558aac1ae4e8c4f849ba5e668430d8df9be12", "lead source"])
    ['lead source']
    """
    return [name for name in names if not NAME.fullmatch(name)]


def as_text(value: object, where: str) -> str | None:
    """`value` as the text a property carries, None when unset (null or ""); PayloadError, starting with `where`,
    when the contract cannot carry it.

    >>> [as_text(v, "x") for v in ("EMEA", 3, Decimal("1200.50"), True, None, "")]
    ['EMEA', '3', '1200.50', 'true', None, None]
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        written = "true" if value else "false"
    elif isinstance(value, int | Decimal | float):
        if isinstance(value, Decimal | float) and not Decimal(value).is_finite():
            raise PayloadError(f"{where}: {value} is not a finite number")
        written = str(value)
    elif isinstance(value, str):
        written = value
    else:
        raise PayloadError(f"{where}: expected text, a number or a boolean, got {values.kind(value)}")
    if len(written) > MAX_VALUE:
        raise PayloadError(f"{where}: is longer than {MAX_VALUE} characters ({len(written)}); left out, not cut")
    if "\x00" in written:
        raise PayloadError(f"{where}: must not contain the NUL character (\\u0000)")
    try:
        written.encode()
    except UnicodeEncodeError:
        raise PayloadError(f"{where}: must be valid Unicode (no lone surrogates)") from None
    return written


def carried(record: Mapping[str, object], names: Iterable[str], where: str, ignored: list[str]) -> dict[str, str]:
    """The values `record` holds for `names`, as text, by name. A value that cannot be carried is left out and its
    problem (`{where}{name}: ...`) appended to `ignored`; a name the record does not hold, or holds unset, is left
    out silently (the record does not carry it).

    >>> problems: list[str] = []
    >>> carried({"segment": "SMB", "seats": 40, "notes": "x" * 501, "region": None}, ["segment", "seats", "notes",
    ...         "region", "absent"], "current.", problems)
    {'segment': 'SMB', 'seats': '40'}
    >>> problems
    ['current.notes: is longer than 500 characters (501); left out, not cut']
    """
    found: dict[str, str] = {}
    for name in names:
        if name in record:
            text = values.lenient(partial(as_text, record[name], f"{where}{name}"), ignored)
            if text is not None:
                found[name] = text
    return found
