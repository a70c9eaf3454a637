"""`attain-recognition [serve]` (or `python -m services.recognition`) serves."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.recognition.settings import RecognitionSettings
from shared.cli import service_main


def _serve(settings: RecognitionSettings) -> None:
    from services.recognition.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "services.recognition", "recognition: celebrates every milestone exactly once, with a headline worth posting.",
        RecognitionSettings, _serve, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
