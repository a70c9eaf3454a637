"""The import CLI: rows to events (pure), the checkpoint, and the sender against a fake ingest."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from rich.console import Console

from services.ingest import importer
from services.ingest.importer import Aborted, Options, Sender, retry_after_s
from services.ingest.importer_csv import (
    KINDS,
    Checkpoint,
    Lines,
    Outcome,
    Row,
    UsageError,
    Watermark,
    build_event,
    fingerprint,
    load_checkpoint,
    read_csv,
    read_ndjson,
    save_checkpoint,
)
from services.ingest.tenants import TOKEN_PREFIX, new_token
from services.ingest.validation import judge
from shared.events import CANONICAL_EVENT

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
DEALS_HEADER = "deal_id,rep_id,amount,currency,stage,stage_label,created_at,closed_at,updated_at\n"
WON = "r1,{amount},EUR,won,Won,2026-10-01T00:00:00Z,2026-11-01T10:00:00Z,2026-11-01T10:00:00Z\n"


def _lines(text: str) -> Lines:
    return Lines(io.BytesIO(text.encode()))


def _csv(text: str, kind: str | None = None) -> list[Row]:
    return list(read_csv(_lines(text), kind, "import", NOW)[1])


def _deals(*amounts: str) -> str:
    return DEALS_HEADER + "".join(f"d{i}," + WON.format(amount=a) for i, a in enumerate(amounts, start=1))


# --- rows to events ---------------------------------------------------------------------------------


def test_a_deal_row_becomes_a_valid_deal_upserted_event_with_an_id_made_of_deal_and_version() -> None:
    [row] = _csv(_deals("1200.50"))
    assert row.event is not None and row.line == 2
    event = CANONICAL_EVENT.validate_python(row.event)
    assert event.type == "deal.upserted" and event.source == "import"
    assert event.id == "import:deals:d1:2026-11-01T10:00:00Z"
    assert row.event["time"] == "2026-11-01T10:00:00Z"
    assert row.event["data"]["amount"] == "1200.50"


def test_reading_the_same_file_twice_gives_the_same_ids() -> None:
    text = _deals("10", "20") + "d3,r1,30,EUR,open,,,,2026-11-02T10:00:00Z\n"
    assert [r.event for r in _csv(text)] == [r.event for r in _csv(text)]


@pytest.mark.parametrize("kind", ["roster", "targets"])
def test_rows_without_a_version_field_get_an_id_that_changes_with_their_data(kind: str) -> None:
    rows = {
        "roster": ("rep_id,name,team_id,timezone,active\n", "r1,Ann,t1,Europe/Berlin,yes\n", "r1,Ann,t2,UTC,no\n"),
        "targets": ("scope,scope_id,metric,period,value\n", "rep,r1,won_revenue,2026-Q4,100\n",
                    "rep,r1,won_revenue,2026-Q4,150\n"),
    }[kind]
    first, second = _csv(rows[0] + rows[1] + rows[2])
    again, _ = _csv(rows[0] + rows[1] + rows[2])
    assert first.event and second.event and again.event
    assert first.event["id"] != second.event["id"] and first.event["id"] == again.event["id"]
    assert first.event["time"] == NOW.isoformat()
    CANONICAL_EVENT.validate_python(first.event)


def test_cells_become_the_contracts_json_types_and_blank_cells_are_left_out() -> None:
    [activity] = _csv("activity_id,rep_id,kind,occurred_at,deal_id,duration_s\na1,r1,call,2026-11-01T10:00:00Z,,90\n")
    assert activity.event is not None
    assert activity.event["data"] == {"activity_id": "a1", "rep_id": "r1", "kind": "call",
                                      "occurred_at": "2026-11-01T10:00:00Z", "duration_s": 90}
    [rep] = _csv("rep_id,name,team_id,timezone,active\nr1,Ann,t1,Europe/Berlin,FALSE\n")
    assert rep.event is not None and rep.event["data"]["active"] is False


def test_a_row_that_cannot_become_an_event_is_rejected_locally_with_its_physical_line_number() -> None:
    text = (DEALS_HEADER
            + 'd1,r1,10,EUR,won,"Closed\nWon",2026-10-01T00:00:00Z,2026-11-01T10:00:00Z,2026-11-01T10:00:00Z\n'
            + "\n"
            + "d2," + WON.format(amount="12,5x").replace("12,5x", '"12,5x"')
            + "d3,r1,10,EUR\n"
            + "d4,r1,5,EUR,open,,,,2026-11-01T10:00:00Z,extra\n"
            + "d5," + WON.format(amount="7"))
    rows = _csv(text)
    assert [(r.line, r.last_line) for r in rows] == [(2, 3), (5, 5), (6, 6), (7, 7), (8, 8)]
    assert rows[0].event is not None and rows[0].event["data"]["stage_label"] == "Closed\nWon"
    assert rows[1].event is None and rows[1].reason == "amount: '12,5x' is not a number"
    assert rows[2].reason == "row has 4 cells, the header names 9 columns"
    assert rows[3].reason == "row has 10 cells, the header names 9 columns"
    assert rows[4].event is not None


@pytest.mark.parametrize(("cells", "reason"), [
    ("d1,r1,10,EUR,open,,,,", "updated_at: required (the event id is made from it)"),
    ("d1,r1,NaN,EUR,open,,,,2026-11-01T10:00:00Z", "amount: 'NaN' is not a number"),
])
def test_rows_missing_what_the_id_needs_or_with_bad_numbers_are_rejected(cells: str, reason: str) -> None:
    [row] = _csv(DEALS_HEADER + cells + "\n")
    assert row.event is None and row.reason == reason


FORECAST_HEADER = "deal_id,rep_id,amount,currency,stage,updated_at,expected_close_at,probability,forecast_category\n"
OPEN = "d1,r1,900,EUR,open,2026-11-01T10:00:00Z,"


def test_the_forecast_columns_of_an_open_deal_become_its_optional_fields() -> None:
    [row] = _csv(FORECAST_HEADER + OPEN + "2026-12-15T00:00:00+01:00,0.35,best_case\n")
    assert row.event is not None
    assert {k: row.event["data"][k] for k in ("expected_close_at", "probability", "forecast_category")} == {
        "expected_close_at": "2026-12-15T00:00:00+01:00", "probability": "0.35", "forecast_category": "best_case"}
    event = CANONICAL_EVENT.validate_python(row.event)
    assert event.type == "deal.upserted" and str(event.data.probability) == "0.35"
    assert event.data.expected_close_at == datetime(2026, 12, 14, 23, 0, tzinfo=UTC)


def test_blank_forecast_cells_are_left_out_and_give_the_same_event_id() -> None:
    [blank] = _csv(FORECAST_HEADER + OPEN + ",,\n")
    [filled] = _csv(FORECAST_HEADER + OPEN + "2026-12-15T00:00:00Z,0.5,commit\n")
    assert blank.event is not None and filled.event is not None
    assert not {"expected_close_at", "probability", "forecast_category"} & blank.event["data"].keys()
    assert blank.event["id"] == filled.event["id"] == "import:deals:d1:2026-11-01T10:00:00Z"  # a version: deal + time
    CANONICAL_EVENT.validate_python(blank.event)


@pytest.mark.parametrize(("cell", "reason"), [("high", "probability: 'high' is not a number"),
                                              ("35%", "probability: '35%' is not a number"),
                                              ("NaN", "probability: 'NaN' is not a number")])  # fmt: skip
def test_a_probability_that_is_not_a_number_is_rejected_locally_naming_the_column(cell: str, reason: str) -> None:
    [row] = _csv(FORECAST_HEADER + OPEN + f",{cell},\n")
    assert row.event is None and row.reason == reason


async def test_forecast_values_the_contract_refuses_are_rejected_by_ingest_per_row() -> None:
    rows = _csv(FORECAST_HEADER
                + OPEN + ",1.5,\n"  # more than 1
                + OPEN.replace("d1", "d2") + ",0.33333,\n"  # 5 places: a file is not rounded
                + OPEN.replace("d1", "d3") + ",,likely\n"  # no such category
                + OPEN.replace("d1", "d4") + "next week,,\n"  # not a date-time
                + OPEN.replace("d1", "d5") + "2026-12-15T00:00:00Z,0.3333,omitted\n")
    outcome, _ = await _send(FakeIngest(), rows)
    assert outcome.accepted == 1 and [r["line"] for r in outcome.rejections] == [2, 3, 4, 5]
    reasons = [judge(0, row.event).reason for row in rows[:4] if row.event is not None]  # as ingest words them
    assert [reason.split(":")[0] for reason in reasons if reason] == [
        "data.probability", "data.probability", "data.forecast_category", "data.expected_close_at"]


def test_a_header_without_a_required_column_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"lacks required column.*rep_id"):
        _csv("deal_id,amount,currency,stage,updated_at\nd1,1,EUR,open,2026-11-01T10:00:00Z\n", kind="deals")


def test_the_kind_is_guessed_from_the_header_and_a_utf8_bom_is_ignored() -> None:
    kind, rows = read_csv(_lines("\ufeff" + _deals("5")), None, "import", NOW)
    assert kind == "deals" and next(rows).event is not None


def test_id_time_and_source_columns_win_over_the_derived_ones() -> None:
    event = build_event(KINDS["deals"], {"deal_id": "d1", "rep_id": "r1", "amount": "1", "currency": "EUR",
                                         "stage": "open", "updated_at": "2026-11-01T10:00:00Z", "id": "crm-77",
                                         "time": "2026-11-01T11:00:00Z", "source": "salesforce"}, "import", NOW)
    assert (event["id"], event["time"], event["source"]) == ("crm-77", "2026-11-01T11:00:00Z", "salesforce")


def test_an_id_longer_than_the_contract_allows_becomes_a_hash() -> None:
    event = build_event(KINDS["activities"], {"activity_id": "a" * 300, "rep_id": "r1", "kind": "call",
                                              "occurred_at": "2026-11-01T10:00:00Z"}, "import", NOW)
    assert event["id"].startswith("import:activities:sha256:") and len(event["id"]) <= 200


def test_a_file_that_is_not_utf8_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="line 2 is not UTF-8"):
        list(read_csv(Lines(io.BytesIO(DEALS_HEADER.encode() + b"d1,r\xe9\n")), None, "import", NOW)[1])


def test_property_columns_of_deals_and_activities_become_their_properties_and_blank_cells_carry_nothing() -> None:
    [deal] = _csv(DEALS_HEADER.rstrip("\n") + ",property:segment,property:lead_source\n"
                  + "d1," + WON.format(amount="10").rstrip("\n") + ", SMB ,\n")
    assert deal.event is not None and deal.event["data"]["properties"] == {"segment": "SMB"}
    assert CANONICAL_EVENT.validate_python(deal.event).data.properties == {"segment": "SMB"}
    [activity] = _csv("activity_id,rep_id,kind,occurred_at,property:outcome\na1,r1,call,2026-11-01T10:00:00Z,"
                      "connected\n")
    assert activity.event is not None
    assert CANONICAL_EVENT.validate_python(activity.event).data.properties == {"outcome": "connected"}
    [bare] = _csv(DEALS_HEADER.rstrip("\n") + ",property:segment\n" + "d1," + WON.format(amount="10").rstrip("\n")
                  + ",\n")
    assert bare.event is not None and "properties" not in bare.event["data"]
    assert bare.event["id"] == deal.event["id"]  # a version: deal + time, whatever it carries


def test_a_property_the_contract_refuses_is_rejected_by_ingest_naming_it() -> None:
    [row] = _csv(DEALS_HEADER.rstrip("\n") + ",property:lead source\n" + "d1," + WON.format(amount="10").rstrip("\n")
                 + ",web\n")
    assert row.event is not None
    reason = judge(0, row.event).reason
    assert reason is not None and reason.startswith("data.properties.lead source")


def test_an_ndjson_data_row_may_name_properties_by_column_or_as_an_object() -> None:
    text = json.dumps({"activity_id": "a1", "rep_id": "r1", "kind": "call", "occurred_at": "2026-11-01T10:00:00Z",
                       "properties": {"outcome": "connected"}, "property:channel": "phone"}) + "\n"
    [row] = read_ndjson(_lines(text), "activities", "import", NOW)
    assert row.event is not None and row.event["data"]["properties"] == {"outcome": "connected", "channel": "phone"}


def test_rows_of_kinds_without_properties_ignore_property_columns() -> None:
    [row] = _csv("rep_id,name,team_id,timezone,property:segment\nr1,Ann,t1,UTC,SMB\n")
    assert row.event is not None and "properties" not in row.event["data"]


def test_ndjson_lines_are_canonical_events_or_data_rows_and_keep_their_line_numbers() -> None:
    canonical = {"type": "rep.upserted", "id": "e1", "time": "2026-11-01T10:00:00Z",
                 "data": {"rep_id": "r1", "name": "Ann", "team_id": "t1", "timezone": "UTC"}}
    plain = {"activity_id": "a1", "rep_id": "r1", "kind": "call", "occurred_at": "2026-11-01T10:00:00Z",
             "duration_s": "60"}
    text = f"{json.dumps(canonical)}\n\n{json.dumps(plain)}\n{{not json\n[1]\n"
    without_kind = list(read_ndjson(_lines(text), None, "import", NOW))
    assert [r.line for r in without_kind] == [1, 3, 4, 5]
    assert without_kind[0].event == {**canonical, "source": "import"}
    assert without_kind[1].reason and "pass --kind" in without_kind[1].reason
    assert without_kind[2].reason and without_kind[2].reason.startswith("not valid JSON")
    assert without_kind[3].reason == "the line is not a JSON object"
    as_activities = list(read_ndjson(_lines(text), "activities", "import", NOW))
    assert as_activities[1].event is not None and as_activities[1].event["data"]["duration_s"] == 60
    assert as_activities[1].event["id"] == "import:activities:a1"


def test_csv_and_ndjson_rows_with_the_same_data_get_the_same_id() -> None:
    [from_csv] = _csv("rep_id,name,team_id,timezone,active\nr1,Ann,t1,UTC,true\n")
    [from_json] = read_ndjson(_lines('{"rep_id":"r1","name":"Ann","team_id":"t1","timezone":"UTC","active":true}\n'),
                              "roster", "import", NOW)
    assert from_csv.event and from_json.event and from_csv.event["id"] == from_json.event["id"]


# --- checkpoint ---------------------------------------------------------------------------------------


def test_the_watermark_passes_a_batch_only_when_every_earlier_batch_is_done() -> None:
    mark = Watermark()
    second, first, third = Outcome(20, 200), Outcome(10, 100), Outcome(30, 300)
    assert mark.complete(1, second) == []
    assert mark.complete(0, first) == [first, second]
    assert mark.complete(2, third) == [third]


def test_a_checkpoint_resumes_only_the_same_file_with_the_same_options(tmp_path: Path) -> None:
    data, state = tmp_path / "deals.csv", tmp_path / "deals.csv.attain-import.json"
    data.write_text(_deals("1", "2"))
    params = {"url": "http://x", "source": "import"}
    saved = Checkpoint(fingerprint(data), params).advanced(Outcome(2, 120, accepted=1, rejections=({"line": 2},)))
    save_checkpoint(state, saved)
    assert load_checkpoint(state, fingerprint(data), params)[0] == saved
    assert load_checkpoint(state, fingerprint(data), {**params, "source": "other"})[0] is None
    data.write_text(_deals("1", "2", "3"))
    found, note = load_checkpoint(state, fingerprint(data), params)
    assert found is None and note and "changed" in note
    state.write_text("{broken")
    assert load_checkpoint(state, fingerprint(data), params)[0] is None
    assert saved.line == 2 and saved.accepted == 1 and saved.rejected == 1


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_s("7", NOW) == 7.0
    assert retry_after_s("Thu, 05 Nov 2026 09:00:30 GMT", NOW) == 30.0
    assert retry_after_s("soon", NOW) is None and retry_after_s(None, NOW) is None


# --- sending, against a fake ingest --------------------------------------------------------------------


class FakeIngest:
    """Answers like ingest: validates each NDJSON line, remembers ids, scripted failures first."""

    def __init__(self, script: list[httpx.Response] | None = None, max_events: int = 10_000) -> None:
        self.script, self.max_events = list(script or []), max_events
        self.seen: set[str] = set()
        self.requests: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            return self.script.pop(0)
        items = [json.loads(line) for line in request.content.splitlines()]
        self.requests.append(len(items))
        if len(items) > self.max_events:
            return httpx.Response(413, json={"detail": "body exceeds the limit"})
        results = []
        for index, item in enumerate(items):
            try:
                CANONICAL_EVENT.validate_python(item)
            except ValidationError as err:
                results.append({"index": index, "id": item["id"], "status": "rejected", "reason": str(err)[:80]})
                continue
            status = "duplicate" if item["id"] in self.seen else "accepted"
            self.seen.add(item["id"])
            results.append({"index": index, "id": item["id"], "status": status, "reason": None})
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")}
        return httpx.Response(422 if counts["rejected"] else 200, json={**counts, "results": results})


def _options(**changes: Any) -> Options:
    base = {"url": "http://ingest", "token": "t", "kind": None, "fmt": None, "source": "import", "batch": 2,
            "concurrency": 2, "retries": 3, "resume": True}
    return Options(**{**base, **changes})


async def _send(fake: FakeIngest, rows: list[Row], **changes: Any) -> tuple[Outcome, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        outcome = await Sender(client, _options(**changes), lambda _: None, sleep).send(rows)
    return outcome, waits


async def test_rate_limits_and_kafka_outages_are_retried_after_the_time_ingest_asks_for() -> None:
    fake = FakeIngest([httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow down"}),
                       httpx.Response(503, headers={"Retry-After": "5"}, json={"detail": "kafka"})])
    outcome, waits = await _send(fake, _csv(_deals("1", "2")))
    assert waits == [3.0, 5.0] and outcome.accepted == 2


async def test_an_ingest_that_stays_unavailable_aborts_the_import_after_the_retries() -> None:
    fake = FakeIngest([httpx.Response(503, headers={"Retry-After": "1"})] * 5)
    with pytest.raises(Aborted, match="after 3 retries") as raised:
        await _send(fake, _csv(_deals("1")))
    assert not raised.value.usage


async def test_a_refused_token_aborts_as_a_usage_error() -> None:
    with pytest.raises(Aborted, match="HTTP 401") as raised:
        await _send(FakeIngest([httpx.Response(401, json={"detail": "invalid or revoked bearer token"})]),
                    _csv(_deals("1")))
    assert raised.value.usage


async def test_a_batch_too_large_for_ingest_is_split_until_it_fits() -> None:
    fake = FakeIngest(max_events=2)
    outcome, _ = await _send(fake, _csv(_deals("1", "2", "3", "4", "5")))
    assert outcome.accepted == 5 and fake.requests == [5, 2, 3, 1, 2]


async def test_rejections_from_ingest_and_from_the_reader_carry_their_line_numbers() -> None:
    rows = _csv(_deals("1", "oops", "-5", "4"))
    outcome, _ = await _send(FakeIngest(), rows)
    assert (outcome.accepted, outcome.last_line) == (2, 5)
    assert [(r["line"], r["reason"][:30]) for r in outcome.rejections] == [
        (3, "amount: 'oops' is not a number"), (4, "1 validation error for tagged-")]


def test_an_import_reports_rejected_lines_resumes_after_a_crash_and_a_rerun_is_all_duplicate(tmp_path: Path) -> None:
    data = tmp_path / "deals.csv"
    data.write_text(_deals("1", "2", "-3", "4", "5", "6", "7"))  # line 4 is rejected by ingest
    fake = FakeIngest()
    out = Console(file=io.StringIO(), width=200)
    state = tmp_path / "deals.csv.attain-import.json"
    flaky = FakeIngest()

    def crash_after_two_requests(request: httpx.Request) -> httpx.Response:
        if len(flaky.requests) >= 2:
            return httpx.Response(401, json={"detail": "revoked"})
        return flaky(request)

    code = importer.import_file(data, _options(concurrency=1), httpx.MockTransport(crash_after_two_requests), out)
    assert code == importer.EXIT_USAGE and json.loads(state.read_text())["line"] == 5
    fake.seen = set(flaky.seen)
    code = importer.import_file(data, _options(), httpx.MockTransport(fake), out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert code == importer.EXIT_REJECTED
    assert fake.requests == [2, 1] and "7 rows: 6 accepted, 0 duplicate, 1 rejected (resumed after line 5)" in text
    assert "line 4: " in text and not state.exists()
    rejected = [json.loads(line) for line in (tmp_path / "deals.csv.rejected.ndjson").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [4] and rejected[0]["row"]["amount"] == "-3"

    code = importer.import_file(data, _options(), httpx.MockTransport(fake), out)
    assert code == importer.EXIT_REJECTED
    assert "7 rows: 0 accepted, 6 duplicate, 1 rejected" in out.file.getvalue()  # type: ignore[attr-defined]


def test_main_refuses_unknown_formats_and_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.txt").write_text("a\n")
    monkeypatch.setenv("ATTAIN_TOKEN", "t")
    assert importer.main([str(tmp_path / "x.txt"), "--url", "http://x"]) == importer.EXIT_USAGE
    assert importer.main(["--url", "http://x"]) == importer.EXIT_USAGE
    assert importer.main([str(tmp_path / "x.txt"), "--url", "u", "--batch", "0"]) == 2


def test_the_token_comes_from_a_file_standard_input_or_the_environment_and_is_required(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.txt").write_text("a\n")
    (tmp_path / "token").write_text("-9S-p6\n")
    monkeypatch.delenv("ATTAIN_TOKEN", raising=False)
    token_file = str(tmp_path / "token")
    args = importer.parser().parse_args([str(tmp_path / "x.txt"), "--url", "u", "--token-file", token_file])
    assert importer.token_of(args, io.StringIO()) == "-9S-p6"
    args = importer.parser().parse_args([str(tmp_path / "x.txt"), "--url", "u", "--token-file", "-"])
    assert importer.token_of(args, io.StringIO("atn_piped\n")) == "atn_piped"
    assert importer.main([str(tmp_path / "x.txt"), "--url", "u"]) == importer.EXIT_USAGE  # none at all
    monkeypatch.setenv("ATTAIN_TOKEN", "atn_from-env")
    assert importer.token_of(importer.parser().parse_args([str(tmp_path / "x.txt"), "--url", "u"]), io.StringIO()) == (
        "atn_from-env")


def test_a_token_on_the_command_line_is_refused_naming_the_ways_to_give_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "deals.csv").write_text("a\n")
    assert importer.main([str(tmp_path / "deals.csv"), "--url", "u", "--token", "atn_secret"]) == importer.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--token-file" in err and "ATTAIN_TOKEN" in err and "atn_secret" not in err
    assert not (tmp_path / "deals.csv.attain-import.json").exists()


def test_new_tokens_never_look_like_an_option() -> None:
    tokens = {new_token() for _ in range(500)}
    assert len(tokens) == 500
    assert all(t.startswith(TOKEN_PREFIX) and len(t) == len(TOKEN_PREFIX) + 43 for t in tokens)
