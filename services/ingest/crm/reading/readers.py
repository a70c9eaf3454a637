"""The reader for a CRM by name, all sending through one transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.ingest.crm.model import Crm
from services.ingest.crm.reading.hubspot import HubSpotReader
from services.ingest.crm.reading.model import CrmReader
from services.ingest.crm.reading.pipedrive import PipedriveReader
from services.ingest.crm.reading.salesforce import SalesforceReader
from services.ingest.crm.reading.transport import Sleep, Transport


def reader_for(crm: Crm, transport: Transport, *, sleep: Sleep = asyncio.sleep,
               clock: Callable[[], float] = time.monotonic, max_wait_s: float = 60.0) -> CrmReader:
    """The `CrmReader` of `crm`, with each vendor's documented page size and rate limits."""
    if crm == "hubspot":
        return HubSpotReader(transport, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
    if crm == "pipedrive":
        return PipedriveReader(transport, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
    return SalesforceReader(transport, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
