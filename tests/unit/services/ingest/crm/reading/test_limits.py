"""Each CRM's rate-limit policy, from the vendors' documented headers (services/ingest/crm/reading/limits.py)."""

from __future__ import annotations

import doctest

import pytest

from services.ingest.crm.reading import cursor, limits, salesforce

HUBSPOT_OK = {"x-hubspot-ratelimit-daily": "500000", "x-hubspot-ratelimit-daily-remaining": "499985",
              "x-hubspot-ratelimit-interval-milliseconds": "10000", "x-hubspot-ratelimit-max": "100",
              "x-hubspot-ratelimit-remaining": "97", "x-hubspot-ratelimit-secondly": "10",
              "x-hubspot-ratelimit-secondly-remaining": "9"}


def test_hubspot_goes_on_while_every_window_has_room() -> None:
    assert limits.hubspot(200, HUBSPOT_OK) is None


def test_hubspot_waits_out_the_ten_second_window_when_it_is_used_up() -> None:
    assert limits.hubspot(200, {**HUBSPOT_OK, "x-hubspot-ratelimit-remaining": "0"}) == 10.0


def test_hubspot_429_waits_as_retry_after_says_else_by_its_policy() -> None:
    assert limits.hubspot(429, {"retry-after": "3"}, {"policyName": "SECONDLY"}) == 3.0
    assert limits.hubspot(429, {}, {"policyName": "SECONDLY"}) == 1.0
    assert limits.hubspot(429, HUBSPOT_OK, {"policyName": "TEN_SECONDLY_ROLLING"}) == 10.0


def test_hubspot_daily_limit_asks_for_more_than_a_reader_waits() -> None:
    assert limits.hubspot(429, {}, {"policyName": "DAILY"}) == limits.DAY_WAIT_S
    assert limits.hubspot(200, {**HUBSPOT_OK, "x-hubspot-ratelimit-daily-remaining": "0"}) == limits.DAY_WAIT_S


def test_pipedrive_documented_example_goes_on() -> None:
    headers = {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "2",
               "x-daily-requests-left": "9999"}
    assert limits.pipedrive(200, headers) is None


@pytest.mark.parametrize(("status", "headers", "wait"), [
    (200, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, 1.0),
    (429, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, 2.0),
    (429, {"retry-after": "5"}, 5.0),
    (429, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "12", "x-ratelimit-reset": "2"}, limits.DAY_WAIT_S),
])
def test_pipedrive_waits_for_the_burst_window_or_the_next_days_budget(
        status: int, headers: dict[str, str], wait: float) -> None:
    assert limits.pipedrive(status, headers) == wait


@pytest.mark.parametrize(("header", "wait"), [
    ("api-usage=18/5000", None),
    ("api-usage=10018/100000; api-bursts=1/750", None),
    ("api-usage=80000/100000", 0.864),
    ("api-usage=110018/100000; api-bursts=1/750", limits.DAY_WAIT_S),
])
def test_salesforce_slows_down_as_the_days_usage_nears_the_allocation(header: str, wait: float | None) -> None:
    assert limits.salesforce(200, {"sforce-limit-info": header}) == (None if wait is None else pytest.approx(wait))


def test_salesforce_request_limit_exceeded_is_a_limit_but_another_403_is_not() -> None:
    exceeded = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert limits.salesforce(403, {}, exceeded) == limits.DAY_WAIT_S
    assert not limits.salesforce_limit_exceeded(403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}])


def test_the_policies_docstring_examples_hold() -> None:
    for module in (limits, cursor, salesforce):
        assert doctest.testmod(module).failed == 0
