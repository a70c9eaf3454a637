"""`attain-coaching [serve]` (or `python -m services.coaching`) serves."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.coaching.settings import CoachingSettings
from shared.cli import service_main


def _serve(settings: CoachingSettings) -> None:
    from services.coaching.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "services.coaching",
        "coaching: check-in tasks when reps fall behind, action plans, weekly reviews, manager scorecards.",
        CoachingSettings, _serve, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
