"""`python -m services.ingest` serves the API; `... tenants ...` administers; `... import FILE` bulk-imports."""

import sys

from services.ingest.app import SPEC
from services.ingest.cli import main as tenants_main
from services.ingest.importer import main as import_main
from services.ingest.settings import IngestSettings
from shared.service import serve


def main() -> int:
    if sys.argv[1:2] == ["tenants"]:
        return tenants_main(sys.argv[2:])
    if sys.argv[1:2] == ["import"]:
        return import_main(sys.argv[2:])
    serve(SPEC, IngestSettings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
