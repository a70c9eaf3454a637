"""The resumable position a page's cursor encodes (services/ingest/crm/reading/cursor.py), and the guard under the
readers (transport.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading import cursor
from services.ingest.crm.reading.model import CursorInvalid, ReadingError
from services.ingest.crm.reading.transport import GuardedTransport

T = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_after_a_restart_every_record_already_read_is_skipped_and_the_rest_is_not() -> None:
    position = cursor.Position()
    for record_id, modified in [("1", T), ("2", T + timedelta(seconds=1)), ("3", T + timedelta(seconds=1))]:
        position = cursor.read(position, record_id, modified)
    again = cursor.restarted(position)
    assert again.window == T + timedelta(seconds=1) and again.token is None
    assert [cursor.seen(again, i, m) for i, m in [("1", T), ("2", T + timedelta(seconds=1)),
                                                   ("4", T + timedelta(seconds=1)), ("1", T + timedelta(hours=1))]] \
        == [True, True, False, False]


def test_the_next_phase_starts_afresh_but_keeps_the_high_water_mark() -> None:
    position = cursor.read(cursor.Position(token="x"), "1", T)
    following = cursor.next_phase(position)
    assert following == cursor.Position(phase=1, top=T)


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"v": 2}', "not json"])
def test_a_cursor_no_reader_wrote_is_refused(text: str) -> None:
    with pytest.raises(CursorInvalid):
        cursor.decode(text)


async def test_the_readers_transport_refuses_internal_addresses_and_plain_http() -> None:
    guarded = GuardedTransport()
    for base in ("http://127.0.0.1:9", "https://127.0.0.1:9", "https://169.254.169.254"):
        with pytest.raises(ReadingError):
            await guarded.send("GET", f"{CrmAccess('t', base).base_url}/v1/users", {})
