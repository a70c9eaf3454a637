"""The soak's verdict on a lag series (a steady rise is a trend, spikes that come and go are not), and its loops."""

from datetime import UTC, datetime

from tests.chaos import scenario
from tests.chaos.fleet import CONSUMERS
from tests.chaos.soak import TREND_LIMIT, _looped, _trends


def series(values: dict[str, list[int]], every: float = 15.0) -> list[tuple[float, dict[str, int]]]:
    count = len(next(iter(values.values())))
    return [(every * (i + 1), {g: v[i] for g, v in values.items()}) for i in range(count)]


def arrivals(per_sample: int, count: int, every: float = 15.0) -> list[tuple[float, dict[str, int]]]:
    return [(every * (i + 1), dict.fromkeys(CONSUMERS, per_sample * (i + 1))) for i in range(count)]


def test_a_backlog_that_grows_steadily_rises_by_what_it_gained() -> None:
    lags = series({g: [100 * i for i in range(40)] for g in CONSUMERS})
    trends = _trends(lags, arrivals(6000, 40), streamed_s=600)
    rise, came = trends["kpi"]
    assert round(rise) == 100 * 20  # samples at 300..600 s: 20 steps of 100 records
    assert came == 6000 * 20
    assert rise > 0


def test_spikes_that_come_and_go_do_not_make_a_trend() -> None:
    spiky = [8000 if i % 4 == 0 else 50 for i in range(40)]
    trends = _trends(series({g: spiky for g in CONSUMERS}), arrivals(6000, 40), streamed_s=600)
    for group in CONSUMERS:
        rise, came = trends[group]
        assert rise < TREND_LIMIT * came


def test_samples_after_the_load_are_not_part_of_the_trend() -> None:
    lag = [10] * 40 + [50_000, 0]  # the drain's samples, past streamed_s
    trends = _trends(series({g: lag for g in CONSUMERS}), arrivals(6000, 42), streamed_s=600)
    assert all(abs(trends[g][0]) < 1e-6 for g in CONSUMERS)


def test_a_group_without_samples_is_not_measured() -> None:
    assert _trends(series({"kpi": [1, 2, 3]}), arrivals(10, 3), streamed_s=45) == {}


def test_each_loop_is_a_fresh_part_of_the_org_and_the_first_is_the_scenario() -> None:
    settings = scenario.Settings(tenants=1, reps_per_tenant=5, deals_per_rep=3)
    events = scenario.generate(settings, datetime(2026, 11, 20, 12, tzinfo=UTC)).events
    quarter = next(iter(events.values()))
    assert _looped(quarter, 0) is quarter
    again = _looped(quarter, 3)
    assert [e["type"] for e in again] == [e["type"] for e in quarter]
    ids = {e["id"] for e in quarter}
    assert not ids & {e["id"] for e in again}
    for before, after in zip(quarter, again, strict=True):
        for key in ("rep_id", "team_id", "deal_id", "activity_id"):
            if before["data"].get(key):
                assert after["data"][key] == before["data"][key] + "-l3"
        if before["type"] == "target.set" and before["data"]["scope"] in ("rep", "team"):
            assert after["data"]["scope_id"] == before["data"]["scope_id"] + "-l3"
