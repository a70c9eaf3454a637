"""The published Adaptive Card JSON schema, for tests: fetched once from the npm registry, cached.

Microsoft publishes the schema at adaptivecards.io; of the npm packages, only `adaptivecards-designer`
ships it (``src/adaptive-card-schema.ts``: the schema as a JSON object literal, id
``http://adaptivecards.io/schemas/adaptive-card.json``). That copy is the 1.0 schema (draft-06): it
knows TextBlock, FactSet, Container, ColumnSet, Image and the Submit/ShowCard/OpenUrl actions with
their enums, and lets newer properties through (``additionalProperties: true``), so a card that keeps to
those elements, as notify's do, is checked for every element it uses. Neither `adaptivecards` (3.0.6),
`@microsoft/adaptivecards-tools` (1.3.11) nor `@microsoft/teams.cards` (2.1.0) ships a JSON schema.

`load()` reads ``~/.cache/attain/adaptive-card-schema-<version>.json``, or runs ``npm pack`` into a
temporary folder, takes the schema out of the tarball and writes that cache; without npm or the
registry the caller skips (`SchemaUnavailable`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "adaptivecards-designer"
VERSION = "2.4.4"
MEMBER = "package/src/adaptive-card-schema.ts"
CACHE = Path.home() / ".cache" / "attain" / f"adaptive-card-schema-{PACKAGE}-{VERSION}.json"


class SchemaUnavailable(Exception):
    """npm, the registry or the file in the package is missing: say which, and skip."""


def load() -> dict[str, Any]:
    if CACHE.is_file():
        schema: dict[str, Any] = json.loads(CACHE.read_text())
        return schema
    npm = shutil.which("npm")
    if npm is None:
        raise SchemaUnavailable("npm is not installed")
    with tempfile.TemporaryDirectory() as folder:
        packed = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", folder, "--silent"],
                                capture_output=True, text=True, timeout=120, check=False)
        if packed.returncode != 0:
            raise SchemaUnavailable(f"npm pack {PACKAGE}@{VERSION} failed: {packed.stderr.strip()[:300]}")
        tarball = Path(folder) / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(MEMBER)
            if member is None:
                raise SchemaUnavailable(f"{PACKAGE}@{VERSION} has no {MEMBER}")
            source = member.read().decode()
    schema = parse_ts(source)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = CACHE.with_suffix(".part")
    partial.write_text(json.dumps(schema))
    partial.replace(CACHE)  # atomic: a parallel test run never reads half a file
    return schema


def parse_ts(source: str) -> dict[str, Any]:
    """``export const adaptiveCardSchema = {...};`` -> the object (it is plain JSON)."""
    start = source.index("{", source.index("adaptiveCardSchema"))
    schema: dict[str, Any] = json.loads(source[start:].strip().rstrip(";"))
    if schema.get("id") != "http://adaptivecards.io/schemas/adaptive-card.json":
        raise SchemaUnavailable(f"{MEMBER} is not the Adaptive Card schema (id {schema.get('id')!r})")
    return schema
