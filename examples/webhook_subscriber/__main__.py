"""`python -m examples.webhook_subscriber --url URL --tenants SLUG[,SLUG] [--secret whsec_...] [...]`: see README.md."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from examples.webhook_subscriber.config import Settings, parse
from examples.webhook_subscriber.subscriber import serve

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **{k: v for k, v in vars(record).items() if k not in _STANDARD},
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


async def _main(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, sig))
    return await serve(settings, stop)


def _stopper(stop: asyncio.Event, sig: signal.Signals) -> Callable[[], None]:
    def handler() -> None:
        if not stop.is_set():
            logging.getLogger("webhook_subscriber").info("signal received: stopping", extra={"signal": sig.name})
        stop.set()

    return handler


def main() -> int:
    settings = parse()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request at INFO
    try:
        return asyncio.run(_main(settings))
    except Exception:
        logging.getLogger("webhook_subscriber").exception("failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
