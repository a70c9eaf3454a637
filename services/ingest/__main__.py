"""`python -m services.ingest` serves the API; `python -m services.ingest tenants ...` administers."""

import sys

from services.ingest.app import SPEC
from services.ingest.cli import main as tenants_main
from services.ingest.settings import IngestSettings
from shared.service import serve


def main() -> int:
    if sys.argv[1:2] == ["tenants"]:
        return tenants_main(sys.argv[2:])
    serve(SPEC, IngestSettings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
