"""Each CRM's rate limits as pure policies: from a response's status, headers and body, how long to wait before the
next call (None: go on at once). No I/O, no clock.

A wait on a throttled answer (`throttled` true) means "wait, then send the same request again"; a wait on a
successful one means "this answer is good, but pause before the next call". A wait longer than the reader holds on
(`transport.Calls.max_wait_s`) ends the reading with `RateLimited`: the caller keeps its cursor and comes back.
`Retry-After` is read in seconds (RFC 9110 also allows an HTTP date, which none of these vendors documents sending).

HubSpot ("API usage guidelines and limits", https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details;
"CRM search", https://developers.hubspot.com/docs/api/crm/search, "Limitations"): a 429 names its policy in the
body (`policyName` SECONDLY, TEN_SECONDLY_ROLLING or DAILY); responses carry `X-HubSpot-RateLimit-Daily`,
`-Daily-Remaining`, `-Interval-Milliseconds`, `-Max`, `-Remaining`, `-Secondly`, `-Secondly-Remaining`. Search
endpoints carry none of these and allow about five requests a second per account: the reader spaces them itself
(`HUBSPOT_SEARCH_INTERVAL_S`, four a second).

Pipedrive ("Rate limiting", https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting): burst limits per
2-second window with `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds until the window
resets) on every response, and 429 "Too Many Requests" past them; token-based daily budgets per company, and a 429
while the burst window still has room means the day's budget is spent (it resets at the start of the next day).

Salesforce ("Limit Info Header", https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
headers_api_usage.htm; "API Request Limits and Allocations" in the Developer Limits Quick Reference): every response
carries `Sforce-Limit-Info: api-usage=N/M` (calls in the rolling 24 hours / the org's allocation; N may pass M within
the org's burst allowance); past the limit a call answers 403 with errorCode `REQUEST_LIMIT_EXCEEDED`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

Policy = Callable[[int, Mapping[str, str], object], float | None]

DAY_WAIT_S: Final = 3600.0  # a daily budget spent: come back in an hour (longer than any reader waits in place)
HUBSPOT_SEARCH_INTERVAL_S: Final = 0.25  # search: "five requests per second per account"; we keep to four
SALESFORCE_SLOW_FROM: Final = 0.8  # past 80 % of the org's daily calls, space calls to the allocation's pace
_DAY_S: Final = 86400.0
_API_USAGE: Final = re.compile(r"api-usage=(\d+)/(\d+)")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds, None when absent or not a number of seconds.

    >>> retry_after({"retry-after": "7"}), retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    (7.0, None)
    """
    value = headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def _body_field(body: object, name: str) -> object:
    return body.get(name) if isinstance(body, dict) else None


def hubspot(status: int, headers: Mapping[str, str], body: object = None) -> float | None:
    """HubSpot's wait (module docstring). Header names are lower-case.

    >>> hubspot(429, {"retry-after": "2"}, {"policyName": "SECONDLY"})
    2.0
    >>> hubspot(429, {}, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
    10.0
    >>> hubspot(200, {"x-hubspot-ratelimit-remaining": "0", "x-hubspot-ratelimit-interval-milliseconds": "10000"})
    10.0
    >>> hubspot(200, {"x-hubspot-ratelimit-remaining": "99", "x-hubspot-ratelimit-secondly-remaining": "9"}) is None
    True
    """
    interval_ms = _number(headers, "x-hubspot-ratelimit-interval-milliseconds")
    window_s = interval_ms / 1000 if interval_ms else 10.0
    if status == 429 or _number(headers, "x-hubspot-ratelimit-daily-remaining") == 0:
        return _hubspot_throttled(headers, body, window_s)
    if _number(headers, "x-hubspot-ratelimit-remaining") == 0:
        return window_s
    if _number(headers, "x-hubspot-ratelimit-secondly-remaining") == 0:
        return 1.0
    return None


def _hubspot_throttled(headers: Mapping[str, str], body: object, window_s: float) -> float:
    policy = _body_field(body, "policyName")
    if policy == "DAILY" or _number(headers, "x-hubspot-ratelimit-daily-remaining") == 0:
        return DAY_WAIT_S
    if (after := retry_after(headers)) is not None:
        return after
    if policy == "SECONDLY" or _number(headers, "x-hubspot-ratelimit-secondly-remaining") == 0:
        return 1.0
    return window_s


def pipedrive(status: int, headers: Mapping[str, str], body: object = None) -> float | None:
    """Pipedrive's wait (module docstring).

    >>> pipedrive(429, {"retry-after": "3", "x-ratelimit-remaining": "0"})
    3.0
    >>> pipedrive(429, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"})
    2.0
    >>> pipedrive(429, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "31", "x-ratelimit-reset": "2"})
    3600.0
    >>> pipedrive(200, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "2"}) is None
    True
    """
    remaining = _number(headers, "x-ratelimit-remaining")
    reset = _number(headers, "x-ratelimit-reset")
    if status == 429:
        if (after := retry_after(headers)) is not None:
            return after
        if remaining is not None and remaining > 0:
            return DAY_WAIT_S  # the burst window has room: the day's token budget is spent
        return reset if reset is not None else 2.0
    if remaining == 0:
        return reset if reset is not None else 2.0
    return None


def salesforce_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """`Sforce-Limit-Info`'s api-usage as (used, allocation).

    >>> salesforce_usage({"sforce-limit-info": "api-usage=10018/100000; api-bursts=1/750"})
    (10018, 100000)
    """
    found = _API_USAGE.search(headers.get("sforce-limit-info", ""))
    return None if found is None else (int(found.group(1)), int(found.group(2)))


def salesforce_limit_exceeded(status: int, body: object) -> bool:
    """Whether an answer is Salesforce's `403 REQUEST_LIMIT_EXCEEDED` (its body is a list of errors)."""
    errors = body if isinstance(body, list) else [body]
    return status == 403 and any(_body_field(e, "errorCode") == "REQUEST_LIMIT_EXCEEDED" for e in errors)


def salesforce(status: int, headers: Mapping[str, str], body: object = None) -> float | None:
    """Salesforce's wait (module docstring): none below 80 % of the day's allocation; from there, one call per
    allocation's share of the day (86400 s / M), so the rolling 24 hours never run dry; past it, an hour.

    >>> salesforce(200, {"sforce-limit-info": "api-usage=18/5000"}) is None
    True
    >>> salesforce(200, {"sforce-limit-info": "api-usage=4500/5000"})
    17.28
    >>> salesforce(403, {"sforce-limit-info": "api-usage=5001/5000"},
    ...            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    3600.0
    """
    if salesforce_limit_exceeded(status, body):
        return DAY_WAIT_S
    if status in (429, 503) and (after := retry_after(headers)) is not None:
        return after
    usage = salesforce_usage(headers)
    if usage is None or usage[1] <= 0:
        return None
    used, allocation = usage
    if used >= allocation:
        return DAY_WAIT_S
    if used >= SALESFORCE_SLOW_FROM * allocation:
        return _DAY_S / allocation
    return None
