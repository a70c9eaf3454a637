"""`attain-notify [serve]` (or `python -m services.notify`) serves; `... rotate-secrets` seals every stored secret
under NOTIFY_SECRET_KEYS' first key."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.notify.settings import NotifySettings
from shared.cli import Command, service_main


def _serve(settings: NotifySettings) -> None:
    from services.notify.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def _rotate(argv: list[str]) -> int:
    from services.notify import secrets_cli  # noqa: PLC0415

    return secrets_cli.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "services.notify", "notify: check-ins, celebrations and reviews delivered to the people they are for.",
        NotifySettings, _serve,
        {"rotate-secrets": Command("seal every webhook URL, Slack bot token and signing secret under the first key"
                                   " of NOTIFY_SECRET_KEYS", _rotate)},
        argv)


if __name__ == "__main__":
    sys.exit(main())
