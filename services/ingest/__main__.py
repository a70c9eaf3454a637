"""`python -m services.ingest` serves the API; `... tenants ...` administers; `... import FILE` bulk-imports;
`... tokens ...` manages tokens and roles;
`... keys registry` makes the registry's signing key pair."""

import sys

from pydantic import ValidationError

from services.ingest.app import SPEC
from services.ingest.cli import main as tenants_main
from services.ingest.importer import main as import_main
from services.ingest.keys import main as keys_main
from services.ingest.settings import IngestSettings, problems
from services.ingest.tokens_cli import main as tokens_main
from shared.service import serve


def main() -> int:
    if sys.argv[1:2] == ["tenants"]:
        return tenants_main(sys.argv[2:])
    if sys.argv[1:2] == ["tokens"]:
        return tokens_main(sys.argv[2:])
    if sys.argv[1:2] == ["keys"]:
        return keys_main(sys.argv[2:])
    if sys.argv[1:2] == ["import"]:
        return import_main(sys.argv[2:])
    try:
        settings = IngestSettings()
    except ValidationError as err:  # a setting missing or wrong (CRM_SECRET_KEYS, say): its message, no traceback
        print(f"error: {problems(err)}", file=sys.stderr)  # noqa: T201 - before logging is configured
        return 2
    serve(SPEC, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
