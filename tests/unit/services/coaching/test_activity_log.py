"""`ActivityLog`: activities counted per local day and kind, and the last one's moment."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.coaching.model import ActivityLog

BERLIN = ZoneInfo("Europe/Berlin")


def test_days_are_local_days_of_the_zone_given() -> None:
    late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Monday 00:30 in Berlin, still Sunday in UTC
    log = ActivityLog.of([(late, "call"), (datetime(2026, 11, 22, 9, tzinfo=UTC), "call")], BERLIN)
    assert log.days == ((date(2026, 11, 22), "call", 1), (date(2026, 11, 23), "call", 1))
    assert ActivityLog.of([(late, "call")], ZoneInfo("UTC")).days == ((date(2026, 11, 22), "call", 1),)


def test_count_takes_days_from_first_up_to_after_and_one_kind_or_all() -> None:
    at = [datetime(2026, 11, d, 9, tzinfo=UTC) for d in (16, 16, 17, 18)]
    log = ActivityLog.of([(at[0], "call"), (at[1], "email"), (at[2], "call"), (at[3], "call")], BERLIN)
    assert log.count(date(2026, 11, 16), date(2026, 11, 18)) == 3
    assert log.count(date(2026, 11, 16), date(2026, 11, 18), "call") == 2
    assert log.count(date(2026, 11, 17), date(2026, 11, 19), "email") == 0
    assert log.count(date(2026, 11, 18), date(2026, 11, 18)) == 0


def test_the_last_activity_is_kept_to_the_microsecond_and_none_without_any() -> None:
    last = datetime(2026, 11, 20, 16, 59, 59, 999_999, tzinfo=UTC)
    log = ActivityLog.of([(last, "call"), (datetime(2026, 11, 2, tzinfo=UTC), "email")], BERLIN)
    assert log.last_at == last
    assert ActivityLog.of([], BERLIN) == ActivityLog()
    assert ActivityLog().last_at is None
