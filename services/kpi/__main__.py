"""`attain-kpi [serve]` (or `python -m services.kpi`) serves; `... rebuild ...` rebuilds state from the topics."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.kpi.settings import KpiSettings
from shared.cli import Command, service_main


def _serve(settings: KpiSettings) -> None:
    from services.kpi.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def _rebuild(argv: list[str]) -> int:
    from services.kpi import rebuild  # noqa: PLC0415

    return rebuild.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "services.kpi", "kpi: attainment per rep and team against targets, from the sales topics.",
        KpiSettings, _serve,
        {"rebuild": Command("rebuild kpi's state from the topics into a side schema, compare it with the live"
                            " state (and swap it in: --replace)", _rebuild)},
        argv)


if __name__ == "__main__":
    sys.exit(main())
