"""A local stand-in for the HubSpot, Pipedrive and Salesforce REST APIs: serves the vendors' documented responses;
the real APIs exist only in their clouds.

A stdlib `ThreadingHTTPServer` on 127.0.0.1, port 0, answering from in-memory data (`StandIn.hubspot_owners`,
`.hubspot_records`, `.pipedrive_users`, `.pipedrive_records`, `.salesforce_records`...) the endpoints the readers
call (services/ingest/crm/reading), with each vendor's paging: HubSpot's search `after` offsets and its result cap
(`hubspot_search_cap`, 10,000 in HubSpot, smaller here to test the restart), Pipedrive v2's `next_cursor`,
Salesforce's `nextRecordsUrl` query locators (`expire_locators`). `throttle` scripts the next answers to a path as
throttled, with the vendor's documented headers (`HUBSPOT_429`, `PIPEDRIVE_429`, `SALESFORCE_403`). Every request is
recorded in `requests`. Free of pytest: integration tests can use it too (`with StandIn() as api: api.base_url`).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "v61.0"
HUBSPOT_429 = (429, {"Retry-After": "2", "X-HubSpot-RateLimit-Secondly": "10",
                     "X-HubSpot-RateLimit-Secondly-Remaining": "0"},
               {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                "correlationId": "c2b1c7b6-7c2c-4d2c-9d3f-0d5e2c9a6f11", "policyName": "SECONDLY"})
PIPEDRIVE_429 = (429, {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"},
                 {"success": False, "error": "Request over limit", "errorCode": 429})
SALESFORCE_403 = (403, {"Sforce-Limit-Info": "api-usage=5001/5000"},
                  [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


@dataclass
class Throttle:
    path: str
    times: int
    status: int
    headers: dict[str, str]
    body: object


@dataclass
class StandIn:
    """The stand-in and its data (module docstring). Use as a context manager, or `start()` and `stop()`."""

    hubspot_owners: list[dict[str, Any]] = field(default_factory=list)
    hubspot_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "deals", "calls"...
    hubspot_associations: dict[str, list[int]] = field(default_factory=dict)  # engagement id -> deal ids
    hubspot_search_cap: int = 10_000
    pipedrive_users: list[dict[str, Any]] = field(default_factory=list)
    pipedrive_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "deals", "activities"
    salesforce_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "User", "Opportunity"...
    salesforce_usage: tuple[int, int] = (18, 5000)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    _throttles: list[Throttle] = field(default_factory=list)
    _locators: dict[str, tuple[list[dict[str, Any]], int]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def throttle(self, path: str, answer: tuple[int, dict[str, str], object], times: int = 1) -> None:
        """The next `times` requests whose path starts with `path` get `answer` (status, headers, body)."""
        with self._lock:
            self._throttles.append(Throttle(path, times, *answer))

    def expire_locators(self) -> None:
        """Every Salesforce query locator expires (as after 15 minutes unused)."""
        with self._lock:
            self._locators.clear()

    # ------------------------------------------------------------------------------------------ answers

    def answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: dict[str, Any] | None) -> tuple[int, dict[str, str], object]:
        with self._lock:
            self.requests.append((method, path, body))
            for throttle in self._throttles:
                if path.startswith(throttle.path) and throttle.times > 0:
                    throttle.times -= 1
                    return throttle.status, throttle.headers, throttle.body
        if not (headers.get("authorization", "").startswith("Bearer ") or headers.get("x-api-token")):
            return 401, {}, {"message": "authentication credentials not found"}
        if path.startswith("/crm/") and path.endswith("/search") and method == "POST":
            return self._hubspot_search(path.split("/")[4], body or {})
        if path == "/crm/v3/owners":
            return self._hubspot_owners(query)
        if path.startswith("/crm/v4/associations/") and method == "POST":
            return self._hubspot_associations(body or {})
        if path == "/v1/users":
            return 200, _pipedrive_limits(), {"success": True, "data": self.pipedrive_users}
        if path.startswith("/api/v2/"):
            return self._pipedrive_list(path.removeprefix("/api/v2/"), query)
        if path.startswith(f"/services/data/{API}/"):
            return self._salesforce(path, query, headers)
        return 404, {}, {"message": f"no route {method} {path}"}

    def _hubspot_owners(self, query: dict[str, str]) -> tuple[int, dict[str, str], object]:
        archived = query.get("archived") == "true"
        owners = [o for o in self.hubspot_owners if bool(o.get("archived")) == archived]
        return _offset_page(owners, query.get("after"), int(query.get("limit", "100")))

    def _hubspot_search(self, objects: str, request: dict[str, Any]) -> tuple[int, dict[str, str], object]:
        limit, after = int(request.get("limit", 10)), int(request.get("after") or 0)
        if after + limit > self.hubspot_search_cap:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": f"paging past {self.hubspot_search_cap} results is not allowed"}
        since = 0
        for group in request.get("filterGroups", []):
            for f in group.get("filters", []):
                if f["propertyName"] == "hs_lastmodifieddate" and f["operator"] == "GTE":
                    since = int(f["value"])
        found = sorted((r for r in self.hubspot_records.get(objects, [])
                        if _millis(r["properties"]["hs_lastmodifieddate"]) >= since),
                       key=lambda r: (_millis(r["properties"]["hs_lastmodifieddate"]), int(r["id"])))
        status, _, page = _offset_page(found, request.get("after"), limit)
        assert isinstance(page, dict)
        return status, {}, {"total": len(found), **page}  # search answers carry no rate-limit headers

    def _hubspot_associations(self, request: dict[str, Any]) -> tuple[int, dict[str, str], object]:
        results = [{"from": {"id": i["id"]},
                    "to": [{"toObjectId": d, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 206,
                                                                   "label": None}]}
                           for d in self.hubspot_associations.get(i["id"], [])]}
                   for i in request.get("inputs", [])]
        now = "2026-11-10T09:00:00.000Z"
        return 200, _hubspot_limits(), {"status": "COMPLETE", "results": results, "startedAt": now,
                                        "completedAt": now}

    def _pipedrive_list(self, entity: str, query: dict[str, str]) -> tuple[int, dict[str, str], object]:
        since = datetime.fromisoformat(query.get("updated_since", "1970-01-01T00:00:00Z"))
        deleted = query.get("status") == "deleted"
        found = sorted((r for r in self.pipedrive_records.get(entity, [])
                        if datetime.fromisoformat(r["update_time"]) >= since and bool(r.get("is_deleted")) == deleted),
                       key=lambda r: (r["update_time"], r["id"]))
        start = int(base64.b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
        limit = int(query.get("limit", "100"))
        following = start + limit
        next_cursor = base64.b64encode(str(following).encode()).decode() if following < len(found) else None
        return 200, _pipedrive_limits(), {"success": True, "data": found[start:following],
                                          "additional_data": {"next_cursor": next_cursor}}

    def _salesforce(self, path: str, query: dict[str, str],
                    headers: dict[str, str]) -> tuple[int, dict[str, str], object]:
        limit_info = {"Sforce-Limit-Info": f"api-usage={self.salesforce_usage[0]}/{self.salesforce_usage[1]}"}
        batch = 2000
        if found := re.search(r"batchSize=(\d+)", headers.get("sforce-query-options", "")):
            batch = int(found.group(1))  # Salesforce takes 200 to 2,000; any size here, to page small data
        resource = path.removeprefix(f"/services/data/{API}/")
        if resource in ("query", "queryAll"):
            records = self._soql(query.get("q", ""), include_deleted=resource == "queryAll")
            if records is None:
                return 400, limit_info, [{"message": "unexpected query", "errorCode": "MALFORMED_QUERY"}]
            return 200, limit_info, self._batch(records, batch)
        if resource.startswith("query/"):
            with self._lock:
                held = self._locators.pop(resource.removeprefix("query/"), None)
            if held is None:
                return 400, limit_info, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
            return 200, limit_info, self._batch(*held)
        return 404, limit_info, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

    def _soql(self, soql: str, include_deleted: bool) -> list[dict[str, Any]] | None:
        found = re.search(r"\bFROM (\w+)(?: WHERE SystemModstamp >= (\S+))?", soql)
        if found is None:
            return None
        since = datetime.fromisoformat(found.group(2)) if found.group(2) else None
        records = [r for r in self.salesforce_records.get(found.group(1), [])
                   if (include_deleted or not r.get("IsDeleted"))
                   and (since is None or _salesforce_time(r["SystemModstamp"]) >= since)]
        if since is None:
            return sorted(records, key=lambda r: r["Id"])
        return sorted(records, key=lambda r: (_salesforce_time(r["SystemModstamp"]), r["Id"]))

    def _batch(self, records: list[dict[str, Any]], batch: int) -> dict[str, Any]:
        head, rest = records[:batch], records[batch:]
        page: dict[str, Any] = {"totalSize": len(records), "done": not rest,
                                "records": [{"attributes": {"type": "x", "url": "/x"}, **r} for r in head]}
        if rest:
            with self._lock:
                locator = f"01gD0000002HU6KIAW-{len(self.requests)}"
                self._locators[locator] = (rest, batch)
            page["nextRecordsUrl"] = f"/services/data/{API}/query/{locator}"
        return page


def _offset_page(records: list[dict[str, Any]], after: str | None, limit: int) -> tuple[int, dict[str, str], object]:
    start = int(after or 0)
    following = start + limit
    page: dict[str, Any] = {"results": records[start:following]}
    if following < len(records):
        page["paging"] = {"next": {"after": str(following), "link": f"https://api.hubapi.com/?after={following}"}}
    return 200, _hubspot_limits(), page


def _hubspot_limits() -> dict[str, str]:
    return {"X-HubSpot-RateLimit-Daily": "500000", "X-HubSpot-RateLimit-Daily-Remaining": "499000",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "180", "X-HubSpot-RateLimit-Secondly": "19",
            "X-HubSpot-RateLimit-Secondly-Remaining": "18"}


def _pipedrive_limits() -> dict[str, str]:
    return {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "2"}


def _millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _salesforce_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self._answer(json.loads(self.rfile.read(length) or b"{}"))

        def _answer(self, body: dict[str, Any] | None) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, answer = stand_in.answer(self.command, parts.path, query, headers, body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json;charset=UTF-8", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


# ---------------------------------------------------------------------------------------------- records


def at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


def hubspot_deal(deal_id: int, modified: datetime, **properties: str) -> dict[str, Any]:
    """A deal as `POST /crm/v3/objects/deals/search` returns it."""
    iso = _iso_millis(modified)
    return {"id": str(deal_id), "properties": {
        "amount": "1000.00", "dealname": f"Deal {deal_id}", "dealstage": "appointmentscheduled",
        "hubspot_owner_id": "910901", "createdate": "2025-01-02T10:00:00.000Z", "closedate": None,
        "deal_currency_code": "EUR", "hs_lastmodifieddate": iso, "hs_object_id": str(deal_id), **properties,
    }, "createdAt": "2025-01-02T10:00:00.000Z", "updatedAt": iso, "archived": False}


def hubspot_call(call_id: int, modified: datetime) -> dict[str, Any]:
    """A call as `POST /crm/v3/objects/calls/search` returns it."""
    iso = _iso_millis(modified)
    return {"id": str(call_id), "properties": {
        "hs_timestamp": iso, "hubspot_owner_id": "910901", "hs_call_duration": "95000",
        "hs_lastmodifieddate": iso, "hs_object_id": str(call_id), "hs_createdate": iso,
    }, "createdAt": iso, "updatedAt": iso, "archived": False}


def hubspot_owner(owner_id: int, email: str, first: str, last: str, archived: bool = False) -> dict[str, Any]:
    """An owner as `GET /crm/v3/owners` lists it."""
    return {"id": str(owner_id), "email": email, "type": "PERSON", "firstName": first, "lastName": last,
            "userId": owner_id + 1000, "userIdIncludingInactive": owner_id + 1000,
            "createdAt": "2024-03-01T10:00:00.000Z", "updatedAt": "2025-03-01T10:00:00.000Z", "archived": archived,
            "teams": []}


def pipedrive_deal(deal_id: int, modified: datetime, deleted: bool = False) -> dict[str, Any]:
    """A deal as `GET /api/v2/deals` lists it."""
    return {"id": deal_id, "title": f"Deal {deal_id}", "creator_user_id": 4343, "owner_id": 4343, "value": 500,
            "person_id": None, "org_id": None, "stage_id": 1, "pipeline_id": 1, "currency": "USD",
            "add_time": "2025-01-02T10:00:00Z", "update_time": _iso_seconds(modified),
            "stage_change_time": None, "is_deleted": deleted, "is_archived": False,
            "status": "deleted" if deleted else "open", "probability": None, "lost_reason": None,
            "visible_to": 3, "close_time": None, "won_time": None, "lost_time": None, "expected_close_date": None,
            "label_ids": [], "origin": "ManuallyCreated", "channel": None, "custom_fields": {}}


def pipedrive_activity(activity_id: int, modified: datetime, done: bool = True) -> dict[str, Any]:
    """An activity as `GET /api/v2/activities` lists it."""
    return {"id": activity_id, "subject": "Call", "type": "call", "owner_id": 4343, "creator_user_id": 4343,
            "is_deleted": False, "add_time": "2025-01-02T10:00:00Z", "update_time": _iso_seconds(modified),
            "deal_id": 7, "lead_id": None, "person_id": None, "org_id": None, "project_id": None,
            "due_date": "2025-02-03", "due_time": "10:30", "duration": "00:15", "busy": False, "done": done,
            "marked_as_done_time": _iso_seconds(modified) if done else None, "location": None, "participants": [],
            "attendees": [], "conference_meeting_client": None, "public_description": None, "priority": None,
            "note": None}


def pipedrive_user(user_id: int, name: str, email: str, zone: str, active: bool = True) -> dict[str, Any]:
    """A user as `GET /v1/users` lists it."""
    return {"id": user_id, "name": name, "default_currency": "EUR", "locale": "en_US", "lang": 1, "email": email,
            "phone": None, "activated": True, "last_login": "2025-11-01 10:00:00", "created": "2024-01-01 10:00:00",
            "modified": "2025-11-01 10:00:00", "has_created_company": False, "access": [], "active_flag": active,
            "timezone_name": zone, "timezone_offset": "+01:00", "role_id": 1, "icon_url": None, "is_you": False,
            "is_deleted": False}


def salesforce_opportunity(number: int, modified: datetime, deleted: bool = False,
                           **fields: object) -> dict[str, Any]:
    """An Opportunity as a `FIELDS(STANDARD)` query returns it (a single-currency org: no CurrencyIsoCode)."""
    stamp = _salesforce_stamp(modified)
    return {"Id": f"006{number:015d}", "IsDeleted": deleted, "AccountId": None, "Name": f"Opportunity {number}",
            "StageName": "Prospecting", "Amount": 1000, "Probability": 10, "CloseDate": "2026-03-31",
            "IsClosed": False, "IsWon": False, "ForecastCategoryName": "Pipeline", "OwnerId": "0055g00000Ab1CdAAE",
            "CreatedDate": "2025-01-02T10:00:00.000+0000", "LastModifiedDate": stamp, "SystemModstamp": stamp,
            **fields}


def salesforce_user(number: int, name: str, email: str, zone: str, active: bool = True) -> dict[str, Any]:
    """A User as `SELECT Id, Name, Email, TimeZoneSidKey, IsActive FROM User` returns it."""
    return {"Id": f"005{number:015d}", "Name": name, "Email": email, "TimeZoneSidKey": zone, "IsActive": active}


def _iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _salesforce_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def iterate(stand_in: StandIn) -> Iterator[StandIn]:
    """`stand_in` started for the duration of a generator (a fixture's body), stopped after."""
    with stand_in:
        yield stand_in
