"""A webhook body past MAX_WEBHOOK_BODY_BYTES is refused with 413 before it is read in full: by its declared
length before a byte is read, or while it streams in, as soon as it passes the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.integration.ingest_hardening.harness import running_ingest

LIMIT = 64 * 1024
CHUNK = 16 * 1024
CHUNKS = 256  # 4 MiB in all: far past the limit, far below the JSON limit (MAX_BODY_BYTES)


class Body:
    """A request body handed over one chunk at a time, counting how much the server asked for."""

    def __init__(self) -> None:
        self.pulled = 0

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(CHUNKS):
            self.pulled += CHUNK
            yield b" " * CHUNK


async def test_webhook_bodies_past_the_limit_are_refused_before_they_are_read(stack: None) -> None:
    async with running_ingest(max_webhook_body_bytes=LIMIT) as ingest:
        url = f"/v1/webhooks/hubspot/{ingest.slug}"
        declared, streamed = Body(), Body()
        refused = await ingest.replica.http.post(url, content=declared.stream(),
                                                 headers={"content-length": str(CHUNK * CHUNKS)})
        assert refused.status_code == 413, refused.text
        assert declared.pulled <= CHUNK  # the declared length sufficed

        cut = await ingest.replica.http.post(url, content=streamed.stream())  # chunked: no length declared
        assert cut.status_code == 413, cut.text
        assert streamed.pulled <= LIMIT + 2 * CHUNK  # stopped at the limit, not at the end of the body

        for crm in ("pipedrive", "salesforce"):
            other = Body()
            answer = await ingest.replica.http.post(f"/v1/webhooks/{crm}/{ingest.slug}", content=other.stream())
            assert answer.status_code == 413, (crm, answer.text)
            assert other.pulled <= LIMIT + 2 * CHUNK
