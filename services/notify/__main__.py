"""`python -m services.notify [serve]` serves (an `attain-notify` console script is not in pyproject.toml yet)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.notify.settings import NotifySettings
from shared.cli import service_main


def _serve(settings: NotifySettings) -> None:
    from services.notify.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "services.notify", "notify: check-ins, celebrations and reviews delivered to the people they are for.",
        NotifySettings, _serve, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
