from services.ingest.limits import RateLimiter


def test_requests_beyond_the_burst_wait_for_a_refill() -> None:
    limiter = RateLimiter(requests_per_s=2, request_burst=2, events_per_s=1000, event_burst=1000)
    assert limiter.admit("a", 0.0) == 0
    assert limiter.admit("a", 0.0) == 0
    assert limiter.admit("a", 0.0) == 1
    assert limiter.admit("a", 0.5) == 0


def test_a_large_request_goes_through_whole_and_the_tenant_then_waits_out_the_debt() -> None:
    limiter = RateLimiter(requests_per_s=100, request_burst=100, events_per_s=1000, event_burst=2000)
    assert limiter.admit("a", 0.0) == 0
    limiter.charge_events("a", 7000, 0.0)  # 5000 in debt
    assert limiter.admit("a", 0.0) == 5
    assert limiter.admit("a", 4.0) == 1
    assert limiter.admit("a", 5.0) == 0


def test_tenants_do_not_share_buckets() -> None:
    limiter = RateLimiter(requests_per_s=1, request_burst=1, events_per_s=10, event_burst=10)
    assert limiter.admit("a", 0.0) == 0
    assert limiter.admit("a", 0.0) > 0
    assert limiter.admit("b", 0.0) == 0
