"""The CRM API fetcher, reached the way production reaches it (a signed webhook that leaves a deal incomplete),
against stand-in CRM APIs that misbehave: one on an internal address, one that never stops answering, one
that answers a byte at a time."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

from tests.integration.ingest_hardening.harness import StandIn, running_ingest, stage_only_win, stand_in_crm

ENDLESS_DEAL, DRIPPING_DEAL = 9101, 9102
ENDLESS_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024


def _misbehave(handler: BaseHTTPRequestHandler, seen: StandIn) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.end_headers()  # no length: the answer ends when the connection does
    if f"/deals/{ENDLESS_DEAL}" in handler.path:
        chunk = b" " * 65536
        while seen.sent_bytes < ENDLESS_BYTES:
            handler.wfile.write(chunk)
            seen.sent_bytes += len(chunk)
    else:
        for _ in range(100):  # 20 s of one byte every 0.2 s: never idle long enough for a read timeout
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)


async def test_a_crm_api_on_a_loopback_address_is_never_called(stack: None) -> None:
    with stand_in_crm() as crm:
        async with running_ingest(crm.url) as ingest:  # no CRM_API_ALLOWED_HOSTS: as in production
            response = await ingest.deliver(stage_only_win(4711, int(time.time() * 1000), 1))
            assert response.status_code == 200, response.text
            assert response.json()["dead_lettered"] == 1  # waits for a later delivery, as without a token
    assert crm.paths == []


async def test_an_answer_past_the_limit_or_too_slow_is_given_up_and_the_delivery_answers_promptly(
        stack: None) -> None:
    with stand_in_crm(_misbehave, host="localhost") as crm:
        async with running_ingest(crm.url, crm_api_allowed_hosts="localhost", crm_api_timeout_s=2.0,
                                  crm_api_max_response_bytes=MAX_RESPONSE_BYTES) as ingest:
            now = int(time.time() * 1000)
            endless = await ingest.deliver(stage_only_win(ENDLESS_DEAL, now, 1))
            assert endless.status_code == 200 and endless.json()["dead_lettered"] == 1, endless.text
            assert crm.sent_bytes < ENDLESS_BYTES // 4  # the fetcher hung up long before the end

            started = time.monotonic()
            dripping = await ingest.deliver(stage_only_win(DRIPPING_DEAL, now, 2))
            assert dripping.status_code == 200 and dripping.json()["dead_lettered"] == 1, dripping.text
            assert time.monotonic() - started < 8  # CRM_API_TIMEOUT_S bounds the whole call, not each read
    assert any(f"/deals/{ENDLESS_DEAL}" in p for p in crm.paths)
    assert any(f"/deals/{DRIPPING_DEAL}" in p for p in crm.paths)
