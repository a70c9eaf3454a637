"""`attain-ingest [serve]` (or `python -m services.ingest`) serves the API; `... tenants ...` administers tenants;
`... tokens ...` manages tokens and roles; `... keys registry` makes the registry's signing key pair;
`... import FILE ...` bulk-imports."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.ingest.settings import IngestSettings
from shared.cli import Command, service_main


def _serve(settings: IngestSettings) -> None:
    from services.ingest.app import SPEC  # noqa: PLC0415 - the server's imports only when it runs
    from shared.service import serve  # noqa: PLC0415

    serve(SPEC, settings)


def _tenants(argv: list[str]) -> int:
    from services.ingest.cli import main as tenants_main  # noqa: PLC0415 - each command imports what it needs

    return tenants_main(argv)


def _tokens(argv: list[str]) -> int:
    from services.ingest.tokens_cli import main as tokens_main  # noqa: PLC0415

    return tokens_main(argv)


def _keys(argv: list[str]) -> int:
    from services.ingest.keys import main as keys_main  # noqa: PLC0415

    return keys_main(argv)


def _import(argv: list[str]) -> int:
    from services.ingest.importer import main as import_main  # noqa: PLC0415

    return import_main(argv)


COMMANDS = {
    "tenants": Command("manage tenants: create, CRM secrets and API tokens, rates, locale, holidays, revoke", _tenants),
    "tokens": Command("a tenant's tokens and roles: create, share a TV link, list, revoke, rotate", _tokens),
    "keys": Command("make the Ed25519 key pair the tenant registry is signed with", _keys),
    "import": Command("import CSV or NDJSON files through ingest's API, resumably", _import),
}


def main(argv: Sequence[str] | None = None) -> int:
    return service_main("services.ingest", "ingest: CRM webhooks and the events API, into the sales topics.",
                        IngestSettings, _serve, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
